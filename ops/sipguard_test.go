package ops

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSIPGuardMetrics(t *testing.T) {
	src := Sources{
		ActiveCalls:    func() int64 { return 0 },
		SIPResponses:   func(func(int, uint64)) {},
		RelayedPackets: func() uint64 { return 0 },
		DroppedPackets: func() uint64 { return 0 },
		RTPPortsInUse:  func() int { return 0 },
		Events:         func() (uint64, uint64, uint64, int) { return 0, 0, 0, 0 },
		OutboxErrors:   func() uint64 { return 0 },
	}
	get := func(src Sources) string {
		rec := httptest.NewRecorder()
		Handler(src, NewOutcomes(), API{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	if body := get(src); strings.Contains(body, "callsign_sip_dropped_total") || strings.Contains(body, "callsign_register_lockouts_total") {
		t.Fatal("guard metrics written without a source for them")
	}
	src.SIPDropped = func(f func(string, uint64)) {
		f("rate_limit", 1200)
		f("scanner", 7)
	}
	src.SIPBlockedSources = func() int { return 3 }
	src.RegisterLockouts = func(f func(string, uint64)) {
		f("source", 2)
		f("username", 1)
	}
	body := get(src)
	for _, line := range []string{
		"# TYPE callsign_sip_dropped_total counter",
		`callsign_sip_dropped_total{reason="rate_limit"} 1200`,
		`callsign_sip_dropped_total{reason="scanner"} 7`,
		"# TYPE callsign_sip_blocked_sources gauge",
		"callsign_sip_blocked_sources 3",
		"# TYPE callsign_register_lockouts_total counter",
		`callsign_register_lockouts_total{by="source"} 2`,
		`callsign_register_lockouts_total{by="username"} 1`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func TestJournalMetrics(t *testing.T) {
	src := Sources{
		ActiveCalls:    func() int64 { return 0 },
		SIPResponses:   func(func(int, uint64)) {},
		RelayedPackets: func() uint64 { return 0 },
		DroppedPackets: func() uint64 { return 0 },
		RTPPortsInUse:  func() int { return 0 },
		Events:         func() (uint64, uint64, uint64, int) { return 0, 0, 0, 0 },
		OutboxErrors:   func() uint64 { return 0 },
		Journal:        func() (uint64, uint64) { return 4, 9 },
	}
	rec := httptest.NewRecorder()
	Handler(src, NewOutcomes(), API{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range []string{
		"# TYPE callsign_journal_errors_total counter",
		"callsign_journal_errors_total 4",
		"callsign_journal_dropped_total 9",
	} {
		if !strings.Contains(rec.Body.String(), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
