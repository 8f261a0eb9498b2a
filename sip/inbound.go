package sip

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/media"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// inbound is the carrier's leg of a call: the edge is its UAS.
type inbound struct {
	e         *Edge
	req       *sipmsg.Request
	tx        sipmsg.ServerTransaction
	callID    string
	localTag  string
	ep        *media.Endpoint
	keys      *media.DTMFReceiver // set by listen, before the call runs
	codec     media.Codec
	tePT      uint8 // the caller's telephone-event payload type, 0 if none
	localSDP  []byte
	call      *call.Call
	log       *zerolog.Logger
	ackOnce   sync.Once
	ackCh     chan struct{}
	closeOnce sync.Once
	closed    chan struct{}

	mu       sync.Mutex
	answered bool
	byeSent  bool
	legs     []func() // close every agent leg rung for this call

	// playMu serialises prompts: one plays at a time, and the bridge
	// takes the stream over only once none is playing.
	playMu   sync.Mutex
	stream   *media.RTPStream // nil until the first prompt
	playback *media.Playback
}

func (e *Edge) newInbound(req *sipmsg.Request, tx sipmsg.ServerTransaction, offer *media.Offer, codec media.Codec) (*inbound, error) {
	ep, err := e.opts.Ports.Open()
	if err != nil {
		return nil, err
	}
	ep.SetRemote(offer.Addr)
	in := &inbound{
		e:        e,
		req:      req,
		tx:       tx,
		callID:   callID(req),
		localTag: sipmsg.GenerateTagN(16),
		ep:       ep,
		codec:    codec,
		ackCh:    make(chan struct{}),
		closed:   make(chan struct{}),
	}
	if offer.TelephoneEventOK {
		in.tePT = offer.TelephoneEvent
	}
	in.localSDP = media.BuildSDP(e.mediaAddr(ep), sdpSessionID(), 1, []media.Codec{codec}, in.tePT, 20)
	return in, nil
}

// mediaAddr is the address written in SDP for an endpoint: the advertised
// address with the endpoint's port.
func (e *Edge) mediaAddr(ep *media.Endpoint) netip.AddrPort {
	if ip, err := netip.ParseAddr(e.settings.Load().cfg.SIP.Advertise); err == nil {
		return netip.AddrPortFrom(ip, ep.LocalAddr().Port())
	}
	return ep.LocalAddr()
}

func (in *inbound) response(code int, reason string, body []byte) *sipmsg.Response {
	var res *sipmsg.Response
	if body != nil {
		res = sipmsg.NewSDPResponseFromRequest(in.req, body)
	} else {
		res = sipmsg.NewResponseFromRequest(in.req, code, reason, nil)
	}
	if to := res.To(); to != nil {
		// One tag for every response to the INVITE, and the one the
		// edge's own BYE carries (RFC 3261 8.2.6.2): sipgo gives each
		// response a fresh one.
		to.Params = to.Params.Add("tag", in.localTag)
	}
	if code > 100 && code < 300 {
		res.AppendHeader(in.e.contact(in.req.Transport()))
	}
	return res
}

// listen starts reading the caller's keys from its RTP: RFC 4733 events
// when it offered telephone-event, the tones in its audio otherwise. It
// runs once the leg belongs to a call, which the keys are posted to.
func (in *inbound) listen() {
	r, err := media.NewDTMFReceiver(strings.ToUpper(in.codec.Name), in.tePT, in.digit)
	if err != nil {
		in.log.Warn().Err(err).Msg("keys pressed in the audio cannot be read")
		return
	}
	in.keys = r
	in.ep.SetReceiver(r)
}

// Capture shows tap the caller's RTP while no agent is bridged, e.g. for
// a voicemail, keys still being read. stop returns once tap is not called
// any more.
func (in *inbound) Capture(tap call.Tap) (stop func()) {
	in.ep.SetReceiver(capture{keys: in.keys, tap: tap})
	return func() {
		if in.keys != nil {
			in.ep.SetReceiver(in.keys)
		} else {
			in.ep.SetReceiver(nil)
		}
	}
}

// capture is the receiver of a captured leg: its keys and its tap.
type capture struct {
	keys *media.DTMFReceiver
	tap  call.Tap
}

func (c capture) ReceiveRTP(pkt []byte) {
	if c.keys != nil {
		c.keys.ReceiveRTP(pkt)
	}
	c.tap.Packet(true, pkt)
}

func (in *inbound) digit(d byte, via string) {
	in.e.countKey(via)
	in.call.Post(call.Event{Kind: call.DigitPressed, Digit: d, Via: via})
}

// Play sends a prompt to the caller on the leg's one RTP stream, so that
// prompts and, after them, the agent's voice reach the caller as a single
// continuous stream.
func (in *inbound) Play(p *config.Prompt, tag uint64) func() {
	in.playMu.Lock()
	defer in.playMu.Unlock()
	in.stopPlaybackLocked()
	var prompt *media.Prompt
	if p != nil {
		prompt = p.For(strings.ToUpper(in.codec.Name))
	}
	if prompt == nil {
		in.log.Error().Str("codec", in.codec.Name).Msg("no prompt encoded for the call's codec; going on as if it had played")
		// Posted from elsewhere: the call's goroutine is the one calling.
		go in.call.Post(call.Event{Kind: call.PromptEnded, Tag: tag})
		return func() {}
	}
	if in.stream == nil {
		in.stream = media.NewRTPStream()
	}
	w := &promptWriter{ep: in.ep}
	pb := media.StartPlay(context.Background(), in.stream, prompt, w, nil)
	in.playback = pb
	go func() {
		err := pb.Wait()
		in.e.stats.promptPackets.Add(w.sent)
		if err == nil {
			in.call.Post(call.Event{Kind: call.PromptEnded, Tag: tag})
		} else if !errors.Is(err, media.ErrPlaybackStopped) {
			in.log.Debug().Err(err).Str("prompt", p.Path).Msg("prompt ended early")
		}
	}()
	return func() { _ = pb.Stop() }
}

// promptWriter counts a playback's packets; only its goroutine touches
// sent until the playback has ended.
type promptWriter struct {
	ep   *media.Endpoint
	sent uint64
}

func (w *promptWriter) WriteRTP(pkt []byte) error {
	if err := w.ep.WriteRTP(pkt); err != nil {
		return err
	}
	w.sent++
	return nil
}

// takeStream stops any prompt and hands over the stream the caller has
// heard prompts on (nil if none), for the bridge to continue.
func (in *inbound) takeStream() *media.RTPStream {
	in.playMu.Lock()
	defer in.playMu.Unlock()
	in.stopPlaybackLocked()
	return in.stream
}

func (in *inbound) stopPlaybackLocked() {
	if in.playback != nil {
		_ = in.playback.Stop()
		in.playback = nil
	}
}

// info takes a SIP INFO of the caller's dialog: a key pressed, sent as
// application/dtmf-relay or application/dtmf.
func (in *inbound) info(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	body := req.Body()
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	if len(body) == 0 {
		// An empty INFO is a keep-alive some carriers send.
		in.e.respond(tx, req, 200, "OK")
		return
	}
	d, err := media.ParseDTMFInfo(ct, body)
	switch {
	case errors.Is(err, media.ErrDTMFContentType):
		in.e.respond(tx, req, 415, "Unsupported Media Type", sipmsg.NewHeader("Accept", "application/dtmf-relay, application/dtmf"))
		return
	case err != nil:
		in.log.Info().Err(err).Msg("SIP INFO with a bad DTMF body")
		in.e.respond(tx, req, 400, "Bad DTMF Body")
		return
	}
	in.e.respond(tx, req, 200, "OK")
	in.digit(d, "info")
}

// Ringing sends 180 Ringing.
func (in *inbound) Ringing() {
	in.e.send(in.tx, in.response(180, "Ringing", nil))
}

// Answer sends 200 OK with the edge's SDP and keeps resending it until the
// ACK comes, as RFC 3261 13.3.1.4 makes that the UAS core's job.
func (in *inbound) Answer() error {
	select {
	case <-in.tx.Done():
		return call.ErrCallerGone
	default:
	}
	res := in.response(200, "OK", in.localSDP)
	if err := in.tx.Respond(res); err != nil {
		if errors.Is(in.tx.Err(), sipmsg.ErrTransactionCanceled) {
			return call.ErrCallerGone
		}
		return err
	}
	in.e.countResponse(200)
	in.mu.Lock()
	in.answered = true
	in.mu.Unlock()
	go in.awaitAck(res)
	return nil
}

func (in *inbound) awaitAck(res *sipmsg.Response) {
	reliable := sipmsg.IsReliable(in.req.Transport())
	interval := sipmsg.T1
	resend := time.NewTimer(interval)
	defer resend.Stop()
	giveUp := time.NewTimer(64 * sipmsg.T1)
	defer giveUp.Stop()
	for {
		select {
		case <-in.ackCh:
			return
		case <-in.closed:
			return
		case <-giveUp.C:
			in.log.Warn().Msg("no ACK for the 200 OK, ending the call")
			in.call.Post(call.Event{Kind: call.InboundFailed})
			return
		case <-resend.C:
			if !reliable {
				_ = in.tx.Respond(res)
			}
			interval = min(2*interval, sipmsg.T2)
			resend.Reset(interval)
		}
	}
}

func (in *inbound) acked() {
	in.ackOnce.Do(func() { close(in.ackCh) })
}

// Reject ends the unanswered call with a final response.
func (in *inbound) Reject(code int) {
	in.e.send(in.tx, in.response(code, reasonPhrase(code), nil))
}

// Hangup sends BYE to the carrier.
func (in *inbound) Hangup() {
	in.mu.Lock()
	if in.byeSent {
		in.mu.Unlock()
		return
	}
	in.byeSent = true
	in.mu.Unlock()

	in.e.sendInDialog(carrierBye(in.req, in.localTag), in.log)
}

// carrierBye is the BYE that ends the carrier leg begun by invite, which
// the edge answered with localTag.
func carrierBye(invite *sipmsg.Request, localTag string) *sipmsg.Request {
	target := invite.Recipient
	if c := invite.Contact(); c != nil {
		target = c.Address
	}
	bye := sipmsg.NewRequest(sipmsg.BYE, target)
	// The route set of a UAS is the Record-Route of the INVITE, in order.
	for _, h := range invite.GetHeaders("Record-Route") {
		if rr, ok := h.(*sipmsg.RecordRouteHeader); ok {
			bye.AppendHeader(&sipmsg.RouteHeader{Address: rr.Address})
		}
	}
	if to := invite.To(); to != nil {
		from := to.AsFrom()
		from.Params = from.Params.Clone()
		if !from.Params.Has("tag") {
			from.Params = from.Params.Add("tag", localTag)
		}
		bye.AppendHeader(&from)
	}
	if f := invite.From(); f != nil {
		to := f.AsTo()
		bye.AppendHeader(&to)
	}
	cid := sipmsg.CallIDHeader(callID(invite))
	bye.AppendHeader(&cid)
	bye.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.BYE})
	mf := sipmsg.MaxForwardsHeader(70)
	bye.AppendHeader(&mf)
	bye.SetTransport(invite.Transport())
	if len(invite.GetHeaders("Record-Route")) == 0 {
		// Without proxies between, the carrier is where its INVITE came
		// from; on TCP that also reuses its connection.
		bye.SetDestination(invite.Source())
	}
	return bye
}

// byeReceived: the carrier hung up.
func (in *inbound) byeReceived() {
	in.mu.Lock()
	in.byeSent = true // the dialog is over; never answer it with a BYE
	in.mu.Unlock()
	in.call.Post(call.Event{Kind: call.CallerHungUp})
}

// addLeg makes the call's end free an agent leg, however it ended.
func (in *inbound) addLeg(close func()) {
	in.mu.Lock()
	in.legs = append(in.legs, close)
	in.mu.Unlock()
}

// MediaFormat is the caller's codec and telephone-event payload type (0
// if none), which a softphone leg offers the browser so that audio passes
// without transcoding.
func (in *inbound) MediaFormat() (media.Codec, uint8) { return in.codec, in.tePT }

// close frees what the call held, once it has ended.
func (in *inbound) close() {
	in.closeOnce.Do(func() {
		close(in.closed)
		in.e.dialogs.CompareAndDelete(in.callID, in)
		in.mu.Lock()
		legs := in.legs
		in.mu.Unlock()
		for _, closeLeg := range legs {
			closeLeg()
		}
		in.playMu.Lock()
		in.stopPlaybackLocked()
		in.playMu.Unlock()
		in.ep.SetReceiver(nil)
		_ = in.ep.Close()
	})
}

// sendInDialog sends a request the edge built whole (BYE, CANCEL) and
// reads its final response in the background: nobody waits on it.
func (e *Edge) sendInDialog(req *sipmsg.Request, log *zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 64*sipmsg.T1)
	tx, err := e.client.TransactionRequest(ctx, req, e.prebuilt(req.Method != sipmsg.CANCEL))
	if err != nil {
		cancel()
		log.Warn().Err(err).Str("method", string(req.Method)).Msg("sending request failed")
		return
	}
	go func() {
		defer cancel()
		defer tx.Terminate()
		for {
			select {
			case res := <-tx.Responses():
				if res.IsProvisional() {
					continue
				}
				log.Debug().Int("code", res.StatusCode).Str("method", string(req.Method)).Msg("final response")
				return
			case <-tx.Done():
				return
			case <-ctx.Done():
				return
			}
		}
	}()
}

// reasonPhrase is the reason phrase of a final response the edge sends
// to a caller it could not connect.
func reasonPhrase(code int) string {
	switch code {
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 503:
		return "Service Unavailable"
	}
	return "Server Internal Error"
}
