package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// event is one message the edge published.
type event struct {
	Subject string
	MsgID   string // the Nats-Msg-Id header
	Raw     string
	Fields  map[string]any
	Err     error // the payload was not one JSON object
}

func (ev event) name() string { return ev.str("event") }

// str returns a string field, "" when absent or not a string.
func (ev event) str(key string) string {
	s, _ := ev.Fields[key].(string)
	return s
}

func (ev event) has(key string) bool {
	_, ok := ev.Fields[key]
	return ok
}

// num returns a numeric field and whether it is present and a number.
func (ev event) num(key string) (int64, bool) {
	f, ok := ev.Fields[key].(float64)
	return int64(f), ok
}

func (ev event) String() string { return ev.Subject + " " + ev.Raw }

// eventLog collects every message on callsign.> for the life of the test.
type eventLog struct {
	mu      sync.Mutex
	list    []event
	changed chan struct{}
	nc      *nats.Conn
}

func subscribeEvents(t *testing.T, e *edge) *eventLog {
	t.Helper()
	url := fmt.Sprintf("nats://127.0.0.1:%d", e.natsPort)
	var nc *nats.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		nc, err = nats.Connect(url, nats.Timeout(2*time.Second), nats.Name("callsign-e2e"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect to the embedded NATS at %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l := &eventLog{changed: make(chan struct{}), nc: nc}
	sub, err := nc.Subscribe("callsign.>", func(m *nats.Msg) {
		ev := event{Subject: m.Subject, Raw: string(m.Data)}
		if m.Header != nil {
			ev.MsgID = m.Header.Get(nats.MsgIdHdr)
		}
		if err := json.Unmarshal(m.Data, &ev.Fields); err != nil {
			ev.Err = err
		}
		l.mu.Lock()
		l.list = append(l.list, ev)
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("subscribe callsign.>: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush subscription: %v", err)
	}
	t.Cleanup(func() {
		_ = sub.Unsubscribe()
		nc.Close()
		l.checkWellFormed(t)
		if t.Failed() {
			t.Logf("events seen:\n%s", l.dump())
		}
	})
	return l
}

// reconnected waits until the subscription is back on a restarted edge's
// embedded server: what is published before then never reaches it.
func (l *eventLog) reconnected(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !l.nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatalf("the event subscription did not reconnect within 15s: %v", l.nc.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := l.nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("flush the event subscription: %v", err)
	}
}

// checkWellFormed holds every message to the documented event format, whatever the test
// was about: one JSON object, the subject naming its event, and the
// Nats-Msg-Id header equal to its id.
func (l *eventLog) checkWellFormed(t *testing.T) {
	t.Helper()
	for _, ev := range l.all() {
		if ev.Err != nil {
			t.Errorf("event on %s is not a JSON object: %v: %s", ev.Subject, ev.Err, ev.Raw)
			continue
		}
		if want := "callsign." + ev.name(); ev.Subject != want {
			t.Errorf("event %q published on %s, want %s", ev.name(), ev.Subject, want)
		}
		if ev.str("id") == "" {
			t.Errorf("event without id: %s", ev)
		} else if ev.MsgID != ev.str("id") {
			t.Errorf("Nats-Msg-Id %q != id %q: %s", ev.MsgID, ev.str("id"), ev)
		}
		if _, err := time.Parse(time.RFC3339Nano, ev.str("at")); err != nil {
			t.Errorf("event %s: at %q is not RFC 3339: %s", ev.name(), ev.str("at"), ev)
		}
	}
}

func (l *eventLog) all() []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list)
}

func (l *eventLog) dump() string {
	var b strings.Builder
	for _, ev := range l.all() {
		fmt.Fprintf(&b, "  %s\n", ev)
	}
	if b.Len() == 0 {
		return "  (none)"
	}
	return b.String()
}

// find returns the events named name (any, when "") that match.
func (l *eventLog) find(name string, match func(event) bool) []event {
	var out []event
	for _, ev := range l.all() {
		if (name == "" || ev.name() == name) && (match == nil || match(ev)) {
			out = append(out, ev)
		}
	}
	return out
}

// wait returns the first event named name that matches, waiting at most
// within for it.
func (l *eventLog) wait(t *testing.T, name string, match func(event) bool, within time.Duration) event {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		if found := l.find(name, match); len(found) > 0 {
			return found[0]
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s event within %s; events seen:\n%s", name, within, l.dump())
		}
	}
}

func bySIPCallID(id string) func(event) bool {
	return func(ev event) bool { return ev.str("sip_call_id") == id }
}

func byCallID(id string) func(event) bool {
	return func(ev event) bool { return ev.str("call_id") == id }
}

// callEvents waits for the carrier leg's call.started and then for its
// call.completed, and returns every event of that call by name.
func (l *eventLog) callEvents(t *testing.T, sipCallID string, within time.Duration) map[string][]event {
	t.Helper()
	started := l.wait(t, "call.started", bySIPCallID(sipCallID), within)
	callID := started.str("call_id")
	if callID == "" {
		t.Fatalf("call.started without call_id: %s", started)
	}
	l.wait(t, "call.completed", byCallID(callID), within)
	out := map[string][]event{}
	for _, ev := range l.find("", byCallID(callID)) {
		out[ev.name()] = append(out[ev.name()], ev)
	}
	return out
}

// one returns the single event of that name, failing on none or several.
func one(t *testing.T, evs map[string][]event, name string) event {
	t.Helper()
	switch n := len(evs[name]); n {
	case 1:
		return evs[name][0]
	default:
		t.Fatalf("want exactly one %s for the call, got %d: %v", name, n, evs[name])
		return event{}
	}
}

// wantFields checks string fields.
func wantFields(t *testing.T, ev event, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := ev.str(k); got != v {
			t.Errorf("%s: %s = %q, want %q (%s)", ev.name(), k, got, v, ev)
		}
	}
}

// wantAbsent checks that fields are absent, not zero values pretending.
func wantAbsent(t *testing.T, ev event, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if ev.has(k) {
			t.Errorf("%s: %s = %v, want it absent (%s)", ev.name(), k, ev.Fields[k], ev)
		}
	}
}

// wantAttribution checks what every event of a call to trackingNumber
// carries about the caller and the number's source.
func wantAttribution(t *testing.T, ev event, sipCallID string) {
	t.Helper()
	wantFields(t, ev, map[string]string{
		"sip_call_id":     sipCallID,
		"caller":          callerNumber,
		"caller_name":     callerName,
		"tracking_number": trackingNumber,
		"source":          numberSource,
		"medium":          numberMedium,
		"campaign":        numberCampaign,
		"keyword":         numberKeyword,
		"flow":            flowName,
	})
}

// wantMs checks an integer duration field lies in [lo, hi].
func wantMs(t *testing.T, ev event, key string, lo, hi int64) {
	t.Helper()
	v, ok := ev.num(key)
	switch {
	case !ok:
		t.Errorf("%s: %s missing or not a number (%s)", ev.name(), key, ev)
	case v < lo || v > hi:
		t.Errorf("%s: %s = %d, want %d..%d (%s)", ev.name(), key, v, lo, hi, ev)
	}
}

func wantTime(t *testing.T, ev event, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := time.Parse(time.RFC3339Nano, ev.str(k)); err != nil {
			t.Errorf("%s: %s = %q, want an RFC 3339 time (%s)", ev.name(), k, ev.str(k), ev)
		}
	}
}

// checkStream checks the JetStream stream consumers rely on when they
// were away: named CALLSIGN, over callsign.>, holding at least min
// messages.
func (l *eventLog) checkStream(t *testing.T, min uint64) {
	t.Helper()
	js, err := jetstream.New(l.nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "CALLSIGN")
	if err != nil {
		t.Errorf("JetStream stream CALLSIGN: %v", err)
		return
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Errorf("JetStream stream CALLSIGN info: %v", err)
		return
	}
	if !slices.Contains(info.Config.Subjects, "callsign.>") {
		t.Errorf("stream CALLSIGN subjects %v, want callsign.>", info.Config.Subjects)
	}
	if info.State.Msgs < min {
		t.Errorf("stream CALLSIGN holds %d messages, want at least %d", info.State.Msgs, min)
	}
}
