package call

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
	"github.com/rs/zerolog"
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

const ringTO = 15 * time.Second

// harness is one call wired to fakes, run on its own goroutine as the SIP
// adapter runs it.
type harness struct {
	t       *testing.T
	q       *config.Queue
	clk     *fakeClock
	in      *fakeInbound
	dialer  *fakeDialer
	bridger *fakeBridger
	pub     *recordingPublisher
	router  *fakeRouter
	call    *Call
	ended   []Record // what OnEnd was told
	started bool
}

func newHarness(t *testing.T, q config.Queue) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		q:       &q,
		clk:     newFakeClock(t0),
		in:      &fakeInbound{},
		dialer:  &fakeDialer{unreachable: map[string]bool{}, dials: make(chan dialed, 64)},
		bridger: &fakeBridger{},
		pub:     &recordingPublisher{names: make(chan string, 64)},
		router:  &fakeRouter{queues: map[string]*config.Queue{q.Name: &q}, busy: map[string]bool{}},
	}
	deps := &Deps{
		Clock:     h.clk,
		Publisher: h.pub,
		Dialer:    h.dialer,
		Bridger:   h.bridger,
		Router:    h.router,
		Log:       zerolog.Nop(),
		OnEnd:     func(r *Record) { h.ended = append(h.ended, *r) },
	}
	flow := &config.Flow{Name: "main", Steps: []config.Step{{Queue: q.Name}}}
	h.call = New(deps, Record{
		ID: "01JCALL", SIPCallID: "abc@carrier", Caller: "+15550001111", CallerName: "Ada",
		TrackingNumber: "+15550100001", Source: "google", Medium: "cpc",
	}, flow, "")
	return h
}

// start runs the call and waits for the max_wait timer, if the queue has
// one, so later advances of the clock see it.
func (h *harness) start() {
	h.t.Helper()
	h.started = true
	go h.call.Run(h.in)
	if h.q.MaxWait > 0 && h.call.flow.Steps[0].Queue == h.q.Name {
		h.expectTimer(h.q.MaxWait)
	}
}

func (h *harness) expectTimer(d time.Duration) {
	h.t.Helper()
	select {
	case got := <-h.clk.armed:
		if got != d {
			h.t.Fatalf("timer armed for %v, want %v", got, d)
		}
	case <-time.After(guard):
		h.t.Fatalf("no timer of %v armed", d)
	}
}

func (h *harness) nextDial(agent string) dialed {
	h.t.Helper()
	select {
	case d := <-h.dialer.dials:
		if d.agent != agent {
			h.t.Fatalf("dialed %q, want %q", d.agent, agent)
		}
		return d
	case <-time.After(guard):
		h.t.Fatalf("%s was never dialed", agent)
	}
	panic("unreachable")
}

// ring waits until agent is dialed and its ring timeout armed.
func (h *harness) ring(agent string) *fakeLeg {
	h.t.Helper()
	d := h.nextDial(agent)
	if d.leg == nil {
		h.t.Fatalf("dialing %s failed, want a leg", agent)
	}
	h.expectTimer(h.q.RingTimeout)
	return d.leg
}

// dialFails waits for a dial the fake dialer refuses.
func (h *harness) dialFails(agent string) {
	h.t.Helper()
	if d := h.nextDial(agent); d.leg != nil {
		h.t.Fatalf("dialing %s succeeded, want an error", agent)
	}
}

// waitEvent waits until the call published event, so time advanced
// afterwards counts after it.
func (h *harness) waitEvent(event string) {
	h.t.Helper()
	for {
		select {
		case got := <-h.pub.names:
			if got == event {
				return
			}
		case <-time.After(guard):
			h.t.Fatalf("%s never published", event)
		}
	}
}

func (h *harness) callerHangsUp() { h.call.Post(Event{Kind: CallerHungUp}) }

func (h *harness) wait() {
	h.t.Helper()
	select {
	case <-h.call.Done():
	case <-time.After(guard):
		h.t.Fatalf("call never ended; published %v", names(h.pub.all()))
	}
}

func names(ps []published) []string {
	var n []string
	for _, p := range ps {
		n = append(n, p.event)
	}
	return n
}

type legWant struct{ cancels, hangups int }

type attemptWant struct {
	agent  string
	result string
	at     time.Duration // after the call started
	ring   time.Duration
}

type scenario struct {
	name   string
	queue  config.Queue
	setup  func(h *harness) // before Run
	script func(h *harness)

	events   []string
	inbound  []string
	dialed   []string
	attempts []attemptWant
	// legs are the Cancel and Hangup calls each agent's leg got; a leg
	// not listed must have got none.
	legs     map[string]legWant
	bridged  string // agent whose leg was bridged, if any
	agent    string
	outcome  string
	missed   string
	hangupBy string
	wait     time.Duration
	talk     time.Duration
	// heldElsewhere are agents on other calls; the call must leave them so.
	heldElsewhere []string
}

func queue(agents ...string) config.Queue {
	return config.Queue{Name: "sales", Strategy: "round-robin", RingTimeout: ringTO, Agents: agents}
}

func withMaxWait(q config.Queue, d time.Duration) config.Queue {
	q.MaxWait = d
	return q
}

var (
	answeredEvents = []string{EventStarted, EventAnswered, EventCompleted}
	missedEvents   = []string{EventStarted, EventMissed, EventCompleted}
)

// answer has agent's leg answer and waits for the call to take it, so the
// time advanced next is talk time.
func answer(h *harness, l *fakeLeg) {
	h.t.Helper()
	l.post(AgentAnswered)
	h.waitEvent(EventAnswered)
}

func scenarios() []scenario {
	return []scenario{
		{
			name:  "agent answers, caller hangs up",
			queue: queue("alice"),
			script: func(h *harness) {
				a := h.ring("alice")
				h.clk.Advance(2 * time.Second)
				a.post(AgentRinging)
				h.clk.Advance(3 * time.Second)
				answer(h, a)
				h.clk.Advance(60 * time.Second)
				h.callerHangsUp()
			},
			events:   answeredEvents,
			inbound:  []string{"ringing", "answer"},
			dialed:   []string{"alice"},
			attempts: []attemptWant{{"alice", AttemptAnswered, 0, 5 * time.Second}},
			legs:     map[string]legWant{"alice": {hangups: 1}},
			bridged:  "alice",
			agent:    "alice", outcome: OutcomeAnswered, hangupBy: HangupCaller,
			wait: 5 * time.Second, talk: 60 * time.Second,
		},
		{
			// The caller hears one 180 however many phones ring.
			name:  "second agent answers after the first times out, ringing relayed once",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				a.post(AgentRinging)
				h.clk.Advance(ringTO)
				b := h.ring("bob")
				b.post(AgentRinging)
				h.clk.Advance(3 * time.Second)
				answer(h, b)
				h.clk.Advance(45 * time.Second)
				h.callerHangsUp()
			},
			events:  answeredEvents,
			inbound: []string{"ringing", "answer"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptNoAnswer, 0, ringTO},
				{"bob", AttemptAnswered, ringTO, 3 * time.Second},
			},
			legs:    map[string]legWant{"alice": {cancels: 1}, "bob": {hangups: 1}},
			bridged: "bob",
			agent:   "bob", outcome: OutcomeAnswered, hangupBy: HangupCaller,
			wait: ringTO + 3*time.Second, talk: 45 * time.Second,
		},
		{
			name:  "agent hangs up",
			queue: queue("alice"),
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				h.clk.Advance(2 * time.Second)
				answer(h, a)
				h.clk.Advance(30 * time.Second)
				a.post(AgentHungUp)
			},
			events:   answeredEvents,
			inbound:  []string{"ringing", "answer", "hangup"},
			dialed:   []string{"alice"},
			attempts: []attemptWant{{"alice", AttemptAnswered, 0, 2 * time.Second}},
			bridged:  "alice",
			agent:    "alice", outcome: OutcomeAnswered, hangupBy: HangupAgent,
			wait: 2 * time.Second, talk: 30 * time.Second,
		},
		{
			name:  "media timeout hangs up both sides",
			queue: queue("alice"),
			script: func(h *harness) {
				a := h.ring("alice")
				h.clk.Advance(time.Second)
				answer(h, a)
				h.clk.Advance(10 * time.Second)
				h.bridger.mediaTimeout(h.t)
			},
			events:   answeredEvents,
			inbound:  []string{"answer", "hangup"},
			dialed:   []string{"alice"},
			attempts: []attemptWant{{"alice", AttemptAnswered, 0, time.Second}},
			legs:     map[string]legWant{"alice": {hangups: 1}},
			bridged:  "alice",
			agent:    "alice", outcome: OutcomeAnswered, hangupBy: HangupEdge,
			wait: time.Second, talk: 10 * time.Second,
		},
		{
			name:  "carrier leg fails after the answer",
			queue: queue("alice"),
			script: func(h *harness) {
				a := h.ring("alice")
				answer(h, a)
				h.clk.Advance(7 * time.Second)
				h.call.Post(Event{Kind: InboundFailed})
			},
			events:   answeredEvents,
			inbound:  []string{"answer", "hangup"},
			dialed:   []string{"alice"},
			attempts: []attemptWant{{"alice", AttemptAnswered, 0, 0}},
			legs:     map[string]legWant{"alice": {hangups: 1}},
			bridged:  "alice",
			agent:    "alice", outcome: OutcomeAnswered, hangupBy: HangupEdge,
			talk: 7 * time.Second,
		},
		{
			name:  "edge shutdown hangs up an answered call",
			queue: queue("alice"),
			script: func(h *harness) {
				a := h.ring("alice")
				answer(h, a)
				h.clk.Advance(7 * time.Second)
				h.call.Post(Event{Kind: Shutdown})
			},
			events:   answeredEvents,
			inbound:  []string{"answer", "hangup"},
			dialed:   []string{"alice"},
			attempts: []attemptWant{{"alice", AttemptAnswered, 0, 0}},
			legs:     map[string]legWant{"alice": {hangups: 1}},
			bridged:  "alice",
			agent:    "alice", outcome: OutcomeAnswered, hangupBy: HangupEdge,
			talk: 7 * time.Second,
		},
		{
			// max_wait bounds waiting, not talking.
			name:  "max_wait passing during the conversation is ignored",
			queue: withMaxWait(queue("alice"), 30*time.Second),
			script: func(h *harness) {
				a := h.ring("alice")
				h.clk.Advance(5 * time.Second)
				answer(h, a)
				h.clk.Advance(60 * time.Second)
				h.callerHangsUp()
			},
			events:   answeredEvents,
			inbound:  []string{"answer"},
			dialed:   []string{"alice"},
			attempts: []attemptWant{{"alice", AttemptAnswered, 0, 5 * time.Second}},
			legs:     map[string]legWant{"alice": {hangups: 1}},
			bridged:  "alice",
			agent:    "alice", outcome: OutcomeAnswered, hangupBy: HangupCaller,
			wait: 5 * time.Second, talk: 60 * time.Second,
		},
		{
			name:  "nobody answers: each agent rings for ring_timeout",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				h.clk.Advance(ringTO)
				b := h.ring("bob")
				b.post(AgentRinging)
				h.clk.Advance(ringTO)
			},
			events:  missedEvents,
			inbound: []string{"ringing", "reject 480"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptNoAnswer, 0, ringTO},
				{"bob", AttemptNoAnswer, ringTO, ringTO},
			},
			legs:    map[string]legWant{"alice": {cancels: 1}, "bob": {cancels: 1}},
			outcome: OutcomeMissed, missed: MissedRingTimeout, hangupBy: HangupEdge,
			wait: 2 * ringTO,
		},
		{
			name:  "max_wait passes while an agent rings",
			queue: withMaxWait(queue("alice", "bob", "carol"), 20*time.Second),
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				h.clk.Advance(ringTO)
				b := h.ring("bob")
				b.post(AgentRinging)
				h.clk.Advance(5 * time.Second)
			},
			events:  missedEvents,
			inbound: []string{"ringing", "reject 480"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptNoAnswer, 0, ringTO},
				{"bob", AttemptNoAnswer, ringTO, 5 * time.Second},
			},
			legs:    map[string]legWant{"alice": {cancels: 1}, "bob": {cancels: 1}},
			outcome: OutcomeMissed, missed: MissedRingTimeout, hangupBy: HangupEdge,
			wait: 20 * time.Second,
		},
		{
			// The SIP side already answered the CANCEL with 487; a second
			// final response would be a protocol error.
			name:  "caller hangs up while an agent rings",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				h.clk.Advance(4 * time.Second)
				h.callerHangsUp()
			},
			events:   missedEvents,
			inbound:  []string{"ringing"},
			dialed:   []string{"alice"},
			attempts: []attemptWant{{"alice", AttemptCancelled, 0, 4 * time.Second}},
			legs:     map[string]legWant{"alice": {cancels: 1}},
			outcome:  OutcomeMissed, missed: MissedCallerHangup, hangupBy: HangupCaller,
			wait: 4 * time.Second,
		},
		{
			name:  "every agent busy",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				h.ring("alice").fail(486)
				h.ring("bob").fail(600)
			},
			events:  missedEvents,
			inbound: []string{"reject 486"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptBusy, 0, 0},
				{"bob", AttemptBusy, 0, 0},
			},
			outcome: OutcomeMissed, missed: MissedRejected, hangupBy: HangupEdge,
		},
		{
			name:  "every agent declines or is busy",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				h.clk.Advance(2 * time.Second)
				a.fail(603)
				h.ring("bob").fail(486)
			},
			events:  missedEvents,
			inbound: []string{"ringing", "reject 486"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptDeclined, 0, 2 * time.Second},
				{"bob", AttemptBusy, 2 * time.Second, 0},
			},
			outcome: OutcomeMissed, missed: MissedRejected, hangupBy: HangupEdge,
			wait: 2 * time.Second,
		},
		{
			name:  "one busy, one not answering",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				h.ring("alice").fail(486)
				b := h.ring("bob")
				b.post(AgentRinging)
				h.clk.Advance(ringTO)
			},
			events:  missedEvents,
			inbound: []string{"ringing", "reject 480"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptBusy, 0, 0},
				{"bob", AttemptNoAnswer, 0, ringTO},
			},
			legs:    map[string]legWant{"bob": {cancels: 1}},
			outcome: OutcomeMissed, missed: MissedRingTimeout, hangupBy: HangupEdge,
			wait: ringTO,
		},
		{
			name:  "no agent reachable",
			queue: queue("alice", "bob"),
			setup: func(h *harness) {
				h.dialer.unreachable["alice"] = true
				h.dialer.unreachable["bob"] = true
			},
			script: func(h *harness) {
				h.dialFails("alice")
				h.dialFails("bob")
			},
			events:  missedEvents,
			inbound: []string{"reject 480"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptUnreachable, 0, 0},
				{"bob", AttemptUnreachable, 0, 0},
			},
			outcome: OutcomeMissed, missed: MissedNoAgent, hangupBy: HangupEdge,
		},
		{
			name:  "every agent already on another call",
			queue: queue("alice", "bob"),
			setup: func(h *harness) {
				h.router.busy["alice"] = true
				h.router.busy["bob"] = true
			},
			events:        missedEvents,
			inbound:       []string{"reject 480"},
			outcome:       OutcomeMissed,
			missed:        MissedNoAgent,
			hangupBy:      HangupEdge,
			heldElsewhere: []string{"alice", "bob"},
		},
		{
			name:  "agent on another call is skipped",
			queue: queue("alice", "bob"),
			setup: func(h *harness) { h.router.busy["alice"] = true },
			script: func(h *harness) {
				b := h.ring("bob")
				answer(h, b)
				h.clk.Advance(time.Second)
				h.callerHangsUp()
			},
			events:        answeredEvents,
			inbound:       []string{"answer"},
			dialed:        []string{"bob"},
			attempts:      []attemptWant{{"bob", AttemptAnswered, 0, 0}},
			legs:          map[string]legWant{"bob": {hangups: 1}},
			bridged:       "bob",
			agent:         "bob",
			outcome:       OutcomeAnswered,
			hangupBy:      HangupCaller,
			talk:          time.Second,
			heldElsewhere: []string{"alice"},
		},
		{
			// No time passes between alice's failure and bob's ring.
			name:  "unreachable agent (dial error) moves on at once",
			queue: queue("alice", "bob"),
			setup: func(h *harness) { h.dialer.unreachable["alice"] = true },
			script: func(h *harness) {
				h.dialFails("alice")
				b := h.ring("bob")
				h.clk.Advance(4 * time.Second)
				answer(h, b)
				h.clk.Advance(10 * time.Second)
				h.callerHangsUp()
			},
			events:  answeredEvents,
			inbound: []string{"answer"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptUnreachable, 0, 0},
				{"bob", AttemptAnswered, 0, 4 * time.Second},
			},
			legs:    map[string]legWant{"bob": {hangups: 1}},
			bridged: "bob",
			agent:   "bob", outcome: OutcomeAnswered, hangupBy: HangupCaller,
			wait: 4 * time.Second, talk: 10 * time.Second,
		},
		{
			name:  "unreachable agent (failure without code) moves on at once",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				h.ring("alice").fail(0)
				b := h.ring("bob")
				b.post(AgentRinging)
				h.clk.Advance(ringTO)
			},
			events:  missedEvents,
			inbound: []string{"ringing", "reject 480"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptUnreachable, 0, 0},
				{"bob", AttemptNoAnswer, 0, ringTO},
			},
			legs:    map[string]legWant{"bob": {cancels: 1}},
			outcome: OutcomeMissed, missed: MissedRingTimeout, hangupBy: HangupEdge,
			wait: ringTO,
		},
		{
			name:  "every agent fails without a code",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				h.ring("alice").fail(0)
				h.ring("bob").fail(0)
			},
			events:  missedEvents,
			inbound: []string{"reject 480"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptUnreachable, 0, 0},
				{"bob", AttemptUnreachable, 0, 0},
			},
			outcome: OutcomeMissed, missed: MissedNoAgent, hangupBy: HangupEdge,
		},
		{
			// Alice's phone answering after the call gave up on her must
			// not connect her: her leg hangs itself up.
			name:  "late answer from a cancelled leg is ignored",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				h.clk.Advance(ringTO)
				b := h.ring("bob")
				a.post(AgentAnswered)
				a.fail(487)
				b.post(AgentRinging)
				h.clk.Advance(ringTO)
			},
			events:  missedEvents,
			inbound: []string{"ringing", "reject 480"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptNoAnswer, 0, ringTO},
				{"bob", AttemptNoAnswer, ringTO, ringTO},
			},
			legs:    map[string]legWant{"alice": {cancels: 1}, "bob": {cancels: 1}},
			outcome: OutcomeMissed, missed: MissedRingTimeout, hangupBy: HangupEdge,
			wait: 2 * ringTO,
		},
		{
			name:  "late events from a cancelled leg do not end the conversation",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				a := h.ring("alice")
				h.clk.Advance(ringTO)
				b := h.ring("bob")
				answer(h, b)
				a.post(AgentAnswered)
				a.post(AgentHungUp)
				a.fail(487)
				h.clk.Advance(20 * time.Second)
				h.callerHangsUp()
			},
			events:  answeredEvents,
			inbound: []string{"answer"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptNoAnswer, 0, ringTO},
				{"bob", AttemptAnswered, ringTO, 0},
			},
			legs:    map[string]legWant{"alice": {cancels: 1}, "bob": {hangups: 1}},
			bridged: "bob",
			agent:   "bob", outcome: OutcomeAnswered, hangupBy: HangupCaller,
			wait: ringTO, talk: 20 * time.Second,
		},
		{
			name:  "caller gone as the agent answers",
			queue: queue("alice"),
			setup: func(h *harness) { h.in.answerErr = ErrCallerGone },
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				h.clk.Advance(3 * time.Second)
				a.post(AgentAnswered)
			},
			events:   missedEvents,
			inbound:  []string{"ringing", "answer"},
			dialed:   []string{"alice"},
			attempts: []attemptWant{{"alice", AttemptAnswered, 0, 3 * time.Second}},
			legs:     map[string]legWant{"alice": {hangups: 1}},
			bridged:  "alice",
			outcome:  OutcomeMissed, missed: MissedCallerHangup, hangupBy: HangupCaller,
			wait: 3 * time.Second,
		},
		{
			name:  "bridging media fails",
			queue: queue("alice"),
			setup: func(h *harness) { h.bridger.err = errors.New("no port") },
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				a.post(AgentAnswered)
			},
			events:   missedEvents,
			inbound:  []string{"ringing", "reject 500"},
			dialed:   []string{"alice"},
			attempts: []attemptWant{{"alice", AttemptAnswered, 0, 0}},
			legs:     map[string]legWant{"alice": {hangups: 1}},
			bridged:  "alice",
			outcome:  OutcomeMissed, missed: MissedError, hangupBy: HangupEdge,
		},
		{
			name:  "carrier leg fails while an agent rings",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				h.clk.Advance(time.Second)
				h.call.Post(Event{Kind: InboundFailed})
			},
			events:   missedEvents,
			inbound:  []string{"ringing", "reject 500"},
			dialed:   []string{"alice"},
			attempts: []attemptWant{{"alice", AttemptCancelled, 0, time.Second}},
			legs:     map[string]legWant{"alice": {cancels: 1}},
			outcome:  OutcomeMissed, missed: MissedError, hangupBy: HangupEdge,
			wait: time.Second,
		},
		{
			// After the drain ran out of time the edge stops; a caller
			// still waiting must get a final answer, not silence.
			name:  "forced shutdown while an agent rings",
			queue: queue("alice", "bob"),
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				h.clk.Advance(2 * time.Second)
				h.call.Post(Event{Kind: Shutdown})
			},
			events:   missedEvents,
			inbound:  []string{"ringing", "reject 503"},
			dialed:   []string{"alice"},
			attempts: []attemptWant{{"alice", AttemptCancelled, 0, 2 * time.Second}},
			legs:     map[string]legWant{"alice": {cancels: 1}},
			outcome:  OutcomeMissed, missed: MissedError, hangupBy: HangupEdge,
			wait: 2 * time.Second,
		},
		{
			// BUG: sip/admission.go posts CallerHungUp before Run when the
			// INVITE transaction already ended. runQueue only reads events
			// while an agent rings, so with nobody to ring the hangup is
			// never seen: the caller who left gets a 480 and the record
			// says no_agent/edge instead of caller_hangup/caller.
			name:  "caller left before anyone could be rung",
			queue: queue("alice", "bob"),
			setup: func(h *harness) {
				h.router.busy["alice"] = true
				h.router.busy["bob"] = true
				h.callerHangsUp()
			},
			events:        missedEvents,
			outcome:       OutcomeMissed,
			missed:        MissedCallerHangup,
			hangupBy:      HangupCaller,
			heldElsewhere: []string{"alice", "bob"},
		},
		{
			// BUG: same cause as above. The caller's CANCEL arrives while
			// the last agent is being dialed and that dial fails: the queue
			// loop ends without reading it.
			name:  "caller hangs up while the last agent is dialed and unreachable",
			queue: queue("alice", "bob"),
			setup: func(h *harness) {
				h.dialer.unreachable["bob"] = true
				h.dialer.onDial = func(req DialRequest, sink Sink) {
					if req.Agent == "bob" {
						sink.Post(Event{Kind: CallerHungUp})
					}
				}
			},
			script: func(h *harness) {
				a := h.ring("alice")
				a.post(AgentRinging)
				h.clk.Advance(ringTO)
				h.dialFails("bob")
			},
			events:  missedEvents,
			inbound: []string{"ringing"},
			dialed:  []string{"alice", "bob"},
			attempts: []attemptWant{
				{"alice", AttemptNoAnswer, 0, ringTO},
				{"bob", AttemptUnreachable, ringTO, 0},
			},
			legs:    map[string]legWant{"alice": {cancels: 1}},
			outcome: OutcomeMissed, missed: MissedCallerHangup, hangupBy: HangupCaller,
			wait: ringTO,
		},
	}
}

func TestCallScenarios(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, sc.queue)
			if sc.setup != nil {
				sc.setup(h)
			}
			h.start()
			if sc.script != nil {
				sc.script(h)
			}
			h.wait()
			h.check(sc)
		})
	}
}

func (h *harness) check(sc scenario) {
	t := h.t
	pubs := h.pub.all()
	if got := names(pubs); !slices.Equal(got, sc.events) {
		t.Errorf("events = %v, want %v", got, sc.events)
	}
	// The journal learns how to end the answered agent's leg with the
	// answer; nobody else has a leg to end.
	for _, p := range pubs {
		want := ""
		if !p.rec.AnsweredAt.IsZero() {
			want = "leg of " + p.rec.Agent
		}
		if p.rec.AgentLeg != want {
			t.Errorf("%s: AgentLeg %q, want %q", p.event, p.rec.AgentLeg, want)
		}
	}
	if got := h.in.calls(); !slices.Equal(got, sc.inbound) {
		t.Errorf("caller leg got %q, want %q", got, sc.inbound)
	}
	var dialedAgents []string
	for _, d := range h.dialer.history() {
		dialedAgents = append(dialedAgents, d.agent)
	}
	if !slices.Equal(dialedAgents, sc.dialed) {
		t.Errorf("dialed %v, want %v", dialedAgents, sc.dialed)
	}
	for _, d := range h.dialer.history() {
		if d.leg == nil {
			continue
		}
		if got, want := d.leg.counts(), sc.legs[d.agent]; got != want {
			t.Errorf("%s's leg: %d Cancel, %d Hangup; want %d, %d",
				d.agent, got.cancels, got.hangups, want.cancels, want.hangups)
		}
	}

	// Every call, whatever happened, leaves exactly one final record and
	// it is the last event.
	completed := 0
	for _, p := range pubs {
		if p.event == EventCompleted {
			completed++
		}
	}
	if completed != 1 || pubs[len(pubs)-1].event != EventCompleted {
		t.Fatalf("want exactly one call.completed, last; got %v", names(pubs))
	}
	if pubs[0].event != EventStarted {
		t.Errorf("first event is %s, want call.started", pubs[0].event)
	}
	final := pubs[len(pubs)-1]
	rec := final.rec
	if rec.ID != "01JCALL" || rec.SIPCallID != "abc@carrier" || rec.Caller != "+15550001111" ||
		rec.Source != "google" || rec.Flow != "main" || rec.Queue != "sales" {
		t.Errorf("final record lost the call's identity: %+v", rec)
	}
	if rec.Agent != sc.agent || rec.Outcome != sc.outcome || rec.MissedReason != sc.missed || rec.HangupBy != sc.hangupBy {
		t.Errorf("final record agent=%q outcome=%q missed_reason=%q hangup_by=%q; want %q %q %q %q",
			rec.Agent, rec.Outcome, rec.MissedReason, rec.HangupBy, sc.agent, sc.outcome, sc.missed, sc.hangupBy)
	}
	if !rec.StartedAt.Equal(t0) || !pubs[0].at.Equal(t0) || !final.at.Equal(rec.EndedAt) {
		t.Errorf("started %v (event at %v), completed event at %v ended %v; want start %v",
			rec.StartedAt, pubs[0].at, final.at, rec.EndedAt, t0)
	}
	if w, _ := rec.Wait(); w != sc.wait {
		t.Errorf("wait = %v, want %v", w, sc.wait)
	}
	if d, ok := rec.Talk(); !ok || d != sc.talk {
		t.Errorf("talk = %v (known %v), want %v", d, ok, sc.talk)
	}
	if sc.outcome == OutcomeAnswered && !rec.AnsweredAt.Equal(t0.Add(sc.wait)) {
		t.Errorf("answered at %v, want %v", rec.AnsweredAt, t0.Add(sc.wait))
	}
	var attempts []attemptWant
	for _, a := range rec.Attempts {
		attempts = append(attempts, attemptWant{a.Agent, a.Result, a.StartedAt.Sub(t0), a.Ring})
	}
	if !slices.Equal(attempts, sc.attempts) {
		t.Errorf("attempts = %+v, want %+v", attempts, sc.attempts)
	}
	for _, p := range pubs {
		switch p.event {
		case EventMissed:
			if p.rec.MissedReason != rec.MissedReason || p.rec.Agent != "" || !p.at.Equal(rec.EndedAt) {
				t.Errorf("call.missed: reason %q agent %q at %v; want %q, no agent, at %v",
					p.rec.MissedReason, p.rec.Agent, p.at, rec.MissedReason, rec.EndedAt)
			}
		case EventAnswered:
			if p.rec.Agent != sc.agent || !p.at.Equal(rec.AnsweredAt) || !p.rec.EndedAt.IsZero() || p.rec.Outcome != "" {
				t.Errorf("call.answered: agent %q at %v ended %v outcome %q; want %q at %v, not ended",
					p.rec.Agent, p.at, p.rec.EndedAt, p.rec.Outcome, sc.agent, rec.AnsweredAt)
			}
		case EventStarted:
			if !p.rec.EndedAt.IsZero() || p.rec.Outcome != "" || len(p.rec.Attempts) != 0 {
				t.Errorf("call.started carries what was not known yet: %+v", p.rec)
			}
		}
	}
	if len(h.ended) != 1 {
		t.Errorf("OnEnd told %d times, want 1", len(h.ended))
	} else if e := h.ended[0]; e.Outcome != rec.Outcome || e.MissedReason != rec.MissedReason || !e.EndedAt.Equal(rec.EndedAt) {
		t.Errorf("OnEnd record %+v differs from call.completed %+v", e, rec)
	}

	h.bridger.mu.Lock()
	bridged, stops := slices.Clone(h.bridger.out), h.bridger.stops
	bridgeErr, bridgedIn := h.bridger.err, slices.Clone(h.bridger.in)
	h.bridger.mu.Unlock()
	switch {
	case sc.bridged == "" && len(bridged) != 0:
		t.Errorf("bridged %d legs, want none", len(bridged))
	case sc.bridged != "":
		if len(bridged) != 1 || bridged[0].(*fakeLeg).agent != sc.bridged || bridgedIn[0] != Inbound(h.in) {
			t.Errorf("bridged %v, want the caller to %s's leg only", bridged, sc.bridged)
		}
		if bridgeErr == nil && stops != 1 {
			t.Errorf("bridge stopped %d times, want once", stops)
		}
	}

	// An agent left marked busy would never be offered a call again; one
	// held by another call must stay held.
	for _, a := range sc.queue.Agents {
		want := slices.Contains(sc.heldElsewhere, a)
		if got := h.router.isBusy(a); got != want {
			t.Errorf("after the call %s busy = %v, want %v", a, got, want)
		}
	}
	if n := h.clk.pending(); n != 0 {
		t.Errorf("%d timers still pending after the call", n)
	}
}

func TestCallWithoutQueue(t *testing.T) {
	for _, tc := range []struct {
		name string
		flow *config.Flow
	}{
		{"flow without a queue step", &config.Flow{Name: "main"}},
		{"flow naming a missing queue", &config.Flow{Name: "main", Steps: []config.Step{{Queue: "gone"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, queue("alice"))
			h.call = New(h.call.deps, Record{ID: "01JCALL"}, tc.flow, "")
			go h.call.Run(h.in)
			h.wait()
			if got := names(h.pub.all()); !slices.Equal(got, missedEvents) {
				t.Errorf("events = %v, want %v", got, missedEvents)
			}
			if got := h.in.calls(); !slices.Equal(got, []string{"reject 500"}) {
				t.Errorf("caller leg got %q, want a 500", got)
			}
			pubs := h.pub.all()
			if rec := pubs[len(pubs)-1].rec; rec.MissedReason != MissedError || rec.Outcome != OutcomeMissed {
				t.Errorf("missed_reason %q outcome %q, want error, missed", rec.MissedReason, rec.Outcome)
			}
			if d := h.dialer.history(); len(d) != 0 {
				t.Errorf("dialed %v, want nobody", d)
			}
		})
	}
}

// The publisher keeps and may change what it is given; neither its changes
// nor the call's later ones may reach another event's record.
func TestPublishedRecordIsACopy(t *testing.T) {
	h := newHarness(t, queue("alice", "bob"))
	h.pub.scribble = func(r *Record) {
		for i := range r.Attempts {
			r.Attempts[i].Result = "scribbled"
			r.Attempts[i].Agent = "mallory"
		}
		r.Attempts = append(r.Attempts, Attempt{Agent: "mallory"})
		r.Outcome = "scribbled"
	}
	h.start()
	a := h.ring("alice")
	h.clk.Advance(ringTO)
	b := h.ring("bob")
	answer(h, b)
	h.clk.Advance(time.Minute)
	a.post(AgentHungUp) // stale, ignored
	b.post(AgentHungUp)
	h.wait()

	pubs := h.pub.all()
	if got := names(pubs); !slices.Equal(got, answeredEvents) {
		t.Fatalf("events = %v, want %v", got, answeredEvents)
	}
	want := []attemptWant{{"alice", AttemptNoAnswer, 0, ringTO}, {"bob", AttemptAnswered, ringTO, 0}}
	rec := h.ended[0]
	var got []attemptWant
	for _, a := range rec.Attempts {
		got = append(got, attemptWant{a.Agent, a.Result, a.StartedAt.Sub(t0), a.Ring})
	}
	if !slices.Equal(got, want) || rec.Outcome != OutcomeAnswered {
		t.Errorf("call's own record changed by the publisher: outcome %q attempts %+v", rec.Outcome, got)
	}
	// What the publisher got at call.answered stays as it was then,
	// though the call went on and ended.
	ans := pubs[1].rec
	if !ans.EndedAt.IsZero() || ans.HangupBy != "" {
		t.Errorf("call.answered record changed after publishing: ended %v hangup_by %q", ans.EndedAt, ans.HangupBy)
	}
	if len(ans.Attempts) != 3 || ans.Attempts[2].Agent != "mallory" {
		t.Errorf("call.answered attempts = %+v, want the publisher's own", ans.Attempts)
	}
}

// A leg reporting after the call ended must not block its goroutine.
func TestPostAfterEndDoesNotBlock(t *testing.T) {
	h := newHarness(t, queue("alice"))
	h.start()
	a := h.ring("alice")
	a.fail(486)
	h.wait()
	done := make(chan struct{})
	go func() {
		for range 100 {
			a.post(AgentAnswered)
			h.callerHangsUp()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatal("Post blocked after the call ended")
	}
}
