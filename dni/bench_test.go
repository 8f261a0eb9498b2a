package dni_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/dni"
	"github.com/callsign/callsign/routing"
	"github.com/rs/zerolog"
)

// benchPools is the edge's adapter in miniature: the real pool manager
// behind the HTTP endpoints.
type benchPools struct{ m *routing.Pools }

func (p benchPools) Assign(pool, visitor string, v routing.Visit) (dni.Assignment, error) {
	now := time.Now()
	v.FirstSeen = now
	n, overflow, err := p.m.Assign(pool, visitor, v, now)
	return dni.Assignment{Number: n, Replace: "+15550100000", Overflow: overflow, Heartbeat: 10 * time.Minute}, err
}

func (p benchPools) Heartbeat(pool, visitor string) bool {
	return p.m.Heartbeat(pool, visitor, time.Now())
}

// BenchmarkSessionHTTP is what a site's traffic costs the edge: each
// iteration is a page view of a new visitor over HTTP on loopback (POST
// /dni/v1/session with a landing URL carrying utm parameters and a gclid,
// then one POST /dni/v1/heartbeat), from parallel keep-alive clients, into
// a pool of 10,000 numbers. Client and server share the machine's CPUs.
func BenchmarkSessionHTTP(b *testing.B) {
	p := config.Pool{Name: "website", Replace: "+15550100000", Overflow: "+15550199999", Hold: 30 * time.Minute, Flow: "main"}
	for i := range 10000 {
		p.Numbers = append(p.Numbers, fmt.Sprintf("+1555011%04d", i))
	}
	m := routing.NewPools([]config.Pool{p}, nil, nil)
	srv := httptest.NewServer(dni.Handler(benchPools{m}, zerolog.Nop()))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	post := func(path string, body []byte, want int) error {
		res, err := client.Post(srv.URL+path, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			return fmt.Errorf("%s: %d", path, res.StatusCode)
		}
		return nil
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("visitor-%012d", next.Add(1))
			session := fmt.Appendf(nil, `{"pool":"website","visitor":%q,"landing":"https://example.com/offer?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=EAIaIQobChMI%s","referrer":"https://www.google.com/"}`, id, id)
			if err := post("/dni/v1/session", session, http.StatusOK); err != nil {
				b.Error(err)
				return
			}
			if err := post("/dni/v1/heartbeat", fmt.Appendf(nil, `{"pool":"website","visitor":%q}`, id), http.StatusNoContent); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}
