// Package call is the life of one call: its states, the flow it runs, the
// legs it drives and the record it leaves. It knows nothing of SIP, RTP or
// NATS; those are adapters behind the interfaces of legs.go.
package call

import (
	"errors"
	"iter"
	"slices"
	"time"

	"github.com/callsign/callsign/config"
	"github.com/rs/zerolog"
)

// ErrCallerGone is returned by Inbound.Answer when the caller left before
// the answer could be sent.
var ErrCallerGone = errors.New("caller hung up")

// Router is what a call needs of queues and agents.
type Router interface {
	Queue(name string) (*config.Queue, bool)
	// Order yields the groups of agents of q this call rings, in order;
	// the agents of a group ring at the same time (ring-all).
	Order(q *config.Queue) iter.Seq[[]string]
	// Acquire marks an agent as offered a call; false if it already is
	// on one, so no agent is offered two calls at once, or if it is not
	// there to take calls (a softphone agent who is away).
	Acquire(agent string) bool
	// Answered marks an acquired agent as talking.
	Answered(agent string)
	// Release ends an agent's offer or call; one who talked is left
	// alone for wrapUp.
	Release(agent string, wrapUp time.Duration)
	// Withdraw ends an offer another agent answered first: this agent
	// did not miss the call.
	Withdraw(agent string)
	// Flow finds a flow a menu option leads to.
	Flow(name string) (*config.Flow, bool)
	// Recording is the recording settings: the consent prompts.
	Recording() *config.Recording
}

// Deps are the collaborators shared by every call of an edge.
type Deps struct {
	Clock     Clock
	Publisher Publisher
	Dialer    Dialer
	Bridger   Bridger
	Router    Router
	// Recorder, if set, records calls whose caller consented.
	Recorder Recorder
	// Voicemail, if set, takes the messages of queues that offer it.
	Voicemail VoicemailRecorder
	Log       zerolog.Logger
	// OnEnd, if set, is told the final record of every call.
	OnEnd func(*Record)
}

// internal event kinds, from the call's own timers.
const (
	ringTimeout Kind = 100 + iota
	maxWaitPassed
	menuTimeout
	overflowDue
	voicemailFull
)

// Call is one call in progress. Everything about it happens on the
// goroutine that runs Run, so its state needs no lock; legs and timers
// talk to it through Post.
type Call struct {
	deps    *Deps
	rec     Record
	flow    *config.Flow
	in      Inbound
	log     zerolog.Logger
	events  chan Event
	done    chan struct{}
	ringing bool
	// answered is set once the caller's leg got its 200 OK, which the
	// first prompt needs; an agent's answer then only bridges.
	answered bool
	// typeahead holds keys pressed during a prompt that no menu has
	// read yet, so a caller who knows the menu need not wait for it.
	typeahead []byte
	// tag numbers prompts and menu timers; see Event.Tag.
	tag uint64
	// record is the number's own record mode, if any; otherwise the
	// mode of the flow that leads to the queue applies.
	record string
	// current is the flow running, which menus may change.
	current *config.Flow
	// hold is the hold music playing while agents ring, if any.
	hold hold
}

// New prepares a call for rec (whose ID, SIP Call-ID, caller and
// attribution the adapter filled) that will run flow. record is the
// number's own record mode (config.RecordOff, RecordAnnounce or
// RecordAsk), which overrides the flows'; empty when it has none.
func New(deps *Deps, rec Record, flow *config.Flow, record string) *Call {
	rec.Flow = flow.Name
	if record == config.RecordOff {
		rec.Consent = ConsentNotAsked
	}
	return &Call{
		record:  record,
		current: flow,
		deps:    deps,
		rec:     rec,
		flow:    flow,
		log:     deps.Log.With().Str("call_id", rec.ID).Logger(),
		events:  make(chan Event, 8),
		done:    make(chan struct{}),
	}
}

// ID is the edge's id of the call.
func (c *Call) ID() string { return c.rec.ID }

// Log is the call's logger; every line carries its call_id.
func (c *Call) Log() *zerolog.Logger { return &c.log }

// Post hands an event to the call. It returns at once once the call has
// ended, so a late event from a leg never blocks its sender.
func (c *Call) Post(ev Event) {
	select {
	case c.events <- ev:
	case <-c.done:
	}
}

// Done is closed when the call has ended and its record was published.
func (c *Call) Done() <-chan struct{} { return c.done }

// step results of ringing one agent.
type ringResult uint8

const (
	ringNext ringResult = iota
	ringAnswered
	ringCallerGone
	ringMaxWait
	ringBroken
	ringShutdown
	// ringOverflow: the call waited long enough to move to the queue's
	// overflow queue.
	ringOverflow
)

// Run drives the call from the accepted INVITE to its final record.
func (c *Call) Run(in Inbound) {
	defer close(c.done)
	c.in = in
	c.rec.StartedAt = c.deps.Clock.Now()
	c.publish(EventStarted, c.rec.StartedAt)
	ev := c.log.Info().Str("caller", c.rec.Caller).Str("tracking_number", c.rec.TrackingNumber).
		Str("source", c.rec.Source).Str("flow", c.rec.Flow)
	if c.rec.FirstCall != nil {
		ev = ev.Bool("first_call", *c.rec.FirstCall)
	}
	ev.Msg("call started")

	c.runFlow(c.flow)
}

// talk bridges the answered agent to the caller until one side leaves.
func (c *Call) talk(agent string, leg Outbound) {
	answeredAt := c.deps.Clock.Now()
	rec := c.startRecording(agent, answeredAt)
	var tap Tap
	if rec != nil {
		tap = rec
	}
	stop, err := c.deps.Bridger.Bridge(c.in, leg, func() { c.Post(Event{Kind: MediaTimeout}) }, tap)
	if err != nil {
		c.log.Error().Err(err).Msg("bridging media failed")
		c.finishRecording(rec)
		leg.Hangup()
		c.miss(MissedError, 500)
		return
	}
	if res := c.answer(); res != ringNext {
		stop()
		c.finishRecording(rec)
		leg.Hangup()
		c.answerFailed(res)
		return
	}
	c.rec.Agent = agent
	c.rec.AnsweredAt = answeredAt
	if s, ok := leg.(LegStater); ok {
		c.rec.AgentLeg = s.LegState()
	}
	c.publish(EventAnswered, c.rec.AnsweredAt)
	c.log.Info().Str("agent", agent).Msg("call answered")

	hangupBy := c.conversation(leg)
	stop()
	c.finishRecording(rec)
	c.end(OutcomeAnswered, hangupBy)
}

// conversation waits for the bridged call to end, hangs up the side that
// is still there, and says who ended it.
func (c *Call) conversation(leg Outbound) string {
	for ev := range c.events {
		if ev.Leg != nil && ev.Leg != leg {
			continue
		}
		switch ev.Kind {
		case CallerHungUp:
			leg.Hangup()
			return HangupCaller
		case AgentHungUp:
			c.in.Hangup()
			return HangupAgent
		case MediaTimeout:
			c.log.Warn().Msg("no media, hanging up")
			leg.Hangup()
			c.in.Hangup()
			return HangupEdge
		case InboundFailed, Shutdown:
			leg.Hangup()
			c.in.Hangup()
			return HangupEdge
		}
	}
	panic("unreachable: the events channel is never closed")
}

// answer sends the caller's leg its 200 OK unless it already has one.
func (c *Call) answer() ringResult {
	if c.answered {
		return ringNext
	}
	if err := c.in.Answer(); err != nil {
		if errors.Is(err, ErrCallerGone) {
			return ringCallerGone
		}
		c.log.Error().Err(err).Msg("answering the caller failed")
		return ringBroken
	}
	c.answered = true
	return ringNext
}

// answerFailed ends a call whose 200 OK could not be sent: the caller
// left, or its transaction broke and no other response can reach it.
func (c *Call) answerFailed(res ringResult) {
	if res == ringCallerGone {
		c.miss(MissedCallerHangup, 0)
		return
	}
	c.miss(MissedError, 0)
}

// miss ends a call no agent answered; code is the final response an
// unanswered caller gets, 0 when the caller already left. A caller the
// edge answered for its prompts gets a BYE instead.
func (c *Call) miss(reason string, code int) {
	hangupBy := HangupEdge
	if reason == MissedCallerHangup {
		hangupBy = HangupCaller
	}
	c.missBy(reason, code, hangupBy)
}

func (c *Call) missBy(reason string, code int, hangupBy string) {
	if code != 0 {
		if c.answered {
			c.in.Hangup()
		} else {
			c.in.Reject(code)
		}
	}
	c.rec.MissedReason = reason
	c.end(OutcomeMissed, hangupBy)
}

func (c *Call) end(outcome, hangupBy string) {
	c.rec.Outcome = outcome
	c.rec.HangupBy = hangupBy
	c.rec.EndedAt = c.deps.Clock.Now()
	if outcome == OutcomeMissed {
		c.publish(EventMissed, c.rec.EndedAt)
	}
	c.publish(EventCompleted, c.rec.EndedAt)
	talk, _ := c.rec.Talk()
	c.log.Info().Str("outcome", outcome).Str("missed_reason", c.rec.MissedReason).
		Str("hangup_by", hangupBy).Dur("talk", talk).Msg("call ended")
	if c.deps.OnEnd != nil {
		c.deps.OnEnd(&c.rec)
	}
}

// publish hands a copy of the record to the publisher, which keeps it
// while the call goes on changing its own.
func (c *Call) publish(event string, at time.Time) {
	c.deps.Publisher.Publish(event, at, c.snapshot())
}

// snapshot is a copy of the record that the call's later changes leave
// alone.
func (c *Call) snapshot() Record {
	rec := c.rec
	rec.Attempts = slices.Clone(c.rec.Attempts)
	rec.IVR = slices.Clone(c.rec.IVR)
	return rec
}
