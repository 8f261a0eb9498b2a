package softphone

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/media"
	"github.com/rs/zerolog"
)

// teOffered is the telephone-event payload type offered to browsers when
// the caller has one; the bridge maps it to the caller's.
const teOffered = 101

// offerTimeout bounds building an offer: gathering host candidates on one
// socket takes milliseconds.
const offerTimeout = 5 * time.Second

// ErrUnavailable: the agent's page is not connected, or the agent is away.
var ErrUnavailable = errors.New("softphone agent is not available")

// mediaFormatter is the caller's leg as the softphone needs it: its codec,
// so the browser is offered the same and audio is only relayed.
type mediaFormatter interface {
	MediaFormat() (media.Codec, uint8)
}

// leg states.
const (
	legRinging = iota
	legAnswering
	legConnected
	legEnded
)

// leg is a call offered to an agent in the browser: the call's Outbound.
type leg struct {
	h      *Hub
	agent  string
	callID string
	peer   *media.Peer
	log    zerolog.Logger
	// events carries what the leg reports to its call, in order, from
	// one goroutine, so that the page's socket never waits for the call.
	events chan call.Event
	sink   call.Sink

	mu        sync.Mutex
	state     int
	closed    bool // events is closed
	closeOnce sync.Once
	done      chan struct{} // closed when the leg has ended
}

// Dial rings an agent's softphone: it prepares the WebRTC peer, offers
// the call to the agent's page with what the agent needs to greet the
// caller, and reports the agent's answer or refusal to sink.
func (h *Hub) Dial(req call.DialRequest, sink call.Sink) (call.Outbound, error) {
	if !h.Available(req.Agent) {
		return nil, ErrUnavailable
	}
	mf, ok := req.Inbound.(mediaFormatter)
	if !ok {
		return nil, fmt.Errorf("softphone: caller leg of unknown kind %T", req.Inbound)
	}
	codec, callerTE := mf.MediaFormat()
	var te uint8
	if callerTE != 0 {
		te = teOffered
	}
	peer, err := media.NewPeer(media.PeerOptions{
		Ports: h.opts.Ports, Address: h.opts.Address, Codec: codec, TelephoneEvent: te,
	})
	if err != nil {
		return nil, fmt.Errorf("softphone peer: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), offerTimeout)
	offer, err := peer.Offer(ctx)
	cancel()
	if err != nil {
		_ = peer.Close()
		return nil, fmt.Errorf("softphone offer: %w", err)
	}
	l := &leg{
		h: h, agent: req.Agent, callID: req.CallID, peer: peer, sink: sink,
		log:    h.log.With().Str("call_id", req.CallID).Str("agent", req.Agent).Logger(),
		events: make(chan call.Event, 4),
		done:   make(chan struct{}),
	}
	sock := h.addLeg(req.Agent, l)
	if sock == nil {
		_ = peer.Close()
		return nil, ErrUnavailable
	}
	go l.report()
	go l.watch()
	l.post(call.Event{Kind: call.AgentRinging})
	sock.send(offered(req, offer))
	l.log.Info().Msg("call offered to the softphone")
	return l, nil
}

// offered is the call.offered message for req.
func offered(req call.DialRequest, sdp string) message {
	r := req.Record
	m := message{
		Type: "call.offered", CallID: req.CallID, SDP: sdp,
		Caller: r.Caller, CallerName: r.CallerName, TrackingNumber: r.TrackingNumber,
		Source: r.Source, Medium: r.Medium, Campaign: r.Campaign, Keyword: r.Keyword,
		Queue: r.Queue, IVR: r.IVR, RingTimeoutMS: req.RingTimeout.Milliseconds(),
	}
	if !r.StartedAt.IsZero() {
		m.StartedAt = r.StartedAt.UTC().Format(time.RFC3339Nano)
		m.WaitedMS = max(time.Since(r.StartedAt).Milliseconds(), 0)
	}
	return m
}

// MediaPeer is the leg's WebRTC peer, which the edge bridges to the
// caller once the agent answered.
func (l *leg) MediaPeer() *media.Peer { return l.peer }

// post queues an event for the call; after Close it is dropped, as the
// call is over for this leg. A leg posts at most three events (ringing,
// answered, its end), so the queue never fills.
func (l *leg) post(ev call.Event) {
	ev.Leg = l
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.events <- ev
	}
}

// report hands the leg's events to its call, in order, until Close.
func (l *leg) report() {
	for ev := range l.events {
		l.sink.Post(ev)
	}
}

// watch follows the peer: connected is the agent's answer; a failure
// before it fails the attempt, after it ends the conversation.
func (l *leg) watch() {
	select {
	case <-l.peer.Connected():
	case <-l.peer.Failed():
		l.mediaFailed()
		return
	case <-l.done:
		return
	}
	l.mu.Lock()
	if l.state != legAnswering {
		l.mu.Unlock()
		return
	}
	l.state = legConnected
	l.mu.Unlock()
	l.log.Info().Msg("softphone answered: media connected")
	l.toPage(message{Type: "call.answered", CallID: l.callID})
	l.post(call.Event{Kind: call.AgentAnswered})
	select {
	case <-l.peer.Failed():
		l.mediaFailed()
	case <-l.done:
	}
}

// mediaFailed: ICE or DTLS could not connect, or the connection broke.
func (l *leg) mediaFailed() {
	state, ok := l.end()
	if !ok {
		return
	}
	l.log.Warn().Msg("softphone media failed")
	l.toPage(message{Type: "call.ended", CallID: l.callID, Reason: "media_failed"})
	if state == legConnected {
		l.post(call.Event{Kind: call.AgentHungUp})
	} else {
		l.post(call.Event{Kind: call.AgentFailed})
	}
	l.Close()
}

// end moves the leg to its end and says from which state; false if it had
// ended already.
func (l *leg) end() (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == legEnded {
		return legEnded, false
	}
	s := l.state
	l.state = legEnded
	close(l.done)
	return s, true
}

// toPage sends m to the agent's page, if it is connected.
func (l *leg) toPage(m message) {
	if s := l.h.socketOf(l.agent); s != nil {
		s.send(m)
	}
}

// answer is the agent's answer with the browser's SDP.
func (l *leg) answer(sdp string) error {
	l.mu.Lock()
	if l.state != legRinging {
		l.mu.Unlock()
		return errors.New("the call is not ringing")
	}
	l.state = legAnswering
	l.mu.Unlock()
	if err := l.peer.SetAnswer(sdp); err != nil {
		l.mu.Lock()
		if l.state == legAnswering {
			l.state = legRinging
		}
		l.mu.Unlock()
		return fmt.Errorf("the browser's answer cannot be used: %w", err)
	}
	l.log.Info().Msg("softphone answering")
	return nil
}

func (l *leg) addCandidate(c *candidate) error {
	return l.peer.AddCandidate(c.Candidate, c.SDPMid, c.SDPMLineIndex)
}

func (l *leg) sendDigits(digits string) error {
	l.mu.Lock()
	connected := l.state == legConnected
	l.mu.Unlock()
	if !connected {
		return errors.New("keys can only be sent during a call")
	}
	if len(digits) == 0 || len(digits) > 32 {
		return errors.New("digits must be 1 to 32 of 0-9 * # A-D")
	}
	return l.peer.SendDigits(digits)
}

// decline: the agent refused the call; it goes to the next agent at once.
func (l *leg) decline() {
	state, ok := l.end()
	if !ok {
		return
	}
	if state == legConnected {
		l.finish(call.Event{Kind: call.AgentHungUp}, "agent_hangup")
		return
	}
	l.log.Info().Msg("softphone declined the call")
	l.finish(call.Event{Kind: call.AgentFailed, Code: 603}, "declined")
}

// agentHangup: the agent hung up; before the answer that is a refusal.
func (l *leg) agentHangup() {
	state, ok := l.end()
	if !ok {
		return
	}
	if state != legConnected {
		l.finish(call.Event{Kind: call.AgentFailed, Code: 603}, "declined")
		return
	}
	l.log.Info().Msg("softphone hung up")
	l.finish(call.Event{Kind: call.AgentHungUp}, "agent_hangup")
}

// socketGone: the agent's page went away. A call still ringing moves on at
// once; an answered one keeps its media, which does not need the socket.
func (l *leg) socketGone() {
	l.mu.Lock()
	ringing := l.state == legRinging || l.state == legAnswering
	l.mu.Unlock()
	if !ringing {
		return
	}
	if _, ok := l.end(); !ok {
		return
	}
	l.log.Info().Msg("softphone page closed while ringing; next agent")
	l.post(call.Event{Kind: call.AgentFailed})
	l.Close()
}

// finish reports the leg's end to the call and to the page.
func (l *leg) finish(ev call.Event, reason string) {
	l.toPage(message{Type: "call.ended", CallID: l.callID, Reason: reason})
	l.post(ev)
	l.Close()
}

// Cancel stops ringing; a leg already answered is hung up.
func (l *leg) Cancel() {
	state, ok := l.end()
	if !ok {
		return
	}
	reason := "cancelled"
	if state == legConnected {
		reason = "remote_hangup"
	}
	l.toPage(message{Type: "call.ended", CallID: l.callID, Reason: reason})
	l.Close()
}

// Hangup ends the answered leg: the caller or the edge ended the call.
func (l *leg) Hangup() {
	state, ok := l.end()
	if !ok {
		return
	}
	reason := "remote_hangup"
	if state != legConnected {
		reason = "cancelled"
	}
	l.toPage(message{Type: "call.ended", CallID: l.callID, Reason: reason})
	l.Close()
}

// Close frees the leg's media and forgets it; the edge calls it when the
// call ends, whatever happened to the leg.
func (l *leg) Close() {
	l.closeOnce.Do(func() {
		if _, ok := l.end(); ok {
			// Ended by the call's end itself: the page learns it.
			l.toPage(message{Type: "call.ended", CallID: l.callID, Reason: "remote_hangup"})
		}
		l.h.removeLeg(l.agent, l)
		l.mu.Lock()
		l.closed = true
		close(l.events)
		l.mu.Unlock()
		_ = l.peer.Close()
	})
}
