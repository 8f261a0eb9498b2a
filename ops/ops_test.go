package ops

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
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
		Softphones:     func() SoftphoneStats { return SoftphoneStats{Connected: 3, Available: 2, Busy: 1} },
	}, outcomes, API{})

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
		`callsign_softphone_agents{state="connected"} 3`,
		`callsign_softphone_agents{state="available"} 2`,
		`callsign_softphone_agents{state="busy"} 1`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	// The process's own figures: whatever they are, they are there and
	// not zero (this test runs goroutines and allocates).
	for _, name := range []string{"callsign_go_goroutines", "callsign_go_heap_inuse_bytes"} {
		if !regexp.MustCompile(`(?m)^` + name + ` [1-9][0-9]*$`).MatchString(body) {
			t.Errorf("/metrics lacks a non-zero %s", name)
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

func TestAPIRecordingPause(t *testing.T) {
	token := "s3cret"
	var calls []string
	h := Handler(Sources{}, NewOutcomes(), API{
		Token: func() string { return token },
		PauseRecording: func(id string, pause bool) error {
			if id != "c1" {
				return ErrNotFound
			}
			calls = append(calls, fmt.Sprintf("%s %v", id, pause))
			return nil
		},
	})
	post := func(path, auth string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, tc := range []struct {
		path, auth string
		code       int
		body       string
	}{
		{"/api/calls/c1/recording/pause", "", 401, "admin token"},
		{"/api/calls/c1/recording/pause", "Bearer wrong", 401, "admin token"},
		{"/api/calls/c1/recording/pause", "s3cret", 401, "admin token"},
		{"/api/calls/c1/recording/pause", "Bearer s3cret", 200, `"recording":"paused"`},
		{"/api/calls/c1/recording/resume", "Bearer s3cret", 200, `"recording":"recording"`},
		{"/api/calls/nope/recording/pause", "Bearer s3cret", 404, "no recording in progress for call nope"},
	} {
		code, body := post(tc.path, tc.auth)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("POST %s (%q): %d %s, want %d with %q", tc.path, tc.auth, code, body, tc.code, tc.body)
		}
	}
	if want := []string{"c1 true", "c1 false"}; fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("pauses %v, want %v", calls, want)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/calls/c1/recording/pause", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", rec.Code)
	}
	token = ""
	if code, body := post("/api/calls/c1/recording/pause", "Bearer "); code != 403 || !strings.Contains(body, "admin_token") {
		t.Errorf("no token configured: %d %s", code, body)
	}
}

func TestAPIAgents(t *testing.T) {
	h := Handler(Sources{}, NewOutcomes(), API{
		Token: func() string { return "s3cret" },
		Agents: func() []AgentStatus {
			return []AgentStatus{
				{ID: "alice", Name: "Alice", State: "busy", Offered: 3, Answered: 2, Missed: 1, TalkMS: 95000, LastCallEndedAt: "2026-11-23T10:00:00.000Z"},
				{ID: "bob", Name: "Bob", State: "away"},
			}
		},
	})
	get := func(auth string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/api/agents", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, _ := get("Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", code)
	}
	code, body := get("Bearer s3cret")
	if code != http.StatusOK {
		t.Fatalf("GET /api/agents: %d %s", code, body)
	}
	for _, want := range []string{
		`{"id":"alice","name":"Alice","state":"busy","offered_today":3,"answered_today":2,"missed_today":1,"talk_ms_today":95000,"last_call_ended_at":"2026-11-23T10:00:00.000Z"}`,
		`{"id":"bob","name":"Bob","state":"away","offered_today":0,"answered_today":0,"missed_today":0,"talk_ms_today":0}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body %s lacks %s", body, want)
		}
	}
}

// The pools' figures come in the order of their names, each family's
// samples together under its HELP and TYPE, whatever order the source
// gives, and a name of the operator's is escaped as the text format wants.
func TestMetricsPools(t *testing.T) {
	pools := []PoolStats{
		{Name: "website", Numbers: 20, Held: 16, Overflows: 3},
		{Name: "ads", Numbers: 5},
		{Name: "q\"4\"\\\ttab\nline", Numbers: 1, Held: 1, Overflows: 9},
	}
	src := Sources{
		ActiveCalls:    func() int64 { return 0 },
		SIPResponses:   func(func(int, uint64)) {},
		RelayedPackets: func() uint64 { return 0 },
		DroppedPackets: func() uint64 { return 0 },
		RTPPortsInUse:  func() int { return 0 },
		Events:         func() (uint64, uint64, uint64, int) { return 0, 0, 0, 0 },
		OutboxErrors:   func() uint64 { return 0 },
		Pools:          func() []PoolStats { return pools },
	}
	var b strings.Builder
	writeMetrics(&b, src, NewOutcomes())
	odd := `q\"4\"\\` + "\t" + `tab\nline`
	want := `# HELP callsign_pool_numbers Numbers of a DNI pool.
# TYPE callsign_pool_numbers gauge
callsign_pool_numbers{pool="ads"} 5
callsign_pool_numbers{pool="` + odd + `"} 1
callsign_pool_numbers{pool="website"} 20
# HELP callsign_pool_held Numbers of a DNI pool held by web visitors now (past 75% of callsign_pool_numbers the pool is under pressure).
# TYPE callsign_pool_held gauge
callsign_pool_held{pool="ads"} 0
callsign_pool_held{pool="` + odd + `"} 1
callsign_pool_held{pool="website"} 16
# HELP callsign_pool_overflow_total Visitors shown a DNI pool's overflow number because every number was held (their calls lose the visit's attribution).
# TYPE callsign_pool_overflow_total counter
callsign_pool_overflow_total{pool="ads"} 0
callsign_pool_overflow_total{pool="` + odd + `"} 9
callsign_pool_overflow_total{pool="website"} 3
`
	if !strings.Contains(b.String(), want) {
		t.Errorf("/metrics lacks the pools' block\n%s\nin\n%s", want, b.String())
	}
	if pools[0].Name != "website" {
		t.Error("writing the metrics reordered the source's slice")
	}

	// Without the source, or with no pools, there are no pool samples.
	for _, f := range []func() []PoolStats{nil, func() []PoolStats { return nil }} {
		src.Pools = f
		b.Reset()
		writeMetrics(&b, src, NewOutcomes())
		if strings.Contains(b.String(), "callsign_pool_held{") {
			t.Errorf("pool samples without pools:\n%s", b.String())
		}
	}
}
