package ops

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/call"
)

// sseEvent is one event of a stream: its name ("" for a comment) and
// data, or the comment's text.
type sseEvent struct {
	name, data, comment string
}

// sseClient reads a stream from a real server, as the dashboard does:
// fetch() with the admin token.
type sseClient struct {
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent
}

func openStream(t *testing.T, srv *httptest.Server, token string) (*sseClient, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		return nil, resp
	}
	c := &sseClient{resp: resp, cancel: cancel, events: make(chan sseEvent, 100)}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				c.events <- ev
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[len("data: "):]
			}
		}
	}()
	t.Cleanup(c.close)
	return c, resp
}

func (c *sseClient) close() {
	c.cancel()
	c.resp.Body.Close()
}

func (c *sseClient) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return sseEvent{}
}

func endedCall(id string) *call.Record {
	first := true
	start := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	return &call.Record{
		ID: id, Caller: "+15550100001", TrackingNumber: "+15550109001", Source: "google-ads",
		FirstCall: &first, Queue: "sales", Agent: "alice", Outcome: call.OutcomeAnswered, HangupBy: call.HangupCaller,
		StartedAt: start, AnsweredAt: start.Add(3 * time.Second), EndedAt: start.Add(63 * time.Second),
		Consent:   call.ConsentGranted,
		Recording: &call.RecordingResult{Path: "2026/11/02/" + id + ".wav", Duration: time.Minute, SHA256: "ab"},
	}
}

// subscribers is how many streams are open.
func (f *Feed) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStreamDeliversEndedCalls(t *testing.T) {
	feed := NewFeed()
	feed.keepalive = 50 * time.Millisecond
	srv := httptest.NewServer(Handler(Sources{}, NewOutcomes(), API{Token: func() string { return testToken }, Feed: feed}))
	// A cleanup, not a defer: it must run after the streams' cleanups,
	// since Close waits for open requests.
	t.Cleanup(srv.Close)

	if c, resp := openStream(t, srv, "wrong"); c != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	c, resp := openStream(t, srv, testToken)
	if c == nil {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "X-Accel-Buffering": "no", "Cache-Control": "no-cache"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	// Subscribed once the headers are in: nothing published from now on
	// is lost.
	feed.Publish(endedCall("c1"))
	feed.Publish(nil)
	feed.Publish(endedCall("c2"))
	var got []map[string]any
	keepalives := 0
	for len(got) < 2 {
		ev := c.next(t)
		switch {
		case ev.comment == "keepalive":
			keepalives++
		case ev.name == call.EventCompleted:
			var obj map[string]any
			if err := json.Unmarshal([]byte(ev.data), &obj); err != nil {
				t.Fatalf("%v: %s", err, ev.data)
			}
			got = append(got, obj)
		default:
			t.Fatalf("unexpected event %+v", ev)
		}
	}
	want := map[string]any{
		"call_id": "c1", "caller": "+15550100001", "tracking_number": "+15550109001", "source": "google-ads",
		"first_call": true, "queue": "sales", "agent": "alice", "outcome": "answered", "hangup_by": "caller",
		"started_at": "2026-11-02T10:00:00.000Z", "answered_at": "2026-11-02T10:00:03.000Z", "ended_at": "2026-11-02T10:01:03.000Z",
		"wait_ms": 3000.0, "talk_ms": 60000.0, "duration_ms": 63000.0,
		"recording":     map[string]any{"consent": "granted", "path": "2026/11/02/c1.wav", "duration_ms": 60000.0},
		"recording_url": "/api/calls/c1/recording",
	}
	if !reflect.DeepEqual(got[0], want) || got[1]["call_id"] != "c2" {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
	// A quiet stream gets comments that keep proxies from closing it.
	for keepalives == 0 {
		if ev := c.next(t); ev.comment == "keepalive" {
			keepalives++
		}
	}
	// The client leaving ends its subscription.
	c.close()
	waitFor(t, "the subscription to end", func() bool { return feed.subscribers() == 0 })
}

func TestStreamBoundedAndClosed(t *testing.T) {
	feed := NewFeed()
	feed.max = 2
	srv := httptest.NewServer(Handler(Sources{}, NewOutcomes(), API{Token: func() string { return testToken }, Feed: feed}))
	// A cleanup, not a defer: it must run after the streams' cleanups,
	// since Close waits for open requests.
	t.Cleanup(srv.Close)
	a, _ := openStream(t, srv, testToken)
	b, _ := openStream(t, srv, testToken)
	if a == nil || b == nil {
		t.Fatal("streams refused under the limit")
	}
	c, resp := openStream(t, srv, testToken)
	if c != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("over the limit: %d %v", resp.StatusCode, resp.Header)
	}
	a.close()
	waitFor(t, "a stream to end", func() bool { return feed.subscribers() == 1 })
	c, resp = openStream(t, srv, testToken)
	if c == nil {
		t.Fatalf("after one left: %d", resp.StatusCode)
	}
	// Closing the feed ends every stream, so a shutdown is not held up.
	feed.Close()
	for _, s := range []*sseClient{b, c} {
		select {
		case _, ok := <-s.events:
			if ok {
				t.Fatal("an event after Close")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("stream still open after Close")
		}
	}
	feed.Close()
	if c, resp := openStream(t, srv, testToken); c != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Close: %d", resp.StatusCode)
	}
	feed.Publish(endedCall("late")) // nobody listens: a no-op
}

// stalledWriter is a client that stopped reading: writes block until
// released.
type stalledWriter struct {
	header  http.Header
	mu      sync.Mutex
	buf     strings.Builder
	flushed chan struct{}
	release chan struct{}
	writing chan struct{}
	once    sync.Once
}

func (w *stalledWriter) Header() http.Header { return w.header }
func (w *stalledWriter) WriteHeader(int)     {}

func (w *stalledWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.writing) })
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *stalledWriter) Flush() {
	select {
	case w.flushed <- struct{}{}:
	default:
	}
}

func (w *stalledWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestStreamSlowClientResyncs(t *testing.T) {
	feed := NewFeed()
	feed.buffer = 3
	api := API{Token: func() string { return testToken }, Feed: feed}
	w := &stalledWriter{
		header: http.Header{}, flushed: make(chan struct{}, 1),
		release: make(chan struct{}), writing: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/stream", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Handler(Sources{}, NewOutcomes(), api).ServeHTTP(w, req)
	}()
	<-w.flushed // subscribed
	feed.Publish(endedCall("first"))
	<-w.writing // the stream took it and is stuck writing it
	// Publish must not wait for the stuck client: all of these return
	// while it is stalled, and those past its buffer are dropped.
	published := make(chan struct{})
	go func() {
		for i := range 10 {
			feed.Publish(endedCall("burst-" + string(rune('a'+i))))
		}
		close(published)
	}()
	select {
	case <-published:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a stalled client")
	}
	close(w.release)
	waitFor(t, "the resync event", func() bool { return strings.Contains(w.String(), "event: resync\ndata: {}\n\n") })
	// Once told, the client gets new calls again.
	feed.Publish(endedCall("after"))
	waitFor(t, "the call after the resync", func() bool { return strings.Contains(w.String(), `"call_id":"after"`) })
	out := w.String()
	if !strings.HasPrefix(out, "event: call.completed\ndata: {\"call_id\":\"first\"") {
		t.Errorf("stream starts %q", out[:min(len(out), 80)])
	}
	if n := strings.Count(out, "event: call.completed\n"); n > 1+3+1 {
		t.Errorf("%d calls delivered to a client with room for 3 while stalled", n)
	}
	if strings.Index(out, "event: resync") > strings.Index(out, `"call_id":"after"`) {
		t.Errorf("resync after the new call:\n%s", out)
	}
	// The request ending ends the stream and its subscription.
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still running after its request ended")
	}
	if n := feed.subscribers(); n != 0 {
		t.Fatalf("%d subscribers left", n)
	}
}
