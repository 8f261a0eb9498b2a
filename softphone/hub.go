// Package softphone lets agents answer calls in the browser: it serves the
// softphone page, logs agents in over a WebSocket, keeps their presence,
// and rings them with a WebRTC leg whose media the edge bridges to the
// caller. The signaling protocol is docs/softphone-protocol.md.
package softphone

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/media"
	"github.com/rs/zerolog"
)

// Presence values, as the protocol spells them.
const (
	Available = "available"
	Away      = "away"
	Busy      = "busy"
)

// Options are what a Hub needs from its owner.
type Options struct {
	Config *config.Config
	// Ports is where the WebRTC legs' sockets come from, like every
	// other leg's.
	Ports *media.Ports
	// Address is the address of the edge's ICE candidates: the one
	// browsers can reach the media ports at.
	Address netip.Addr
	Log     zerolog.Logger
	// Grace is how long a dropped agent's chosen presence is kept for it
	// to come back to; 10 s when zero.
	Grace time.Duration
	// PingInterval is how often sockets are pinged; a socket that does
	// not answer within two intervals is closed. 10 s when zero.
	PingInterval time.Duration
}

// Hub is the softphone service of an edge.
type Hub struct {
	opts    Options
	log     zerolog.Logger
	agents  atomic.Pointer[map[string]*config.Agent]
	limiter *loginLimiter

	mu     sync.Mutex
	states map[string]*agentState // by agent id, for agents seen logging in
	closed bool
}

// agentState is what the hub knows of one softphone agent. It outlives
// sockets, so that a page that reconnects finds its presence and calls.
type agentState struct {
	id     string
	name   string
	sock   *socket // nil while no page is connected
	choice string  // Available or Away, as the agent chose
	// grace ends the remembered choice of an agent whose socket dropped;
	// nil when no grace period runs.
	grace *time.Timer
	legs  map[string]*leg // offered or answered calls, by call id
}

// New makes a hub for the agents of opts.Config.
func New(opts Options) *Hub {
	if opts.Grace <= 0 {
		opts.Grace = 10 * time.Second
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 10 * time.Second
	}
	h := &Hub{
		opts:    opts,
		log:     opts.Log.With().Str("component", "softphone").Logger(),
		states:  map[string]*agentState{},
		limiter: newLoginLimiter(),
	}
	h.setAgents(opts.Config)
	return h
}

func (h *Hub) setAgents(cfg *config.Config) {
	agents := make(map[string]*config.Agent, len(cfg.Agents))
	for id, a := range cfg.Agents {
		if a.WebRTC != nil {
			agents[id] = a
		}
	}
	h.agents.Store(&agents)
}

// Reload puts a new configuration in force. Agents who were removed, or
// whose token changed, are logged out: a changed token is how an operator
// locks out a lost laptop.
func (h *Hub) Reload(cfg *config.Config) {
	old := *h.agents.Load()
	h.setAgents(cfg)
	now := *h.agents.Load()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, st := range h.states {
		a, ok := now[id]
		if ok {
			st.name = a.Name
		}
		if ok && old[id] != nil && a.WebRTC.Token == old[id].WebRTC.Token {
			continue
		}
		if st.sock != nil {
			st.sock.fail(errLoggedOut, "you were logged out: the agent was removed or its token changed")
			st.sock = nil
		}
		st.choice = Away
	}
}

// Available says whether agent can be offered a call: agents who answer on
// a SIP phone always can (their phone says otherwise); softphone agents
// only while their page is connected and they chose to be available.
func (h *Hub) Available(agent string) bool {
	if _, ok := (*h.agents.Load())[agent]; !ok {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.states[agent]
	return st != nil && st.sock != nil && st.choice == Available
}

// Close logs every agent out, for the edge's exit.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	var socks []*socket
	for _, st := range h.states {
		if st.sock != nil {
			socks = append(socks, st.sock)
			st.sock = nil
		}
		if st.grace != nil {
			st.grace.Stop()
		}
	}
	h.mu.Unlock()
	for _, s := range socks {
		s.close("the edge is shutting down")
	}
}

// Stats counts agents by what they show, for /metrics.
type Stats struct {
	Connected, Available, Busy int
}

// Stats reads the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	var s Stats
	for _, st := range h.states {
		if st.sock == nil {
			continue
		}
		s.Connected++
		switch st.presence() {
		case Available:
			s.Available++
		case Busy:
			s.Busy++
		}
	}
	return s
}

// login checks an agent's token and makes sock its socket. It returns the
// state to greet the agent with, or false for a wrong agent or token.
func (h *Hub) login(sock *socket, agent, token string) (id, name, presence string, ok bool) {
	a, known := (*h.agents.Load())[agent]
	// Compared whole and in constant time, hashed so that the length of
	// the token leaks nothing either; an unknown agent costs the same.
	want := []byte{}
	if known {
		want = []byte(a.WebRTC.Token)
	}
	gh, wh := sha256.Sum256([]byte(token)), sha256.Sum256(want)
	if subtle.ConstantTimeCompare(gh[:], wh[:]) != 1 || !known {
		return "", "", "", false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return "", "", "", false
	}
	st := h.states[agent]
	if st == nil {
		st = &agentState{id: agent, choice: Away, legs: map[string]*leg{}}
		h.states[agent] = st
	}
	st.name = a.Name
	if st.grace != nil {
		// Back within the grace period: the agent keeps its choice.
		st.grace.Stop()
		st.grace = nil
	} else if st.sock == nil {
		st.choice = Away
	}
	if st.sock != nil && st.sock != sock {
		st.sock.fail(errReplaced, "you logged in somewhere else; this page is no longer connected")
	}
	st.sock = sock
	return st.id, st.name, st.presence(), true
}

// setPresence records the agent's choice and tells its page.
func (h *Hub) setPresence(sock *socket, choice string) {
	h.mu.Lock()
	st := h.stateOf(sock)
	if st == nil {
		h.mu.Unlock()
		return
	}
	st.choice = choice
	p := st.presence()
	h.mu.Unlock()
	h.log.Info().Str("agent", sock.agent).Str("presence", choice).Msg("agent presence")
	sock.send(message{Type: "presence", Status: p})
}

// dropped is told that sock closed. Calls ringing for its agent go on to
// the next agent at once; calls in progress keep their media, which does
// not depend on the socket.
func (h *Hub) dropped(sock *socket) {
	h.mu.Lock()
	st := h.stateOf(sock)
	if st == nil {
		h.mu.Unlock()
		return
	}
	st.sock = nil
	var ringing []*leg
	for _, l := range st.legs {
		ringing = append(ringing, l)
	}
	if st.choice == Available && !h.closed {
		st.grace = time.AfterFunc(h.opts.Grace, func() { h.graceOver(st) })
	} else {
		st.choice = Away
	}
	h.mu.Unlock()
	h.log.Info().Str("agent", sock.agent).Msg("softphone disconnected")
	for _, l := range ringing {
		l.socketGone()
	}
}

func (h *Hub) graceOver(st *agentState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st.grace == nil || st.sock != nil {
		return
	}
	st.grace = nil
	st.choice = Away
	h.log.Info().Str("agent", st.id).Msg("softphone agent away: did not come back")
}

// presence is what the agent's page shows. Callers hold h.mu.
func (st *agentState) presence() string {
	if len(st.legs) > 0 {
		return Busy
	}
	return st.choice
}

// legOf finds a call offered to or held by the agent of sock.
func (h *Hub) legOf(sock *socket, callID string) *leg {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := h.stateOf(sock); st != nil {
		return st.legs[callID]
	}
	return nil
}

// stateOf is the state of the agent sock is logged in as, nil if sock is
// no longer its socket (replaced, logged out). Callers hold h.mu.
func (h *Hub) stateOf(sock *socket) *agentState {
	if st := h.states[sock.agent]; st != nil && st.sock == sock {
		return st
	}
	return nil
}

// addLeg registers a call offered to an agent and returns its socket,
// or nil when the agent cannot take it.
func (h *Hub) addLeg(agent string, l *leg) *socket {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.states[agent]
	if st == nil || st.sock == nil || st.choice != Available || h.closed {
		return nil
	}
	st.legs[l.callID] = l
	if len(st.legs) == 1 {
		st.sock.send(message{Type: "presence", Status: Busy})
	}
	return st.sock
}

// removeLeg forgets a call that is over for its agent.
func (h *Hub) removeLeg(agent string, l *leg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.states[agent]
	if st == nil || st.legs[l.callID] != l {
		return
	}
	delete(st.legs, l.callID)
	if len(st.legs) == 0 && st.sock != nil {
		st.sock.send(message{Type: "presence", Status: st.choice})
	}
}

// socketOf is the agent's current socket, nil if none.
func (h *Hub) socketOf(agent string) *socket {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := h.states[agent]; st != nil {
		return st.sock
	}
	return nil
}

// loginLimiter slows down token guessing: a source address with too many
// failed logins in a window is refused without a check until it passes.
type loginLimiter struct {
	mu       sync.Mutex
	failures map[netip.Addr]*failures
}

type failures struct {
	count int
	since time.Time
}

const (
	maxLoginFailures = 5
	loginWindow      = time.Minute
)

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{failures: map[netip.Addr]*failures{}}
}

// allowed says whether src may try to log in now.
func (l *loginLimiter) allowed(src netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failures[src]
	if f == nil {
		return true
	}
	if now.Sub(f.since) > loginWindow {
		delete(l.failures, src)
		return true
	}
	return f.count < maxLoginFailures
}

// failed counts a failed login of src.
func (l *loginLimiter) failed(src netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Old entries go as new ones come, so the map stays as small as the
	// set of recent guessers.
	for a, f := range l.failures {
		if now.Sub(f.since) > loginWindow {
			delete(l.failures, a)
		}
	}
	f := l.failures[src]
	if f == nil {
		f = &failures{since: now}
		l.failures[src] = f
	}
	f.count++
}
