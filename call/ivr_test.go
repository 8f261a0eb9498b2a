package call

import (
	"slices"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
)

var (
	welcome   = &config.Prompt{Path: "welcome.wav"}
	salesMenu = &config.Prompt{Path: "menu.wav"}
	invalid   = &config.Prompt{Path: "invalid.wav"}
	closed    = &config.Prompt{Path: "closed.wav"}
)

const menuTO = 5 * time.Second

// ivrHarness is a call whose number runs entry, with flows the menus may
// lead to and two queues, sales (alice) and support (carol).
type ivrHarness struct {
	*harness
}

func newIVR(t *testing.T, entry *config.Flow, more ...*config.Flow) ivrHarness {
	t.Helper()
	h := newHarness(t, queue("alice"))
	support := config.Queue{Name: "support", Strategy: "round-robin", RingTimeout: ringTO, Agents: []string{"carol"}}
	h.router.queues["support"] = &support
	h.router.flows = map[string]*config.Flow{entry.Name: entry}
	for _, f := range more {
		h.router.flows[f.Name] = f
	}
	h.in.plays = make(chan play, 16)
	deps := *h.call.deps
	deps.OnEnd = func(r *Record) { h.ended = append(h.ended, *r) }
	h.call = New(&deps, h.call.rec, entry, "")
	return ivrHarness{h}
}

func (h ivrHarness) run() {
	h.started = true
	go h.call.Run(h.in)
}

// nextPlay waits for the call to start a prompt.
func (h ivrHarness) nextPlay(p *config.Prompt) play {
	h.t.Helper()
	select {
	case got := <-h.in.plays:
		if got.name != p.Path {
			h.t.Fatalf("played %s, want %s", got.name, p.Path)
		}
		return got
	case <-time.After(guard):
		h.t.Fatalf("%s was never played; inbound saw %v", p.Path, h.in.calls())
	}
	panic("unreachable")
}

// ends lets a prompt play to its end.
func (h ivrHarness) ends(pl play) {
	h.in.finished(pl.tag)
	h.call.Post(Event{Kind: PromptEnded, Tag: pl.tag})
}

// endsThenTimesOut lets a menu prompt end and its timeout pass.
func (h ivrHarness) endsThenTimesOut(pl play) {
	h.t.Helper()
	h.ends(pl)
	h.expectTimer(menuTO)
	h.clk.Advance(menuTO)
}

func (h ivrHarness) press(d byte, via string) {
	h.call.Post(Event{Kind: DigitPressed, Digit: d, Via: via})
}

func (h ivrHarness) final() Record {
	h.t.Helper()
	h.wait()
	evs := h.pub.all()
	if len(evs) == 0 || evs[len(evs)-1].event != EventCompleted {
		h.t.Fatalf("events %v, want call.completed last", names(evs))
	}
	return evs[len(evs)-1].rec
}

func salesFlow(m *config.Menu) *config.Flow {
	return &config.Flow{Name: "sales", Steps: []config.Step{{Play: welcome}, {Menu: m}}}
}

func menu(def *config.Action) *config.Menu {
	return &config.Menu{
		Prompt: salesMenu, Timeout: menuTO, Retries: 2,
		Options: map[byte]config.Action{
			'1': {Queue: "sales"},
			'2': {Queue: "support"},
			'9': {Hangup: true},
		},
		Default: def, InvalidPrompt: invalid,
	}
}

func wantInbound(t *testing.T, in *fakeInbound, want ...string) {
	t.Helper()
	if got := in.calls(); !slices.Equal(got, want) {
		t.Errorf("caller's leg saw\n  %q\nwant\n  %q", got, want)
	}
}

func wantIVR(t *testing.T, rec Record, want ...string) {
	t.Helper()
	if rec.IVR == nil || !slices.Equal(rec.IVR, want) {
		t.Errorf("ivr = %q (nil %v), want %q", rec.IVR, rec.IVR == nil, want)
	}
}

// agentAnswers has the queue's agent answer and the caller hang up.
func (h ivrHarness) agentAnswers(agent string) {
	h.t.Helper()
	a := h.ring(agent)
	answer(h.harness, a)
	h.clk.Advance(30 * time.Second)
	h.callerHangsUp()
}

func TestIVRDigitDuringMenuPromptChoosesQueue(t *testing.T) {
	h := newIVR(t, salesFlow(menu(&config.Action{Queue: "sales"})))
	h.run()
	h.ends(h.nextPlay(welcome))
	h.nextPlay(salesMenu)
	h.clk.Advance(1500 * time.Millisecond)
	h.press('2', "rfc4733")
	d := h.nextDial("carol")
	h.expectTimer(ringTO)
	answer(h.harness, d.leg)
	h.callerHangsUp()
	rec := h.final()

	// Answered once, before the first prompt; the menu prompt was cut
	// short by the key; the agent's answer only bridged.
	wantInbound(t, h.in, "answer", "play welcome.wav", "play menu.wav", "stop menu.wav")
	wantIVR(t, rec, "2")
	if rec.Queue != "support" || rec.Agent != "carol" || rec.Outcome != OutcomeAnswered || rec.Flow != "sales" {
		t.Errorf("record queue %q agent %q outcome %q flow %q", rec.Queue, rec.Agent, rec.Outcome, rec.Flow)
	}
	if wait, _ := rec.Wait(); wait != 1500*time.Millisecond {
		t.Errorf("wait %v, want the time in the flow, 1.5s", wait)
	}
	if got := names(h.pub.all()); !slices.Equal(got, answeredEvents) {
		t.Errorf("events %v", got)
	}
}

func TestIVRTimeoutsRepeatThenDefault(t *testing.T) {
	h := newIVR(t, salesFlow(menu(&config.Action{Queue: "support"})))
	h.run()
	h.ends(h.nextPlay(welcome))
	for range 3 { // the prompt, then its 2 retries
		h.endsThenTimesOut(h.nextPlay(salesMenu))
	}
	h.agentAnswers("carol")
	rec := h.final()
	wantInbound(t, h.in, "answer", "play welcome.wav", "play menu.wav", "play menu.wav", "play menu.wav")
	wantIVR(t, rec)
	if rec.Queue != "support" || rec.Outcome != OutcomeAnswered {
		t.Errorf("record queue %q outcome %q, want the default queue, answered", rec.Queue, rec.Outcome)
	}
}

func TestIVRTimeoutsWithoutDefaultHangUp(t *testing.T) {
	m := menu(nil)
	m.Retries = 1
	h := newIVR(t, salesFlow(m))
	h.run()
	h.ends(h.nextPlay(welcome))
	h.endsThenTimesOut(h.nextPlay(salesMenu))
	h.endsThenTimesOut(h.nextPlay(salesMenu))
	rec := h.final()
	wantInbound(t, h.in, "answer", "play welcome.wav", "play menu.wav", "play menu.wav", "hangup")
	wantIVR(t, rec)
	if rec.Outcome != OutcomeMissed || rec.MissedReason != MissedCallerHangup || rec.HangupBy != HangupEdge ||
		rec.IVRExit != IVRMenuTimeout || rec.Queue != "" {
		t.Errorf("record outcome %q reason %q hangup_by %q ivr_exit %q queue %q",
			rec.Outcome, rec.MissedReason, rec.HangupBy, rec.IVRExit, rec.Queue)
	}
	if got := names(h.pub.all()); !slices.Equal(got, missedEvents) {
		t.Errorf("events %v", got)
	}
	if n := h.clk.pending(); n != 0 {
		t.Errorf("%d timers left armed", n)
	}
}

func TestIVRInvalidKeyPlaysInvalidPromptAndAsksAgain(t *testing.T) {
	h := newIVR(t, salesFlow(menu(nil)))
	h.run()
	h.ends(h.nextPlay(welcome))
	h.ends(h.nextPlay(salesMenu))
	h.expectTimer(menuTO)
	h.clk.Advance(time.Second)
	h.press('7', "info")
	h.ends(h.nextPlay(invalid))
	h.nextPlay(salesMenu)
	h.press('1', "info")
	h.agentAnswers("alice")
	rec := h.final()
	wantInbound(t, h.in, "answer", "play welcome.wav", "play menu.wav", "play invalid.wav",
		"play menu.wav", "stop menu.wav")
	wantIVR(t, rec, "7", "1")
	if rec.Queue != "sales" || rec.Agent != "alice" {
		t.Errorf("record queue %q agent %q", rec.Queue, rec.Agent)
	}
}

func TestIVRInvalidKeysUseUpRetries(t *testing.T) {
	m := menu(&config.Action{Queue: "sales"})
	m.Retries = 1
	m.InvalidPrompt = nil
	h := newIVR(t, salesFlow(m))
	h.run()
	h.ends(h.nextPlay(welcome))
	h.nextPlay(salesMenu)
	h.press('5', "rfc4733")
	h.nextPlay(salesMenu) // no invalid prompt: straight back to the menu
	h.press('6', "rfc4733")
	h.agentAnswers("alice")
	rec := h.final()
	wantIVR(t, rec, "5", "6")
	if rec.Queue != "sales" {
		t.Errorf("queue %q, want the default", rec.Queue)
	}
}

func TestIVRKeyDuringWelcomeSkipsToTheChoice(t *testing.T) {
	h := newIVR(t, salesFlow(menu(nil)))
	h.run()
	h.nextPlay(welcome)
	h.press('2', "inband")
	h.agentAnswers("carol")
	rec := h.final()
	// The menu prompt is never played: the caller already chose.
	wantInbound(t, h.in, "answer", "play welcome.wav", "stop welcome.wav")
	wantIVR(t, rec, "2")
}

func TestIVRStalePromptEndIsIgnored(t *testing.T) {
	h := newIVR(t, salesFlow(menu(nil)))
	h.run()
	w := h.nextPlay(welcome)
	h.ends(w)
	h.nextPlay(salesMenu)
	// The welcome's end, delivered again late, must not start the menu's
	// timeout.
	h.call.Post(Event{Kind: PromptEnded, Tag: w.tag})
	h.press('1', "rfc4733")
	h.agentAnswers("alice")
	rec := h.final()
	wantIVR(t, rec, "1")
	if n := len(h.clk.armed); n != 0 {
		t.Errorf("%d timers armed besides the ring timeout", n)
	}
}

func TestIVROptionLeadsToAnotherFlow(t *testing.T) {
	m := menu(nil)
	m.Options['3'] = config.Action{Flow: "support-menu"}
	sub := &config.Flow{Name: "support-menu", Steps: []config.Step{{Menu: &config.Menu{
		Prompt: closed, Timeout: menuTO, Retries: 0,
		Options: map[byte]config.Action{'#': {Queue: "support"}},
	}}}}
	h := newIVR(t, salesFlow(m), sub)
	h.run()
	h.ends(h.nextPlay(welcome))
	h.nextPlay(salesMenu)
	h.press('3', "rfc4733")
	h.nextPlay(closed)
	h.press('#', "rfc4733")
	h.agentAnswers("carol")
	rec := h.final()
	wantIVR(t, rec, "3", "#")
	if rec.Flow != "sales" || rec.Queue != "support" {
		t.Errorf("flow %q queue %q: want the number's flow and the sub-menu's queue", rec.Flow, rec.Queue)
	}
}

func TestIVRHangupOption(t *testing.T) {
	h := newIVR(t, salesFlow(menu(nil)))
	h.run()
	h.ends(h.nextPlay(welcome))
	h.nextPlay(salesMenu)
	h.press('9', "rfc4733")
	rec := h.final()
	wantInbound(t, h.in, "answer", "play welcome.wav", "play menu.wav", "stop menu.wav", "hangup")
	if rec.MissedReason != MissedCallerHangup || rec.HangupBy != HangupEdge || rec.IVRExit != IVRHangup {
		t.Errorf("reason %q hangup_by %q ivr_exit %q", rec.MissedReason, rec.HangupBy, rec.IVRExit)
	}
	wantIVR(t, rec, "9")
}

func TestIVRCallerHangsUpDuringPrompt(t *testing.T) {
	h := newIVR(t, salesFlow(menu(nil)))
	h.run()
	h.nextPlay(welcome)
	h.callerHangsUp()
	rec := h.final()
	// No BYE to a caller who already sent one.
	wantInbound(t, h.in, "answer", "play welcome.wav", "stop welcome.wav")
	if rec.MissedReason != MissedCallerHangup || rec.HangupBy != HangupCaller {
		t.Errorf("reason %q hangup_by %q", rec.MissedReason, rec.HangupBy)
	}
	wantIVR(t, rec)
}

func TestIVRFlowWithOnlyAPromptEnds(t *testing.T) {
	f := &config.Flow{Name: "closed", Steps: []config.Step{{Play: closed}}}
	h := newIVR(t, f)
	h.run()
	h.ends(h.nextPlay(closed))
	rec := h.final()
	wantInbound(t, h.in, "answer", "play closed.wav", "hangup")
	if rec.MissedReason != MissedNoAgent || rec.HangupBy != HangupEdge || rec.IVRExit != IVRFlowEnd {
		t.Errorf("reason %q hangup_by %q ivr_exit %q", rec.MissedReason, rec.HangupBy, rec.IVRExit)
	}
}

func TestIVRAnsweredCallerMissedInQueueGetsBye(t *testing.T) {
	f := &config.Flow{Name: "sales", Steps: []config.Step{{Play: welcome}, {Queue: "sales"}}}
	h := newIVR(t, f)
	h.run()
	h.ends(h.nextPlay(welcome))
	a := h.ring("alice")
	a.fail(486)
	rec := h.final()
	// The caller was answered for the prompt, so the miss is a BYE, not
	// a 486.
	wantInbound(t, h.in, "answer", "play welcome.wav", "hangup")
	if rec.MissedReason != MissedRejected || rec.HangupBy != HangupEdge {
		t.Errorf("reason %q hangup_by %q", rec.MissedReason, rec.HangupBy)
	}
	wantIVR(t, rec)
}

func TestIVRCallerGoneBeforeAnswer(t *testing.T) {
	h := newIVR(t, salesFlow(menu(nil)))
	h.in.answerErr = ErrCallerGone
	h.run()
	rec := h.final()
	wantInbound(t, h.in, "answer")
	if rec.MissedReason != MissedCallerHangup || rec.HangupBy != HangupCaller {
		t.Errorf("reason %q hangup_by %q", rec.MissedReason, rec.HangupBy)
	}
}

func TestIVRQueueOnlyFlowHasNoIVR(t *testing.T) {
	h := newHarness(t, queue("alice"))
	h.start()
	a := h.ring("alice")
	answer(h, a)
	h.callerHangsUp()
	h.wait()
	if rec := h.pub.all()[2].rec; rec.IVR != nil {
		t.Errorf("ivr = %q on a flow without prompts, want none", rec.IVR)
	}
}

func TestIVRMenusGoingRoundAreBounded(t *testing.T) {
	loop := &config.Flow{Name: "loop", Steps: []config.Step{{Menu: &config.Menu{
		Prompt: salesMenu, Timeout: menuTO,
		Options: map[byte]config.Action{'0': {Flow: "loop"}, '1': {Queue: "sales"}},
	}}}}
	h := newIVR(t, loop)
	h.in.plays = nil
	h.run()
	go func() {
		for range maxFlowJumps + 5 {
			h.press('0', "rfc4733")
		}
	}()
	rec := h.final()
	if rec.MissedReason != MissedError || len(rec.IVR) != maxFlowJumps+1 {
		t.Errorf("reason %q after %d keys, want error after %d", rec.MissedReason, len(rec.IVR), maxFlowJumps+1)
	}
}
