package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// externalNATS is a NATS server with JetStream that the test owns, run in
// the test's own process: it can be shut down and started again on the
// same port and store, as an operator restarting NATS would.
type externalNATS struct {
	port  int
	store string
	srv   *server.Server
}

func startExternalNATS(t *testing.T) *externalNATS {
	t.Helper()
	n := &externalNATS{port: freePort(t), store: t.TempDir()}
	n.start(t)
	t.Cleanup(n.stop)
	return n
}

func (n *externalNATS) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

func (n *externalNATS) start(t *testing.T) {
	t.Helper()
	// Options are consumed by the server they configure: new ones each time.
	srv, err := server.NewServer(&server.Options{
		ServerName: "e2e-nats",
		Host:       "127.0.0.1",
		Port:       n.port,
		JetStream:  true,
		StoreDir:   n.store,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatalf("nats-server not ready on %s within 10s", n.url())
	}
	n.srv = srv
}

func (n *externalNATS) stop() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// placedCall is a call the test made, and what its events must say.
type placedCall struct {
	sipCallID string
	answered  bool
	what      string // for messages: when it was made
}

// sipTimes are what the carrier saw of a call, from sipp's trace: how long
// the edge took to say it rings, to answer, and to end a cancelled call.
type sipTimes struct {
	ringing, answer, cancel time.Duration
}

func (s sipTimes) String() string {
	out := fmt.Sprintf("INVITE→180 %s", s.ringing.Round(time.Millisecond))
	if s.answer > 0 {
		out += fmt.Sprintf(", INVITE→200 %s", s.answer.Round(time.Millisecond))
	}
	if s.cancel > 0 {
		out += fmt.Sprintf(", CANCEL→487 %s", s.cancel.Round(time.Millisecond))
	}
	return out
}

func carrierTimes(t *testing.T, c *sippProc) sipTimes {
	t.Helper()
	var invite, cancel, ringing, answer, terminated time.Time
	for _, m := range c.messages(t) {
		switch {
		case m.Sent && m.method() == "INVITE" && invite.IsZero():
			invite = m.At
		case m.Sent && m.method() == "CANCEL" && cancel.IsZero():
			cancel = m.At
		case !m.Sent && m.status() == 180 && ringing.IsZero():
			ringing = m.At
		case !m.Sent && m.status() == 200 && m.cseqMethod() == "INVITE" && answer.IsZero():
			answer = m.At
		case !m.Sent && m.status() == 487 && terminated.IsZero():
			terminated = m.At
		}
	}
	if invite.IsZero() || ringing.IsZero() {
		t.Fatalf("sipp %s: no INVITE sent or no 180 received in its trace", c.name)
	}
	s := sipTimes{ringing: ringing.Sub(invite)}
	if !answer.IsZero() {
		s.answer = answer.Sub(invite)
	}
	if !cancel.IsZero() && !terminated.IsZero() {
		s.cancel = terminated.Sub(cancel)
	}
	return s
}

// streamEvent is one message of the CALLSIGN stream, with its sequence.
type streamEvent struct {
	seq uint64
	event
}

// readStream reads the whole CALLSIGN stream from the start, as a consumer
// that was away would, with an ordered consumer.
func readStream(t *testing.T, url string) []streamEvent {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second), nats.Name("callsign-e2e-reader"))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "CALLSIGN")
	if err != nil {
		t.Fatalf("stream CALLSIGN: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream CALLSIGN info: %v", err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatalf("ordered consumer on CALLSIGN: %v", err)
	}
	var out []streamEvent
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("reading CALLSIGN after %d of %d messages: %v", len(out), info.State.Msgs, err)
		}
		md, err := m.Metadata()
		if err != nil {
			t.Fatalf("message metadata: %v", err)
		}
		ev := streamEvent{seq: md.Sequence.Stream, event: event{Subject: m.Subject(), Raw: string(m.Data())}}
		ev.MsgID = m.Headers().Get(jetstream.MsgIDHeader)
		if err := json.Unmarshal(m.Data(), &ev.Fields); err != nil {
			ev.Err = err
		}
		out = append(out, ev)
		if md.Sequence.Stream >= info.State.LastSeq {
			return out
		}
	}
}

func streamMsgs(t *testing.T, url string) uint64 {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return 0
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "CALLSIGN")
	if err != nil {
		return 0
	}
	return s.CachedInfo().State.Msgs
}

// eventsQueued is the edge's callsign_events_queued gauge.
func eventsQueued(t *testing.T, e *edge) int {
	t.Helper()
	v, ok := e.metrics(t)["callsign_events_queued"]
	if !ok {
		t.Fatal("/metrics has no callsign_events_queued")
	}
	return int(v)
}

// waitQueued waits until the edge says exactly n events wait to be
// published.
func waitQueued(t *testing.T, e *edge, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := eventsQueued(t, e)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("callsign_events_queued is %d after %s, want %d", got, within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDrained waits until the edge has nothing left to publish and the
// stream holds at least want messages; it returns how long that took.
func waitDrained(t *testing.T, e *edge, n *externalNATS, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		queued := eventsQueued(t, e)
		msgs := streamMsgs(t, n.url())
		if queued == 0 && msgs >= uint64(want) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s after NATS came back: callsign_events_queued %d, stream CALLSIGN holds %d messages, want 0 and %d",
				within, queued, msgs, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantNothingLost checks that the edge counted no event dropped or failed.
func wantNothingLost(t *testing.T, e *edge) {
	t.Helper()
	m := e.metrics(t)
	for _, result := range []string{"dropped", "failed"} {
		if v := m[`callsign_events_total{result="`+result+`"}`]; v != 0 {
			t.Errorf("callsign_events_total{result=%q} = %v, want 0", result, v)
		}
	}
}

// wantStreamHolds checks the stream against the calls placed, in the order
// they were placed: each call's events exactly once, in the order they
// happened, and each call's events after those of every earlier call.
func wantStreamHolds(t *testing.T, stream []streamEvent, calls []placedCall) {
	t.Helper()
	(&eventLog{list: func() []event {
		evs := make([]event, len(stream))
		for i, se := range stream {
			evs[i] = se.event
		}
		return evs
	}()}).checkWellFormed(t)

	ids := map[string]uint64{}
	byContent := map[string]uint64{}
	callOf := map[string]string{} // call_id → sip_call_id
	for _, ev := range stream {
		if id := ev.str("id"); id != "" {
			if prev, dup := ids[id]; dup {
				t.Errorf("event id %s twice in the stream, at sequences %d and %d", id, prev, ev.seq)
			}
			ids[id] = ev.seq
		}
		// Two messages of one event of one call are a duplicate even under
		// two ids: a consumer would count the call twice.
		key := ev.str("call_id") + " " + ev.name()
		if prev, dup := byContent[key]; dup {
			t.Errorf("%s of call %s twice in the stream, at sequences %d and %d", ev.name(), ev.str("call_id"), prev, ev.seq)
		}
		byContent[key] = ev.seq
		if ev.name() == "call.started" {
			callOf[ev.str("call_id")] = ev.str("sip_call_id")
		}
	}

	perCall := map[string][]streamEvent{} // by sip_call_id
	for _, ev := range stream {
		sip := callOf[ev.str("call_id")]
		if sip == "" {
			sip = ev.str("sip_call_id")
		}
		perCall[sip] = append(perCall[sip], ev)
	}
	var lastSeq uint64
	var lastWhat string
	for i, c := range calls {
		evs := perCall[c.sipCallID]
		delete(perCall, c.sipCallID)
		want := []string{"call.started", "call.missed", "call.completed"}
		if c.answered {
			want[1] = "call.answered"
		}
		var got []string
		for _, ev := range evs {
			got = append(got, ev.name())
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("call %d (%s, %s) in the stream: %v, want %v in that order", i, c.what, c.sipCallID, got, want)
		}
		if len(evs) == 0 {
			continue
		}
		if evs[0].seq < lastSeq {
			t.Errorf("call %d (%s) starts at sequence %d, before the end (%d) of the call placed before it (%s)",
				i, c.what, evs[0].seq, lastSeq, lastWhat)
		}
		for _, ev := range evs {
			if ev.str("call_id") != evs[0].str("call_id") {
				t.Errorf("call %d (%s): events of two call_ids: %s", i, c.what, ev)
			}
			if c.answered && ev.name() == "call.completed" {
				wantFields(t, ev.event, map[string]string{"outcome": "answered", "agent": "carol"})
			}
			if !c.answered && ev.name() == "call.completed" {
				wantFields(t, ev.event, map[string]string{"outcome": "missed", "missed_reason": "caller_hangup"})
			}
		}
		lastSeq, lastWhat = evs[len(evs)-1].seq, c.what
	}
	for sip, evs := range perCall {
		for _, ev := range evs {
			t.Errorf("stream holds an event of no call the test placed (%s): seq %d %s", sip, ev.seq, ev)
		}
	}
	if t.Failed() {
		var b strings.Builder
		for _, ev := range stream {
			fmt.Fprintf(&b, "  seq %d: %s\n", ev.seq, ev)
		}
		t.Logf("stream CALLSIGN:\n%s", b.String())
	}
}

// TestNATSDown: NATS goes away while the edge takes calls. The calls go on
// as quickly as with NATS up, their events wait in the outbox on disk,
// and when NATS is back every event is in the CALLSIGN stream exactly
// once, in the order it happened. Then NATS goes away again and the edge
// is killed and restarted meanwhile: the events waiting in its outbox
// survive, and go out before the restarted edge's own.
func TestNATSDown(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	ns := startExternalNATS(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-answer-unless-cancelled.xml", Timeout: 60 * time.Second})
	t.Cleanup(agent.stop)
	e := startEdge(t, edgeConfig{
		NATSPort: ns.port,
		Queue:    queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents:   []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	// Should the test end with NATS down, the edge's SIGTERM would spend
	// its whole close timeout retrying: NATS comes back first.
	t.Cleanup(func() {
		if ns.srv == nil {
			ns.start(t)
		}
	})
	payloads, maps := offerPCMA()
	answeredScenario := writeCarrierScenario(t, carrierScript{Payloads: payloads, RTPMaps: maps, ByeAfter: 500 * time.Millisecond})

	var calls []placedCall
	place := func(what string, answered bool) sipTimes {
		t.Helper()
		name := fmt.Sprintf("carrier%d", len(calls))
		scenario := answeredScenario
		if !answered {
			scenario = "carrier-cancel.xml"
		}
		start := time.Now()
		c := carrier(t, e, name, scenario)
		c.succeed(t, 15*time.Second)
		if t.Failed() {
			t.FailNow()
		}
		calls = append(calls, placedCall{sipCallID: c.callID, answered: answered, what: what})
		st := carrierTimes(t, c)
		t.Logf("call %d (%s, answered %v): %s, whole call %s", len(calls)-1, what, answered, st, time.Since(start).Round(time.Millisecond))
		return st
	}

	// NATS up: the call's events are there at once.
	up := place("NATS up", true)
	evs := e.events.callEvents(t, calls[0].sipCallID, eventDeadline)
	one(t, evs, "call.answered")
	waitQueued(t, e, 0, 5*time.Second)

	// NATS goes away. Calls go on, each as quick as with NATS up, and each
	// adds its three events to those waiting.
	ns.stop()
	outage := []bool{true, false, true, false, true}
	for i, answered := range outage {
		st := place("NATS down", answered)
		// Loose bounds: a publish that waited for NATS would cost seconds
		// (its ack timeout) or never end.
		if st.ringing > up.ringing+time.Second {
			t.Errorf("with NATS down the carrier waited %s for 180, %s with NATS up", st.ringing, up.ringing)
		}
		if answered && st.answer > up.answer+1500*time.Millisecond {
			t.Errorf("with NATS down the carrier waited %s for 200, %s with NATS up", st.answer, up.answer)
		}
		if !answered && st.cancel > 1500*time.Millisecond {
			t.Errorf("with NATS down the carrier waited %s for the 487 to its CANCEL", st.cancel)
		}
		waitQueued(t, e, 3*(i+1), 5*time.Second)
	}
	wantNothingLost(t, e)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("with NATS down: %d events queued", eventsQueued(t, e))

	ns.start(t)
	took := waitDrained(t, e, ns, 3*len(calls), 10*time.Second)
	t.Logf("NATS back: the %d events of the outage published within %s", 3*len(outage), took.Round(time.Millisecond))
	wantStreamHolds(t, readStream(t, ns.url()), calls)
	wantNothingLost(t, e)
	if t.Failed() {
		t.FailNow()
	}

	// NATS goes away again, and the edge dies (SIGKILL: no drain, no
	// close) with events waiting; it restarts while NATS is still down.
	ns.stop()
	place("NATS down, before the edge's kill", true)
	place("NATS down, before the edge's kill", false)
	waitQueued(t, e, 6, 5*time.Second)
	e.kill9(t)
	e.restart(t)
	if got := eventsQueued(t, e); got != 6 {
		t.Errorf("after the restart callsign_events_queued is %d, want the 6 the killed edge left", got)
	}
	place("NATS down, after the edge's restart", true)
	waitQueued(t, e, 9, 5*time.Second)

	ns.start(t)
	took = waitDrained(t, e, ns, 3*len(calls), 10*time.Second)
	t.Logf("NATS back: the 9 events of the second outage (6 from the killed edge) published within %s", took.Round(time.Millisecond))
	stream := readStream(t, ns.url())
	wantStreamHolds(t, stream, calls)
	wantNothingLost(t, e)
	t.Logf("stream CALLSIGN: %d events of %d calls", len(stream), len(calls))
}
