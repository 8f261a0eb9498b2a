package call

import (
	"github.com/callsign/callsign/config"
)

// maxFlowJumps bounds how many times menus may lead from flow to flow in
// one call. Validation rejects flows that can never leave such a loop, but
// a caller may still choose to go round one forever.
const maxFlowJumps = 50

// runFlow runs the steps of flow, and of the flows its menus lead to, until
// the call reaches a queue or ends.
func (c *Call) runFlow(flow *config.Flow) {
	for jumps := 0; ; jumps++ {
		if len(flow.Steps) == 0 {
			// Validation makes this impossible; the caller still gets a
			// clear final answer.
			c.log.Error().Str("flow", flow.Name).Msg("flow has no steps")
			c.miss(MissedError, 500)
			return
		}
		act, exit, res := c.runSteps(flow)
		if res != ringNext {
			c.stop(res)
			return
		}
		switch {
		case act.Queue != "":
			c.runQueue(act.Queue)
			return
		case act.Flow != "":
			next, ok := c.deps.Router.Flow(act.Flow)
			if !ok {
				// Validation makes this impossible short of a reload
				// racing the call.
				c.log.Error().Str("flow", act.Flow).Msg("flow does not exist")
				c.miss(MissedError, 500)
				return
			}
			if jumps >= maxFlowJumps {
				c.log.Warn().Int("jumps", jumps).Msg("too many menus in one call, hanging up")
				c.missBy(MissedError, 500, HangupEdge)
				return
			}
			c.log.Info().Str("from", flow.Name).Str("to", next.Name).Msg("flow changed")
			flow = next
			c.current = next
		default:
			c.leaveFlow(exit)
			return
		}
	}
}

// leaveFlow ends a call whose flow ended without a queue. A caller who
// chose to hang up or never chose counts as having left; a flow that only
// had something to say offered the call to no agent.
func (c *Call) leaveFlow(exit string) {
	c.rec.IVRExit = exit
	c.log.Info().Str("ivr_exit", exit).Msg("flow ended without a queue")
	reason := MissedCallerHangup
	if exit == IVRFlowEnd {
		reason = MissedNoAgent
	}
	c.missBy(reason, 480, HangupEdge)
}

// runSteps runs one flow's steps. It returns where the flow leads (an
// empty Action for a hang-up, with exit saying why), or a result that ends
// the call.
func (c *Call) runSteps(flow *config.Flow) (act config.Action, exit string, res ringResult) {
	for _, step := range flow.Steps {
		switch {
		case step.Queue != "":
			return config.Action{Queue: step.Queue}, "", ringNext
		case step.Play != nil:
			if res := c.play(step.Play); res != ringNext {
				return act, "", res
			}
		case step.Menu != nil:
			return c.menu(step.Menu)
		}
	}
	return act, IVRFlowEnd, ringNext
}

// play plays a prompt to its end, or until the caller presses a key, which
// is kept for the next menu. A caller who already pressed one hears
// nothing: they know where they are going.
func (c *Call) play(p *config.Prompt) ringResult {
	if res := c.startIVR(); res != ringNext {
		return res
	}
	if len(c.typeahead) > 0 {
		return ringNext
	}
	return c.playPrompt(p, true)
}

// playPrompt plays p to its end or, with bargeIn, until the caller presses
// a key, which is kept for the next menu. Without bargeIn keys are only
// recorded: a notice the caller must hear is not cut short.
func (c *Call) playPrompt(p *config.Prompt, bargeIn bool) ringResult {
	tag := c.nextTag()
	stop := c.in.Play(p, tag)
	defer stop()
	for ev := range c.events {
		switch ev.Kind {
		case PromptEnded:
			if ev.Tag == tag {
				return ringNext
			}
		case DigitPressed:
			if !bargeIn {
				if isKey(ev.Digit) {
					c.rec.IVR = append(c.rec.IVR, string(ev.Digit))
				}
			} else if c.pressed(ev) {
				return ringNext
			}
		default:
			if res, ok := ivrEnd(ev.Kind); ok {
				return res
			}
		}
	}
	panic("unreachable: the events channel is never closed")
}

// menu offers a menu until the caller picks an option or the retries are
// used up. Timeouts and invalid keys both use up retries, so that a menu
// always ends.
func (c *Call) menu(m *config.Menu) (config.Action, string, ringResult) {
	if res := c.startIVR(); res != ringNext {
		return config.Action{}, "", res
	}
	for try := 0; ; try++ {
		d, res := c.ask(m)
		if res != ringNext {
			return config.Action{}, "", res
		}
		if d != 0 {
			if act, ok := m.Options[d]; ok {
				c.log.Info().Str("digit", string(d)).Msg("menu option chosen")
				return act, exitOf(act), ringNext
			}
			c.log.Info().Str("digit", string(d)).Msg("invalid menu choice")
		} else {
			c.log.Info().Msg("no menu choice in time")
		}
		if try >= m.Retries {
			if m.Default != nil {
				c.log.Info().Msg("menu default taken")
				return *m.Default, exitOf(*m.Default), ringNext
			}
			return config.Action{}, IVRMenuTimeout, ringNext
		}
		if d != 0 && m.InvalidPrompt != nil {
			if res := c.play(m.InvalidPrompt); res != ringNext {
				return config.Action{}, "", res
			}
		}
	}
}

// ask plays a menu's prompt and waits its timeout after the prompt's end
// for one key; 0 means none came.
func (c *Call) ask(m *config.Menu) (byte, ringResult) {
	if d, ok := c.takeTypeahead(); ok {
		return d, ringNext
	}
	tag := c.nextTag()
	stop := c.in.Play(m.Prompt, tag)
	defer stop()
	var timer Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for ev := range c.events {
		switch ev.Kind {
		case PromptEnded:
			if ev.Tag == tag && timer == nil {
				timer = c.deps.Clock.AfterFunc(m.Timeout, func() { c.Post(Event{Kind: menuTimeout, Tag: tag}) })
			}
		case menuTimeout:
			if ev.Tag == tag {
				return 0, ringNext
			}
		case DigitPressed:
			if c.pressed(ev) {
				d, _ := c.takeTypeahead()
				return d, ringNext
			}
		default:
			if res, ok := ivrEnd(ev.Kind); ok {
				return 0, res
			}
		}
	}
	panic("unreachable: the events channel is never closed")
}

// startIVR answers the caller before its first prompt, so that no early
// media is needed, and marks the record as having run prompts.
func (c *Call) startIVR() ringResult {
	if c.rec.IVR == nil {
		c.rec.IVR = []string{}
	}
	if c.answered {
		return ringNext
	}
	res := c.answer()
	if res == ringNext {
		c.log.Info().Msg("caller answered for the flow's prompts")
	}
	return res
}

// pressed records a key and keeps it for the next menu; false if it is not
// a key a menu can use.
func (c *Call) pressed(ev Event) bool {
	if !isKey(ev.Digit) {
		return false
	}
	c.rec.IVR = append(c.rec.IVR, string(ev.Digit))
	c.typeahead = append(c.typeahead, ev.Digit)
	c.log.Info().Str("digit", string(ev.Digit)).Str("via", ev.Via).Msg("caller pressed a key")
	return true
}

func (c *Call) takeTypeahead() (byte, bool) {
	if len(c.typeahead) == 0 {
		return 0, false
	}
	d := c.typeahead[0]
	c.typeahead = c.typeahead[1:]
	return d, true
}

func (c *Call) nextTag() uint64 {
	c.tag++
	return c.tag
}

// exitOf is how a call leaves its flow if act ends it.
func exitOf(act config.Action) string {
	if act.Hangup {
		return IVRHangup
	}
	return ""
}

func isKey(d byte) bool {
	return d >= '0' && d <= '9' || d == '*' || d == '#'
}

// ivrEnd says whether an event ends a call in its prompts.
func ivrEnd(k Kind) (ringResult, bool) {
	switch k {
	case CallerHungUp:
		return ringCallerGone, true
	case InboundFailed:
		return ringBroken, true
	case Shutdown:
		return ringShutdown, true
	}
	return ringNext, false
}
