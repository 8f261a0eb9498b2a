package sip

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/routing"
	sipmsg "github.com/emiago/sipgo/sip"
)

// codecs the edge relays, in the order it prefers them when it offers.
var supportedCodecs = []string{"PCMU", "PCMA"}

const allowMethods = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO"

// onInvite admits a carrier's INVITE in the order of the admission chain:
// sanity (done by readFilter and sipgo), Max-Forwards, in-dialog, trunk
// ACL, drain and limits, tracking number, codecs. Only then is a call made.
func (e *Edge) onInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if maxForwardsExhausted(req) {
		e.respond(tx, req, 483, "Too Many Hops")
		return
	}
	if to := req.To(); to != nil && to.Params.Has("tag") {
		e.reinvite(req, tx)
		return
	}
	s := e.settings.Load()
	src, _ := sourceAddr(req)
	trunk := s.trunkFor(src)
	if trunk == nil {
		if log, suppressed := e.strangers.note(src); log {
			ev := e.log.Info().Str("source", req.Source()).Str("sip_call_id", callID(req))
			if suppressed > 0 {
				ev = ev.Int("suppressed", suppressed)
			}
			ev.Msg("INVITE from outside every trunk refused")
		}
		e.respond(tx, req, 403, "Forbidden")
		return
	}
	number, ok := config.NormalizeDialed(req.Recipient.User)
	var attr routing.Attribution
	if ok {
		attr, ok = e.opts.Router.Attribute(number, e.opts.Clock.Now())
	}
	if !ok || attr.Flow == nil {
		e.log.Info().Str("number", req.Recipient.User).Str("trunk", trunk.Name).Str("sip_call_id", callID(req)).Msg("INVITE for an unknown number refused")
		e.respond(tx, req, 404, "Not Found")
		return
	}
	offer, err := media.ParseSDP(req.Body())
	if err != nil {
		e.log.Info().Err(err).Str("sip_call_id", callID(req)).Msg("INVITE with an unusable SDP offer refused")
		e.respond(tx, req, 488, "Not Acceptable Here", warning(err.Error()))
		return
	}
	codec, err := media.Negotiate(offer, supportedCodecs)
	if err != nil {
		e.log.Info().Str("sip_call_id", callID(req)).Msg("INVITE with no codec in common refused")
		e.respond(tx, req, 488, "Not Acceptable Here", warning("no common codec; the edge relays PCMU and PCMA"))
		return
	}
	if e.draining.Load() {
		e.respond(tx, req, 503, "Service Unavailable", retryAfter(30))
		return
	}
	load := e.trunkLoadFor(trunk.Name)
	if reason := load.admit(trunk, e.opts.Clock.Now()); reason != "" {
		e.log.Warn().Str("trunk", trunk.Name).Str("reason", reason).Str("sip_call_id", callID(req)).Msg("INVITE over trunk limits refused")
		e.respond(tx, req, 503, "Service Unavailable", retryAfter(1))
		return
	}
	defer load.release()

	e.respond(tx, req, 100, "Trying")
	// Counted from here rather than once the call runs: a drain must not
	// see the edge idle while a call still waits on its first-call lookup.
	e.calls.Add(1)
	defer e.calls.Done()
	caller, callerName := callerOf(req)
	rec := call.Record{
		ID:             e.opts.NewID(),
		SIPCallID:      callID(req),
		Caller:         caller,
		CallerName:     callerName,
		TrackingNumber: attr.Number,
		Source:         attr.Source,
		Medium:         attr.Medium,
		Campaign:       attr.Campaign,
		Keyword:        attr.Keyword,
		Pool:           attr.Pool,
		Visitor:        visitorOf(attr.Visit),
	}
	if e.opts.FirstCall != nil {
		// Only after the 100 Trying: while the lookup runs, the carrier's
		// retransmissions of the INVITE get the 100 again from the
		// transaction, and no other call waits on this goroutine.
		rec.FirstCall = e.opts.FirstCall(caller, e.opts.Clock.Now())
	}
	in, err := e.newInbound(req, tx, offer, codec)
	if err != nil {
		e.log.Error().Err(err).Str("call_id", rec.ID).Msg("no media port for the call")
		e.respond(tx, req, 503, "Service Unavailable", retryAfter(5))
		return
	}
	rec.Leg = legState(req, in.localTag)
	c := call.New(&e.deps, rec, attr.Flow, attr.Record)
	in.call = c
	in.log = c.Log()
	in.listen()
	e.dialogs.Store(in.callID, in)
	e.active.Add(1)
	defer func() {
		in.close()
		e.active.Add(-1)
	}()
	// sipgo keeps a transaction, and so this hook, for 32 s after the call;
	// the hook must not keep the whole call alive that long.
	ref := &callRef{}
	ref.c.Store(c)
	defer ref.c.Store(nil)
	if !tx.OnCancel(ref.hungUp) {
		// The transaction ended between admission and now: the caller left.
		c.Post(call.Event{Kind: call.CallerHungUp})
	}
	c.Run(in)
}

// callRef reaches a call while it runs, and nothing once it has ended.
type callRef struct{ c atomic.Pointer[call.Call] }

func (r *callRef) hungUp(*sipmsg.Request) {
	if c := r.c.Load(); c != nil {
		c.Post(call.Event{Kind: call.CallerHungUp})
	}
}

// reinvite answers an INVITE within a dialog. Media does not move in this
// version: a known dialog gets its current SDP again, so session refreshes
// and hold requests from carriers keep the call up.
func (e *Edge) reinvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	d, ok := e.dialogs.Load(callID(req))
	if !ok {
		e.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	var sdp []byte
	switch d := d.(type) {
	case *inbound:
		sdp = d.localSDP
	case *outbound:
		sdp = d.localSDP
	}
	res := sipmsg.NewSDPResponseFromRequest(req, sdp)
	res.AppendHeader(e.contact(req.Transport()))
	e.send(tx, res)
}

func (e *Edge) onAck(req *sipmsg.Request, _ sipmsg.ServerTransaction) {
	if d, ok := e.dialogs.Load(callID(req)); ok {
		if in, ok := d.(*inbound); ok {
			in.acked()
		}
	}
}

func (e *Edge) onBye(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	d, ok := e.dialogs.Load(callID(req))
	if !ok {
		e.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	e.respond(tx, req, 200, "OK")
	switch d := d.(type) {
	case *inbound:
		d.byeReceived()
	case *outbound:
		d.byeReceived()
	}
}

// onCancel sees only CANCELs that matched no INVITE transaction; sipgo
// answers the others and reports them through the transaction.
func (e *Edge) onCancel(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	e.respond(tx, req, 481, "Call/Transaction Does Not Exist")
}

func (e *Edge) onOptions(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if maxForwardsExhausted(req) {
		e.respond(tx, req, 483, "Too Many Hops")
		return
	}
	e.respond(tx, req, 200, "OK",
		sipmsg.NewHeader("Allow", allowMethods),
		sipmsg.NewHeader("Accept", "application/sdp"))
}

// onOther answers the methods the edge has no handler for.
// onInfo takes INFO within a dialog: keys from the caller; anything else,
// such as an agent phone's INFO, is acknowledged and not acted on.
func (e *Edge) onInfo(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	d, ok := e.dialogs.Load(callID(req))
	if !ok {
		e.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	if in, ok := d.(*inbound); ok {
		in.info(req, tx)
		return
	}
	e.respond(tx, req, 200, "OK")
}

func (e *Edge) onOther(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if req.IsAck() {
		return
	}
	if maxForwardsExhausted(req) {
		e.respond(tx, req, 483, "Too Many Hops")
		return
	}
	if to := req.To(); to != nil && to.Params.Has("tag") {
		if _, ok := e.dialogs.Load(callID(req)); !ok {
			e.respond(tx, req, 481, "Call/Transaction Does Not Exist")
			return
		}
		if req.Method == sipmsg.INFO {
			e.onInfo(req, tx)
			return
		}
	}
	if !knownMethod(req.Method) {
		// 405 says the method is understood (RFC 3261 21.5.2); for the
		// rest it is 501.
		e.respond(tx, req, 501, "Not Implemented", sipmsg.NewHeader("Allow", allowMethods))
		return
	}
	e.respond(tx, req, 405, "Method Not Allowed", sipmsg.NewHeader("Allow", allowMethods))
}

// knownMethod: the methods of RFC 3261 and of the extensions carriers and
// phones commonly send.
func knownMethod(m sipmsg.RequestMethod) bool {
	switch m {
	case sipmsg.INVITE, sipmsg.ACK, sipmsg.CANCEL, sipmsg.BYE, sipmsg.REGISTER, sipmsg.OPTIONS,
		sipmsg.SUBSCRIBE, sipmsg.NOTIFY, sipmsg.REFER, sipmsg.INFO, sipmsg.MESSAGE,
		sipmsg.PRACK, sipmsg.UPDATE, sipmsg.PUBLISH:
		return true
	}
	return false
}

func maxForwardsExhausted(req *sipmsg.Request) bool {
	mf := req.MaxForwards()
	return mf != nil && mf.Val() == 0
}

func callID(req *sipmsg.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func warning(text string) sipmsg.Header {
	return sipmsg.NewHeader("Warning", `399 callsign "`+strings.ReplaceAll(text, `"`, "'")+`"`)
}

// sourceAddr is the IP address a request came from (not what its Via
// claims: the ACL must hold against spoofed headers).
func sourceAddr(req *sipmsg.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// callerOf is the caller's number (E.164 where it can be) and display name.
func callerOf(req *sipmsg.Request) (string, string) {
	from := req.From()
	if from == nil {
		return "anonymous", ""
	}
	user := from.Address.User
	name := strings.TrimSpace(strings.Trim(from.DisplayName, `"`))
	if user == "" || strings.EqualFold(user, "anonymous") || strings.EqualFold(name, "anonymous") {
		return "anonymous", ""
	}
	if n, ok := config.NormalizeDialed(user); ok {
		return n, name
	}
	return user, name
}

func (s *settings) trunkFor(ip netip.Addr) *config.Trunk {
	if !ip.IsValid() {
		return nil
	}
	for _, t := range s.trunks {
		for _, p := range t.Allow {
			if p.Contains(ip) {
				return t
			}
		}
	}
	return nil
}

// trunkLoad tracks a trunk's concurrent calls and call rate.
type trunkLoad struct {
	mu     sync.Mutex
	active int
	tokens float64
	last   time.Time
}

func (e *Edge) trunkLoadFor(name string) *trunkLoad {
	e.trunkMu.Lock()
	defer e.trunkMu.Unlock()
	l, ok := e.trunkLoad[name]
	if !ok {
		l = &trunkLoad{}
		e.trunkLoad[name] = l
	}
	return l
}

// admit takes a place for a new call, or says which limit it is over. The
// rate is a token bucket holding one second's worth of calls.
func (l *trunkLoad) admit(t *config.Trunk, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.MaxCalls > 0 && l.active >= t.MaxCalls {
		return "max_calls"
	}
	if t.CPS > 0 {
		if l.last.IsZero() {
			l.tokens = float64(t.CPS)
		} else {
			l.tokens = min(float64(t.CPS), l.tokens+now.Sub(l.last).Seconds()*float64(t.CPS))
		}
		l.last = now
		if l.tokens < 1 {
			return "cps"
		}
		l.tokens--
	}
	l.active++
	return ""
}

func (l *trunkLoad) release() {
	l.mu.Lock()
	l.active--
	l.mu.Unlock()
}

// visitorOf is a pool number's visit as the call's record carries it.
func visitorOf(v *routing.Visit) *call.Visitor {
	if v == nil {
		return nil
	}
	return &call.Visitor{
		UTMSource: v.UTMSource, UTMMedium: v.UTMMedium, UTMCampaign: v.UTMCampaign, UTMTerm: v.UTMTerm,
		UTMContent: v.UTMContent, GCLID: v.GCLID, GBRAID: v.GBRAID, WBRAID: v.WBRAID, FBCLID: v.FBCLID,
		MSCLKID: v.MSCLKID, Referrer: v.Referrer, LandingPage: v.LandingPage, FirstSeen: v.FirstSeen,
		// The router hands each call a map of its own.
		ClickIDs: v.ClickIDs,
	}
}
