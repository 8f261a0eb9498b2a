package ops

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/calllog"
)

const testToken = "s3cret"

// base is a Monday morning, the day after US daylight saving time ended.
var base = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

type callsFixture struct {
	store   *calllog.Store
	h       http.Handler
	api     API
	wavPath string
	wav     []byte
}

func newCallsFixture(t *testing.T) *callsFixture {
	t.Helper()
	dir := t.TempDir()
	store, err := calllog.Open(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	fx := &callsFixture{store: store, wavPath: filepath.Join(dir, "c1.wav")}
	fx.wav = []byte("RIFF\x24\x00\x00\x00WAVEfmt 0123456789abcdef")
	if err := os.WriteFile(fx.wavPath, fx.wav, 0o600); err != nil {
		t.Fatal(err)
	}
	first := true
	notFirst := false
	recs := []call.Record{
		{
			ID: "c1", SIPCallID: "sip-c1", Caller: "+15550100001", CallerName: "Ann Caller", TrackingNumber: "+15550109001",
			Source: "google-ads", Medium: "cpc", Campaign: "spring", Keyword: "plumber", Pool: "web",
			Visitor:   &call.Visitor{GCLID: "GCLID-1", UTMSource: "google"},
			FirstCall: &first, Flow: "sales", IVR: []string{"1"}, Queue: "sales", Agent: "alice",
			Outcome: call.OutcomeAnswered, HangupBy: call.HangupCaller,
			StartedAt: base, AnsweredAt: base.Add(10 * time.Second), EndedAt: base.Add(70 * time.Second),
			Consent:   call.ConsentGranted,
			Recording: &call.RecordingResult{Path: fx.wavPath, Duration: time.Minute, SHA256: "ab"},
			Attempts: []call.Attempt{
				{Agent: "bob", StartedAt: base.Add(2 * time.Second), Ring: 8 * time.Second, Result: call.AttemptCancelled},
				{Agent: "alice", StartedAt: base.Add(2 * time.Second), Ring: 8 * time.Second, Result: call.AttemptAnswered},
			},
		},
		{
			ID: "c2", SIPCallID: "sip-c2", Caller: "+15550100002", TrackingNumber: "+15550109002",
			Source: "billboard", Campaign: "city", FirstCall: &notFirst, Flow: "support", IVR: []string{}, Queue: "support",
			Outcome: call.OutcomeMissed, MissedReason: call.MissedCallerHangup, HangupBy: call.HangupCaller,
			StartedAt: base.Add(time.Hour), EndedAt: base.Add(time.Hour + 30*time.Second),
			Attempts: []call.Attempt{{Agent: "alice", StartedAt: base.Add(time.Hour), Ring: 20 * time.Second, Result: call.AttemptNoAnswer}},
		},
		{
			ID: "c3", SIPCallID: "sip-c3", Caller: "+15550100001", TrackingNumber: "+15550109001",
			Source: "google-ads", Medium: "cpc", Campaign: "spring", Flow: "sales", Queue: "sales", Agent: "bob",
			Outcome: call.OutcomeAnswered, HangupBy: call.HangupAgent, Consent: call.ConsentDeclined,
			StartedAt: base.Add(2 * time.Hour), AnsweredAt: base.Add(2*time.Hour + 5*time.Second), EndedAt: base.Add(2*time.Hour + 125*time.Second),
			Attempts: []call.Attempt{{Agent: "bob", StartedAt: base.Add(2 * time.Hour), Ring: 5 * time.Second, Result: call.AttemptAnswered}},
		},
		{
			// Sunday 22:30 in New York, Monday 03:30 UTC.
			ID: "c4", Caller: "anonymous", TrackingNumber: "+15550109003", FirstCall: &notFirst,
			Outcome: call.OutcomeMissed, MissedReason: call.MissedAfterHours, HangupBy: call.HangupEdge,
			StartedAt: time.Date(2026, 11, 2, 3, 30, 0, 0, time.UTC), EndedAt: time.Date(2026, 11, 2, 3, 30, 5, 0, time.UTC),
		},
		{
			ID: "c5", Caller: "+15550100005", TrackingNumber: "+15550109004", Source: "facebook", Campaign: "fall",
			Queue: "sales", Agent: "alice", Outcome: call.OutcomeAnswered, HangupBy: call.HangupCaller,
			Visitor:   &call.Visitor{GCLID: "GCLID-5"},
			StartedAt: time.Date(2026, 10, 31, 12, 0, 0, 0, time.UTC), AnsweredAt: time.Date(2026, 10, 31, 12, 0, 3, 0, time.UTC),
			EndedAt:  time.Date(2026, 10, 31, 12, 1, 3, 0, time.UTC),
			Attempts: []call.Attempt{{Agent: "alice", StartedAt: time.Date(2026, 10, 31, 12, 0, 0, 0, time.UTC), Ring: 3 * time.Second, Result: call.AttemptAnswered}},
		},
	}
	for i := range recs {
		store.Add(calllog.EntryOf(&recs[i]))
	}
	if err := store.Flush(); err != nil {
		t.Fatal(err)
	}
	if store.Failed() != 0 || store.Dropped() != 0 {
		t.Fatalf("failed %d, dropped %d", store.Failed(), store.Dropped())
	}
	fx.api = API{
		Token: func() string { return testToken },
		Calls: store,
		Recording: func(id string) (string, error) {
			switch id {
			case "c1":
				return fx.wavPath, nil
			case "gone":
				return filepath.Join(dir, "gone.wav"), nil
			case "broken":
				return "", errors.New("recordings index unreadable")
			}
			return "", ErrNotFound
		},
		AgentName: func(id string) string {
			if id == "alice" {
				return "Alice Agent"
			}
			return ""
		},
		now: func() time.Time { return time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC) },
	}
	fx.h = Handler(Sources{}, NewOutcomes(), fx.api)
	return fx
}

func (fx *callsFixture) get(t *testing.T, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	fx.h.ServeHTTP(rec, req)
	return rec
}

func decode(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, body %s", ct, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
}

// listIDs fetches a call list and returns its call ids in order and the
// next cursor.
func (fx *callsFixture) listIDs(t *testing.T, path string) ([]string, string) {
	t.Helper()
	rec := fx.get(t, path)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	var body struct {
		Calls []struct {
			CallID string `json:"call_id"`
		} `json:"calls"`
		Next *string `json:"next"`
	}
	decode(t, rec, &body)
	if body.Calls == nil {
		t.Fatalf("GET %s: calls is not an array: %s", path, rec.Body)
	}
	ids := []string{}
	for _, c := range body.Calls {
		ids = append(ids, c.CallID)
	}
	next := ""
	if body.Next != nil {
		if *body.Next == "" {
			t.Fatalf("GET %s: next present but empty", path)
		}
		next = *body.Next
	}
	return ids, next
}

func TestCallsAPIAuth(t *testing.T) {
	fx := newCallsFixture(t)
	paths := []string{
		"/api/calls", "/api/calls?format=csv", "/api/calls/c1/recording", "/api/exports/google-ads.csv",
		"/api/reports/sources", "/api/reports/agents", "/api/reports/missed-by-hour", "/api/stream",
	}
	for _, p := range paths {
		for _, auth := range []string{"", "Bearer wrong", testToken} {
			req := httptest.NewRequest(http.MethodGet, p, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			fx.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"error"`) {
				t.Errorf("GET %s with %q: %d %s, want 401", p, auth, rec.Code, rec.Body)
			}
		}
	}
	off := fx.api
	off.Token = func() string { return "" }
	h := Handler(Sources{}, NewOutcomes(), off)
	for _, p := range paths {
		req := httptest.NewRequest(http.MethodGet, p, nil)
		req.Header.Set("Authorization", "Bearer ")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("GET %s without a configured token: %d, want 403", p, rec.Code)
		}
	}
}

func TestCallsAPIOff(t *testing.T) {
	h := Handler(Sources{}, NewOutcomes(), API{Token: func() string { return testToken }})
	for p, want := range map[string]string{
		"/api/calls":                  "the call log is off",
		"/api/calls?format=csv":       "the call log is off",
		"/api/exports/google-ads.csv": "the call log is off",
		"/api/reports/sources":        "the call log is off",
		"/api/reports/agents":         "the call log is off",
		"/api/reports/missed-by-hour": "the call log is off",
		"/api/calls/c1/recording":     "recordings are off",
		"/api/stream":                 "the live call feed is off",
	} {
		req := httptest.NewRequest(http.MethodGet, p, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusNotFound || !strings.Contains(body["error"], want) {
			t.Errorf("GET %s: %d %s, want 404 with %q", p, rec.Code, rec.Body, want)
		}
	}
}

func TestCallsList(t *testing.T) {
	fx := newCallsFixture(t)
	rec := fx.get(t, "/api/calls?from=2026-11-02&to=2026-11-03&source=google-ads")
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var body struct {
		Calls []map[string]any `json:"calls"`
	}
	decode(t, rec, &body)
	if len(body.Calls) != 2 || strings.Contains(rec.Body.String(), `"next"`) {
		t.Fatalf("body %s", rec.Body)
	}
	wantC1 := map[string]any{
		"call_id": "c1", "sip_call_id": "sip-c1", "caller": "+15550100001", "caller_name": "Ann Caller",
		"tracking_number": "+15550109001", "source": "google-ads", "medium": "cpc", "campaign": "spring",
		"keyword": "plumber", "pool": "web", "visitor": map[string]any{"gclid": "GCLID-1", "utm_source": "google"},
		"first_call": true, "flow": "sales", "ivr": []any{"1"}, "queue": "sales", "agent": "alice",
		"outcome": "answered", "hangup_by": "caller",
		"started_at": "2026-11-02T10:00:00.000Z", "answered_at": "2026-11-02T10:00:10.000Z", "ended_at": "2026-11-02T10:01:10.000Z",
		"wait_ms": 10000.0, "talk_ms": 60000.0, "duration_ms": 70000.0,
		"recording":     map[string]any{"consent": "granted", "path": fx.wavPath, "duration_ms": 60000.0},
		"recording_url": "/api/calls/c1/recording",
	}
	if got := body.Calls[1]; !reflect.DeepEqual(got, wantC1) {
		t.Errorf("c1:\n got %v\nwant %v", got, wantC1)
	}
	// Unknown is absent: no answer time, no recording file, no URL.
	wantC3 := map[string]any{
		"call_id": "c3", "sip_call_id": "sip-c3", "caller": "+15550100001", "tracking_number": "+15550109001",
		"source": "google-ads", "medium": "cpc", "campaign": "spring", "first_call": false, "flow": "sales",
		"queue": "sales", "agent": "bob", "outcome": "answered", "hangup_by": "agent",
		"started_at": "2026-11-02T12:00:00.000Z", "answered_at": "2026-11-02T12:00:05.000Z", "ended_at": "2026-11-02T12:02:05.000Z",
		"wait_ms": 5000.0, "talk_ms": 120000.0, "duration_ms": 125000.0,
		"recording": map[string]any{"consent": "declined"},
	}
	if got := body.Calls[0]; !reflect.DeepEqual(got, wantC3) {
		t.Errorf("c3:\n got %v\nwant %v", got, wantC3)
	}

	rec = fx.get(t, "/api/calls?outcome=missed&from=2026-11-02T10:30:00Z")
	body.Calls = nil
	decode(t, rec, &body)
	if len(body.Calls) != 1 {
		t.Fatalf("missed: %s", rec.Body)
	}
	c2 := body.Calls[0]
	if ivr, ok := c2["ivr"].([]any); !ok || len(ivr) != 0 {
		t.Errorf("a caller who pressed nothing: ivr %v, want []", c2["ivr"])
	}
	for _, k := range []string{"answered_at", "agent", "recording", "recording_url"} {
		if _, ok := c2[k]; ok {
			t.Errorf("missed call has %s: %v", k, c2[k])
		}
	}
	if c2["talk_ms"] != 0.0 || c2["missed_reason"] != "caller_hangup" {
		t.Errorf("missed call: %v", c2)
	}

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{"c3", "c2", "c1", "c4", "c5"}},
		{"from=2026-11-01", []string{"c3", "c2", "c1", "c4"}},
		{"to=2026-11-02T10:00:00Z", []string{"c4", "c5"}},
		{"from=2026-11-02T11:00:00%2B01:00&to=2026-11-02T12:00:00Z", []string{"c2", "c1"}},
		// An unescaped '+' arrives as a space.
		{"from=2026-11-02T11:00:00+01:00", []string{"c3", "c2", "c1"}},
		{"campaign=city", []string{"c2"}},
		{"outcome=answered", []string{"c3", "c1", "c5"}},
		{"agent=alice", []string{"c1", "c5"}},
		{"caller=" + url.QueryEscape("+1 555 010 0001"), []string{"c3", "c1"}},
		{"caller=+15550100001", []string{"c3", "c1"}},
		{"caller=15550100001", []string{"c3", "c1"}},
		{"caller=(555)", []string{}},
		{"caller=anonymous", []string{"c4"}},
		{"tracking_number=" + url.QueryEscape("+1-555-010-9002"), []string{"c2"}},
		{"source=nobody", []string{}},
	} {
		got, next := fx.listIDs(t, "/api/calls?"+c.query)
		if !reflect.DeepEqual(got, c.want) || next != "" {
			t.Errorf("?%s: %v next %q, want %v", c.query, got, next, c.want)
		}
	}
	if body := fx.get(t, "/api/calls?source=nobody").Body.String(); !strings.Contains(body, `"calls":[]`) {
		t.Errorf("no match: %s", body)
	}
}

func TestCallsPaging(t *testing.T) {
	fx := newCallsFixture(t)
	var all []string
	path := "/api/calls?limit=2"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		ids, next := fx.listIDs(t, path)
		if len(ids) > 2 {
			t.Fatalf("page of %d with limit 2", len(ids))
		}
		all = append(all, ids...)
		if next == "" {
			break
		}
		path = "/api/calls?limit=2&cursor=" + url.QueryEscape(next)
	}
	if want := []string{"c3", "c2", "c1", "c4", "c5"}; !reflect.DeepEqual(all, want) {
		t.Fatalf("pages gave %v, want %v", all, want)
	}
	// A filter holds across pages.
	ids, next := fx.listIDs(t, "/api/calls?limit=1&outcome=answered")
	ids2, next2 := fx.listIDs(t, "/api/calls?limit=1&outcome=answered&cursor="+url.QueryEscape(next))
	if !reflect.DeepEqual(ids, []string{"c3"}) || !reflect.DeepEqual(ids2, []string{"c1"}) || next2 == "" {
		t.Fatalf("filtered pages %v %v", ids, ids2)
	}
	ids, _ = fx.listIDs(t, "/api/calls")
	if len(ids) != 5 {
		t.Fatalf("default limit: %v", ids)
	}
}

func TestCallsBadParameters(t *testing.T) {
	fx := newCallsFixture(t)
	for _, c := range []struct{ path, param string }{
		{"/api/calls?from=yesterday", "from"},
		{"/api/calls?from=2026-13-01", "from"},
		{"/api/calls?to=2026-11-01T25:00:00Z", "to"},
		{"/api/calls?from=2026-11-02&to=2026-11-01", "to"},
		{"/api/calls?from=2026-11-02&to=2026-11-02", "to"},
		{"/api/calls?outcome=maybe", "outcome"},
		{"/api/calls?limit=0", "limit"},
		{"/api/calls?limit=501", "limit"},
		{"/api/calls?limit=ten", "limit"},
		{"/api/calls?cursor=not-a-cursor", "cursor"},
		{"/api/calls?format=xml", "format"},
		{"/api/calls?format=csv&outcome=maybe", "outcome"},
		{"/api/exports/google-ads.csv?value=-1", "value"},
		{"/api/exports/google-ads.csv?value=ten", "value"},
		{"/api/exports/google-ads.csv?value=Inf", "value"},
		{"/api/exports/google-ads.csv?currency=US", "currency"},
		{"/api/exports/google-ads.csv?currency=U%24D", "currency"},
		{"/api/exports/google-ads.csv?from=soon", "from"},
		{"/api/reports/sources?to=2026-01-01&from=2026-02-01", "to"},
		{"/api/reports/sources?from=2027-01-01", "from"},
		{"/api/reports/agents?from=x", "from"},
		{"/api/reports/missed-by-hour?tz=Mars/Olympus_Mons", "tz"},
		{"/api/reports/missed-by-hour?tz=Local", "tz"},
		{"/api/reports/missed-by-hour?to=x", "to"},
	} {
		rec := fx.get(t, c.path)
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusBadRequest ||
			!strings.HasPrefix(body["error"], "parameter "+c.param+": ") {
			t.Errorf("GET %s: %d %s, want 400 naming %s", c.path, rec.Code, rec.Body, c.param)
		}
	}
}

func TestCallsCSV(t *testing.T) {
	fx := newCallsFixture(t)
	var want bytes.Buffer
	f := calllog.Filter{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Outcome: "answered"}
	if err := fx.store.WriteCSV(&want, f); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(want.String(), "\r\n"); n != 3 {
		t.Fatalf("reference CSV has %d lines:\n%s", n, want.String())
	}
	for _, rec := range []*httptest.ResponseRecorder{
		fx.get(t, "/api/calls?from=2026-11-01&to=2026-12-01&outcome=answered&format=csv&limit=1"),
		fx.get(t, "/api/calls?from=2026-11-01&to=2026-12-01&outcome=answered", "Accept", "text/csv"),
	} {
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/csv; charset=utf-8" {
			t.Fatalf("%d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		if got := rec.Header().Get("Content-Disposition"); got != `attachment; filename="calls-2026-11-01-2026-12-01.csv"` {
			t.Errorf("Content-Disposition %q", got)
		}
		if rec.Body.String() != want.String() {
			t.Errorf("body\n%s\nwant\n%s", rec.Body, want.String())
		}
		if !strings.HasPrefix(rec.Body.String(), "call_id,") || !strings.Contains(rec.Body.String(), "\r\nc3,") {
			t.Errorf("CSV %s", rec.Body)
		}
	}
	// JSON wins when the client accepts both.
	if rec := fx.get(t, "/api/calls", "Accept", "text/csv, application/json"); rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("Accept both: %q", rec.Header().Get("Content-Type"))
	}
	rec := fx.get(t, "/api/calls?format=csv&from=2026-11-02T10:30:00Z")
	if got := rec.Header().Get("Content-Disposition"); !strings.Contains(got, "calls-20261102T103000Z-now.csv") {
		t.Errorf("open range file name %q", got)
	}
}

// failingLog fails its downloads after writing some bytes (or none).
type failingLog struct {
	CallLog
	written string
}

func (f failingLog) WriteCSV(w io.Writer, _ calllog.Filter) error {
	if f.written != "" {
		io.WriteString(w, f.written)
	}
	return errors.New("disk I/O error")
}

func TestCallsCSVFailure(t *testing.T) {
	api := API{Token: func() string { return testToken }, Calls: failingLog{}}
	h := Handler(Sources{}, NewOutcomes(), api)
	req := httptest.NewRequest(http.MethodGet, "/api/calls?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"error":"disk I/O error"`) {
		t.Fatalf("failure before any output: %d %s", rec.Code, rec.Body)
	}
	// Once part of the file went out, the client must not mistake it for
	// the whole file: the connection breaks.
	api.Calls = failingLog{written: strings.Repeat("call_id,caller\r\n", 1000)}
	srv := httptest.NewServer(Handler(Sources{}, NewOutcomes(), api))
	defer srv.Close()
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/api/calls?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a download that failed half way read as complete")
	}
}

func TestGoogleAdsExport(t *testing.T) {
	fx := newCallsFixture(t)
	now := fx.api.now()
	var want bytes.Buffer
	if err := fx.store.GoogleAdsConversions(&want, now.Add(-90*24*time.Hour), now, "Phone call", 0, "USD"); err != nil {
		t.Fatal(err)
	}
	rec := fx.get(t, "/api/exports/google-ads.csv")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/csv; charset=utf-8" ||
		rec.Header().Get("Content-Disposition") != `attachment; filename="google-ads-conversions.csv"` {
		t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if rec.Body.String() != want.String() {
		t.Fatalf("body\n%q\nwant\n%q", rec.Body, want.String())
	}
	lines := strings.Split(strings.TrimSuffix(rec.Body.String(), "\r\n"), "\r\n")
	wantLines := []string{
		"Parameters:TimeZone=+0000",
		"Google Click ID,Conversion Name,Conversion Time,Conversion Value,Conversion Currency",
		"GCLID-5,Phone call,2026-10-31 12:00:03+0000,0,USD",
		"GCLID-1,Phone call,2026-11-02 10:00:10+0000,0,USD",
	}
	if !reflect.DeepEqual(lines, wantLines) {
		t.Fatalf("lines %q", lines)
	}
	rec = fx.get(t, "/api/exports/google-ads.csv?from=2026-11-01&to=2026-11-03&conversion_name=Call%20booked&value=49.5&currency=eur")
	want.Reset()
	if err := fx.store.GoogleAdsConversions(&want, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), "Call booked", 49.5, "EUR"); err != nil {
		t.Fatal(err)
	}
	if rec.Body.String() != want.String() || !strings.Contains(rec.Body.String(), "GCLID-1,Call booked,2026-11-02 10:00:10+0000,49.5,EUR\r\n") {
		t.Fatalf("with parameters:\n%s", rec.Body)
	}
	// Only 90 days back by default: a click older than that converts no more.
	fx.api.now = func() time.Time { return time.Date(2027, 1, 30, 0, 0, 0, 0, time.UTC) }
	h := Handler(Sources{}, NewOutcomes(), fx.api)
	req := httptest.NewRequest(http.MethodGet, "/api/exports/google-ads.csv", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if strings.Contains(rec.Body.String(), "GCLID-5") || !strings.Contains(rec.Body.String(), "GCLID-1") {
		t.Fatalf("90 days before 2027-01-30:\n%s", rec.Body)
	}
}

func TestSourcesReportAPI(t *testing.T) {
	fx := newCallsFixture(t)
	rec := fx.get(t, "/api/reports/sources")
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var body struct {
		From, To string
		Sources  []map[string]any
	}
	decode(t, rec, &body)
	if body.From != "2026-10-21T00:00:00.000Z" || body.To != "2026-11-20T00:00:00.000Z" {
		t.Errorf("default range %s %s", body.From, body.To)
	}
	want := []map[string]any{
		{"source": "google-ads", "campaign": "spring", "calls": 2.0, "answered": 2.0, "missed": 0.0, "missed_rate": 0.0, "avg_talk_ms": 90000.0, "first_time_callers": 1.0},
		{"source": "", "campaign": "", "calls": 1.0, "answered": 0.0, "missed": 1.0, "missed_rate": 1.0, "avg_talk_ms": 0.0, "first_time_callers": 0.0},
		{"source": "billboard", "campaign": "city", "calls": 1.0, "answered": 0.0, "missed": 1.0, "missed_rate": 1.0, "avg_talk_ms": 0.0, "first_time_callers": 0.0},
		{"source": "facebook", "campaign": "fall", "calls": 1.0, "answered": 1.0, "missed": 0.0, "missed_rate": 0.0, "avg_talk_ms": 60000.0, "first_time_callers": 0.0},
	}
	if !reflect.DeepEqual(body.Sources, want) {
		t.Errorf("sources:\n got %v\nwant %v", body.Sources, want)
	}
	rec = fx.get(t, "/api/reports/sources?from=2026-01-01&to=2026-02-01")
	if !strings.Contains(rec.Body.String(), `"sources":[]`) {
		t.Errorf("empty: %s", rec.Body)
	}
}

func TestAgentsReportAPI(t *testing.T) {
	fx := newCallsFixture(t)
	rec := fx.get(t, "/api/reports/agents?from=2026-11-01&to=2026-11-03")
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var body struct {
		From, To string
		Agents   []map[string]any
		Queues   []map[string]any
	}
	decode(t, rec, &body)
	if body.From != "2026-11-01T00:00:00.000Z" || body.To != "2026-11-03T00:00:00.000Z" {
		t.Errorf("range %s %s", body.From, body.To)
	}
	// bob lost the ring-all race on c1 (no miss) and answered c3; alice
	// answered c1 and let c2 ring out.
	// An agent AgentName does not know has no name.
	wantAgents := []map[string]any{
		{"agent": "alice", "name": "Alice Agent", "offered": 2.0, "answered": 1.0, "missed": 1.0, "talk_ms": 60000.0, "avg_talk_ms": 60000.0},
		{"agent": "bob", "offered": 2.0, "answered": 1.0, "missed": 0.0, "talk_ms": 120000.0, "avg_talk_ms": 120000.0},
	}
	if !reflect.DeepEqual(body.Agents, wantAgents) {
		t.Errorf("agents:\n got %v\nwant %v", body.Agents, wantAgents)
	}
	wantQueues := []map[string]any{
		{"queue": "sales", "calls": 2.0, "missed": 0.0},
		{"queue": "support", "calls": 1.0, "missed": 1.0},
	}
	if !reflect.DeepEqual(body.Queues, wantQueues) {
		t.Errorf("queues:\n got %v\nwant %v", body.Queues, wantQueues)
	}
	rec = fx.get(t, "/api/reports/agents?from=2026-01-01&to=2026-02-01")
	if !strings.Contains(rec.Body.String(), `"agents":[]`) || !strings.Contains(rec.Body.String(), `"queues":[]`) {
		t.Errorf("empty: %s", rec.Body)
	}
}

func TestMissedByHourAPI(t *testing.T) {
	fx := newCallsFixture(t)
	var body struct {
		From, To, TZ string
		Days         []string
		Missed       [][]int
	}
	rec := fx.get(t, "/api/reports/missed-by-hour?from=2026-11-01&to=2026-11-08&tz=America/New_York")
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	decode(t, rec, &body)
	if body.TZ != "America/New_York" || body.From != "2026-11-01T00:00:00.000-04:00" || body.To != "2026-11-08T00:00:00.000-05:00" {
		t.Errorf("tz %s from %s to %s", body.TZ, body.From, body.To)
	}
	if want := []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}; !reflect.DeepEqual(body.Days, want) {
		t.Errorf("days %v", body.Days)
	}
	grid := func(cells ...[3]int) [][]int {
		g := make([][]int, 7)
		for d := range g {
			g[d] = make([]int, 24)
		}
		for _, c := range cells {
			g[c[0]][c[1]] = c[2]
		}
		return g
	}
	// c4 at 03:30 UTC Monday is 22:30 on Sunday in New York; c2 at 11:00
	// UTC is 06:00 there.
	if want := grid([3]int{0, 22, 1}, [3]int{1, 6, 1}); !reflect.DeepEqual(body.Missed, want) {
		t.Errorf("New York grid %v", body.Missed)
	}
	rec = fx.get(t, "/api/reports/missed-by-hour")
	body.Missed = nil
	decode(t, rec, &body)
	if body.TZ != "UTC" || body.From != "2026-10-23T00:00:00.000Z" || body.To != "2026-11-20T00:00:00.000Z" {
		t.Errorf("defaults: tz %s from %s to %s", body.TZ, body.From, body.To)
	}
	if want := grid([3]int{1, 3, 1}, [3]int{1, 11, 1}); !reflect.DeepEqual(body.Missed, want) {
		t.Errorf("UTC grid %v", body.Missed)
	}
}

func TestRecordingDownload(t *testing.T) {
	fx := newCallsFixture(t)
	rec := fx.get(t, "/api/calls/c1/recording")
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), fx.wav) {
		t.Fatalf("%d %q", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "audio/wav" {
		t.Errorf("Content-Type %q", ct)
	}
	if rec.Header().Get("Accept-Ranges") != "bytes" {
		t.Errorf("Accept-Ranges %q", rec.Header().Get("Accept-Ranges"))
	}
	rec = fx.get(t, "/api/calls/c1/recording", "Range", "bytes=4-11")
	if rec.Code != http.StatusPartialContent || !bytes.Equal(rec.Body.Bytes(), fx.wav[4:12]) {
		t.Fatalf("range: %d %q", rec.Code, rec.Body)
	}
	if cr := rec.Header().Get("Content-Range"); cr != "bytes 4-11/"+itoa(len(fx.wav)) {
		t.Errorf("Content-Range %q", cr)
	}
	rec = fx.get(t, "/api/calls/c1/recording", "Range", "bytes=1000-")
	if rec.Code != http.StatusRequestedRangeNotSatisfiable || !strings.Contains(rec.Body.String(), `"error"`) ||
		rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("unsatisfiable range: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	for id, code := range map[string]int{"c3": 404, "gone": 404, "broken": 500} {
		rec := fx.get(t, "/api/calls/"+id+"/recording")
		if rec.Code != code || rec.Header().Get("Content-Type") != "application/json" || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("%s: %d %s", id, rec.Code, rec.Body)
		}
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
