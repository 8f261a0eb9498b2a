package calllog

import (
	"fmt"
	"testing"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/rs/zerolog"
)

// BenchmarkAdd measures sustained write throughput: Add plus the writer's
// batched inserts, flushing every few thousand calls so that the bounded
// queue never drops.
func BenchmarkAdd(b *testing.B) {
	s, err := Open(b.TempDir(), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := answered("", "+15551230001", t0, time.Minute)
	e.Visitor = map[string]string{"gclid": "EAIaIQobChMI", "utm_source": "google", "utm_campaign": "spring"}
	e.IVR = []string{"1"}
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		e.ID = fmt.Sprintf("call-%09d", i)
		e.StartedAt = t0.Add(time.Duration(i) * time.Millisecond)
		s.Add(e)
		if i%4096 == 4095 {
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	if s.Dropped() != 0 || s.Failed() != 0 {
		b.Fatalf("dropped %d, failed %d", s.Dropped(), s.Failed())
	}
}

// BenchmarkQuery100k measures Query on 100,000 calls spread over 100 days.
func BenchmarkQuery100k(b *testing.B) {
	s, err := Open(b.TempDir(), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 100_000
	sources := []string{"google-ads", "billboard", "radio", "bing", "facebook"}
	batch := make([]Entry, 0, maxBatch)
	for i := range n {
		start := t0.Add(time.Duration(i) * 86 * time.Second)
		var e Entry
		if i%4 == 0 {
			e = missed(fmt.Sprintf("call-%06d", i), fmt.Sprintf("+1555%07d", i%20000), start)
		} else {
			e = answered(fmt.Sprintf("call-%06d", i), fmt.Sprintf("+1555%07d", i%20000), start, time.Minute)
			e.Agent = fmt.Sprintf("agent%d", i%10)
		}
		// Two rings a call, as a queue of two agents would give.
		other := fmt.Sprintf("agent%d", (i+1)%10)
		e.Attempts = []call.Attempt{
			{Agent: other, StartedAt: start, Ring: 20 * time.Second, Result: call.AttemptNoAnswer},
			{Agent: e.Agent, StartedAt: start.Add(20 * time.Second), Ring: 5 * time.Second, Result: call.AttemptAnswered},
		}
		if e.Agent == "" {
			e.Attempts[1].Agent, e.Attempts[1].Result = "agent9", call.AttemptNoAnswer
		}
		e.Source = sources[i%len(sources)]
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.insertTx(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	mid := t0.Add(50 * 24 * time.Hour)
	deep, err := s.Query(Filter{Limit: 500, From: mid})
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		f    Filter
	}{
		{"first_page", Filter{}},
		{"next_page", Filter{Cursor: deep.Next}},
		{"source_day", Filter{Source: "radio", From: mid, To: mid.Add(24 * time.Hour)}},
		{"agent_outcome", Filter{Agent: "agent3", Outcome: "answered"}},
		{"caller", Filter{Caller: "+15550012345"}},
		{"tracking_number_rare", Filter{TrackingNumber: "+19999999999"}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Query(c.f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The reports the dashboard asks for on each ended call, over the
	// 30 days (about 30,000 calls) it shows by default.
	month := mid.Add(-30 * 24 * time.Hour)
	b.Run("sources_report_30d", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.SourcesReport(month, mid); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("agents_report_30d", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.AgentsReport(month, mid); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("missed_by_hour_30d", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.MissedByHour(month, mid, time.UTC); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("first_call", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.FirstCall("+15550012345", mid); err != nil {
				b.Fatal(err)
			}
		}
	})
}
