package call

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
)

func (h *harness) attempts() []string {
	h.t.Helper()
	if len(h.ended) != 1 {
		h.t.Fatalf("call ended %d times", len(h.ended))
	}
	var out []string
	for _, a := range h.ended[0].Attempts {
		out = append(out, a.Agent+" "+a.Result)
	}
	return out
}

func TestRingAllFirstAnswerWinsOthersCancelled(t *testing.T) {
	q := queue("alice", "bob", "carol")
	q.Strategy = config.StrategyRingAll
	q.WrapUp = 15 * time.Second
	h := newHarness(t, q)
	h.start()
	a, b, c := h.nextDial("alice").leg, h.nextDial("bob").leg, h.nextDial("carol").leg
	h.expectTimer(ringTO) // one ring timeout for the group
	a.post(AgentRinging)
	h.clk.Advance(2 * time.Second)
	answer(h, b)
	if a.counts().cancels != 1 || c.counts().cancels != 1 || b.counts().cancels != 0 {
		t.Errorf("cancels: alice %d, bob %d, carol %d; want the losers cancelled once", a.counts().cancels, b.counts().cancels, c.counts().cancels)
	}
	h.clk.Advance(10 * time.Second)
	h.callerHangsUp()
	h.wait()
	if got, want := h.attempts(), []string{"alice cancelled", "carol cancelled", "bob answered"}; !slices.Equal(got, want) {
		t.Errorf("attempts %v, want %v", got, want)
	}
	if h.ended[0].Agent != "bob" {
		t.Errorf("agent %q", h.ended[0].Agent)
	}
	if !slices.Equal(h.router.answered, []string{"bob"}) || !slices.Equal(h.router.wrapUps, []string{"bob 15s"}) {
		t.Errorf("router told answered %v, wrap-ups %v", h.router.answered, h.router.wrapUps)
	}
	// Bob took the call: alice and carol did not miss it.
	if !slices.Equal(h.router.withdrawn, []string{"alice", "carol"}) {
		t.Errorf("router told withdrawn %v, want alice and carol", h.router.withdrawn)
	}
	for _, agent := range []string{"alice", "bob", "carol"} {
		if h.router.isBusy(agent) {
			t.Errorf("%s still held after the call", agent)
		}
	}
}

func TestRingAllEveryoneDeclines(t *testing.T) {
	q := queue("alice", "bob")
	q.Strategy = config.StrategyRingAll
	h := newHarness(t, q)
	h.start()
	a, b := h.nextDial("alice").leg, h.nextDial("bob").leg
	h.expectTimer(ringTO)
	a.fail(603)
	b.fail(486)
	h.wait()
	if rec := h.ended[0]; rec.MissedReason != MissedRejected {
		t.Errorf("missed %q, want rejected", rec.MissedReason)
	}
	if got := h.in.calls(); !slices.Contains(got, "reject 486") {
		t.Errorf("caller got %v, want reject 486", got)
	}
}

func TestRingAllTimeoutCancelsEveryone(t *testing.T) {
	q := queue("alice", "bob")
	q.Strategy = config.StrategyRingAll
	h := newHarness(t, q)
	h.start()
	a, b := h.nextDial("alice").leg, h.nextDial("bob").leg
	h.expectTimer(ringTO)
	h.clk.Advance(ringTO)
	h.wait()
	if a.counts().cancels != 1 || b.counts().cancels != 1 {
		t.Errorf("cancels alice %d bob %d", a.counts().cancels, b.counts().cancels)
	}
	if got, want := h.attempts(), []string{"alice no_answer", "bob no_answer"}; !slices.Equal(got, want) {
		t.Errorf("attempts %v, want %v", got, want)
	}
	if h.ended[0].MissedReason != MissedRingTimeout {
		t.Errorf("missed %q", h.ended[0].MissedReason)
	}
}

func TestHoldMusicLoopsUntilAnAgentAnswers(t *testing.T) {
	q := queue("alice")
	q.HoldMusic = &config.Prompt{Path: "hold.wav"}
	h := newHarness(t, q)
	h.in.plays = make(chan play, 8)
	h.start()
	first := <-h.in.plays
	a := h.ring("alice")
	a.post(AgentRinging)
	// The music ends and starts again while alice rings.
	h.in.finished(first.tag)
	h.call.Post(Event{Kind: PromptEnded, Tag: first.tag})
	select {
	case again := <-h.in.plays:
		if again.name != "hold.wav" || again.tag == first.tag {
			t.Fatalf("after the music ended: %+v", again)
		}
	case <-time.After(guard):
		t.Fatal("the hold music was not played again")
	}
	answer(h, a)
	h.callerHangsUp()
	h.wait()
	want := []string{"answer", "play hold.wav", "play hold.wav", "stop hold.wav"}
	got := h.in.calls()
	if !slices.Equal(got[:min(len(got), len(want))], want) {
		t.Errorf("caller's leg: %v, want it to start with %v (answered for the music, no 180 after the 200)", got, want)
	}
	if slices.Contains(got, "ringing") {
		t.Errorf("an answered caller was sent 180: %v", got)
	}
	if h.ended[0].Outcome != OutcomeAnswered {
		t.Errorf("outcome %q", h.ended[0].Outcome)
	}
}

func TestOverflowMovesAWaitingCall(t *testing.T) {
	q := queue("alice")
	q.RingTimeout = 40 * time.Second
	q.Overflow = &config.Overflow{After: 30 * time.Second, Queue: "support"}
	support := config.Queue{Name: "support", Strategy: "round-robin", RingTimeout: ringTO, Agents: []string{"bob"}}
	h := newHarness(t, q)
	h.router.queues["support"] = &support
	h.start()
	h.expectTimer(30 * time.Second)
	a := h.nextDial("alice").leg
	h.expectTimer(40 * time.Second)
	h.clk.Advance(30 * time.Second)
	d := h.nextDial("bob")
	h.expectTimer(ringTO)
	answer(h, d.leg)
	h.callerHangsUp()
	h.wait()
	if a.counts().cancels != 1 {
		t.Errorf("alice cancelled %d times", a.counts().cancels)
	}
	rec := h.ended[0]
	if rec.Queue != "support" || rec.Agent != "bob" {
		t.Errorf("queue %q agent %q, want support / bob", rec.Queue, rec.Agent)
	}
	if got, want := h.attempts(), []string{"alice cancelled", "bob answered"}; !slices.Equal(got, want) {
		t.Errorf("attempts %v, want %v", got, want)
	}
}

func TestOverflowWhenNobodyIsLeft(t *testing.T) {
	q := queue("alice")
	q.Overflow = &config.Overflow{After: time.Minute, Queue: "support"}
	support := config.Queue{Name: "support", Strategy: "round-robin", RingTimeout: ringTO, Agents: []string{"bob"}}
	h := newHarness(t, q)
	h.router.queues["support"] = &support
	h.start()
	h.expectTimer(time.Minute)
	a := h.ring("alice")
	a.fail(486)
	b := h.ring("bob")
	answer(h, b)
	h.callerHangsUp()
	h.wait()
	if rec := h.ended[0]; rec.Queue != "support" || rec.Outcome != OutcomeAnswered {
		t.Errorf("queue %q outcome %q", rec.Queue, rec.Outcome)
	}
}

type fakeVoicemails struct {
	mu      sync.Mutex
	started []VoicemailStart
	msgs    []*fakeMessage
}

func (f *fakeVoicemails) StartVoicemail(v VoicemailStart) (Voicemail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, v)
	m := &fakeMessage{}
	f.msgs = append(f.msgs, m)
	return m, nil
}

type fakeMessage struct {
	mu       sync.Mutex
	packets  int
	finished int
}

func (m *fakeMessage) Packet(fromCaller bool, _ []byte) {
	m.mu.Lock()
	if fromCaller {
		m.packets++
	}
	m.mu.Unlock()
}

func (m *fakeMessage) Finish() (RecordingResult, error) {
	m.mu.Lock()
	m.finished++
	m.mu.Unlock()
	return RecordingResult{Path: "/vm/01JCALL.wav", Duration: 9 * time.Second, SHA256: "vm5ha"}, nil
}

var (
	closedPrompt   = &config.Prompt{Path: "closed.wav"}
	greetingPrompt = &config.Prompt{Path: "greeting.wav"}
)

// closedQueue is queue sales with hours that are over at t0 (a Friday).
func closedQueue(t *testing.T, afterHours string) config.Queue {
	t.Helper()
	h, err := config.ParseHours("Sat 09:00-12:00 UTC")
	if err != nil {
		t.Fatal(err)
	}
	q := queue("alice")
	q.Hours, q.AfterHours, q.AfterHoursPrompt = h, afterHours, closedPrompt
	q.Voicemail = &config.Voicemail{Greeting: greetingPrompt, MaxLength: time.Minute}
	return q
}

func newVoicemailHarness(t *testing.T, q config.Queue) (ivrHarness, *fakeVoicemails) {
	t.Helper()
	h := ivrHarness{newHarness(t, q)}
	h.in.plays = make(chan play, 8)
	vm := &fakeVoicemails{}
	h.call.deps.Voicemail = vm
	return h, vm
}

func TestAfterHoursHangsUpAfterTheAnnouncement(t *testing.T) {
	h, vm := newVoicemailHarness(t, closedQueue(t, config.ActionHangup))
	h.run()
	h.ends(h.nextPlay(closedPrompt))
	rec := h.final()
	if rec.MissedReason != MissedAfterHours || rec.HangupBy != HangupEdge || rec.Voicemail != nil {
		t.Errorf("missed %q by %q, voicemail %+v", rec.MissedReason, rec.HangupBy, rec.Voicemail)
	}
	wantInbound(t, h.in, "answer", "play closed.wav", "hangup")
	if len(h.dialer.history()) != 0 || len(vm.started) != 0 {
		t.Errorf("after hours, agents were dialed (%v) or a voicemail taken", h.dialer.history())
	}
}

func TestAfterHoursVoicemail(t *testing.T) {
	h, vm := newVoicemailHarness(t, closedQueue(t, config.ActionVoicemail))
	h.run()
	h.ends(h.nextPlay(closedPrompt))
	h.ends(h.nextPlay(greetingPrompt))
	h.expectTimer(time.Minute) // the message's length bound
	h.in.mu.Lock()
	tap := h.in.tap
	h.in.mu.Unlock()
	if tap == nil {
		t.Fatal("the caller's audio is not captured during the message")
	}
	for range 3 {
		tap.Packet(true, []byte{0x80})
	}
	h.clk.Advance(9 * time.Second)
	h.callerHangsUp()
	rec := h.final()
	if rec.MissedReason != MissedAfterHours || rec.HangupBy != HangupCaller {
		t.Errorf("missed %q by %q", rec.MissedReason, rec.HangupBy)
	}
	if rec.Voicemail == nil || rec.Voicemail.Path != "/vm/01JCALL.wav" {
		t.Fatalf("voicemail %+v", rec.Voicemail)
	}
	if len(vm.started) != 1 || vm.started[0].Queue != "sales" || vm.started[0].Caller != "+15550001111" {
		t.Errorf("voicemail started %+v", vm.started)
	}
	if m := vm.msgs[0]; m.packets != 3 || m.finished != 1 {
		t.Errorf("message got %d packets, finished %d times", m.packets, m.finished)
	}
	evs := names(h.pub.all())
	if i, j := slices.Index(evs, EventVoicemailCompleted), slices.Index(evs, EventMissed); i < 0 || i > j {
		t.Errorf("events %v: want voicemail.completed before call.missed", evs)
	}
	wantInbound(t, h.in, "answer", "play closed.wav", "play greeting.wav", "capture", "capture stop")
}

func TestNoAnswerGoesToVoicemailThenTheEdgeHangsUpAtMaxLength(t *testing.T) {
	q := queue("alice")
	q.NoAnswer = config.ActionVoicemail
	q.Voicemail = &config.Voicemail{Greeting: greetingPrompt, MaxLength: 30 * time.Second}
	h, vm := newVoicemailHarness(t, q)
	h.run()
	h.ring("alice")
	h.clk.Advance(ringTO)
	h.ends(h.nextPlay(greetingPrompt))
	h.expectTimer(30 * time.Second)
	h.clk.Advance(30 * time.Second)
	rec := h.final()
	if rec.MissedReason != MissedRingTimeout || rec.HangupBy != HangupEdge || rec.Voicemail == nil {
		t.Errorf("missed %q by %q voicemail %+v", rec.MissedReason, rec.HangupBy, rec.Voicemail)
	}
	if len(vm.started) != 1 {
		t.Errorf("voicemails %d", len(vm.started))
	}
	wantInbound(t, h.in, "answer", "play greeting.wav", "capture", "capture stop", "hangup")
}

func TestVoicemailEndsWithPound(t *testing.T) {
	h, _ := newVoicemailHarness(t, closedQueue(t, config.ActionVoicemail))
	h.run()
	h.ends(h.nextPlay(closedPrompt))
	h.ends(h.nextPlay(greetingPrompt))
	h.expectTimer(time.Minute)
	h.press('#', "rfc4733")
	if rec := h.final(); rec.HangupBy != HangupEdge || rec.Voicemail == nil {
		t.Errorf("by %q voicemail %+v", rec.HangupBy, rec.Voicemail)
	}
}
