package routing

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
)

// BenchmarkPoolSession is one page view of a visitor new to the pool: its
// Assign, then a heartbeat. Time moves so that about half the numbers are
// held at any moment, numbers changing hands as in a busy site.
func BenchmarkPoolSession(b *testing.B) {
	const size = 10000
	hold := 30 * time.Minute
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = fmt.Sprintf("visitor-%08x", i)
	}
	v := Visit{UTMSource: "google", UTMMedium: "cpc", GCLID: "EAIaIQobChMI", LandingPage: "https://example.com/offer"}
	b.Run("serial", func(b *testing.B) {
		m := NewPools([]config.Pool{testPool("web", size, hold)}, newClock(), nil)
		step := hold / (size / 2)
		now := noon
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			now = now.Add(step)
			id := ids[i%len(ids)]
			if _, _, err := m.Assign("web", id, v, now); err != nil {
				b.Fatal(err)
			}
			m.Heartbeat("web", id, now)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	})
	b.Run("parallel", func(b *testing.B) {
		m := NewPools([]config.Pool{testPool("web", size, hold)}, newClock(), nil)
		step := int64(hold / (size / 2))
		var tick, next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				now := noon.Add(time.Duration(tick.Add(step)))
				id := ids[int(next.Add(1))%len(ids)]
				if _, _, err := m.Assign("web", id, v, now); err != nil {
					b.Fatal(err)
				}
				m.Heartbeat("web", id, now)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	})
}

// BenchmarkPoolHeldMemory measures the manager's own heap: per pool
// number (its slot, with room for its current and previous binding, made
// when the pool is applied) and per held visitor on top (the visitor
// index entry). The visits' strings are made beforehand, as a request
// would have them already, so they are not counted.
func BenchmarkPoolHeldMemory(b *testing.B) {
	const size = 10000
	ids := make([]string, size)
	visits := make([]Visit, size)
	for i := range ids {
		ids[i] = fmt.Sprintf("visitor-%08x", i)
		visits[i] = Visit{UTMSource: "google", GCLID: fmt.Sprintf("gclid-%d", i), LandingPage: "https://example.com/", FirstSeen: noon}
	}
	b.ReportAllocs()
	cfg := []config.Pool{testPool("web", size, time.Hour)}
	var perNumber, perVisitor float64
	for range b.N {
		start := heapInUse()
		m := NewPools(cfg, newClock(), nil)
		before := heapInUse()
		perNumber = float64(before-start) / size
		for i := range ids {
			if _, overflow, err := m.Assign("web", ids[i], visits[i], noon); err != nil || overflow {
				b.Fatal(err, overflow)
			}
		}
		after := heapInUse()
		perVisitor = float64(after-before) / size
		runtime.KeepAlive(m)
	}
	b.ReportMetric(perNumber, "B/pool-number")
	b.ReportMetric(perVisitor, "B/held-visitor")
}

func heapInUse() uint64 {
	runtime.GC()
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return s.HeapAlloc
}
