// Package config holds the edge's configuration: the YAML schema, strict
// loading with FILE:LINE:COL errors, ${VAR} expansion and validation.
package config

import (
	"net/netip"
	"time"

	"github.com/callsign/callsign/media"
)

// Config is one validated configuration of the edge. It is immutable once
// Load returns it; a reload builds a new one.
type Config struct {
	// Path is the file the configuration was read from.
	Path string

	SIP     SIP
	Media   Media
	HTTP    HTTP
	Events  Events
	Storage Storage

	// Trunks, Numbers, Pools, Flows, Queues and Agents are keyed by their
	// name (numbers by their E.164 form, "+15550100001").
	Trunks  map[string]*Trunk
	Numbers map[string]*Number
	Pools   map[string]*Pool
	Flows   map[string]*Flow
	Queues  map[string]*Queue
	Agents  map[string]*Agent

	Recording Recording

	// Attribution is how a pool number's visit attributes its calls; nil
	// when the file has no attribution section, and DefaultAttribution
	// applies.
	Attribution *Attribution
}

// Record modes of a flow or number: whether its calls are recorded, and
// how the caller learns of it.
const (
	RecordOff      = "off"
	RecordAnnounce = "announce"
	RecordAsk      = "ask"
)

// Recording is the `recording` section.
type Recording struct {
	// Retention deletes recordings older than this; 0 keeps them.
	Retention time.Duration
	// AnnouncePrompt tells the caller the call is recorded (announce).
	AnnouncePrompt *Prompt
	// AskPrompt asks the caller to press AcceptDigit to allow it (ask).
	AskPrompt   *Prompt
	AcceptDigit byte
	// AskTimeout is how long a key is waited for after AskPrompt.
	AskTimeout time.Duration
}

// Listen is one transport the SIP side answers on.
type Listen struct {
	Transport string         // "udp", "tcp" or "tls"
	Addr      netip.AddrPort // host and port to bind
}

// SIP is the `sip` section.
type SIP struct {
	Listen []Listen
	// Advertise is the address written into Via, Contact and SDP.
	Advertise string
	// TLS is the certificate tls:// listeners present; set exactly when
	// one is configured.
	TLS *TLSFiles
	// DigestAlgorithms are those the registrar challenges phones with,
	// the preferred first ("MD5", "SHA-256"); empty means MD5 alone.
	DigestAlgorithms []string
}

// Media is the `media` section.
type Media struct {
	Address netip.Addr
	// PortMin and PortMax bound the RTP port range, both inclusive.
	PortMin, PortMax int
	// Timeout hangs up an answered call that saw no RTP this long.
	Timeout time.Duration
}

// HTTP is the `http` section.
type HTTP struct {
	Listen     string
	AdminToken string
	// TLS, if set, serves https (and wss for the softphone).
	TLS *TLSFiles
}

// TLSFiles are a certificate (chain) and its key, as absolute paths to PEM
// files.
type TLSFiles struct {
	Cert, Key string
}

// Events is the `events` section.
type Events struct {
	// Embedded is true for `nats: embedded`; Servers is empty then.
	Embedded bool
	// Servers are the NATS URLs to connect to when not embedded.
	Servers []string
	// EmbeddedListen is where the embedded NATS server listens
	// (`embedded_listen`, default 127.0.0.1:4222).
	EmbeddedListen string
	SubjectPrefix  string
}

// Storage is the `storage` section.
type Storage struct {
	Dir string
}

// Trunk is one carrier allowed to place calls into the edge.
type Trunk struct {
	Name     string
	Allow    []netip.Prefix
	MaxCalls int // 0: unlimited
	CPS      int // 0: unlimited
}

// Number is one static tracking number and the source it stands for.
type Number struct {
	E164     string
	Source   string
	Medium   string
	Campaign string
	Keyword  string
	Flow     string
	// Record overrides the flow's record mode when set.
	Record string
}

// Pool is a set of numbers for dynamic number insertion: each web visitor
// is shown a number of its own, so a call to that number is attributed to
// the visit (its campaign, keyword, landing page) rather than to the number.
type Pool struct {
	Name string
	// Numbers are the pool's numbers in E.164, ranges expanded, in the
	// order written; no number is in two pools or also under numbers.
	Numbers []string
	// Replace is the number the web site shows by default, the one a
	// visitor's own number replaces.
	Replace string
	// Overflow is shown when every pool number is held. Its calls cannot
	// be told apart by visit, so they get Source, Medium and Campaign.
	Overflow string
	// Hold is how long a number stays with its visitor after the
	// visitor's last heartbeat.
	Hold time.Duration
	Flow string
	// Source, Medium and Campaign attribute calls to Overflow; empty
	// when not given.
	Source, Medium, Campaign string
}

// Flow is what a caller goes through before reaching an agent.
type Flow struct {
	Name  string
	Steps []Step
	// Record is RecordOff, RecordAnnounce or RecordAsk.
	Record string
}

// Step is one step of a flow. Exactly one field is set.
type Step struct {
	// Play is a prompt the caller hears to its end, unless a key stops it.
	Play *Prompt
	// Menu reads one key and leads elsewhere; steps after it are never
	// reached.
	Menu *Menu
	// Queue offers the call to the agents of the named queue.
	Queue string
}

// Menu plays a prompt, reads one key and branches on it.
type Menu struct {
	Prompt *Prompt
	// Timeout is how long after the prompt ends a key is waited for.
	Timeout time.Duration
	// Retries is how many more times the menu is offered after a timeout
	// or an invalid key, before Default is taken.
	Retries int
	// Options are keyed by the key: '0'-'9', '*' or '#'.
	Options map[byte]Action
	// Default is taken when the retries are used up; nil hangs up.
	Default *Action
	// InvalidPrompt is played after a key no option names; nil plays
	// nothing before the menu prompt again.
	InvalidPrompt *Prompt
}

// Action is where a menu choice leads. Exactly one field is set.
type Action struct {
	Queue  string
	Flow   string
	Hangup bool
}

// Prompt is an audio file, decoded and encoded once for each codec a call
// may use when the configuration is loaded, so calls only send frames.
type Prompt struct {
	// Path is the file it was read from, or "builtin:NAME.wav" for a
	// prompt shipped in the binary.
	Path string
	PCMU *media.Prompt
	PCMA *media.Prompt
}

// For returns the prompt encoded for codec ("PCMU" or "PCMA"), nil for
// any other.
func (p *Prompt) For(codec string) *media.Prompt {
	switch codec {
	case "PCMU":
		return p.PCMU
	case "PCMA":
		return p.PCMA
	}
	return nil
}

// Queue is a group of agents and how calls are offered to them.
type Queue struct {
	Name string
	// Strategy is round-robin, longest-idle, fewest-calls or ring-all.
	Strategy    string
	RingTimeout time.Duration
	MaxWait     time.Duration // 0: until every agent was tried
	Agents      []string
	// Priority is each agent's tier: lower rings first, higher only when
	// every agent of the lower tiers is busy or was tried. Agents listed
	// without one have priority 1.
	Priority map[string]int
	// WrapUp is how long an agent is left alone after each answered call.
	WrapUp time.Duration
	// HoldMusic is looped to the caller while agents ring.
	HoldMusic *Prompt
	// Overflow, if set, moves a call still waiting after a while to
	// another queue.
	Overflow *Overflow
	// NoAnswer is what happens to a call no agent answered: ActionHangup
	// (missed) or ActionVoicemail.
	NoAnswer string
	// Voicemail is set when NoAnswer or AfterHours leads to voicemail.
	Voicemail *Voicemail
	// Hours, if set, are when the queue takes calls; outside them the
	// caller hears AfterHoursPrompt and AfterHours happens.
	Hours            *Hours
	AfterHours       string
	AfterHoursPrompt *Prompt
}

// Overflow moves a call still waiting After this long to Queue.
type Overflow struct {
	After time.Duration
	Queue string
}

// Voicemail is how a queue takes a message.
type Voicemail struct {
	// Greeting is played before the message is recorded; it ends with
	// the tone.
	Greeting *Prompt
	// MaxLength bounds a message.
	MaxLength time.Duration
}

// Agent is a person who answers calls.
type Agent struct {
	ID   string
	Name string
	// One of SIP and WebRTC is set: the agent's phone, or the browser
	// softphone it logs in to.
	SIP    *AgentSIP
	WebRTC *AgentWebRTC
}

// AgentWebRTC is an agent who answers in the browser softphone.
type AgentWebRTC struct {
	// Token is the secret the softphone logs in with.
	Token string
}

// AgentSIP is how a SIP phone of an agent is reached: a fixed contact, or
// a registration with username and password.
type AgentSIP struct {
	Contact  string
	Username string
	Password string
}
