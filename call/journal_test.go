package call

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"
)

// sinkEvent is one event a journal handed on.
type sinkEvent struct {
	id    string // "" when published without one
	event string
	at    time.Time
	rec   Record
}

// sink is the publisher behind a journal: it keeps what it is given and
// can be told to fail Flush.
type sink struct {
	mu       sync.Mutex
	events   []sinkEvent
	flushErr error
	flushes  int
}

func (s *sink) Publish(event string, at time.Time, rec Record) {
	s.PublishWithID("", event, at, rec)
}

func (s *sink) PublishWithID(id, event string, at time.Time, rec Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, sinkEvent{id: id, event: event, at: at, rec: rec})
}

func (s *sink) Flush(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
	return s.flushErr
}

func (s *sink) all() []sinkEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkEvent(nil), s.events...)
}

var jt0 = time.Date(2026, 11, 23, 9, 0, 0, 123456789, time.UTC)

func openTestJournal(t *testing.T, dir string, opts JournalOptions) (*Journal, *sink) {
	t.Helper()
	s := &sink{}
	opts.Dir = dir
	if opts.Publisher == nil {
		opts.Publisher = s
	}
	if opts.Clock == nil {
		opts.Clock = newFakeClock(jt0)
	}
	opts.Log = zerolog.New(zerolog.NewTestWriter(t))
	j, err := OpenJournal(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j, s
}

// crash copies the journal as a kill would leave it (everything written,
// nothing more) to a new directory, where the next start opens it.
func crash(t *testing.T, j *Journal) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := j.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(j.path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, journalFile), b, 0o640); err != nil {
		t.Fatal(err)
	}
	return dir
}

func recoverAll(t *testing.T, j *Journal) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	return j.Recover(ctx)
}

// answeredRecord is a call with every field the journal keeps.
func answeredRecord() Record {
	return Record{
		ID: "01JCALLANSWERED", SIPCallID: "carrier-1@10.0.0.1", Caller: "+15551234567",
		CallerName: `Jane "J" Caller` + "\t\x01é", TrackingNumber: "+15550100001", Source: "google-ads",
		Medium: "cpc", Campaign: "spring-sale", Keyword: "plumber", Pool: "web",
		Visitor: &Visitor{
			UTMSource: "google", UTMMedium: "cpc", UTMCampaign: "spring-sale", UTMTerm: "emergency plumber",
			UTMContent: "ad-2", GCLID: "Cj0KCQiA-gclid", GBRAID: "0AAAAA-gbraid", WBRAID: "wbraid-1",
			FBCLID: "IwAR-fbclid", MSCLKID: "msclkid-1", Referrer: "https://www.google.com/",
			LandingPage: "https://example.com/plumbing?utm_source=google&x=\"1\"", FirstSeen: jt0.Add(-3 * time.Minute),
			ClickIDs: map[string]string{"ttclid": "tt-1", "li_fat_id": "li\"2"},
		},
		FirstCall: new(true), Flow: "sales",
		IVR: []string{"1", "#"}, Queue: "sales", Agent: "alice", Consent: ConsentAnnounced,
		StartedAt: jt0, AnsweredAt: jt0.Add(7 * time.Second),
		Leg: "callsign-leg/1 UDP 10.0.0.1:5060 edgetag\r\nINVITE sip:15550100001@10.0.0.2 SIP/2.0\r\n" +
			"From: <sip:+15551234567@10.0.0.1>;tag=\"x\"\r\n",
		Attempts: []Attempt{
			{Agent: "bob", StartedAt: jt0.Add(time.Second), Ring: 3 * time.Second, Result: AttemptNoAnswer},
			{Agent: "alice", StartedAt: jt0.Add(4 * time.Second), Ring: 3 * time.Second, Result: AttemptAnswered},
		},
	}
}

func waitingRecord() Record {
	return Record{
		ID: "01JCALLWAITING", SIPCallID: "carrier-2@10.0.0.1", Caller: "anonymous",
		TrackingNumber: "+15550100003", Source: "billboard", Flow: "support", IVR: []string{},
		StartedAt: jt0.Add(2 * time.Second),
	}
}

func TestJournalRecoversCallsLeftUp(t *testing.T) {
	clk := newFakeClock(jt0)
	j, _ := openTestJournal(t, t.TempDir(), JournalOptions{Clock: clk})
	a, w := answeredRecord(), waitingRecord()
	started := a
	started.IVR, started.Queue, started.Agent, started.AnsweredAt, started.Attempts = nil, "", "", time.Time{}, nil
	done := Record{ID: "01JCALLDONE", SIPCallID: "carrier-3", StartedAt: jt0}

	j.Publish(EventStarted, a.StartedAt, started)
	j.Publish(EventStarted, done.StartedAt, done)
	j.Publish(EventStarted, w.StartedAt, w)
	j.Publish(EventAnswered, a.AnsweredAt, a)
	j.Publish(EventMissed, jt0.Add(3*time.Second), done)
	j.Publish(EventCompleted, jt0.Add(3*time.Second), done)

	j2, s2 := openTestJournal(t, crash(t, j), JournalOptions{})
	recs := recoverAll(t, j2)
	if len(recs) != 2 {
		t.Fatalf("recovered %d calls, want the 2 left up: %+v", len(recs), recs)
	}
	// No alive tick came: each ended at its own last line.
	wantA := a
	endCall(&wantA, a.AnsweredAt)
	wantW := w
	endCall(&wantW, w.StartedAt)
	for i, want := range []Record{wantA, wantW} {
		got := recs[i]
		if !got.StartedAt.Equal(want.StartedAt) || !got.AnsweredAt.Equal(want.AnsweredAt) || !got.EndedAt.Equal(want.EndedAt) {
			t.Errorf("call %d: times %v %v %v, want %v %v %v", i, got.StartedAt, got.AnsweredAt, got.EndedAt, want.StartedAt, want.AnsweredAt, want.EndedAt)
		}
		for k := range got.Attempts {
			if !got.Attempts[k].StartedAt.Equal(want.Attempts[k].StartedAt) {
				t.Errorf("attempt %d started %v, want %v", k, got.Attempts[k].StartedAt, want.Attempts[k].StartedAt)
			}
			got.Attempts[k].StartedAt = want.Attempts[k].StartedAt
		}
		got.StartedAt, got.AnsweredAt, got.EndedAt = want.StartedAt, want.AnsweredAt, want.EndedAt
		got.Visitor = sameFirstSeen(t, got.Visitor, want.Visitor)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("call %d recovered as\n%+v\nwant\n%+v", i, got, want)
		}
	}
	if recs[0].Outcome != OutcomeAnswered || recs[0].HangupBy != HangupEdge || recs[0].MissedReason != "" {
		t.Errorf("answered call: %s %s %q", recs[0].Outcome, recs[0].HangupBy, recs[0].MissedReason)
	}
	if recs[1].Outcome != OutcomeMissed || recs[1].MissedReason != MissedError || recs[1].HangupBy != HangupEdge {
		t.Errorf("waiting call: %s %s %s", recs[1].Outcome, recs[1].MissedReason, recs[1].HangupBy)
	}
	if talk, _ := recs[1].Talk(); talk != 0 {
		t.Errorf("missed call talked %s", talk)
	}

	var got []string
	for _, ev := range s2.all() {
		got = append(got, ev.event+" "+ev.rec.ID)
		if ev.rec.ID == a.ID && (ev.rec.Pool != a.Pool || ev.rec.Visitor == nil || ev.rec.Visitor.GCLID != a.Visitor.GCLID ||
			ev.rec.FirstCall == nil || !*ev.rec.FirstCall) {
			t.Errorf("%s of %s lost the call's web attribution: pool %q visitor %+v first_call %v",
				ev.event, ev.rec.ID, ev.rec.Pool, ev.rec.Visitor, ev.rec.FirstCall)
		}
		if ev.id != recoveredEventID(ev.rec.ID, ev.event, ev.rec.EndedAt) || !ev.at.Equal(ev.rec.EndedAt) {
			t.Errorf("%s of %s: id %q at %v, want the id derived from the call and event, at ended_at", ev.event, ev.rec.ID, ev.id, ev.at)
		}
	}
	want := []string{"call.completed " + a.ID, "call.missed " + w.ID, "call.completed " + w.ID}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}

	// Ended and forgotten: a start after this one has nothing to end.
	j3, s3 := openTestJournal(t, crash(t, j2), JournalOptions{})
	if recs := recoverAll(t, j3); len(recs) != 0 || len(s3.all()) != 0 {
		t.Errorf("second start recovered %v", recs)
	}
}

// sameFirstSeen is got with want's FirstSeen when the two are the same
// instant: the journal reads times back in the local zone.
func sameFirstSeen(t *testing.T, got, want *Visitor) *Visitor {
	t.Helper()
	if got == nil || want == nil {
		return got
	}
	if !got.FirstSeen.Equal(want.FirstSeen) {
		t.Errorf("visitor first seen %v, want %v", got.FirstSeen, want.FirstSeen)
	}
	v := *got
	v.FirstSeen = want.FirstSeen
	return &v
}

// TestJournalRecordRoundTrip: what the journal writes of a record reads
// back as the same record, and what the record does not know is not
// written at all.
func TestJournalRecordRoundTrip(t *testing.T) {
	noVisit := answeredRecord()
	noVisit.ID, noVisit.Pool, noVisit.Visitor, noVisit.FirstCall = "01JNOVISIT", "web", nil, new(false)
	emptyVisit := waitingRecord()
	emptyVisit.ID, emptyVisit.Pool, emptyVisit.Visitor = "01JEMPTYVISIT", "web", &Visitor{}
	for _, tc := range []struct {
		rec        Record
		has, hasnt []string
	}{
		{answeredRecord(), []string{`"pool":"web"`, `"first_call":true`, `"gclid":"Cj0KCQiA-gclid"`, `"first_seen":`, `"click_ids":{"li_fat_id":"li\"2","ttclid":"tt-1"}`}, nil},
		{waitingRecord(), nil, []string{`"pool"`, `"visitor"`, `"first_call"`}},
		// first_call false is known, not missing.
		{noVisit, []string{`"first_call":false`}, []string{`"visitor"`}},
		// A visit with nothing in it is still a visit.
		{emptyVisit, []string{`"visitor":{}`}, []string{`"first_call"`, `"utm_source"`, `"first_seen"`}},
	} {
		b := appendJournalRecord(nil, &tc.rec)
		if !json.Valid(b) {
			t.Fatalf("%s: not JSON: %s", tc.rec.ID, b)
		}
		for _, s := range tc.has {
			if !bytes.Contains(b, []byte(s)) {
				t.Errorf("%s: %s missing from %s", tc.rec.ID, s, b)
			}
		}
		for _, s := range tc.hasnt {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s: %s written in %s", tc.rec.ID, s, b)
			}
		}
		var r journalRecord
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		got := r.record()
		want := tc.rec
		// Kept elsewhere (the leg) or never journaled (the end).
		want.Leg = ""
		if !got.StartedAt.Equal(want.StartedAt) || !got.AnsweredAt.Equal(want.AnsweredAt) {
			t.Errorf("%s: times %v %v, want %v %v", want.ID, got.StartedAt, got.AnsweredAt, want.StartedAt, want.AnsweredAt)
		}
		got.StartedAt, got.AnsweredAt = want.StartedAt, want.AnsweredAt
		for k := range got.Attempts {
			got.Attempts[k].StartedAt = want.Attempts[k].StartedAt
		}
		got.Visitor = sameFirstSeen(t, got.Visitor, want.Visitor)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s read back as\n%+v\nwant\n%+v", want.ID, got, want)
		}
	}
}

// TestJournalReadsLinesWithoutAttribution: a journal written before pool,
// visitor and first_call were kept still ends its calls, without them.
func TestJournalReadsLinesWithoutAttribution(t *testing.T) {
	dir := t.TempDir()
	const old = `{"k":"s","t":1795424400123456789,"leg":"callsign-leg/1 UDP 10.0.0.1:5060 edgetag\r\n",` +
		`"r":{"id":"01JOLDFORMAT","sip_call_id":"carrier-9@10.0.0.1","caller":"+15551234567",` +
		`"tracking_number":"+15550100001","source":"google-ads","medium":"cpc","campaign":"spring-sale",` +
		`"flow":"sales","queue":"sales","started_at":1795424400123456789}}` + "\n" +
		`{"k":"a","t":1795424405123456789}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, journalFile), []byte(old), 0o640); err != nil {
		t.Fatal(err)
	}
	j, s := openTestJournal(t, dir, JournalOptions{})
	recs := recoverAll(t, j)
	if len(recs) != 1 {
		t.Fatalf("recovered %+v, want the one call of the old journal", recs)
	}
	r := recs[0]
	if r.ID != "01JOLDFORMAT" || r.Source != "google-ads" || r.Queue != "sales" || !r.StartedAt.Equal(jt0) ||
		!r.EndedAt.Equal(jt0.Add(5*time.Second)) || r.Leg != "callsign-leg/1 UDP 10.0.0.1:5060 edgetag\r\n" {
		t.Errorf("old line recovered as %+v", r)
	}
	if r.Pool != "" || r.Visitor != nil || r.FirstCall != nil {
		t.Errorf("old line recovered with pool %q visitor %+v first_call %v, want none", r.Pool, r.Visitor, r.FirstCall)
	}
	if n := len(s.all()); n != 2 {
		t.Errorf("published %d events for the old call, want call.missed and call.completed", n)
	}
}

func TestJournalEndsAtLastAliveTick(t *testing.T) {
	clk := newFakeClock(jt0)
	j, _ := openTestJournal(t, t.TempDir(), JournalOptions{Clock: clk, Tick: 5 * time.Millisecond})
	a := answeredRecord()
	j.Publish(EventStarted, a.StartedAt, a)
	clk.Advance(42 * time.Second)
	waitFor(t, "an alive tick at +42s", func() bool {
		b, _ := os.ReadFile(j.path)
		return bytes.Contains(b, []byte(`{"k":"a","t":`+itoa(jt0.Add(42*time.Second).UnixNano())+"}\n"))
	})
	// The kill, while the clock still says +42s; the restart comes much
	// later, which must not count.
	dir := crash(t, j)
	clk.Advance(time.Hour)
	j2, _ := openTestJournal(t, dir, JournalOptions{Clock: clk})
	recs := recoverAll(t, j2)
	if len(recs) != 1 || !recs[0].EndedAt.Equal(jt0.Add(42*time.Second)) {
		t.Fatalf("recovered %+v, want one call ended at the last tick, %v", recs, jt0.Add(42*time.Second))
	}
	if talk, _ := recs[0].Talk(); talk != 35*time.Second {
		t.Errorf("talk %s, want 35s", talk)
	}
	if d, _ := recs[0].Duration(); d != 42*time.Second {
		t.Errorf("duration %s, want 42s", d)
	}
}

func TestJournalTornTail(t *testing.T) {
	dir := t.TempDir()
	a, w := answeredRecord(), waitingRecord()
	var b []byte
	line := func(kind string, at time.Time, rec Record) {
		b = append(b, `{"k":"`+kind+`","t":`+itoa(at.UnixNano())+`,"r":`...)
		b = appendJournalRecord(b, &rec)
		b = append(b, "}\n"...)
	}
	line("s", a.StartedAt, a)
	b = append(b, "not json at all\n"...)
	b = append(b, `{"k":"a","t":`+itoa(jt0.Add(9*time.Second).UnixNano())+"}\n"...)
	line("s", w.StartedAt, w)
	// The kill came in the middle of the waiting call's end marker.
	b = append(b, `{"k":"e","t":`+itoa(jt0.Add(10*time.Second).UnixNano())+`,"id":"01JCALLWAI`...)
	if err := os.WriteFile(filepath.Join(dir, journalFile), b, 0o640); err != nil {
		t.Fatal(err)
	}

	j, _ := openTestJournal(t, dir, JournalOptions{})
	recs := recoverAll(t, j)
	if len(recs) != 2 || recs[0].ID != a.ID || recs[1].ID != w.ID {
		t.Fatalf("recovered %+v, want both calls (the torn end marker does not count)", recs)
	}
	for _, r := range recs {
		if !r.EndedAt.Equal(jt0.Add(9 * time.Second)) {
			t.Errorf("%s ended %v, want the last tick", r.ID, r.EndedAt)
		}
	}
	// The start rewrote the file without the torn line: what comes next
	// reads back.
	j.Publish(EventStarted, jt0, Record{ID: "next", StartedAt: jt0})
	j2, _ := openTestJournal(t, crash(t, j), JournalOptions{})
	if recs := recoverAll(t, j2); len(recs) != 1 || recs[0].ID != "next" {
		t.Errorf("after the torn line: recovered %+v, want the call started after it", recs)
	}
}

func TestJournalCompacts(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTestJournal(t, dir, JournalOptions{CompactAt: 8 << 10})
	up := map[string]bool{}
	for i := range 2000 {
		rec := answeredRecord()
		rec.ID = "call-" + itoa(int64(i))
		j.Publish(EventStarted, jt0, rec)
		j.Publish(EventAnswered, jt0, rec)
		if i%500 == 7 {
			up[rec.ID] = true
		} else {
			j.Publish(EventCompleted, jt0, rec)
		}
		if i%100 == 0 {
			// Faster than any edge: keep within the queue.
			if err := j.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, dropped := j.Stats(); dropped > 0 {
		t.Fatalf("%d events dropped", dropped)
	}
	copied := crash(t, j)
	fi, err := os.Stat(j.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 32<<10 {
		t.Errorf("journal is %d bytes after 2000 calls with 4 up; compaction should keep it near 8 KiB", fi.Size())
	}
	if _, err := os.Stat(j.path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
	j2, _ := openTestJournal(t, copied, JournalOptions{})
	recs := recoverAll(t, j2)
	got := map[string]bool{}
	for _, r := range recs {
		got[r.ID] = true
		if r.Agent != "alice" || len(r.Attempts) != 2 {
			t.Errorf("%s lost its answered state in compaction: %+v", r.ID, r)
		}
		if r.Leg != answeredRecord().Leg {
			t.Errorf("%s lost its carrier leg's state in compaction: %q", r.ID, r.Leg)
		}
		if want := answeredRecord(); r.Pool != want.Pool || r.FirstCall == nil || r.Visitor == nil ||
			r.Visitor.LandingPage != want.Visitor.LandingPage || !r.Visitor.FirstSeen.Equal(want.Visitor.FirstSeen) {
			t.Errorf("%s lost its web attribution in compaction: pool %q visitor %+v first_call %v", r.ID, r.Pool, r.Visitor, r.FirstCall)
		}
	}
	if !reflect.DeepEqual(got, up) {
		t.Errorf("recovered %v, want %v", got, up)
	}

	// A clean close leaves nothing to recover.
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(j.path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != len(up)+1 {
		t.Errorf("after close the journal has %d lines, want the %d calls still up and a tick", n, len(up))
	}
}

// flakyFile is a journal file whose writes fail, or hang, while told to.
type flakyFile struct {
	f    *os.File
	fail *atomic.Bool
	hang chan struct{} // writes wait until it is closed, when non-nil
}

func (f *flakyFile) Write(b []byte) (int, error) {
	if f.hang != nil {
		<-f.hang
	}
	if f.fail.Load() {
		// Half the batch made it, as when a disk fills up mid-write.
		n, _ := f.f.Write(b[:len(b)/2])
		return n, errors.New("no space left on device")
	}
	return f.f.Write(b)
}
func (f *flakyFile) Sync() error  { return f.f.Sync() }
func (f *flakyFile) Close() error { return f.f.Close() }

func TestJournalWriteFailureDoesNotBlock(t *testing.T) {
	var fail atomic.Bool
	opts := JournalOptions{openFile: func(path string) (journalWriter, error) {
		f, err := openAppend(path)
		if err != nil {
			return nil, err
		}
		return &flakyFile{f: f.(*os.File), fail: &fail}, nil
	}}
	j, s := openTestJournal(t, t.TempDir(), opts)
	fail.Store(true)
	a, w := answeredRecord(), waitingRecord()
	j.Publish(EventStarted, a.StartedAt, a)
	j.Publish(EventStarted, w.StartedAt, w)
	j.Publish(EventCompleted, w.StartedAt, w)
	waitFor(t, "the write error counted", func() bool { e, _ := j.Stats(); return e > 0 })
	if n := len(s.all()); n != 3 {
		t.Errorf("publisher got %d events while the disk failed, want 3", n)
	}

	// The disk is back: the next rewrite puts what memory has on it,
	// and what the failed writes left half-written does not count.
	fail.Store(false)
	j.Publish(EventAnswered, a.AnsweredAt, a)
	var recs []Record
	waitFor(t, "the journal right again", func() bool {
		j2, _ := openTestJournal(t, crash(t, j), JournalOptions{})
		recs = recoverAll(t, j2)
		return len(recs) == 1 && recs[0].ID == a.ID && recs[0].Agent == "alice"
	})
}

func TestJournalHungDiskDoesNotBlock(t *testing.T) {
	var fail atomic.Bool
	hang := make(chan struct{})
	opts := JournalOptions{openFile: func(path string) (journalWriter, error) {
		f, err := openAppend(path)
		if err != nil {
			return nil, err
		}
		return &flakyFile{f: f.(*os.File), fail: &fail, hang: hang}, nil
	}}
	j, s := openTestJournal(t, t.TempDir(), opts)
	rec := answeredRecord()
	begin := time.Now()
	const n = 3 * journalQueue
	for range n {
		j.Publish(EventStarted, jt0, rec)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("%d events took %s with the disk hung", n, d)
	}
	if _, dropped := j.Stats(); dropped == 0 {
		t.Error("nothing counted as dropped with the disk hung and the queue full")
	}
	if got := len(s.all()); got != n {
		t.Errorf("publisher got %d events, want %d", got, n)
	}
	close(hang)
}

func TestJournalNotFlushedStaysForNextStart(t *testing.T) {
	j, _ := openTestJournal(t, t.TempDir(), JournalOptions{})
	w := waitingRecord()
	j.Publish(EventStarted, w.StartedAt, w)

	s2 := &sink{flushErr: errors.New("outbox failing")}
	j2, _ := openTestJournal(t, crash(t, j), JournalOptions{Publisher: s2, Clock: newFakeClock(jt0.Add(time.Hour))})
	first := recoverAll(t, j2)
	// Calls of this run tick meanwhile; the recovered call's end must
	// not move with them.
	j2.Publish(EventStarted, jt0.Add(time.Hour), Record{ID: "new", StartedAt: jt0.Add(time.Hour)})

	s3 := &sink{}
	j3, _ := openTestJournal(t, crash(t, j2), JournalOptions{Publisher: s3})
	second := recoverAll(t, j3)
	if len(first) != 1 || len(second) != 2 || second[0].ID != w.ID || !second[0].EndedAt.Equal(first[0].EndedAt) {
		t.Fatalf("first start recovered %+v, second %+v; want the same call, same end, again", first, second)
	}
	ids := func(s *sink, id string) []string {
		var out []string
		for _, ev := range s.all() {
			if ev.rec.ID == id {
				out = append(out, ev.id)
			}
		}
		return out
	}
	if a, b := ids(s2, w.ID), ids(s3, w.ID); len(a) != 2 || !reflect.DeepEqual(a, b) {
		t.Errorf("ids at the first start %v, at the second %v; want the same two", a, b)
	}
}

func TestRecoveredEventID(t *testing.T) {
	at := jt0.Add(time.Minute)
	a := recoveredEventID("c1", EventCompleted, at)
	if a != recoveredEventID("c1", EventCompleted, at) {
		t.Error("not deterministic")
	}
	if a == recoveredEventID("c1", EventMissed, at) || a == recoveredEventID("c2", EventCompleted, at) {
		t.Error("the same id for another event or call")
	}
	id, err := ulid.ParseStrict(a)
	if err != nil {
		t.Fatal(err)
	}
	if got := ulid.Time(id.Time()); !got.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("ULID time %v, want %v", got, at)
	}
}

func TestJournalOpenFailsOnUnusableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(JournalOptions{Dir: file, Publisher: &sink{}}); err == nil {
		t.Error("a journal dir that is a file opened")
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, guard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// BenchmarkJournalPublish is the cost of one event through the journal,
// the write included: a call's started, answered and completed per three
// iterations, with the writer keeping up.
func BenchmarkJournalPublish(b *testing.B) {
	s := &nopPublisher{}
	j, err := OpenJournal(JournalOptions{Dir: b.TempDir(), Publisher: s, Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	rec := answeredRecord()
	rec.Leg = benchLeg
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = "01JBENCHCALL" + itoa(int64(i))
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rec.ID = ids[(i/3)%len(ids)]
		switch i % 3 {
		case 0:
			j.Publish(EventStarted, jt0, rec)
		case 1:
			j.Publish(EventAnswered, jt0, rec)
		case 2:
			j.Publish(EventCompleted, jt0, rec)
		}
		i++
		if i%512 == 0 {
			// Keep within the queue: what is measured is the write, not drops.
			_ = j.Sync(ctx)
		}
	}
	_ = j.Sync(ctx)
	b.StopTimer()
	if _, dropped := j.Stats(); dropped > 0 {
		b.Fatalf("%d events dropped", dropped)
	}
}

// BenchmarkJournalPublishCaller is what a call's goroutine pays per
// event: the hand-over to the writer.
func BenchmarkJournalPublishCaller(b *testing.B) {
	j, err := OpenJournal(JournalOptions{Dir: b.TempDir(), Publisher: &nopPublisher{}, Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	rec := answeredRecord()
	b.ReportAllocs()
	for b.Loop() {
		j.Publish(EventAnswered, jt0, rec) // an unknown call: written nowhere
	}
}

// BenchmarkJournalRecord is the encoding of one record as the journal
// writes it, without the disk: the writer's own cost per event.
func BenchmarkJournalRecord(b *testing.B) {
	rec := answeredRecord()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendJournalRecord(buf[:0], &rec)
	}
}

// benchLeg is the size of a carrier leg's state from a carrier INVITE
// through one proxy (the sip package's legState).
var benchLeg = "callsign-leg/1 UDP 198.51.100.7:5060 1H0e3fbzIID0OX07\r\n" +
	"INVITE sip:15550100001@192.0.2.1:5060 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---4c1b4e3a9d1f0c2b;rport=5060;received=198.51.100.7\r\n" +
	"Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-d8754z-3f2a1b0c9d8e7f6a;rport\r\n" +
	"From: \"Jane Caller\" <sip:+15551234567@198.51.100.7>;tag=as6f9c2d1e\r\n" +
	"To: <sip:+15550100001@192.0.2.1>\r\n" +
	"Call-ID: 4f1e2d3c4b5a69788796a5b4c3d2e1f0@198.51.100.7\r\n" +
	"CSeq: 102 INVITE\r\n" +
	"Contact: <sip:+15551234567@198.51.100.7:5060;transport=udp>\r\n" +
	"Record-Route: <sip:198.51.100.7;lr;ftag=as6f9c2d1e;did=4f1.b2c1>\r\n"

type nopPublisher struct{}

func (nopPublisher) Publish(string, time.Time, Record) {}
