package call

import (
	"fmt"
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
)

// guard bounds every wait on the call's goroutine, so a call stuck in the
// wrong state fails its test instead of hanging the whole run. It is never
// what makes a test pass.
const guard = 5 * time.Second

// fakeClock is a Clock whose timers fire only when the test advances it,
// so ring timeouts and max_wait happen exactly when the test says.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	// armed tells the test each AfterFunc as it happens: the call arms its
	// timers on its own goroutine, and advancing before one is armed would
	// silently skip it.
	armed chan time.Duration
}

type fakeTimer struct {
	clk  *fakeClock
	at   time.Time
	f    func()
	done bool // fired or stopped
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, armed: make(chan time.Duration, 256)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	t := &fakeTimer{clk: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	c.armed <- d
	return t
}

func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	pending := !t.done
	t.done = true
	return pending
}

// Advance moves time forward by d, firing due timers in deadline order
// (ties in the order they were armed) with the clock set to each deadline.
// Timers are fired outside the lock because they post to the call, which
// may be reading the clock.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.done && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.done = true
		c.now = next.at
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// pending counts the timers neither fired nor stopped.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// fakeInbound records what the caller's leg was told, in order.
type fakeInbound struct {
	mu        sync.Mutex
	log       []string
	answerErr error
	// plays tells the test each prompt as it starts, so it can end it or
	// press a key at the right moment.
	plays chan play
	ended map[uint64]bool // prompts the test let play to their end
	tap   Tap             // what Capture was given, until stopped
}

// play is one prompt the call started on the caller's leg.
type play struct {
	name string
	tag  uint64
}

func (in *fakeInbound) Play(p *config.Prompt, tag uint64) func() {
	in.note("play " + p.Path)
	if in.plays != nil {
		in.plays <- play{name: p.Path, tag: tag}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			in.mu.Lock()
			ended := in.ended[tag]
			in.mu.Unlock()
			if !ended {
				in.note("stop " + p.Path)
			}
		})
	}
}

// finished marks a prompt as sent whole, as the leg would before posting
// PromptEnded.
func (in *fakeInbound) finished(tag uint64) {
	in.mu.Lock()
	if in.ended == nil {
		in.ended = map[uint64]bool{}
	}
	in.ended[tag] = true
	in.mu.Unlock()
}

func (in *fakeInbound) note(s string) {
	in.mu.Lock()
	in.log = append(in.log, s)
	in.mu.Unlock()
}

func (in *fakeInbound) Capture(tap Tap) func() {
	in.note("capture")
	in.mu.Lock()
	in.tap = tap
	in.mu.Unlock()
	return func() {
		in.mu.Lock()
		in.tap = nil
		in.mu.Unlock()
		in.note("capture stop")
	}
}

func (in *fakeInbound) Ringing() { in.note("ringing") }
func (in *fakeInbound) Answer() error {
	in.note("answer")
	return in.answerErr
}
func (in *fakeInbound) Reject(code int) { in.note(fmt.Sprintf("reject %d", code)) }
func (in *fakeInbound) Hangup()         { in.note("hangup") }

func (in *fakeInbound) calls() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.log)
}

// fakeLeg is an agent's leg the test drives by posting its events. It is
// a pointer so the call can tell legs apart by identity, as it does with
// the SIP adapter's legs.
type fakeLeg struct {
	agent string
	sink  Sink

	mu      sync.Mutex
	cancels int
	hangups int
}

func (l *fakeLeg) Cancel() {
	l.mu.Lock()
	l.cancels++
	l.mu.Unlock()
}

// LegState makes the fake a LegStater, as SIP agent legs are.
func (l *fakeLeg) LegState() string { return "leg of " + l.agent }

func (l *fakeLeg) Hangup() {
	l.mu.Lock()
	l.hangups++
	l.mu.Unlock()
}

func (l *fakeLeg) counts() legWant {
	l.mu.Lock()
	defer l.mu.Unlock()
	return legWant{cancels: l.cancels, hangups: l.hangups}
}

func (l *fakeLeg) post(k Kind) { l.sink.Post(Event{Kind: k, Leg: l}) }

func (l *fakeLeg) fail(code int) { l.sink.Post(Event{Kind: AgentFailed, Leg: l, Code: code}) }

// dialed is one Dial the call made; leg is nil when it failed.
type dialed struct {
	agent string
	leg   *fakeLeg
}

// fakeDialer hands out fakeLegs and tells the test each dial as it happens.
type fakeDialer struct {
	mu          sync.Mutex
	unreachable map[string]bool
	// onDial, if set, runs inside Dial on the call's goroutine, to model
	// what happens while the edge is still dialing.
	onDial func(req DialRequest, sink Sink)
	all    []dialed
	dials  chan dialed
}

func (d *fakeDialer) Dial(req DialRequest, sink Sink) (Outbound, error) {
	if d.onDial != nil {
		d.onDial(req, sink)
	}
	d.mu.Lock()
	var rec dialed
	var err error
	if d.unreachable[req.Agent] {
		rec = dialed{agent: req.Agent}
		err = fmt.Errorf("dial %s: no route", req.Agent)
	} else {
		rec = dialed{agent: req.Agent, leg: &fakeLeg{agent: req.Agent, sink: sink}}
	}
	d.all = append(d.all, rec)
	d.mu.Unlock()
	d.dials <- rec
	if err != nil {
		return nil, err
	}
	return rec.leg, nil
}

func (d *fakeDialer) history() []dialed {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.all)
}

// fakeBridger records the legs it joined and whether they were parted.
type fakeBridger struct {
	mu        sync.Mutex
	err       error
	in        []Inbound
	out       []Outbound
	onTimeout func()
	stops     int
	taps      []Tap
}

func (b *fakeBridger) Bridge(in Inbound, out Outbound, onTimeout func(), tap Tap) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.taps = append(b.taps, tap)
	b.in = append(b.in, in)
	b.out = append(b.out, out)
	if b.err != nil {
		return nil, b.err
	}
	b.onTimeout = onTimeout
	return func() {
		b.mu.Lock()
		b.stops++
		b.mu.Unlock()
	}, nil
}

// mediaTimeout plays the media layer noticing silence.
func (b *fakeBridger) mediaTimeout(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	f := b.onTimeout
	b.mu.Unlock()
	if f == nil {
		t.Fatal("media timeout before any bridge")
	}
	f()
}

type published struct {
	event string
	at    time.Time
	rec   Record
}

// recordingPublisher keeps every event it is given, in order.
type recordingPublisher struct {
	mu     sync.Mutex
	events []published
	// scribble, if set, changes each record as a publisher may, since the
	// record is the publisher's to keep.
	scribble func(rec *Record)
	names    chan string
}

func (p *recordingPublisher) Publish(event string, at time.Time, rec Record) {
	p.mu.Lock()
	p.events = append(p.events, published{event: event, at: at, rec: rec})
	if p.scribble != nil {
		p.scribble(&p.events[len(p.events)-1].rec)
	}
	p.mu.Unlock()
	p.names <- event
}

func (p *recordingPublisher) all() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// fakeRouter rings the queue's agents in the configured order and tracks
// which agents this call holds.
type fakeRouter struct {
	queues    map[string]*config.Queue
	flows     map[string]*config.Flow
	recording config.Recording

	mu       sync.Mutex
	busy     map[string]bool
	acquired []string
	released []string
	answered []string
	wrapUps  []string
	// withdrawn are the agents whose ring another agent answered.
	withdrawn []string
}

func (r *fakeRouter) Queue(name string) (*config.Queue, bool) {
	q, ok := r.queues[name]
	return q, ok
}

func (r *fakeRouter) Recording() *config.Recording { return &r.recording }

func (r *fakeRouter) Flow(name string) (*config.Flow, bool) {
	f, ok := r.flows[name]
	return f, ok
}

// Order rings the agents one at a time in the configured order, or all
// at once for ring-all.
func (r *fakeRouter) Order(q *config.Queue) iter.Seq[[]string] {
	agents := slices.Clone(q.Agents)
	return func(yield func([]string) bool) {
		if q.Strategy == config.StrategyRingAll {
			yield(agents)
			return
		}
		for _, a := range agents {
			if !yield([]string{a}) {
				return
			}
		}
	}
}

func (r *fakeRouter) Answered(agent string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answered = append(r.answered, agent)
}

func (r *fakeRouter) Acquire(agent string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy[agent] {
		return false
	}
	r.busy[agent] = true
	r.acquired = append(r.acquired, agent)
	return true
}

func (r *fakeRouter) Release(agent string, wrapUp time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.busy, agent)
	r.released = append(r.released, agent)
	if wrapUp > 0 {
		r.wrapUps = append(r.wrapUps, agent+" "+wrapUp.String())
	}
}

func (r *fakeRouter) Withdraw(agent string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.busy, agent)
	r.released = append(r.released, agent)
	r.withdrawn = append(r.withdrawn, agent)
}

func (r *fakeRouter) isBusy(agent string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy[agent]
}
