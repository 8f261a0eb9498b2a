package calllog

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/callsign/callsign/call"
)

var t0 = time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC) // a Monday

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// answered is a call answered after 10 s that talked for talk.
func answered(id, caller string, start time.Time, talk time.Duration) Entry {
	e := Entry{Record: call.Record{
		ID: id, SIPCallID: "sip-" + id, Caller: caller, TrackingNumber: "+15550100001",
		Source: "google-ads", Medium: "cpc", Campaign: "spring", Flow: "sales",
		Queue: "sales", Agent: "alice", Outcome: call.OutcomeAnswered, HangupBy: call.HangupCaller,
		StartedAt: start, AnsweredAt: start.Add(10 * time.Second), EndedAt: start.Add(10*time.Second + talk),
	}}
	return e
}

func missed(id, caller string, start time.Time) Entry {
	return Entry{Record: call.Record{
		ID: id, SIPCallID: "sip-" + id, Caller: caller, TrackingNumber: "+15550100003",
		Source: "billboard", Campaign: "city", Flow: "support", Queue: "support",
		Outcome: call.OutcomeMissed, MissedReason: call.MissedCallerHangup, HangupBy: call.HangupCaller,
		StartedAt: start, EndedAt: start.Add(30 * time.Second),
	}}
}

func addAll(t testing.TB, s *Store, es ...Entry) {
	t.Helper()
	for _, e := range es {
		s.Add(e)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if s.Failed() != 0 || s.Dropped() != 0 {
		t.Fatalf("failed %d, dropped %d", s.Failed(), s.Dropped())
	}
}

func ids(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func count(t testing.TB, s *Store) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM calls`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAddRoundTrip(t *testing.T) {
	s := newStore(t)
	e := answered("c1", "+15551230001", t0.Add(123*time.Millisecond), 95*time.Second)
	e.CallerName = "Ann"
	e.Keyword = "plumber"
	e.Pool = "web"
	e.Visitor = map[string]string{"gclid": "G1", "utm_source": "google"}
	e.FirstCall = true
	e.IVR = []string{"1", "2"}
	e.IVRExit = ""
	e.MissedReason = ""
	e.Consent = call.ConsentGranted
	e.Recording = &call.RecordingResult{Path: "2025/03/10/c1.wav", Duration: 95 * time.Second}
	addAll(t, s, e)
	p, err := s.Query(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 1 || p.Next != "" {
		t.Fatalf("got %d entries, next %q", len(p.Entries), p.Next)
	}
	got := p.Entries[0]
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
	}
	var wait, talk, dur, started int64
	if err := s.db.QueryRow(`SELECT wait_ms, talk_ms, duration_ms, started_at FROM calls`).Scan(&wait, &talk, &dur, &started); err != nil {
		t.Fatal(err)
	}
	if wait != 10000 || talk != 95000 || dur != 105000 || started != t0.UnixMilli()+123 {
		t.Fatalf("wait %d talk %d duration %d started %d", wait, talk, dur, started)
	}
}

func TestQueryFilters(t *testing.T) {
	s := newStore(t)
	a1 := answered("a1", "+15551230001", t0, time.Minute)
	a2 := answered("a2", "+15551230002", t0.Add(time.Hour), time.Minute)
	a2.Agent, a2.Campaign, a2.TrackingNumber = "bob", "summer", "+15550100002"
	m1 := missed("m1", "+15551230001", t0.Add(2*time.Hour))
	m2 := missed("m2", "anonymous", t0.Add(3*time.Hour))
	addAll(t, s, a1, a2, m1, m2)
	cases := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all newest first", Filter{}, []string{"m2", "m1", "a2", "a1"}},
		{"from", Filter{From: t0.Add(time.Hour)}, []string{"m2", "m1", "a2"}},
		{"to excludes its instant", Filter{To: t0.Add(2 * time.Hour)}, []string{"a2", "a1"}},
		{"from and to", Filter{From: t0.Add(time.Hour), To: t0.Add(3 * time.Hour)}, []string{"m1", "a2"}},
		{"source", Filter{Source: "billboard"}, []string{"m2", "m1"}},
		{"campaign", Filter{Campaign: "summer"}, []string{"a2"}},
		{"outcome", Filter{Outcome: call.OutcomeAnswered}, []string{"a2", "a1"}},
		{"agent", Filter{Agent: "alice"}, []string{"a1"}},
		{"caller", Filter{Caller: "+15551230001"}, []string{"m1", "a1"}},
		{"caller is exact", Filter{Caller: "+1555123000"}, []string{}},
		{"tracking number", Filter{TrackingNumber: "+15550100002"}, []string{"a2"}},
		{"combined", Filter{Source: "google-ads", Caller: "+15551230001"}, []string{"a1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := s.Query(c.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(p.Entries); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestQueryPagingEqualTimestamps(t *testing.T) {
	s := newStore(t)
	var es []Entry
	for i := range 7 {
		es = append(es, missed(fmt.Sprintf("c%d", i), "+1555", t0))
	}
	es = append(es, missed("later", "+1555", t0.Add(time.Second)), missed("earlier", "+1555", t0.Add(-time.Second)))
	addAll(t, s, es...)
	var all []string
	var pages []int
	f := Filter{Limit: 3}
	for {
		p, err := s.Query(f)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(p.Entries))
		all = append(all, ids(p.Entries)...)
		if p.Next == "" {
			break
		}
		f.Cursor = p.Next
		// A call added meanwhile, newer than the cursor, must not shift pages.
		addAll(t, s, missed(fmt.Sprintf("new%d", len(pages)), "+1555", t0.Add(time.Hour)))
	}
	want := []string{"later", "c6", "c5", "c4", "c3", "c2", "c1", "c0", "earlier"}
	if !reflect.DeepEqual(all, want) || !reflect.DeepEqual(pages, []int{3, 3, 3}) {
		t.Fatalf("pages %v: %v, want %v", pages, all, want)
	}
	if _, err := s.Query(Filter{Cursor: "not a cursor!"}); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func TestQueryLimits(t *testing.T) {
	s := newStore(t)
	var es []Entry
	for i := range 600 {
		es = append(es, missed(fmt.Sprintf("c%03d", i), "+1555", t0.Add(time.Duration(i)*time.Second)))
	}
	addAll(t, s, es...)
	for _, c := range []struct{ limit, want int }{{0, DefaultLimit}, {-1, DefaultLimit}, {10, 10}, {10000, MaxLimit}} {
		p, err := s.Query(Filter{Limit: c.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Entries) != c.want || p.Next == "" {
			t.Errorf("limit %d: %d entries, next %q", c.limit, len(p.Entries), p.Next)
		}
	}
}

func TestAddIdempotent(t *testing.T) {
	s := newStore(t)
	first := answered("c1", "+15551230001", t0, time.Minute)
	second := first
	second.Agent = "bob"
	addAll(t, s, first, second)
	addAll(t, s, second)
	p, err := s.Query(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 1 || p.Entries[0].Agent != "alice" {
		t.Fatalf("got %+v", p.Entries)
	}
}

func TestFirstCall(t *testing.T) {
	s := newStore(t)
	addAll(t, s, missed("c1", "+15551230001", t0), missed("anon", "anonymous", t0))
	cases := []struct {
		name   string
		caller string
		at     time.Time
		want   bool
	}{
		{"never called", "+15551239999", t0.Add(time.Hour), true},
		{"called an hour ago", "+15551230001", t0.Add(time.Hour), false},
		{"called 29 days ago", "+15551230001", t0.Add(29 * 24 * time.Hour), false},
		{"called exactly 30 days ago", "+15551230001", t0.Add(30 * 24 * time.Hour), false},
		{"called 30 days and 1 ms ago", "+15551230001", t0.Add(30*24*time.Hour + time.Millisecond), true},
		{"the call itself", "+15551230001", t0, true},
		{"calls after at do not count", "+15551230001", t0.Add(-time.Hour), true},
		{"anonymous", "anonymous", t0.Add(40 * 24 * time.Hour), false},
		{"no caller", "", t0, false},
	}
	for _, c := range cases {
		got, err := s.FirstCall(c.caller, c.at)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestWriteCSV(t *testing.T) {
	s := newStore(t)
	e := answered("c1", "+15551230001", t0, time.Minute)
	e.CallerName = `=HYPERLINK("http://x","y")`
	e.Keyword = "plumber, \"cheap\"\nnow"
	e.Campaign = "@SUM(A1)"
	e.Medium = "-1+2"
	e.Visitor = map[string]string{"referrer": "+cmd"}
	e.IVR = []string{"1", "2"}
	m := missed("c2", "-15551230002", t0.Add(time.Hour))
	m.CallerName = "\tx"
	addAll(t, s, e, m, missed("c3", "+1555", t0.Add(2*time.Hour)))
	var buf bytes.Buffer
	if err := s.WriteCSV(&buf, Filter{To: t0.Add(2 * time.Hour), Limit: 1}); err != nil {
		t.Fatal(err)
	}
	raw := buf.String()
	if !strings.HasPrefix(raw, "call_id,sip_call_id,started_at,") || !strings.Contains(raw, "\r\n") {
		t.Fatalf("header or line ends: %q", raw)
	}
	if !strings.Contains(raw, `"'=HYPERLINK(""http://x"",""y"")"`) || !strings.Contains(raw, "\"plumber, \"\"cheap\"\"\r\nnow\"") {
		t.Fatalf("quoting: %q", raw)
	}
	rows, err := csv.NewReader(strings.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want header and 2 (Limit and later calls ignored/filtered)", len(rows))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	r2, r1 := rows[1], rows[2]
	checks := []struct {
		row        []string
		name, want string
	}{
		{r1, "call_id", "c1"},
		{r1, "caller", "+15551230001"},
		{r1, "caller_name", `'=HYPERLINK("http://x","y")`},
		{r1, "keyword", "plumber, \"cheap\"\nnow"},
		{r1, "campaign", "'@SUM(A1)"},
		{r1, "medium", "'-1+2"},
		{r1, "visitor", `{"referrer":"+cmd"}`},
		{r1, "ivr", "1 2"},
		{r1, "started_at", "2025-03-10T09:00:00.000Z"},
		{r1, "answered_at", "2025-03-10T09:00:10.000Z"},
		{r1, "talk_ms", "60000"},
		{r1, "duration_ms", "70000"},
		{r1, "outcome", "answered"},
		{r2, "call_id", "c2"},
		{r2, "caller", "-15551230002"},
		{r2, "caller_name", "'\tx"},
		{r2, "answered_at", ""},
		{r2, "talk_ms", "0"},
		{r2, "missed_reason", "caller_hangup"},
	}
	for _, c := range checks {
		if got := c.row[col[c.name]]; got != c.want {
			t.Errorf("%s of %s: got %q, want %q", c.name, c.row[0], got, c.want)
		}
	}
}

func TestGuardCell(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "plain": "plain", "=1+1": "'=1+1", "+1+cmd": "'+1+cmd", "-": "'-", "+": "'+",
		"@x": "'@x", "+15550100001": "+15550100001", "-42": "-42", "\rx": "'\rx", "a=b": "a=b",
	} {
		if got := guardCell(in); got != want {
			t.Errorf("guardCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGoogleAdsConversions(t *testing.T) {
	s := newStore(t)
	ok1 := answered("ok1", "+1", t0, time.Minute)
	ok1.Visitor = map[string]string{"gclid": "EAIaIQ-1", "utm_source": "google"}
	ok2 := answered("ok2", "+2", t0.Add(time.Hour+500*time.Millisecond), time.Minute)
	ok2.Visitor = map[string]string{"gclid": "=evil"}
	noGclid := answered("nogclid", "+3", t0, time.Minute)
	noGclid.Visitor = map[string]string{"utm_source": "bing"}
	emptyGclid := answered("empty", "+4", t0, time.Minute)
	emptyGclid.Visitor = map[string]string{"gclid": ""}
	noVisitor := answered("novisitor", "+5", t0, time.Minute)
	miss := missed("missed", "+6", t0)
	miss.Visitor = map[string]string{"gclid": "G-missed"}
	late := answered("late", "+7", t0.Add(24*time.Hour), time.Minute)
	late.Visitor = map[string]string{"gclid": "G-late"}
	addAll(t, s, ok1, ok2, noGclid, emptyGclid, noVisitor, miss, late)
	var buf bytes.Buffer
	if err := s.GoogleAdsConversions(&buf, t0, t0.Add(24*time.Hour), "Phone call, answered", 12.5, "EUR"); err != nil {
		t.Fatal(err)
	}
	want := "Parameters:TimeZone=+0000\r\n" +
		"Google Click ID,Conversion Name,Conversion Time,Conversion Value,Conversion Currency\r\n" +
		"EAIaIQ-1,\"Phone call, answered\",2025-03-10 09:00:10+0000,12.5,EUR\r\n" +
		"'=evil,\"Phone call, answered\",2025-03-10 10:00:10+0000,12.5,EUR\r\n"
	if got := buf.String(); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestReports(t *testing.T) {
	s := newStore(t)
	a1 := answered("a1", "+1", t0, 60*time.Second)
	a1.FirstCall = true
	a2 := answered("a2", "+2", t0.Add(time.Minute), 121*time.Second)
	a2.Agent = "bob"
	a3 := answered("a3", "+3", t0.Add(2*time.Minute), 30*time.Second)
	a3.FirstCall = true
	m1 := missed("m1", "+4", t0.Add(3*time.Minute)) // Monday 09:03 UTC
	m1.Source, m1.Campaign = "google-ads", "spring"
	m1.Queue = "sales"
	m2 := missed("m2", "+5", t0.Add(14*time.Hour)) // Monday 23:00 UTC
	m2.FirstCall = true
	m3 := missed("m3", "+6", t0.Add(15*time.Hour)) // Tuesday 00:00 UTC
	m3.Queue = ""
	m3.IVRExit = call.IVRMenuTimeout
	outside := missed("outside", "+7", t0.Add(-time.Hour))
	addAll(t, s, a1, a2, a3, m1, m2, m3, outside)
	from, to := t0, t0.Add(24*time.Hour)

	src, err := s.SourcesReport(from, to)
	if err != nil {
		t.Fatal(err)
	}
	wantSrc := []SourceRow{
		{Source: "google-ads", Campaign: "spring", Calls: 4, Answered: 3, Missed: 1, MissedRate: 0.25, AvgTalkMS: 70333, FirstTime: 2},
		{Source: "billboard", Campaign: "city", Calls: 2, Answered: 0, Missed: 2, MissedRate: 1, AvgTalkMS: 0, FirstTime: 1},
	}
	if !reflect.DeepEqual(src, wantSrc) {
		t.Errorf("sources:\n got %+v\nwant %+v", src, wantSrc)
	}

	ag, err := s.AgentsReport(from, to)
	if err != nil {
		t.Fatal(err)
	}
	wantAg := AgentsReport{
		// Calls without attempts: each answered call is one offer.
		Agents: []AgentRow{{Agent: "alice", Offered: 2, Answered: 2, TalkMS: 90000, AvgTalkMS: 45000}, {Agent: "bob", Offered: 1, Answered: 1, TalkMS: 121000, AvgTalkMS: 121000}},
		Queues: []QueueRow{{Queue: "sales", Calls: 4, Missed: 1}, {Queue: "support", Calls: 1, Missed: 1}},
	}
	if !reflect.DeepEqual(ag, wantAg) {
		t.Errorf("agents:\n got %+v\nwant %+v", ag, wantAg)
	}

	grid, err := s.MissedByHour(from, to, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want [7][24]int
	want[time.Monday][9], want[time.Monday][23], want[time.Tuesday][0] = 1, 1, 1
	if grid != want {
		t.Errorf("missed by hour UTC: %v", grid)
	}
	// Two hours east, the late Monday calls fall on Tuesday morning.
	grid, err = s.MissedByHour(from, to, time.FixedZone("UTC+2", 2*3600))
	if err != nil {
		t.Fatal(err)
	}
	want = [7][24]int{}
	want[time.Monday][11], want[time.Tuesday][1], want[time.Tuesday][2] = 1, 1, 1
	if grid != want {
		t.Errorf("missed by hour UTC+2: %v", grid)
	}

	empty, err := s.SourcesReport(to, to.Add(time.Hour))
	if err != nil || len(empty) != 0 {
		t.Errorf("empty range: %v %v", empty, err)
	}
}

func TestBindings(t *testing.T) {
	s := newStore(t)
	until := t0.Add(30 * time.Minute)
	a := []Binding{
		{Pool: "web", Number: "+15550100010", VisitorID: "v1", VisitJSON: `{"gclid":"G"}`, HeldUntil: until},
		{Pool: "web", Number: "+15550100011", VisitorID: "v2", HeldUntil: until},
	}
	b := []Binding{{Pool: "print", Number: "+15550100020", VisitorID: "v3", HeldUntil: until}}
	if err := s.SaveBindings("web", a); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveBindings("print", b); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveBindings("web", a[1:]); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadBindings()
	if err != nil {
		t.Fatal(err)
	}
	if want := []Binding{b[0], a[1]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if err := s.SaveBindings("web", b); err == nil {
		t.Fatal("a binding of another pool was accepted")
	}
	if err := s.SaveBindings("print", nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadBindings(); len(got) != 1 {
		t.Fatalf("emptying a pool: %+v", got)
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	// Not flushed: Close must write what is queued.
	s.Add(answered("c1", "+1", t0, time.Minute))
	if err := s.SaveBindings("web", []Binding{{Pool: "web", Number: "+1", HeldUntil: t0}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	s.Add(answered("c2", "+1", t0, time.Minute))
	if s.Dropped() != 1 {
		t.Fatalf("add after close: dropped %d", s.Dropped())
	}
	if err := s.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("flush after close: %v", err)
	}

	s, err = Open(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.Query(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(p.Entries); !reflect.DeepEqual(got, []string{"c1"}) {
		t.Fatalf("after reopen: %v", got)
	}
	if bs, err := s.LoadBindings(); err != nil || len(bs) != 1 {
		t.Fatalf("bindings after reopen: %v %v", bs, err)
	}
	var version int
	var mode string
	if err := s.db.QueryRow(`SELECT version FROM schema_version`).Scan(&version); err != nil || version != len(migrations()) {
		t.Fatalf("schema version %d %v", version, err)
	}
	if err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q %v", mode, err)
	}
}

func TestConcurrentAdd(t *testing.T) {
	s := newStore(t)
	const workers, per = 8, 250
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				// Every call is added by two workers: duplicates race too.
				id := fmt.Sprintf("c%d-%d", w/2, i)
				s.Add(missed(id, "+1", t0.Add(time.Duration(i)*time.Millisecond)))
				if i%50 == 0 {
					if _, err := s.Query(Filter{Limit: 5}); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if s.Dropped() != 0 || s.Failed() != 0 {
		t.Fatalf("dropped %d, failed %d", s.Dropped(), s.Failed())
	}
	if n := count(t, s); n != workers/2*per {
		t.Fatalf("%d rows, want %d", n, workers/2*per)
	}
}

func TestQueueFullDrops(t *testing.T) {
	// A full queue: hold the write lock so the writer cannot drain.
	s, err := open(t.TempDir(), zerolog.Nop(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := s.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n {
		s.Add(missed(fmt.Sprintf("c%d", i), "+1", t0))
	}
	// The writer holds at most one batch, the queue two: the rest drop.
	if d := s.Dropped(); d < n-2-maxBatch {
		t.Fatalf("dropped %d", d)
	}
	if _, err := conn.ExecContext(t.Context(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if w := count(t, s); uint64(w)+s.Dropped() != n {
		t.Fatalf("%d written + %d dropped != %d", w, s.Dropped(), n)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(file, "sub"), zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "storage directory") {
		t.Errorf("directory under a file: %v", err)
	}

	corrupt := filepath.Join(dir, "corrupt")
	if err := os.MkdirAll(corrupt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, FileName), bytes.Repeat([]byte("not sqlite "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(corrupt, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "not a database") || !strings.Contains(err.Error(), filepath.Join(corrupt, FileName)) {
		t.Errorf("corrupted file: %v", err)
	}

	isDir := filepath.Join(dir, "isdir")
	if err := os.MkdirAll(filepath.Join(isDir, FileName), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(isDir, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), FileName) {
		t.Errorf("calls.db is a directory: %v", err)
	}

	newer := filepath.Join(dir, "newer")
	s, err := Open(newer, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(newer, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("newer schema: %v", err)
	}
}

func TestWriteFailureIsLoggedWithCallID(t *testing.T) {
	var logs bytes.Buffer
	s, err := Open(t.TempDir(), zerolog.New(&syncWriter{w: &logs}))
	if err != nil {
		t.Fatal(err)
	}
	bad := missed("bad", "+1", time.Time{}) // no started_at: refused
	good := missed("good", "+1", t0)
	s.Add(bad)
	s.Add(good)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Failed() != 1 {
		t.Fatalf("failed %d", s.Failed())
	}
	if !strings.Contains(logs.String(), `"call_id":"bad"`) {
		t.Fatalf("logs: %s", logs.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// TestEntryOf: a record's visit is kept by the event's field names, with
// only what the visit had, and its pool and first-call flag carry over.
func TestEntryOf(t *testing.T) {
	first := true
	rec := call.Record{ID: "c1", Pool: "website", FirstCall: &first, Visitor: &call.Visitor{
		UTMSource: "newsletter", GCLID: "TEST123", LandingPage: "https://shop.example/",
		FirstSeen: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC),
	}}
	e := EntryOf(&rec)
	want := map[string]string{"utm_source": "newsletter", "gclid": "TEST123", "landing_page": "https://shop.example/", "first_seen": "2026-11-23T09:00:00Z"}
	if !reflect.DeepEqual(e.Visitor, want) || e.Pool != "website" || !e.FirstCall {
		t.Errorf("entry visitor %v pool %q first %v", e.Visitor, e.Pool, e.FirstCall)
	}
	if e := EntryOf(&call.Record{ID: "c2"}); e.Visitor != nil || e.FirstCall {
		t.Errorf("a record without a visit: %+v", e)
	}
}
