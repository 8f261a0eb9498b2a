package call

import (
	"time"

	"github.com/callsign/callsign/config"
)

// Inbound is the caller's leg: the carrier's INVITE, as the call drives it.
// Its methods never block on the network: they start the work and report
// what the peer did later as events posted to the call.
type Inbound interface {
	// Ringing tells the caller an agent is being rung (180 Ringing).
	Ringing()
	// Answer accepts the call (200 OK with the edge's SDP). A missing
	// ACK is reported as an InboundFailed event.
	Answer() error
	// Reject ends the unanswered call with a final response.
	Reject(code int)
	// Hangup ends the answered call (BYE).
	Hangup()
	// Play starts sending prompt to the answered caller and returns at
	// once. When all of it has been sent the leg posts PromptEnded with
	// tag; a playback that is stopped posts nothing. stop ends the
	// playback early and returns once nothing more of it will be sent;
	// it may be called any number of times. Keys the caller presses are
	// posted as DigitPressed whether or not a prompt is playing.
	Play(prompt *config.Prompt, tag uint64) (stop func())
	// Capture shows tap the caller's audio (fromCaller true) until stop,
	// while no agent is bridged: a voicemail. stop returns once tap is
	// not called any more.
	Capture(tap Tap) (stop func())
}

// Outbound is a leg to an agent's phone.
type Outbound interface {
	// Cancel stops ringing. If the agent answers anyway, the leg hangs
	// itself up.
	Cancel()
	// Hangup ends the answered leg (BYE).
	Hangup()
}

// LegStater is an Outbound that can say what ending it after a restart
// takes (Record.AgentLeg); opaque to the call.
type LegStater interface {
	LegState() string
}

// DialRequest is what a Dialer needs to ring one agent for a call.
type DialRequest struct {
	CallID     string
	Agent      string
	Caller     string
	CallerName string
	// Inbound is the caller's leg, whose media the agent's leg must match.
	Inbound Inbound
	// Record is the call as known when the agent is rung, what a
	// softphone shows the agent before it answers. Its slices are the
	// request's own.
	Record Record
	// RingTimeout is how long the agent is rung before the call moves on.
	RingTimeout time.Duration
}

// Dialer rings agents. The outbound leg reports its progress by posting
// AgentRinging, AgentAnswered, AgentFailed and AgentHungUp events, carrying
// itself as Leg, to sink.
type Dialer interface {
	Dial(req DialRequest, sink Sink) (Outbound, error)
}

// Bridger joins the media of an answered agent leg to the caller's leg.
// onTimeout is called once if no media flows for the configured timeout.
// tap, if not nil, is shown every packet relayed while the legs are
// joined.
type Bridger interface {
	Bridge(in Inbound, out Outbound, onTimeout func(), tap Tap) (stop func(), err error)
}

// Tap sees the RTP packets of a bridged call as each side sent them. Packet
// runs on the media path: it must not block and must not keep pkt.
type Tap interface {
	Packet(fromCaller bool, pkt []byte)
}

// Recorder records the conversations of calls whose caller consented.
type Recorder interface {
	Start(r RecordingStart) (Recording, error)
}

// RecordingStart is what a recording's sidecar says of its call.
type RecordingStart struct {
	CallID, TrackingNumber, Source, Agent, Consent string
	// StartedAt is the agent's answer, the recording's time zero.
	StartedAt time.Time
}

// Recording is a recording in progress, fed by the bridge's tap.
type Recording interface {
	Tap
	// Finish writes the rest and makes the file durable; it may take a
	// moment (fsync, hashing).
	Finish() (RecordingResult, error)
}

// VoicemailRecorder takes the messages of callers no agent answered.
type VoicemailRecorder interface {
	StartVoicemail(v VoicemailStart) (Voicemail, error)
}

// VoicemailStart is what a voicemail's sidecar says of its call.
type VoicemailStart struct {
	CallID, Caller, TrackingNumber, Source, Queue string
	StartedAt                                     time.Time
}

// Voicemail is a message being left, fed with the caller's audio.
type Voicemail interface {
	Tap
	// Finish writes the rest and makes the file durable.
	Finish() (RecordingResult, error)
}

// Sink receives the events of a call's legs.
type Sink interface {
	Post(Event)
}

// Kind says what happened on a leg.
type Kind uint8

// Kinds of events a call reacts to.
const (
	// CallerHungUp: CANCEL before the answer, or BYE after it.
	CallerHungUp Kind = iota + 1
	// InboundFailed: the carrier leg broke (no ACK for the 200 OK, a
	// transport error).
	InboundFailed
	AgentRinging
	AgentAnswered
	// AgentFailed: the agent's phone answered with a final error (Code),
	// or could not be reached (Code 0).
	AgentFailed
	AgentHungUp
	MediaTimeout
	// Shutdown: the edge stops; answered calls are hung up.
	Shutdown
	// DigitPressed: the caller pressed Digit, by RFC 4733, SIP INFO or
	// in-band tones (Via).
	DigitPressed
	// PromptEnded: the prompt played with Tag has been sent whole.
	PromptEnded
)

// Event is one thing that happened to a call.
type Event struct {
	Kind Kind
	Leg  Outbound
	Code int
	// Digit and Via are set on DigitPressed.
	Digit byte
	Via   string
	// Tag is set on PromptEnded and on the call's own timers, so that a
	// late event of a prompt or menu already left is told apart.
	Tag uint64
}

// Clock is the time source of calls, so flows can be tested without
// waiting.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	Stop() bool
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc calls f in its own goroutine after d.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
