package ops

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/callsign/callsign/call"
)

func TestHandler(t *testing.T) {
	ready := true
	outcomes := NewOutcomes()
	outcomes.Count(&call.Record{Outcome: call.OutcomeAnswered})
	outcomes.Count(&call.Record{Outcome: call.OutcomeMissed, MissedReason: call.MissedNoAgent})
	outcomes.Count(&call.Record{Outcome: call.OutcomeMissed, MissedReason: call.MissedNoAgent})
	h := Handler(Sources{
		ActiveCalls: func() int64 { return 3 },
		SIPResponses: func(f func(int, uint64)) {
			f(200, 7)
			f(404, 1)
		},
		RelayedPackets: func() uint64 { return 1234 },
		DroppedPackets: func() uint64 { return 5 },
		RTPPortsInUse:  func() int { return 6 },
		Events:         func() (uint64, uint64, uint64, int) { return 10, 1, 2, 4 },
		OutboxErrors:   func() uint64 { return 9 },
		Ready:          func() bool { return ready },
	}, outcomes)

	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, line := range []string{
		"callsign_active_calls 3",
		`callsign_calls_total{outcome="answered",missed_reason=""} 1`,
		`callsign_calls_total{outcome="missed",missed_reason="no_agent"} 2`,
		`callsign_sip_responses_total{code="200"} 7`,
		`callsign_sip_responses_total{code="404"} 1`,
		"callsign_rtp_packets_relayed_total 1234",
		"callsign_rtp_packets_dropped_total 5",
		"callsign_rtp_ports_in_use 6",
		`callsign_events_total{result="published"} 10`,
		`callsign_events_total{result="dropped"} 2`,
		"callsign_events_queued 4",
		"callsign_events_outbox_errors_total 9",
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz while ready: %d", code)
	}
	ready = false
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz while draining: %d, want 503", code)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz while draining: %d, want 200", code)
	}
}
