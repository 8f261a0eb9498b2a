package softphone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"
)

// Error codes of the protocol.
const (
	errBadLogin    = "bad_login"
	errNotLoggedIn = "not_logged_in"
	errBadMessage  = "bad_message"
	errUnknownType = "unknown_type"
	errUnknownCall = "unknown_call"
	errBadSDP      = "bad_sdp"
	errBadDigits   = "bad_digits"
	errTooLarge    = "too_large"
	errReplaced    = "replaced"
	errLoggedOut   = "logged_out"
)

const (
	// maxMessage bounds a message: an SDP is a few KiB. Frames up to
	// maxFrame are read and refused with too_large, so a page with a
	// bug learns what went wrong; larger ones close the socket.
	maxMessage = 64 << 10
	maxFrame   = 1 << 20
	// sendQueue is how many messages may wait for a slow page before it
	// is disconnected rather than stall a call.
	sendQueue = 64
	// closeBadLogin is the close code after a refused login.
	closeBadLogin websocket.StatusCode = 4001
	// closeEnded is the close code after replaced or logged_out.
	closeEnded websocket.StatusCode = 4002
)

// message is every message of the protocol, both ways; fields a type does
// not use stay empty and are left out.
type message struct {
	Type    string `json:"type"`
	ID      string `json:"id,omitempty"`
	Ref     string `json:"ref,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`

	Agent    string `json:"agent,omitempty"`
	Token    string `json:"token,omitempty"`
	Name     string `json:"name,omitempty"`
	Presence string `json:"presence,omitempty"`
	Status   string `json:"status,omitempty"`

	CallID    string     `json:"call_id,omitempty"`
	SDP       string     `json:"sdp,omitempty"`
	Candidate *candidate `json:"candidate,omitempty"`
	Digits    string     `json:"digits,omitempty"`
	Reason    string     `json:"reason,omitempty"`

	// call.offered
	Caller         string   `json:"caller,omitempty"`
	CallerName     string   `json:"caller_name,omitempty"`
	TrackingNumber string   `json:"tracking_number,omitempty"`
	Source         string   `json:"source,omitempty"`
	Medium         string   `json:"medium,omitempty"`
	Campaign       string   `json:"campaign,omitempty"`
	Keyword        string   `json:"keyword,omitempty"`
	Queue          string   `json:"queue,omitempty"`
	IVR            []string `json:"ivr,omitempty"`
	StartedAt      string   `json:"started_at,omitempty"`
	WaitedMS       int64    `json:"waited_ms,omitempty"`
	RingTimeoutMS  int64    `json:"ring_timeout_ms,omitempty"`

	// final closes the socket once the message is sent.
	final bool
}

// candidate is a browser's RTCIceCandidateInit.
type candidate struct {
	Candidate     string  `json:"candidate"`
	SDPMid        *string `json:"sdpMid,omitempty"`
	SDPMLineIndex *uint16 `json:"sdpMLineIndex,omitempty"`
}

// socket is one page's WebSocket. Messages to the page go through a queue
// and a writer goroutine, so a call never waits for a browser.
type socket struct {
	h      *Hub
	conn   *websocket.Conn
	remote netip.Addr
	log    zerolog.Logger
	out    chan message
	ctx    context.Context
	cancel context.CancelFunc
	// agent is set by a good login, by the reader goroutine, before any
	// other goroutine learns of the socket.
	agent string
	// refused: the login failed and the socket is closing; the reader
	// ignores what else comes. Only the reader touches it.
	refused bool
}

// serveWS runs one page's socket until it closes.
func (h *Hub) serveWS(w http.ResponseWriter, r *http.Request) {
	// The default origin check stays: only the page the edge serves may
	// open a socket with the agent's browser credentials.
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		h.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("softphone websocket refused")
		return
	}
	conn.SetReadLimit(maxFrame)
	ctx, cancel := context.WithCancel(context.Background())
	s := &socket{h: h, conn: conn, log: h.log, out: make(chan message, sendQueue), ctx: ctx, cancel: cancel}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		s.remote = ap.Addr().Unmap()
	}
	go s.writeLoop()
	go s.pingLoop()
	s.readLoop()
	cancel()
	if s.agent != "" {
		h.dropped(s)
	}
}

func (s *socket) readLoop() {
	for {
		typ, data, err := s.conn.Read(s.ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) && !errors.Is(err, context.Canceled) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug().Err(err).Str("agent", s.agent).Msg("softphone socket read ended")
			}
			return
		}
		if !s.receive(typ, data) {
			return
		}
	}
}

// receive acts on one frame from the page; false ends the socket. It is
// apart from readLoop so that frames can be tested without a connection.
func (s *socket) receive(typ websocket.MessageType, data []byte) bool {
	if len(data) > maxMessage {
		s.errorf(errTooLarge, "", fmt.Sprintf("a message may be at most %d bytes; this one had %d", maxMessage, len(data)))
		return true
	}
	if typ != websocket.MessageText {
		s.errorf(errBadMessage, "", "messages are JSON text frames")
		return true
	}
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		s.errorf(errBadMessage, "", "not a JSON message of the protocol: "+err.Error())
		return true
	}
	return s.handle(m)
}

// handle acts on one message; false ends the socket.
func (s *socket) handle(m message) bool {
	if s.refused {
		return true // the writer closes the socket after the refusal
	}
	if s.agent == "" && m.Type != "login" {
		if m.Type == "ping" {
			s.send(message{Type: "pong"})
			return true
		}
		s.errorf(errNotLoggedIn, m.ID, "log in first: send {\"type\":\"login\",\"agent\":…,\"token\":…}")
		return true
	}
	switch m.Type {
	case "login":
		return s.login(m)
	case "ping":
		s.send(message{Type: "pong"})
	case "presence":
		if m.Status != Available && m.Status != Away {
			s.errorf(errBadMessage, m.ID, "presence status must be \"available\" or \"away\"")
			return true
		}
		s.h.setPresence(s, m.Status)
	case "answer", "decline", "hangup", "ice", "dtmf":
		s.callMessage(m)
	default:
		s.errorf(errUnknownType, m.ID, "unknown message type "+quote(m.Type))
	}
	return true
}

func (s *socket) login(m message) bool {
	if s.agent != "" {
		s.errorf(errBadMessage, m.ID, "already logged in as "+quote(s.agent))
		return true
	}
	now := time.Now()
	if !s.h.limiter.allowed(s.remote, now) {
		s.log.Warn().Str("remote", s.remote.String()).Str("agent", m.Agent).Msg("softphone login refused: too many failures")
		s.fail(errBadLogin, "too many failed logins from this address; try again in a minute")
		s.refused = true
		return true
	}
	// agent is set before login makes the socket known to the hub, so
	// that no other goroutine reads it while it changes.
	s.agent = m.Agent
	id, name, presence, ok := s.h.login(s, m.Agent, m.Token)
	if !ok {
		s.agent = ""
		s.h.limiter.failed(s.remote, now)
		s.log.Warn().Str("remote", s.remote.String()).Str("agent", m.Agent).Msg("softphone login refused")
		s.fail(errBadLogin, "unknown agent or wrong token")
		s.refused = true
		return true
	}
	s.log = s.h.log.With().Str("agent", id).Logger()
	s.log.Info().Str("remote", s.remote.String()).Msg("softphone agent logged in")
	s.send(message{Type: "welcome", Agent: id, Name: name, Presence: presence})
	return true
}

func (s *socket) callMessage(m message) {
	if m.CallID == "" {
		s.errorf(errBadMessage, m.ID, quote(m.Type)+" needs a call_id")
		return
	}
	l := s.h.legOf(s, m.CallID)
	if l == nil {
		s.errorf(errUnknownCall, m.ID, "no call "+quote(m.CallID)+" is offered to you or in progress")
		return
	}
	switch m.Type {
	case "answer":
		if m.SDP == "" {
			s.errorf(errBadSDP, m.ID, "answer needs the browser's SDP answer in sdp")
			return
		}
		if err := l.answer(m.SDP); err != nil {
			s.errorf(errBadSDP, m.ID, err.Error())
		}
	case "decline":
		l.decline()
	case "hangup":
		l.agentHangup()
	case "ice":
		if m.Candidate == nil || m.Candidate.Candidate == "" {
			return // end of candidates: nothing to do
		}
		if err := l.addCandidate(m.Candidate); err != nil {
			s.errorf(errBadMessage, m.ID, "ICE candidate refused: "+err.Error())
		}
	case "dtmf":
		if err := l.sendDigits(m.Digits); err != nil {
			s.errorf(errBadDigits, m.ID, err.Error())
		}
	}
}

// send queues m for the page. A page that does not keep up is
// disconnected: a stalled browser must not hold a call up.
func (s *socket) send(m message) {
	select {
	case s.out <- m:
	case <-s.ctx.Done():
	default:
		s.log.Warn().Msg("softphone page does not keep up; disconnecting it")
		s.cancel()
	}
}

func (s *socket) errorf(code, ref, text string) {
	s.send(message{Type: "error", Code: code, Ref: ref, Message: text})
}

// fail sends a final error and closes the socket after it.
func (s *socket) fail(code, text string) {
	select {
	case s.out <- message{Type: "error", Code: code, Message: text, final: true}:
	case <-s.ctx.Done():
	default:
		s.cancel()
	}
}

// close ends the socket with a normal closure.
func (s *socket) close(reason string) {
	_ = s.conn.Close(websocket.StatusGoingAway, reason)
	s.cancel()
}

func (s *socket) writeLoop() {
	for {
		select {
		case <-s.ctx.Done():
			_ = s.conn.CloseNow()
			return
		case m := <-s.out:
			data, err := json.Marshal(m)
			if err != nil {
				s.log.Error().Err(err).Msg("softphone message not encodable")
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			err = s.conn.Write(ctx, websocket.MessageText, data)
			cancel()
			if err != nil {
				s.cancel()
				continue
			}
			if m.final {
				status := closeEnded
				if m.Code == errBadLogin {
					status = closeBadLogin
				}
				_ = s.conn.Close(status, m.Code)
				s.cancel()
			}
		}
	}
}

// pingLoop closes a socket whose page stopped answering: a laptop that
// went to sleep must not keep an agent available.
func (s *socket) pingLoop() {
	t := time.NewTicker(s.h.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, 2*s.h.opts.PingInterval)
			err := s.conn.Ping(ctx)
			cancel()
			if err != nil {
				if s.ctx.Err() == nil {
					s.log.Info().Err(err).Msg("softphone page stopped answering pings")
				}
				s.cancel()
				return
			}
		}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
