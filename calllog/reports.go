package calllog

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
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

// AgentRow is one agent over a time range.
type AgentRow struct {
	Agent string
	// Offered counts the agent's rings: every attempt to reach the
	// agent, whatever came of it.
	Offered int
	// Answered counts the calls the agent answered.
	Answered int
	// Missed counts the rings the agent let pass (see AgentsReport).
	Missed int
	// TalkMS is the talk time of the calls the agent answered, AvgTalkMS
	// its mean per answered call.
	TalkMS    int64
	AvgTalkMS int64
}

// QueueRow is one queue's calls and how many of them were missed.
type QueueRow struct {
	Queue  string
	Calls  int
	Missed int
}

// AgentsReport is how agents met the calls offered to them, and where
// calls were missed.
type AgentsReport struct {
	Agents []AgentRow
	Queues []QueueRow
}

// missedAttempt is the SQL condition, on an attempts row a, that the
// agent was offered the call and did not take it: no answer, declined,
// busy or unreachable. A cancelled ring counts as missed unless another
// agent answered the call while it rang: with ring-all, the phones that
// lose the race to a colleague did nothing wrong, but a phone left
// ringing until the caller gave up (or the call moved on to another
// queue) is a call the agent did not take. "While it rang" is an answered
// attempt of the same call that started before this one ended; an
// overflow queue's agents are rung only after the first queue's phones
// stopped, so their answers do not excuse those phones.
const missedAttempt = `(a.result IN ('no_answer', 'declined', 'busy', 'unreachable')
	OR (a.result = 'cancelled' AND NOT EXISTS (
		SELECT 1 FROM attempts w WHERE w.call_id = a.call_id AND w.result = 'answered'
		  AND w.started_at < a.started_at + a.ring_ms)))`

// AgentsReport sums the calls started in [from, to). Per agent (most
// answered first): rings offered, answered and missed from each call's
// attempts, and the talk time of the calls the agent answered. A call
// stored without attempts (by a version that did not keep them) counts
// as one offer, answered, for the agent who answered it. Per queue: calls
// and missed calls (calls that never reached a queue are left out).
func (s *Store) AgentsReport(from, to time.Time) (AgentsReport, error) {
	var rep AgentsReport
	fromMS, toMS := from.UnixMilli(), to.UnixMilli()
	byAgent := map[string]*AgentRow{}
	row := func(agent string) *AgentRow {
		r := byAgent[agent]
		if r == nil {
			r = &AgentRow{Agent: agent}
			byAgent[agent] = r
		}
		return r
	}
	rows, err := s.db.Query(`SELECT a.agent, count(*), sum(a.result = 'answered'), sum(`+missedAttempt+`)
		FROM calls c JOIN attempts a ON a.call_id = c.call_id
		WHERE c.started_at >= ? AND c.started_at < ? AND a.agent <> ''
		GROUP BY a.agent`, fromMS, toMS)
	if err != nil {
		return rep, fmt.Errorf("calllog: agents report: %w", err)
	}
	for rows.Next() {
		var agent string
		var offered, answered, missed int
		if err := rows.Scan(&agent, &offered, &answered, &missed); err != nil {
			rows.Close()
			return rep, fmt.Errorf("calllog: agents report: %w", err)
		}
		r := row(agent)
		r.Offered, r.Answered, r.Missed = offered, answered, missed
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return rep, fmt.Errorf("calllog: agents report: %w", err)
	}
	rows, err = s.db.Query(`SELECT agent, count(*), coalesce(sum(talk_ms), 0),
			sum(NOT EXISTS (SELECT 1 FROM attempts a WHERE a.call_id = calls.call_id))
		FROM calls WHERE started_at >= ? AND started_at < ? AND outcome = 'answered' AND agent <> ''
		GROUP BY agent`, fromMS, toMS)
	if err != nil {
		return rep, fmt.Errorf("calllog: agents report: %w", err)
	}
	for rows.Next() {
		var agent string
		var calls, without int
		var talk int64
		if err := rows.Scan(&agent, &calls, &talk, &without); err != nil {
			rows.Close()
			return rep, fmt.Errorf("calllog: agents report: %w", err)
		}
		r := row(agent)
		r.Offered += without
		r.Answered += without
		r.TalkMS = talk
		r.AvgTalkMS = (talk + int64(calls)/2) / int64(calls)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return rep, fmt.Errorf("calllog: agents report: %w", err)
	}
	for _, r := range byAgent {
		rep.Agents = append(rep.Agents, *r)
	}
	slices.SortFunc(rep.Agents, func(a, b AgentRow) int {
		return cmp.Or(cmp.Compare(b.Answered, a.Answered), cmp.Compare(b.Offered, a.Offered), strings.Compare(a.Agent, b.Agent))
	})
	rows, err = s.db.Query(`SELECT queue, count(*), sum(outcome = 'missed')
		FROM calls WHERE started_at >= ? AND started_at < ? AND queue <> ''
		GROUP BY queue ORDER BY queue`, fromMS, toMS)
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
