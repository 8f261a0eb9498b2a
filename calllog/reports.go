package calllog

import (
	"fmt"
	"time"
)

// SourceRow is one source and campaign over a time range.
type SourceRow struct {
	Source   string
	Campaign string
	Calls    int
	Answered int
	Missed   int
	// MissedRate is Missed/Calls, 0 without calls.
	MissedRate float64
	// AvgTalkMS is the mean talk time of answered calls.
	AvgTalkMS int64
	// FirstTime counts calls flagged as the caller's first in 30 days.
	FirstTime int
}

// SourcesReport sums the calls started in [from, to) per source and
// campaign, busiest first.
func (s *Store) SourcesReport(from, to time.Time) ([]SourceRow, error) {
	rows, err := s.db.Query(`SELECT source, campaign, count(*),
			sum(outcome = 'answered'), sum(outcome = 'missed'),
			coalesce(avg(CASE WHEN outcome = 'answered' THEN talk_ms END), 0),
			sum(first_call)
		FROM calls WHERE started_at >= ? AND started_at < ?
		GROUP BY source, campaign
		ORDER BY count(*) DESC, source, campaign`, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("calllog: sources report: %w", err)
	}
	defer rows.Close()
	var out []SourceRow
	for rows.Next() {
		var r SourceRow
		var avg float64
		if err := rows.Scan(&r.Source, &r.Campaign, &r.Calls, &r.Answered, &r.Missed, &avg, &r.FirstTime); err != nil {
			return nil, fmt.Errorf("calllog: sources report: %w", err)
		}
		r.AvgTalkMS = int64(avg + 0.5)
		if r.Calls > 0 {
			r.MissedRate = float64(r.Missed) / float64(r.Calls)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("calllog: sources report: %w", err)
	}
	return out, nil
}

// AgentRow is one agent's answered calls.
type AgentRow struct {
	Agent     string
	Answered  int
	TalkMS    int64
	AvgTalkMS int64
}

// QueueRow is one queue's calls and how many of them were missed.
type QueueRow struct {
	Queue  string
	Calls  int
	Missed int
}

// AgentsReport is who answered and where calls were missed. Rings that
// an agent let pass are not counted: the store keeps final records, not
// each attempt.
type AgentsReport struct {
	Agents []AgentRow
	Queues []QueueRow
}

// AgentsReport sums the calls started in [from, to): answered calls and
// talk time per agent (most answered first), calls and missed calls per
// queue (calls that never reached a queue are left out).
func (s *Store) AgentsReport(from, to time.Time) (AgentsReport, error) {
	var rep AgentsReport
	rows, err := s.db.Query(`SELECT agent, count(*), coalesce(sum(talk_ms), 0)
		FROM calls WHERE started_at >= ? AND started_at < ? AND outcome = 'answered' AND agent <> ''
		GROUP BY agent ORDER BY count(*) DESC, agent`, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return rep, fmt.Errorf("calllog: agents report: %w", err)
	}
	for rows.Next() {
		var r AgentRow
		if err := rows.Scan(&r.Agent, &r.Answered, &r.TalkMS); err != nil {
			rows.Close()
			return rep, fmt.Errorf("calllog: agents report: %w", err)
		}
		r.AvgTalkMS = (r.TalkMS + int64(r.Answered)/2) / int64(r.Answered)
		rep.Agents = append(rep.Agents, r)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return rep, fmt.Errorf("calllog: agents report: %w", err)
	}
	rows, err = s.db.Query(`SELECT queue, count(*), sum(outcome = 'missed')
		FROM calls WHERE started_at >= ? AND started_at < ? AND queue <> ''
		GROUP BY queue ORDER BY queue`, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return rep, fmt.Errorf("calllog: agents report: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r QueueRow
		if err := rows.Scan(&r.Queue, &r.Calls, &r.Missed); err != nil {
			return rep, fmt.Errorf("calllog: agents report: %w", err)
		}
		rep.Queues = append(rep.Queues, r)
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("calllog: agents report: %w", err)
	}
	return rep, nil
}

// MissedByHour counts the missed calls started in [from, to) by weekday
// (index time.Weekday, Sunday 0) and hour of the day, both in loc (UTC
// when nil). The conversion happens here rather than in SQL because only
// Go knows loc's daylight saving rules.
func (s *Store) MissedByHour(from, to time.Time, loc *time.Location) ([7][24]int, error) {
	var grid [7][24]int
	if loc == nil {
		loc = time.UTC
	}
	rows, err := s.db.Query(`SELECT started_at FROM calls
		WHERE started_at >= ? AND started_at < ? AND outcome = 'missed'`, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return grid, fmt.Errorf("calllog: missed by hour: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ms int64
		if err := rows.Scan(&ms); err != nil {
			return grid, fmt.Errorf("calllog: missed by hour: %w", err)
		}
		t := time.UnixMilli(ms).In(loc)
		grid[t.Weekday()][t.Hour()]++
	}
	if err := rows.Err(); err != nil {
		return grid, fmt.Errorf("calllog: missed by hour: %w", err)
	}
	return grid, nil
}
