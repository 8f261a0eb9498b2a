package call

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
)

var (
	notice  = &config.Prompt{Path: "notice.wav"}
	consent = &config.Prompt{Path: "consent.wav"}
)

const askTO = 4 * time.Second

// fakeRecorder hands out fakeRecordings and keeps what it was asked.
type fakeRecorder struct {
	mu      sync.Mutex
	err     error
	started []RecordingStart
	recs    []*fakeRecording
}

func (r *fakeRecorder) Start(s RecordingStart) (Recording, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, s)
	if r.err != nil {
		return nil, r.err
	}
	rec := &fakeRecording{}
	r.recs = append(r.recs, rec)
	return rec, nil
}

type fakeRecording struct {
	mu       sync.Mutex
	finished int
}

func (*fakeRecording) Packet(bool, []byte) {}

func (f *fakeRecording) Finish() (RecordingResult, error) {
	f.mu.Lock()
	f.finished++
	f.mu.Unlock()
	return RecordingResult{Path: "/rec/01JCALL.wav", Duration: 30 * time.Second, SHA256: "5ha"}, nil
}

// consentHarness is a call to queue sales (alice) whose number records as
// mode says.
func newConsent(t *testing.T, mode string) (ivrHarness, *fakeRecorder) {
	t.Helper()
	flow := &config.Flow{Name: "sales", Steps: []config.Step{{Queue: "sales"}}}
	h := newIVR(t, flow)
	h.router.recording = config.Recording{AnnouncePrompt: notice, AskPrompt: consent, AcceptDigit: '1', AskTimeout: askTO}
	rec := &fakeRecorder{}
	deps := *h.call.deps
	deps.Recorder = rec
	deps.OnEnd = func(r *Record) { h.ended = append(h.ended, *r) }
	r := h.call.rec
	r.Consent = ""
	h.call = New(&deps, r, flow, mode)
	return h, rec
}

// talks has alice answer, talk 30 s and the caller hang up.
func (h ivrHarness) talks() {
	h.t.Helper()
	h.agentAnswers("alice")
}

func wantConsent(t *testing.T, h ivrHarness, consent string, recorded bool) Record {
	t.Helper()
	rec := h.final()
	if rec.Consent != consent {
		t.Errorf("consent %q, want %q", rec.Consent, consent)
	}
	if (rec.Recording != nil) != recorded {
		t.Errorf("recording %+v, want recorded=%v", rec.Recording, recorded)
	}
	evs := names(h.pub.all())
	withRec := slices.Contains(evs, EventRecordingCompleted)
	if withRec != recorded {
		t.Errorf("events %v, want recording.completed=%v", evs, recorded)
	}
	if recorded && slices.Index(evs, EventRecordingCompleted) > slices.Index(evs, EventCompleted) {
		t.Errorf("events %v: recording.completed after call.completed", evs)
	}
	return rec
}

func TestConsentAnnouncedIsRecorded(t *testing.T) {
	h, recorder := newConsent(t, config.RecordAnnounce)
	h.run()
	pl := h.nextPlay(notice)
	h.press('5', "rfc4733") // does not cut the notice short
	h.ends(pl)
	h.talks()
	rec := wantConsent(t, h, ConsentAnnounced, true)
	wantInbound(t, h.in, "answer", "play notice.wav")
	if rec.Recording.Path != "/rec/01JCALL.wav" || rec.Recording.SHA256 != "5ha" {
		t.Errorf("recording %+v", rec.Recording)
	}
	if len(recorder.started) != 1 || recorder.started[0].Agent != "alice" || recorder.started[0].Consent != ConsentAnnounced ||
		!recorder.started[0].StartedAt.Equal(rec.AnsweredAt) {
		t.Errorf("recorder started %+v, answered at %v", recorder.started, rec.AnsweredAt)
	}
	if recorder.recs[0].finished != 1 {
		t.Errorf("recording finished %d times", recorder.recs[0].finished)
	}
	if h.bridger.taps[0] == nil {
		t.Error("the bridge got no tap")
	}
}

func TestConsentAskGranted(t *testing.T) {
	h, recorder := newConsent(t, config.RecordAsk)
	h.run()
	h.nextPlay(consent)
	h.press('1', "rfc4733")
	h.talks()
	rec := wantConsent(t, h, ConsentGranted, true)
	wantInbound(t, h.in, "answer", "play consent.wav", "stop consent.wav")
	wantIVR(t, rec, "1")
	if len(recorder.started) != 1 {
		t.Errorf("recorder started %d times", len(recorder.started))
	}
}

func TestConsentAskDeclinedRecordsNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		press func(h ivrHarness, pl play)
	}{
		{"other key", func(h ivrHarness, _ play) { h.press('2', "info") }},
		{"timeout", func(h ivrHarness, pl play) { h.endsThenAskTimesOut(pl) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, recorder := newConsent(t, config.RecordAsk)
			h.run()
			tc.press(h, h.nextPlay(consent))
			h.talks()
			wantConsent(t, h, ConsentDeclined, false)
			if len(recorder.started) != 0 || h.bridger.taps[0] != nil {
				t.Errorf("declined, yet recorder started %v, tap %v", recorder.started, h.bridger.taps)
			}
		})
	}
}

func TestConsentOffRecordsNothing(t *testing.T) {
	h, recorder := newConsent(t, config.RecordOff)
	h.run()
	h.talks()
	wantConsent(t, h, ConsentNotAsked, false)
	// A queue-only flow without recording keeps the caller ringing.
	wantInbound(t, h.in, "answer")
	if len(recorder.started) != 0 {
		t.Errorf("recorder started %v", recorder.started)
	}
}

func TestConsentTypeaheadDoesNotAnswer(t *testing.T) {
	// The 1 pressed in the menu before must not count as consent.
	flow := &config.Flow{Name: "sales", Steps: []config.Step{{Menu: &config.Menu{
		Prompt: salesMenu, Timeout: menuTO, Options: map[byte]config.Action{'1': {Queue: "sales"}},
	}}}}
	h, _ := newConsent(t, config.RecordAsk)
	deps := *h.call.deps
	h.call = New(&deps, h.call.rec, flow, config.RecordAsk)
	h.router.flows[flow.Name] = flow
	h.run()
	h.nextPlay(salesMenu)
	h.press('1', "rfc4733")
	h.endsThenAskTimesOut(h.nextPlay(consent))
	h.talks()
	rec := wantConsent(t, h, ConsentDeclined, false)
	wantIVR(t, rec, "1")
}

func TestConsentCallerLeavesDuringQuestion(t *testing.T) {
	h, recorder := newConsent(t, config.RecordAsk)
	h.run()
	h.nextPlay(consent)
	h.callerHangsUp()
	rec := h.final()
	if rec.Consent != "" || rec.MissedReason != MissedCallerHangup || len(recorder.started) != 0 {
		t.Errorf("consent %q reason %q recorder %v", rec.Consent, rec.MissedReason, recorder.started)
	}
}

func TestConsentRecorderFailureKeepsTheCall(t *testing.T) {
	h, recorder := newConsent(t, config.RecordAnnounce)
	recorder.err = errors.New("disk full")
	h.run()
	h.ends(h.nextPlay(notice))
	h.talks()
	rec := wantConsent(t, h, ConsentAnnounced, false)
	if rec.Outcome != OutcomeAnswered {
		t.Errorf("outcome %q", rec.Outcome)
	}
}

// endsThenAskTimesOut lets the consent question end and its timeout pass.
func (h ivrHarness) endsThenAskTimesOut(pl play) {
	h.t.Helper()
	h.ends(pl)
	h.expectTimer(askTO)
	h.clk.Advance(askTO)
}

// Without a number's own mode, the flow that leads to the queue decides:
// a menu of an "ask" flow leading to an "announce" flow announces.
func TestConsentModeOfTheFlowThatReachesTheQueue(t *testing.T) {
	support := &config.Flow{Name: "support", Record: config.RecordAnnounce, Steps: []config.Step{{Queue: "sales"}}}
	sales := &config.Flow{Name: "sales", Record: config.RecordAsk, Steps: []config.Step{{Menu: &config.Menu{
		Prompt: salesMenu, Timeout: menuTO, Options: map[byte]config.Action{'2': {Flow: "support"}},
	}}}}
	h, recorder := newConsent(t, "")
	deps := *h.call.deps
	h.call = New(&deps, h.call.rec, sales, "")
	h.router.flows = map[string]*config.Flow{"sales": sales, "support": support}
	h.run()
	h.nextPlay(salesMenu)
	h.press('2', "rfc4733")
	h.ends(h.nextPlay(notice))
	h.talks()
	wantConsent(t, h, ConsentAnnounced, true)
	if len(recorder.started) != 1 {
		t.Errorf("recorder started %d times", len(recorder.started))
	}
}

// A number's own mode overrides its flow's, and off is known from the
// start.
func TestConsentNumberOverridesFlow(t *testing.T) {
	flow := &config.Flow{Name: "sales", Record: config.RecordAnnounce, Steps: []config.Step{{Queue: "sales"}}}
	h, recorder := newConsent(t, "")
	deps := *h.call.deps
	h.call = New(&deps, h.call.rec, flow, config.RecordOff)
	h.run()
	h.talks()
	wantConsent(t, h, ConsentNotAsked, false)
	wantInbound(t, h.in, "answer")
	if started := h.pub.all()[0]; started.event != EventStarted || started.rec.Consent != ConsentNotAsked {
		t.Errorf("call.started consent %q, want not_asked known from the start", started.rec.Consent)
	}
	if len(recorder.started) != 0 {
		t.Errorf("recorder started %v", recorder.started)
	}
}

// A reload that left no consent prompt must not crash a call that still
// has the mode, nor record a caller who was not told.
func TestConsentWithoutPromptIsNotRecorded(t *testing.T) {
	for _, mode := range []string{config.RecordAnnounce, config.RecordAsk} {
		t.Run(mode, func(t *testing.T) {
			h, recorder := newConsent(t, mode)
			h.router.recording = config.Recording{AcceptDigit: '1', AskTimeout: askTO}
			h.run()
			h.talks()
			wantConsent(t, h, ConsentDeclined, false)
			if len(recorder.started) != 0 {
				t.Errorf("recorder started %v", recorder.started)
			}
		})
	}
}
