package call

import "time"

// Event names, as published under the subject prefix.
const (
	EventStarted   = "call.started"
	EventAnswered  = "call.answered"
	EventMissed    = "call.missed"
	EventCompleted = "call.completed"
	// EventRecordingCompleted: a recording is complete and durable.
	EventRecordingCompleted = "recording.completed"
	// EventRecordingDeleted: retention deleted a recording.
	EventRecordingDeleted = "recording.deleted"
	// EventVoicemailCompleted: a caller's message is complete and durable.
	EventVoicemailCompleted = "voicemail.completed"
)

// What the caller said to being recorded.
const (
	ConsentGranted   = "granted"
	ConsentDeclined  = "declined"
	ConsentNotAsked  = "not_asked"
	ConsentAnnounced = "announced"
)

// Outcomes of a call.
const (
	OutcomeAnswered = "answered"
	OutcomeMissed   = "missed"
)

// Reasons a call was missed.
const (
	MissedCallerHangup = "caller_hangup"
	MissedNoAgent      = "no_agent"
	MissedRingTimeout  = "ring_timeout"
	MissedRejected     = "rejected"
	MissedError        = "error"
	// MissedAfterHours: the call came outside its queue's hours.
	MissedAfterHours = "after_hours"
)

// How a call left its flow without reaching a queue.
const (
	// IVRHangup: the caller chose a menu option that hangs up.
	IVRHangup = "hangup_option"
	// IVRMenuTimeout: a menu got no valid key within its retries and
	// has no default.
	IVRMenuTimeout = "menu_timeout"
	// IVRFlowEnd: the flow's last step was a prompt.
	IVRFlowEnd = "flow_end"
)

// Who ended a call.
const (
	HangupCaller = "caller"
	HangupAgent  = "agent"
	HangupEdge   = "edge"
)

// Results of one attempt to reach an agent.
const (
	AttemptAnswered    = "answered"
	AttemptDeclined    = "declined"
	AttemptNoAnswer    = "no_answer"
	AttemptBusy        = "busy"
	AttemptCancelled   = "cancelled"
	AttemptUnreachable = "unreachable"
)

// Attempt is one agent rung for a call.
type Attempt struct {
	Agent     string
	StartedAt time.Time
	Ring      time.Duration
	Result    string
}

// Record is what is known of a call at one moment. A zero field is not
// known yet; the publisher leaves such fields out of the event.
type Record struct {
	ID             string
	SIPCallID      string
	Caller         string
	CallerName     string
	TrackingNumber string
	Source         string
	Medium         string
	Campaign       string
	Keyword        string
	// Pool is the DNI pool of a pool number; Visitor the web visit the
	// number was shown to when the call came, if any held it.
	Pool    string
	Visitor *Visitor
	// FirstCall, once known: no call from this caller in the 30 days
	// before.
	FirstCall *bool
	Flow      string
	// IVR are the keys the caller pressed in the flow's prompts and
	// menus, in order: nil when the flow has none, empty when the caller
	// pressed nothing.
	IVR []string
	// IVRExit says how a call that never reached a queue left its flow
	// (IVRHangup, IVRMenuTimeout, IVRFlowEnd).
	IVRExit      string
	Queue        string
	Agent        string
	Outcome      string
	MissedReason string
	HangupBy     string
	StartedAt    time.Time
	AnsweredAt   time.Time
	EndedAt      time.Time
	Attempts     []Attempt
	// Consent is the caller's answer to recording, once known.
	Consent string
	// Recording is the finished recording of the conversation, if any.
	Recording *RecordingResult
	// Voicemail is the message the caller left, if any: a recording of
	// the caller alone.
	Voicemail *RecordingResult
	// Leg is what the carrier leg's owner needs to end the leg after a
	// restart, kept by the journal; opaque here, and never in events.
	Leg string
	// AgentLeg is the same for the answered agent's leg, when it can
	// tell (LegStater).
	AgentLeg string
}

// Visitor is the web visit a pool number was shown to.
type Visitor struct {
	UTMSource, UTMMedium, UTMCampaign, UTMTerm, UTMContent string
	GCLID, GBRAID, WBRAID, FBCLID, MSCLKID                 string
	Referrer, LandingPage                                  string
	FirstSeen                                              time.Time
	// ClickIDs are the click ids the attribution rules add to the
	// built-in ones, by URL parameter name; nil when none.
	ClickIDs map[string]string
}

// RecordingResult is a recording written whole and durably.
type RecordingResult struct {
	Path     string
	Duration time.Duration
	SHA256   string
	// Partial: finalized after the edge stopped mid-call; the file has
	// what was captured until then.
	Partial bool
}

// Wait is the time from start until an agent answered or the call ended
// unanswered; ok is false while neither has happened.
func (r *Record) Wait() (d time.Duration, ok bool) {
	switch {
	case !r.AnsweredAt.IsZero():
		return r.AnsweredAt.Sub(r.StartedAt), true
	case !r.EndedAt.IsZero():
		return r.EndedAt.Sub(r.StartedAt), true
	}
	return 0, false
}

// Talk is the time from the agent's answer until the end; ok is false
// until the call has ended. A missed call talked for 0.
func (r *Record) Talk() (d time.Duration, ok bool) {
	if r.EndedAt.IsZero() {
		return 0, false
	}
	if r.AnsweredAt.IsZero() {
		return 0, true
	}
	return r.EndedAt.Sub(r.AnsweredAt), true
}

// Duration is the time from start until the end; ok is false until the
// call has ended.
func (r *Record) Duration() (d time.Duration, ok bool) {
	if r.EndedAt.IsZero() {
		return 0, false
	}
	return r.EndedAt.Sub(r.StartedAt), true
}

// Publisher receives the events of calls. Publish must not block: the call
// goes on whatever happens to the event afterwards. The record is the
// publisher's to keep.
type Publisher interface {
	Publish(event string, at time.Time, rec Record)
}
