package call

import (
	"github.com/callsign/callsign/config"
)

// maxOverflows bounds how many times a call moves from queue to queue, so
// that queues overflowing into each other cannot keep a caller forever.
const maxOverflows = 5

// hold is hold music: looped to the caller while agents ring.
type hold struct {
	prompt *config.Prompt
	tag    uint64
	stop   func()
}

// offers counts a queue's attempts, to name the reason of a miss.
type offers struct {
	rang, rejected int
}

// runQueue offers the call to the agents of queue name, and to the queues
// it overflows into, until one answers or none is left.
func (c *Call) runQueue(name string) {
	q, ok := c.deps.Router.Queue(name)
	if !ok {
		// Validation makes this impossible short of a reload racing the
		// call; the caller still gets a clear final answer.
		c.log.Error().Str("queue", name).Msg("queue does not exist")
		c.miss(MissedError, 500)
		return
	}
	if q.Hours != nil && !q.Hours.Open(c.deps.Clock.Now()) {
		c.afterHours(q)
		return
	}
	if res := c.consent(); res != ringNext {
		c.stop(res)
		return
	}
	for hops := 0; ; hops++ {
		next, done := c.offer(q, hops < maxOverflows)
		if done {
			return
		}
		c.log.Info().Str("queue", q.Name).Str("overflow", next.Name).Msg("call moves to the overflow queue")
		q = next
	}
}

// offer rings the agents of q. It reports done once the call has ended,
// or the queue the call overflows into (never when mayOverflow is false).
func (c *Call) offer(q *config.Queue, mayOverflow bool) (next *config.Queue, done bool) {
	c.rec.Queue = q.Name
	if q.MaxWait > 0 {
		t := c.deps.Clock.AfterFunc(q.MaxWait, func() { c.Post(Event{Kind: maxWaitPassed}) })
		defer t.Stop()
	}
	var overflow *config.Queue
	if o := q.Overflow; o != nil && mayOverflow {
		if oq, ok := c.deps.Router.Queue(o.Queue); ok {
			overflow = oq
			t := c.deps.Clock.AfterFunc(o.After, func() { c.Post(Event{Kind: overflowDue}) })
			defer t.Stop()
		}
	}
	if res := c.startHold(q); res != ringNext {
		c.stop(res)
		return nil, true
	}

	var n offers
	for group := range c.deps.Router.Order(q) {
		res := c.idleEvents()
		if res == ringNext {
			var r *ringing
			res, r = c.ringGroup(q, group, &n)
			if res == ringAnswered {
				c.stopHold()
				c.deps.Router.Answered(r.agent)
				c.talk(r.agent, r.leg)
				c.deps.Router.Release(r.agent, q.WrapUp)
				return nil, true
			}
		}
		if res == ringOverflow && overflow != nil {
			c.stopHold()
			return overflow, false
		}
		if res != ringNext {
			c.stopHold()
			c.unanswered(q, res, n)
			return nil, true
		}
	}
	res := c.idleEvents()
	c.stopHold()
	if (res == ringOverflow || res == ringNext) && overflow != nil {
		// Nobody left here: the overflow queue now rather than a miss.
		return overflow, false
	}
	c.unanswered(q, res, n)
	return nil, true
}

// unanswered ends a call no agent of q answered: a voicemail where the
// queue takes them, else a missed call.
func (c *Call) unanswered(q *config.Queue, res ringResult, n offers) {
	reason, code := MissedRingTimeout, 480
	switch {
	case res != ringNext && res != ringMaxWait && res != ringOverflow:
		c.stop(res)
		return
	case res != ringNext:
	case n.rang == 0:
		reason = MissedNoAgent
	case n.rejected == n.rang:
		reason, code = MissedRejected, 486
	}
	if q.NoAnswer == config.ActionVoicemail && c.takesVoicemail(q) {
		c.voicemail(q, reason)
		return
	}
	c.miss(reason, code)
}

// afterHours ends a call that came outside q's hours: the announcement,
// then a voicemail or a hang-up, as the queue says.
func (c *Call) afterHours(q *config.Queue) {
	c.rec.Queue = q.Name
	c.log.Info().Str("queue", q.Name).Msg("outside the queue's hours")
	voicemail := q.AfterHours == config.ActionVoicemail && c.takesVoicemail(q)
	if q.AfterHoursPrompt != nil {
		if res := c.answer(); res != ringNext {
			c.answerFailed(res)
			return
		}
		if res := c.playPrompt(q.AfterHoursPrompt, false); res != ringNext {
			c.missAfter(MissedAfterHours, res)
			return
		}
	}
	if voicemail {
		c.voicemail(q, MissedAfterHours)
		return
	}
	c.miss(MissedAfterHours, 480)
}

// missAfter ends a call a prompt was cut short for: a caller who hung up
// during it, or a broken leg.
func (c *Call) missAfter(reason string, res ringResult) {
	if res == ringCallerGone {
		c.missBy(reason, 0, HangupCaller)
		return
	}
	c.missBy(reason, 500, HangupEdge)
}

func (c *Call) takesVoicemail(q *config.Queue) bool {
	if q.Voicemail == nil || c.deps.Voicemail == nil {
		c.log.Warn().Str("queue", q.Name).Msg("voicemail is not available; the call is missed")
		return false
	}
	return true
}

// voicemail takes the caller's message: the greeting, then the caller's
// audio until they hang up, press #, or the message is as long as the
// queue allows. The call is missed for reason, with the message.
func (c *Call) voicemail(q *config.Queue, reason string) {
	vm := q.Voicemail
	if res := c.answer(); res != ringNext {
		c.answerFailed(res)
		return
	}
	if res := c.playPrompt(vm.Greeting, false); res != ringNext {
		c.missAfter(reason, res)
		return
	}
	msg, err := c.deps.Voicemail.StartVoicemail(VoicemailStart{
		CallID: c.rec.ID, Caller: c.rec.Caller, TrackingNumber: c.rec.TrackingNumber, Source: c.rec.Source,
		Queue: q.Name, StartedAt: c.deps.Clock.Now(),
	})
	if err != nil {
		c.log.Error().Err(err).Msg("voicemail cannot be recorded")
		c.miss(reason, 500)
		return
	}
	c.log.Info().Str("queue", q.Name).Dur("max_length", vm.MaxLength).Msg("taking a voicemail")
	stop := c.in.Capture(msg)
	tag := c.nextTag()
	timer := c.deps.Clock.AfterFunc(vm.MaxLength, func() { c.Post(Event{Kind: voicemailFull, Tag: tag}) })
	hangupBy := c.listenToMessage(tag)
	timer.Stop()
	stop()
	res, err := msg.Finish()
	if err != nil {
		c.log.Error().Err(err).Msg("voicemail not saved whole")
	} else {
		c.rec.Voicemail = &res
		c.publish(EventVoicemailCompleted, c.deps.Clock.Now())
		c.log.Info().Str("path", res.Path).Dur("duration", res.Duration).Msg("voicemail saved")
	}
	if hangupBy == HangupCaller {
		c.missBy(reason, 0, HangupCaller)
		return
	}
	c.missBy(reason, 480, HangupEdge)
}

// listenToMessage waits for the end of a message and says who ended it.
func (c *Call) listenToMessage(tag uint64) string {
	for ev := range c.events {
		switch ev.Kind {
		case CallerHungUp:
			return HangupCaller
		case voicemailFull:
			if ev.Tag == tag {
				return HangupEdge
			}
		case DigitPressed:
			if ev.Digit == '#' {
				return HangupEdge
			}
		case InboundFailed, Shutdown:
			return HangupEdge
		}
	}
	panic("unreachable: the events channel is never closed")
}

// startHold answers the caller and starts q's hold music, if it has any:
// a caller who hears nothing while agents ring hangs up.
func (c *Call) startHold(q *config.Queue) ringResult {
	if q.HoldMusic == nil {
		return ringNext
	}
	if res := c.answer(); res != ringNext {
		return res
	}
	if c.hold.stop != nil && c.hold.prompt == q.HoldMusic {
		return ringNext // the same music goes on in the overflow queue
	}
	c.stopHold()
	c.hold.prompt = q.HoldMusic
	c.playHold()
	return ringNext
}

func (c *Call) playHold() {
	c.hold.tag = c.nextTag()
	c.hold.stop = c.in.Play(c.hold.prompt, c.hold.tag)
}

// holdEnded plays the hold music again when it ended.
func (c *Call) holdEnded(tag uint64) {
	if c.hold.stop != nil && tag == c.hold.tag {
		c.playHold()
	}
}

func (c *Call) stopHold() {
	if c.hold.stop != nil {
		c.hold.stop()
		c.hold = hold{}
	}
}

// stop ends the call for a result that leaves no agent to try.
func (c *Call) stop(res ringResult) {
	switch res {
	case ringCallerGone:
		c.miss(MissedCallerHangup, 0)
	case ringMaxWait, ringOverflow:
		c.miss(MissedRingTimeout, 480)
	case ringBroken:
		c.miss(MissedError, 500)
	case ringShutdown:
		c.miss(MissedError, 503)
	}
}

// idleEvents takes the events that came while no agent was ringing, and
// says whether one of them ends the call. It never waits.
func (c *Call) idleEvents() ringResult {
	for {
		select {
		case ev := <-c.events:
			switch ev.Kind {
			case CallerHungUp:
				return ringCallerGone
			case maxWaitPassed:
				return ringMaxWait
			case overflowDue:
				return ringOverflow
			case InboundFailed:
				return ringBroken
			case Shutdown:
				return ringShutdown
			case PromptEnded:
				c.holdEnded(ev.Tag)
			}
		default:
			return ringNext
		}
	}
}

// ringing is one agent rung for the call.
type ringing struct {
	agent   string
	leg     Outbound
	attempt Attempt
	// lost: another agent answered while this one rang.
	lost bool
}

// ringGroup rings the agents of group at the same time until one answers,
// all have failed or the ring timeout passed, or the call must move on.
// The first to answer gets the call; the others are cancelled at once.
func (c *Call) ringGroup(q *config.Queue, group []string, n *offers) (ringResult, *ringing) {
	var legs []*ringing
	for _, agent := range group {
		if !c.deps.Router.Acquire(agent) {
			c.log.Debug().Str("agent", agent).Msg("agent busy or away, skipped")
			continue
		}
		r := &ringing{agent: agent, attempt: Attempt{Agent: agent, StartedAt: c.deps.Clock.Now()}}
		leg, err := c.deps.Dialer.Dial(DialRequest{
			CallID: c.rec.ID, Agent: agent, Caller: c.rec.Caller, CallerName: c.rec.CallerName, Inbound: c.in,
			Record: c.snapshot(), RingTimeout: q.RingTimeout,
		}, c)
		if err != nil {
			c.log.Info().Err(err).Str("agent", agent).Msg("agent unreachable")
			c.finishAttempt(r, AttemptUnreachable, n)
			continue
		}
		r.leg = leg
		legs = append(legs, r)
	}
	if len(legs) == 0 {
		return ringNext, nil
	}
	tag := c.nextTag()
	timer := c.deps.Clock.AfterFunc(q.RingTimeout, func() { c.Post(Event{Kind: ringTimeout, Tag: tag}) })
	defer timer.Stop()

	// take removes the leg of ev from those ringing.
	take := func(ev Event) *ringing {
		for i, r := range legs {
			if r.leg == ev.Leg {
				legs = append(legs[:i], legs[i+1:]...)
				return r
			}
		}
		return nil
	}
	// cancel stops every agent still ringing.
	cancel := func(result string) {
		for _, r := range legs {
			r.leg.Cancel()
			c.finishAttempt(r, result, n)
		}
		legs = nil
	}
	for ev := range c.events {
		switch ev.Kind {
		case AgentRinging:
			if !c.ringing && !c.answered {
				c.ringing = true
				c.in.Ringing()
			}
		case AgentAnswered:
			r := take(ev)
			if r == nil {
				continue // a leg this call already gave up on
			}
			for _, o := range legs {
				o.lost = true
			}
			cancel(AttemptCancelled)
			r.attempt.Result = AttemptAnswered
			r.attempt.Ring = c.deps.Clock.Now().Sub(r.attempt.StartedAt)
			c.rec.Attempts = append(c.rec.Attempts, r.attempt)
			c.log.Info().Str("agent", r.agent).Str("result", AttemptAnswered).Dur("ring", r.attempt.Ring).Msg("agent attempt")
			n.rang++
			return ringAnswered, r
		case AgentFailed:
			r := take(ev)
			if r == nil {
				continue
			}
			c.finishAttempt(r, attemptResult(ev.Code), n)
			if len(legs) == 0 {
				return ringNext, nil
			}
		case ringTimeout:
			if ev.Tag == tag {
				cancel(AttemptNoAnswer)
				return ringNext, nil
			}
		case CallerHungUp:
			cancel(AttemptCancelled)
			return ringCallerGone, nil
		case maxWaitPassed:
			cancel(AttemptNoAnswer)
			return ringMaxWait, nil
		case overflowDue:
			cancel(AttemptCancelled)
			return ringOverflow, nil
		case InboundFailed:
			cancel(AttemptCancelled)
			return ringBroken, nil
		case Shutdown:
			cancel(AttemptCancelled)
			return ringShutdown, nil
		case PromptEnded:
			c.holdEnded(ev.Tag)
		}
	}
	panic("unreachable: the events channel is never closed")
}

// finishAttempt records an attempt that did not get the call and frees
// its agent.
func (c *Call) finishAttempt(r *ringing, result string, n *offers) {
	r.attempt.Result = result
	r.attempt.Ring = c.deps.Clock.Now().Sub(r.attempt.StartedAt)
	c.rec.Attempts = append(c.rec.Attempts, r.attempt)
	c.log.Info().Str("agent", r.agent).Str("result", result).Dur("ring", r.attempt.Ring).Msg("agent attempt")
	if result != AttemptUnreachable {
		n.rang++
	}
	if result == AttemptBusy || result == AttemptDeclined {
		n.rejected++
	}
	if r.lost {
		c.deps.Router.Withdraw(r.agent)
		return
	}
	c.deps.Router.Release(r.agent, 0)
}

// attemptResult classifies an agent phone's final response.
func attemptResult(code int) string {
	switch code {
	case 0:
		return AttemptUnreachable
	case 486, 600:
		return AttemptBusy
	case 603:
		return AttemptDeclined
	case 408, 480, 487:
		return AttemptNoAnswer
	}
	return AttemptUnreachable
}
