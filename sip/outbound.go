package sip

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/media"
	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// telephone-event payload type the edge offers to agents.
const agentTEPT = 101

// outbound is a leg to an agent's phone: the edge is its UAC.
type outbound struct {
	e        *Edge
	sink     call.Sink
	agent    string
	invite   *sipmsg.Request
	callID   string
	ep       *media.Endpoint
	localSDP []byte
	log      *zerolog.Logger
	// flow is where a phone registered over TCP or TLS is reached: the
	// far end of its registration's connection.
	flow string

	// stopDial abandons the INVITE's transaction while it is still being
	// set up (a TCP connect under way).
	stopDial context.CancelFunc

	mu          sync.Mutex
	tx          sipmsg.ClientTransaction
	provisional bool // a 1xx came: a CANCEL may be sent
	cancelled   bool
	answered    bool
	ended       bool
	ok          *sipmsg.Response // the 200 OK
	tePT        uint8            // the agent's telephone-event type
	closeOnce   sync.Once
}

// errNotRegistered: the agent's phone registers, and has not.
var errNotRegistered = errors.New("agent's phone is not registered")

// Dial rings an agent's SIP phone, or hands an agent who answers in the
// browser to the softphone.
func (e *Edge) Dial(req call.DialRequest, sink call.Sink) (call.Outbound, error) {
	in, ok := req.Inbound.(*inbound)
	if !ok {
		return nil, fmt.Errorf("dial: caller leg of unknown kind %T", req.Inbound)
	}
	agent := e.settings.Load().cfg.Agents[req.Agent]
	if agent != nil && agent.WebRTC != nil {
		if e.opts.Softphone == nil {
			return nil, fmt.Errorf("agent %q answers in the softphone, which this edge does not serve", req.Agent)
		}
		leg, err := e.opts.Softphone.Dial(req, sink)
		if err != nil {
			return nil, err
		}
		if c, ok := leg.(interface{ Close() }); ok {
			in.addLeg(c.Close)
		}
		return leg, nil
	}
	if agent == nil || agent.SIP == nil {
		return nil, fmt.Errorf("agent %q has no SIP phone", req.Agent)
	}
	var target sipmsg.Uri
	if agent.SIP.Contact != "" {
		if err := sipmsg.ParseUri(agent.SIP.Contact, &target); err != nil {
			return nil, fmt.Errorf("agent %q contact: %w", req.Agent, err)
		}
	} else {
		var ok bool
		if target, ok = e.registrar.Lookup(agent.SIP.Username); !ok {
			return nil, errNotRegistered
		}
	}

	ep, err := e.opts.Ports.Open()
	if err != nil {
		return nil, err
	}
	o := &outbound{e: e, sink: sink, agent: req.Agent, ep: ep, callID: newCallID()}
	o.log = in.log
	o.localSDP = media.BuildSDP(e.mediaAddr(ep), sdpSessionID(), 1, []media.Codec{in.codec}, agentTEPT, 20)

	invite := sipmsg.NewRequest(sipmsg.INVITE, target)
	transport := "UDP"
	if t, ok := target.UriParams.Get("transport"); ok && t != "" {
		transport = sipmsg.NetworkToUpper(t)
	}
	if agent.SIP.Contact == "" {
		if dest, t, ok := e.registrar.Flow(agent.SIP.Username); ok {
			transport = t
			invite.SetDestination(dest)
			o.flow = dest
		}
	}
	invite.SetTransport(transport)
	// The agent learns the caller's number and name, nothing else of the
	// carrier's side.
	from := &sipmsg.FromHeader{
		DisplayName: req.CallerName,
		Address:     sipmsg.Uri{Scheme: "sip", User: req.Caller, Host: e.settings.Load().cfg.SIP.Advertise},
		Params:      sipmsg.HeaderParams{{K: "tag", V: sipmsg.GenerateTagN(16)}},
	}
	to := &sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: target.User, Host: target.Host, Port: target.Port}}
	invite.AppendHeader(from)
	invite.AppendHeader(to)
	cid := sipmsg.CallIDHeader(o.callID)
	invite.AppendHeader(&cid)
	invite.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.INVITE})
	mf := sipmsg.MaxForwardsHeader(70)
	invite.AppendHeader(&mf)
	invite.AppendHeader(e.contact(transport))
	invite.AppendHeader(sipmsg.NewHeader("Allow", allowMethods))
	invite.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	invite.SetBody(o.localSDP)
	o.invite = invite

	// A connect to a host that drops SYNs hangs for as long as the dialer
	// allows (a minute); the call must go on ringing others meanwhile, and
	// can give the agent up while it hangs.
	ctx, stopDial := context.WithCancel(context.Background())
	o.stopDial = stopDial
	e.dialogs.Store(o.callID, o)
	in.addLeg(o.close)
	go o.start(ctx)
	return o, nil
}

// start sends the INVITE and follows its transaction.
func (o *outbound) start(ctx context.Context) {
	tx, err := o.e.client.TransactionRequest(ctx, o.invite, o.e.prebuilt(true))
	o.stopDial()
	if err != nil {
		o.log.Info().Err(err).Str("agent", o.agent).Msg("agent unreachable")
		o.finish()
		o.sink.Post(call.Event{Kind: call.AgentFailed, Leg: o})
		return
	}
	o.mu.Lock()
	o.tx = tx
	abandoned := o.cancelled && !o.provisional
	o.mu.Unlock()
	if abandoned {
		tx.Terminate()
	}
	o.run(tx)
}

// run follows the INVITE transaction to its end.
func (o *outbound) run(tx sipmsg.ClientTransaction) {
	for {
		select {
		case res := <-tx.Responses():
			switch {
			case res.StatusCode < 200:
				if o.onProvisional(res) {
					o.sink.Post(call.Event{Kind: call.AgentRinging, Leg: o})
				}
			case res.StatusCode < 300:
				o.onAnswer(tx, res)
				return
			default:
				o.log.Debug().Str("agent", o.agent).Int("code", res.StatusCode).Msg("agent leg failed")
				o.finish()
				o.sink.Post(call.Event{Kind: call.AgentFailed, Leg: o, Code: res.StatusCode})
				return
			}
		case <-tx.Done():
			o.log.Debug().Str("agent", o.agent).AnErr("error", tx.Err()).Msg("agent leg transaction ended")
			o.finish()
			o.sink.Post(call.Event{Kind: call.AgentFailed, Leg: o})
			return
		}
	}
}

// onProvisional records a 1xx; it reports whether the agent rings.
func (o *outbound) onProvisional(res *sipmsg.Response) bool {
	o.mu.Lock()
	first := !o.provisional
	o.provisional = true
	cancel := o.cancelled && first
	o.mu.Unlock()
	if cancel {
		o.sendCancel()
	}
	return res.StatusCode == 180 || res.StatusCode == 183
}

func (o *outbound) onAnswer(tx sipmsg.ClientTransaction, res *sipmsg.Response) {
	o.mu.Lock()
	o.ok = res
	o.answered = true
	cancelled := o.cancelled
	o.mu.Unlock()

	if offer, err := media.ParseSDP(res.Body()); err == nil {
		o.ep.SetRemote(offer.Addr)
		if offer.TelephoneEventOK {
			o.tePT = offer.TelephoneEvent
		}
	} else {
		o.log.Warn().Err(err).Str("agent", o.agent).Msg("agent's answer has no usable SDP")
	}
	ack := o.inDialogRequest(sipmsg.ACK, 1)
	// The transaction outlives the call by 32 s; its hook holds the ACK,
	// not the leg.
	e := o.e
	tx.OnRetransmission(func(r *sipmsg.Response) {
		if r.StatusCode/100 == 2 {
			_ = e.client.WriteRequest(ack.Clone(), e.prebuilt(true))
		}
	})
	if err := o.e.client.WriteRequest(ack.Clone(), o.e.prebuilt(true)); err != nil {
		o.log.Warn().Err(err).Msg("sending ACK to the agent failed")
	}
	if cancelled {
		// The agent answered as the call gave up on it: end what it began.
		o.Hangup()
		return
	}
	o.sink.Post(call.Event{Kind: call.AgentAnswered, Leg: o})
}

// inDialogRequest builds a request within the dialog the 200 OK made.
func (o *outbound) inDialogRequest(method sipmsg.RequestMethod, seq uint32) *sipmsg.Request {
	target := o.invite.Recipient
	if c := o.ok.Contact(); c != nil {
		target = c.Address
	}
	req := sipmsg.NewRequest(method, target)
	// The route set of a UAC is the Record-Route of the 2xx, reversed.
	rrs := o.ok.GetHeaders("Record-Route")
	for _, h := range slices.Backward(rrs) {
		if rr, ok := h.(*sipmsg.RecordRouteHeader); ok {
			req.AppendHeader(&sipmsg.RouteHeader{Address: rr.Address})
		}
	}
	from := *o.invite.From()
	req.AppendHeader(&from)
	if to := o.ok.To(); to != nil {
		t := *to
		req.AppendHeader(&t)
	}
	cid := sipmsg.CallIDHeader(o.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: seq, MethodName: method})
	mf := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.SetTransport(o.invite.Transport())
	if len(rrs) == 0 && o.flow != "" {
		// A phone reached on its registration's connection stays
		// reached on it.
		req.SetDestination(o.flow)
	}
	return req
}

// Cancel stops ringing. A CANCEL may only follow a provisional response
// (RFC 3261 9.1); a phone that sent none is given up without one, and its
// INVITE is no longer retransmitted: Timer A would go on for the 32 s of
// Timer B, and a phone that came back meanwhile would ring for a call that
// has moved on.
func (o *outbound) Cancel() {
	o.mu.Lock()
	if o.answered {
		o.mu.Unlock()
		o.Hangup()
		return
	}
	if o.cancelled || o.ended {
		o.mu.Unlock()
		return
	}
	o.cancelled = true
	provisional, tx := o.provisional, o.tx
	o.mu.Unlock()
	if provisional {
		o.sendCancel()
		return
	}
	o.stopDial()
	if tx != nil {
		tx.Terminate()
	}
}

func (o *outbound) sendCancel() {
	cancel := sipmsg.NewRequest(sipmsg.CANCEL, o.invite.Recipient)
	// Same Via (branch), From, To, Call-ID and CSeq number as the INVITE.
	if via := o.invite.Via(); via != nil {
		cancel.AppendHeader(via.Clone())
	}
	for _, name := range []string{"Route", "From", "To", "Call-ID"} {
		sipmsg.CopyHeaders(name, o.invite, cancel)
	}
	cancel.AppendHeader(&sipmsg.CSeqHeader{SeqNo: o.invite.CSeq().SeqNo, MethodName: sipmsg.CANCEL})
	mf := sipmsg.MaxForwardsHeader(70)
	cancel.AppendHeader(&mf)
	cancel.SetTransport(o.invite.Transport())
	cancel.SetDestination(o.invite.Destination())
	o.e.sendInDialog(cancel, o.log)
}

// Hangup sends BYE to the agent.
func (o *outbound) Hangup() {
	o.mu.Lock()
	if o.ended || !o.answered {
		o.mu.Unlock()
		return
	}
	o.ended = true
	o.mu.Unlock()
	o.e.sendInDialog(o.inDialogRequest(sipmsg.BYE, 2), o.log)
}

// byeReceived: the agent hung up.
func (o *outbound) byeReceived() {
	o.mu.Lock()
	o.ended = true
	o.mu.Unlock()
	o.sink.Post(call.Event{Kind: call.AgentHungUp, Leg: o})
}

func (o *outbound) finish() {
	o.mu.Lock()
	o.ended = true
	o.mu.Unlock()
	o.e.dialogs.CompareAndDelete(o.callID, o)
}

// close frees the leg's media and dialog once its call has ended.
func (o *outbound) close() {
	o.closeOnce.Do(func() {
		o.e.dialogs.CompareAndDelete(o.callID, o)
		o.mu.Lock()
		neverHeard := !o.answered && !o.ended && !o.provisional
		if neverHeard {
			// Nothing to cancel: stop the timers, or the connect.
			o.cancelled = true
			if o.tx != nil {
				o.tx.Terminate()
			}
		}
		o.mu.Unlock()
		if neverHeard {
			o.stopDial()
		}
		_ = o.ep.Close()
	})
}

// prebuilt is the request option for requests the edge built whole: it
// adds the edge's Via when asked and sends UDP from the listening socket,
// so the phone's replies and requests come back to the edge's port.
func (e *Edge) prebuilt(addVia bool) sipgo.ClientRequestOption {
	return func(_ *sipgo.Client, r *sipmsg.Request) error {
		network := sipmsg.NetworkToLower(r.Transport())
		ap, listening := e.ListenAddr(network)
		if addVia {
			via := &sipmsg.ViaHeader{
				ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: sipmsg.NetworkToUpper(network),
				Host:   e.settings.Load().cfg.SIP.Advertise,
				Params: sipmsg.HeaderParams{{K: "branch", V: sipmsg.GenerateBranchN(16)}, {K: "rport"}},
			}
			if listening {
				via.Port = int(ap.Port())
			}
			r.PrependHeader(via)
		}
		if network == "udp" && listening {
			r.Laddr = sipmsg.Addr{IP: net.IP(ap.Addr().AsSlice()), Port: int(ap.Port())}
		}
		return nil
	}
}

// newCallID makes the Call-ID of an agent leg: random, so nothing of the
// carrier's Call-ID reaches the agent.
func newCallID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sdpSessionID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 2
}
