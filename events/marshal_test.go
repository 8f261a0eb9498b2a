package events_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/events"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 123_456_789, time.UTC)

// answeredCall returns the record of an answered call as known at each of
// its events.
func answeredCall() (started, answered, completed call.Record) {
	started = call.Record{
		ID:             "c-answered",
		SIPCallID:      "abc@carrier",
		Caller:         "+14155550100",
		CallerName:     `Ann "A" O'Neil`,
		TrackingNumber: "+18005550199",
		Source:         "google",
		Medium:         "cpc",
		Campaign:       "spring",
		Keyword:        "plumber",
		Flow:           "main",
		// The carrier leg's state is the journal's, never an event's.
		Leg:       "callsign-leg/1 UDP 192.0.2.1:5060 t\r\n",
		StartedAt: t0,
	}
	answered = started
	answered.Queue = "sales"
	answered.Agent = "bob"
	answered.AnsweredAt = t0.Add(12 * time.Second)
	answered.Attempts = []call.Attempt{
		{Agent: "alice", StartedAt: t0.Add(time.Second), Ring: 5 * time.Second, Result: call.AttemptNoAnswer},
		{Agent: "bob", StartedAt: t0.Add(6 * time.Second), Ring: 6 * time.Second, Result: call.AttemptAnswered},
	}
	completed = answered
	completed.Attempts = slices.Clone(answered.Attempts)
	completed.EndedAt = t0.Add(72*time.Second + 500*time.Millisecond)
	completed.Outcome = call.OutcomeAnswered
	completed.HangupBy = call.HangupAgent
	return started, answered, completed
}

func missedCall() (started, missed, completed call.Record) {
	started = call.Record{
		ID:             "c-missed",
		SIPCallID:      "def@carrier",
		Caller:         "anonymous",
		TrackingNumber: "+18005550199",
		Source:         "google",
		StartedAt:      t0,
	}
	missed = started
	missed.Flow = "main"
	missed.Queue = "sales"
	missed.EndedAt = t0.Add(30 * time.Second)
	missed.Outcome = call.OutcomeMissed
	missed.MissedReason = call.MissedCallerHangup
	missed.HangupBy = call.HangupCaller
	missed.Attempts = []call.Attempt{{Agent: "alice", StartedAt: t0, Ring: 30 * time.Second, Result: call.AttemptCancelled}}
	completed = missed
	return started, missed, completed
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %s", b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func keys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

func sorted(s ...string) []string { slices.Sort(s); return s }

var (
	baseKeys     = []string{"event", "id", "at", "call_id", "sip_call_id", "caller", "tracking_number", "source", "started_at"}
	answeredBase = append(slices.Clone(baseKeys), "caller_name", "medium", "campaign", "keyword", "flow")
)

func TestMarshalAnsweredCall(t *testing.T) {
	started, answered, completed := answeredCall()
	cases := []struct {
		event string
		rec   call.Record
		want  []string
	}{
		{call.EventStarted, started, answeredBase},
		{call.EventAnswered, answered, append(slices.Clone(answeredBase), "queue", "agent", "answered_at", "attempts", "wait_ms")},
		{call.EventCompleted, completed, append(slices.Clone(answeredBase), "queue", "agent", "answered_at", "attempts",
			"ended_at", "outcome", "hangup_by", "wait_ms", "talk_ms", "duration_ms")},
	}
	for _, c := range cases {
		t.Run(c.event, func(t *testing.T) {
			b, err := events.MarshalEvent(c.event, "01JID", t0, c.rec)
			if err != nil {
				t.Fatal(err)
			}
			m := decode(t, b)
			if got, want := keys(m), sorted(c.want...); !slices.Equal(got, want) {
				t.Fatalf("keys\n got %v\nwant %v\n%s", got, want, b)
			}
			if m["event"] != c.event || m["id"] != "01JID" || m["call_id"] != "c-answered" {
				t.Errorf("event/id/call_id: %s", b)
			}
			if m["at"] != "2026-11-23T09:00:00.123Z" || m["started_at"] != "2026-11-23T09:00:00.123Z" {
				t.Errorf("times: %s", b)
			}
			if m["caller_name"] != `Ann "A" O'Neil` {
				t.Errorf("caller_name = %q", m["caller_name"])
			}
			if c.event == call.EventAnswered || c.event == call.EventCompleted {
				if m["wait_ms"] != 12000.0 || m["answered_at"] != "2026-11-23T09:00:12.123Z" {
					t.Errorf("wait/answered_at: %s", b)
				}
				att := m["attempts"].([]any)
				if len(att) != 2 {
					t.Fatalf("attempts: %v", att)
				}
				a0 := att[0].(map[string]any)
				want := map[string]any{"agent": "alice", "started_at": "2026-11-23T09:00:01.123Z", "ring_ms": 5000.0, "result": "no_answer"}
				if len(a0) != len(want) {
					t.Errorf("attempt 0: %v", a0)
				}
				for k, v := range want {
					if a0[k] != v {
						t.Errorf("attempt 0 %s = %v, want %v", k, a0[k], v)
					}
				}
			}
			if c.event == call.EventCompleted {
				if m["talk_ms"] != 60500.0 || m["duration_ms"] != 72500.0 || m["outcome"] != "answered" ||
					m["ended_at"] != "2026-11-23T09:01:12.623Z" || m["hangup_by"] != "agent" {
					t.Errorf("completed: %s", b)
				}
			}
		})
	}
}

func TestMarshalMissedCall(t *testing.T) {
	started, missed, completed := missedCall()
	ended := append(slices.Clone(baseKeys), "flow", "queue", "attempts", "ended_at", "outcome", "missed_reason", "hangup_by",
		"wait_ms", "talk_ms", "duration_ms")
	cases := []struct {
		event string
		rec   call.Record
		want  []string
	}{
		{call.EventStarted, started, baseKeys},
		{call.EventMissed, missed, ended},
		{call.EventCompleted, completed, ended},
	}
	for _, c := range cases {
		t.Run(c.event, func(t *testing.T) {
			b, err := events.MarshalEvent(c.event, "01JID", t0, c.rec)
			if err != nil {
				t.Fatal(err)
			}
			m := decode(t, b)
			if got, want := keys(m), sorted(c.want...); !slices.Equal(got, want) {
				t.Fatalf("keys\n got %v\nwant %v\n%s", got, want, b)
			}
			if c.event != call.EventStarted {
				// A missed call talked for 0: present, not absent.
				if m["talk_ms"] != 0.0 || m["wait_ms"] != 30000.0 || m["duration_ms"] != 30000.0 ||
					m["outcome"] != "missed" || m["missed_reason"] != "caller_hangup" || m["caller"] != "anonymous" {
					t.Errorf("missed: %s", b)
				}
			}
		})
	}
}

func TestMarshalAttemptFields(t *testing.T) {
	rec := call.Record{ID: "c", Attempts: []call.Attempt{{Ring: 0}, {Agent: "x", Ring: 1500 * time.Millisecond}}}
	b, _ := events.MarshalEvent("call.answered", "id", t0, rec)
	if !strings.Contains(string(b), `"attempts":[{"ring_ms":0},{"agent":"x","ring_ms":1500}]`) {
		t.Errorf("attempts: %s", b)
	}
}

func TestMarshalIVR(t *testing.T) {
	cases := []struct {
		name string
		rec  call.Record
		want string // the ivr part of the JSON, "" when absent
	}{
		{"flow without prompts", call.Record{ID: "c"}, ""},
		{"prompts, nothing pressed", call.Record{ID: "c", IVR: []string{}}, `"ivr":[]`},
		{"keys in order", call.Record{ID: "c", IVR: []string{"2", "*", "#"}}, `"ivr":["2","*","#"]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _ := events.MarshalEvent(call.EventCompleted, "id", t0, c.rec)
			m := decode(t, b)
			_, present := m["ivr"]
			if present != (c.want != "") || c.want != "" && !strings.Contains(string(b), c.want) {
				t.Errorf("got %s, want %q", b, c.want)
			}
		})
	}
	b, _ := events.MarshalEvent(call.EventCompleted, "id", t0, call.Record{ID: "c", IVR: []string{}, IVRExit: call.IVRMenuTimeout})
	if m := decode(t, b); m["ivr_exit"] != "menu_timeout" {
		t.Errorf("ivr_exit: %s", b)
	}
}

func TestMarshalRecording(t *testing.T) {
	cases := []struct {
		name string
		rec  call.Record
		want string
	}{
		{"not known yet", call.Record{ID: "c"}, ""},
		{"consent only", call.Record{ID: "c", Consent: call.ConsentDeclined}, `"recording":{"consent":"declined"}`},
		{"complete", call.Record{ID: "c", Consent: call.ConsentGranted, Recording: &call.RecordingResult{
			Path: "/data/recordings/2026/11/23/c.wav", Duration: 61500 * time.Millisecond, SHA256: "ab12",
		}}, `"recording":{"consent":"granted","path":"/data/recordings/2026/11/23/c.wav","duration_ms":61500,"sha256":"ab12"}`},
		{"recovered after a crash", call.Record{ID: "c", Recording: &call.RecordingResult{
			Path: "/r/c.wav", Duration: 2040 * time.Millisecond, SHA256: "cd", Partial: true,
		}}, `"recording":{"path":"/r/c.wav","duration_ms":2040,"sha256":"cd","partial":true}`},
		{"deleted", call.Record{ID: "c", Recording: &call.RecordingResult{Path: "/r/c.wav"}}, `"recording":{"path":"/r/c.wav"}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _ := events.MarshalEvent(call.EventCompleted, "id", t0, c.rec)
			m := decode(t, b)
			_, present := m["recording"]
			if present != (c.want != "") || c.want != "" && !strings.Contains(string(b), c.want) {
				t.Errorf("got %s, want %q", b, c.want)
			}
		})
	}
}

func TestMarshalVoicemail(t *testing.T) {
	b, _ := events.MarshalEvent(call.EventVoicemailCompleted, "id", t0, call.Record{
		ID: "c", Outcome: call.OutcomeMissed, MissedReason: call.MissedAfterHours,
		Voicemail: &call.RecordingResult{Path: "/data/voicemail/2026/11/23/c.wav", Duration: 12340 * time.Millisecond, SHA256: "ef"},
	})
	m := decode(t, b)
	if m["event"] != "voicemail.completed" || m["missed_reason"] != "after_hours" {
		t.Errorf("got %s", b)
	}
	if want := `"voicemail":{"path":"/data/voicemail/2026/11/23/c.wav","duration_ms":12340,"sha256":"ef"}`; !strings.Contains(string(b), want) {
		t.Errorf("got %s, want %s", b, want)
	}
	b, _ = events.MarshalEvent(call.EventCompleted, "id", t0, call.Record{ID: "c"})
	if _, present := decode(t, b)["voicemail"]; present {
		t.Errorf("a call without a message has a voicemail object: %s", b)
	}
}

func TestMarshalTimeIsUTC(t *testing.T) {
	loc := time.FixedZone("X", -5*3600)
	b, _ := events.MarshalEvent("call.started", "id", time.Date(2026, 1, 2, 3, 4, 5, 0, loc), call.Record{})
	if want := `{"event":"call.started","id":"id","at":"2026-01-02T08:04:05.000Z"}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

func TestMarshalEscaping(t *testing.T) {
	for _, s := range []string{
		"plain", `q"uote`, `back\slash`, "nl\nnl", "tab\tcr\r", "\x00\x01\x1f\x7f", "<a&b>",
		"caf\u00e9 \u65e5\u672c", "emoji \U0001F600", "bad \xff\xfe utf8", "trunc \xe6\x97", "ls\u2028ps\u2029",
	} {
		b, err := events.MarshalEvent("call.started", "id", t0, call.Record{CallerName: s})
		if err != nil {
			t.Fatal(err)
		}
		m := decode(t, b)
		ref, _ := json.Marshal(s)
		var want string
		_ = json.Unmarshal(ref, &want)
		if m["caller_name"] != want {
			t.Errorf("%q: got %q, want %q", s, m["caller_name"], want)
		}
	}
}

func BenchmarkMarshalEvent(b *testing.B) {
	_, _, rec := answeredCall()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.MarshalEvent(call.EventCompleted, "01KAQ4X1ZP6V2N8R3M5T7W9Y0B", t0, rec); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMarshalPoolCall: a call to a pool number carries its pool, the
// visit it was shown to (what the visit had, nothing else) and whether it
// is the caller's first.
func TestMarshalPoolCall(t *testing.T) {
	started, _, _ := answeredCall()
	first := true
	started.Pool = "website"
	started.FirstCall = &first
	started.Visitor = &call.Visitor{
		UTMSource: "newsletter", UTMCampaign: "nov", GCLID: "TEST123",
		Referrer: "https://www.google.com/", LandingPage: `https://shop.example/?a="b"`,
		FirstSeen: t0.Add(-time.Hour),
		ClickIDs:  map[string]string{"ttclid": "TT9", "li_fat_id": "LI7"},
	}
	b, err := events.MarshalEvent(call.EventStarted, "01JID", t0, started)
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, b)
	if m["pool"] != "website" || m["first_call"] != true {
		t.Errorf("pool / first_call: %s", b)
	}
	v, ok := m["visitor"].(map[string]any)
	if !ok {
		t.Fatalf("no visitor object: %s", b)
	}
	if got, want := keys(v), sorted("utm_source", "utm_campaign", "gclid", "referrer", "landing_page", "first_seen", "ttclid", "li_fat_id"); !slices.Equal(got, want) {
		t.Errorf("visitor keys %v, want %v (%s)", got, want, b)
	}
	if v["gclid"] != "TEST123" || v["landing_page"] != `https://shop.example/?a="b"` || v["first_seen"] != "2026-11-23T08:00:00.123Z" || v["ttclid"] != "TT9" || v["li_fat_id"] != "LI7" {
		t.Errorf("visitor %v", v)
	}

	// An empty visit is an empty object; not a first call is false, not absent.
	started.Visitor = &call.Visitor{}
	first = false
	b, err = events.MarshalEvent(call.EventStarted, "01JID", t0, started)
	if err != nil {
		t.Fatal(err)
	}
	m = decode(t, b)
	if v, ok := m["visitor"].(map[string]any); !ok || len(v) != 0 || m["first_call"] != false {
		t.Errorf("empty visit / not first: %s", b)
	}
}
