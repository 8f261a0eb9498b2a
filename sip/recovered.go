package sip

import (
	"time"

	"github.com/callsign/callsign/call"
	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// RecoveredKeep is how long after a start the edge still knows the
// carrier legs of the calls an earlier run left up. Carriers send what
// they have for such a call soon after the edge went: retransmissions
// within seconds, the BYE of a caller who hears silence within a minute
// or two, a session refresh by its interval. Later requests get the 481
// of any unknown dialog.
const RecoveredKeep = 5 * time.Minute

// recoveredCalls are the carrier legs of calls an earlier run of the edge
// left up, which its journal ended at this start.
type recoveredCalls struct {
	byCallID map[string]string // SIP Call-ID → the call's call_id
	legs     map[string]string // call_id → the carrier leg's state (legState)
	// agentLegs: call_id → the answered agent leg's state (LegState)
	agentLegs map[string]string
	until     time.Time
}

// Recovered tells the edge the calls its journal ended at this start, so
// that it answers what their carriers still send for them (see
// answerRecovered) for keep. Call it before Start.
func (e *Edge) Recovered(recs []call.Record, keep time.Duration) {
	if len(recs) == 0 {
		return
	}
	r := &recoveredCalls{byCallID: make(map[string]string, len(recs)), legs: map[string]string{}, agentLegs: map[string]string{}, until: e.opts.Clock.Now().Add(keep)}
	for _, rec := range recs {
		if rec.SIPCallID != "" {
			r.byCallID[rec.SIPCallID] = rec.ID
		}
		if rec.Leg != "" {
			r.legs[rec.ID] = rec.Leg
		}
		if rec.AgentLeg != "" {
			r.agentLegs[rec.ID] = rec.AgentLeg
			// The agent's phone may hang up first: its BYE gets 200 too.
			if bye, err := parseAgentLegState(rec.AgentLeg); err == nil {
				r.byCallID[callID(bye)] = rec.ID
			}
		}
	}
	e.recovered.Store(r)
}

// recoveredCall is the call_id of the recovered call whose carrier leg
// has the SIP Call-ID sipCallID.
func (e *Edge) recoveredCall(sipCallID string) (string, bool) {
	r := e.recovered.Load()
	if r == nil {
		return "", false
	}
	if !e.opts.Clock.Now().Before(r.until) {
		e.recovered.CompareAndSwap(r, nil)
		return "", false
	}
	id, ok := r.byCallID[sipCallID]
	return id, ok
}

// afterRestart puts answerRecovered in front of a handler: requests of a
// recovered call's carrier leg get their answer there, the rest go on.
func (e *Edge) afterRestart(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if id, ok := e.recoveredCall(callID(req)); ok && e.answerRecovered(req, tx, id) {
			return
		}
		h(req, tx)
	}
}

// answerRecovered answers a request of a call that ended when the edge
// stopped, and says whether it did:
//
//   - BYE gets 200: the carrier wants the call over, and it is. A 481
//     would be as true, but some carriers log it as a failure or retry.
//   - ACK (of a 200 OK sent before the stop) is absorbed.
//   - The INVITE that started the call, sent again, gets 500 with a
//     Warning and never starts a second call: the edge no longer has what
//     the first one was (its media port, its agent). 500 rather than 480
//     or 486, which tell the carrier that the number cannot take the call
//     and make it give up on the caller, or 503, which carriers take as
//     the whole edge being down: 500 says this request failed, and a
//     carrier with a second route may try it there.
//   - Any other request within the dialog (re-INVITE, INFO, UPDATE, ...)
//     gets 481, as the dialog is gone; carriers end the call on it.
//   - CANCEL gets 481 too: the INVITE transaction it would cancel died
//     with the edge (RFC 3261 9.2).
//
// Out-of-dialog requests of other methods that reuse the Call-ID are left
// to the usual handlers.
func (e *Edge) answerRecovered(req *sipmsg.Request, tx sipmsg.ServerTransaction, id string) bool {
	log := e.log.With().Str("call_id", id).Str("sip_call_id", callID(req)).Str("method", string(req.Method)).Logger()
	inDialog := false
	if to := req.To(); to != nil {
		inDialog = to.Params.Has("tag")
	}
	switch {
	case req.IsAck():
		log.Debug().Msg("ACK of a call ended by the edge's stop absorbed")
	case req.Method == sipmsg.BYE:
		log.Info().Msg("BYE of a call ended by the edge's stop: 200, it is over")
		e.respond(tx, req, 200, "OK")
	case req.IsCancel():
		log.Info().Msg("CANCEL of a call ended by the edge's stop: 481, its INVITE is gone")
		e.respond(tx, req, 481, "Call/Transaction Does Not Exist")
	case req.IsInvite() && !inDialog:
		log.Warn().Msg("INVITE of a call ended by the edge's stop sent again: 500, not a second call")
		res := sipmsg.NewResponseFromRequest(req, 500, "Server Internal Error", nil)
		if to := res.To(); to != nil {
			to.Params = to.Params.Add("tag", sipmsg.GenerateTagN(16))
		}
		res.AppendHeader(warning("the call ended when the edge restarted"))
		e.send(tx, res)
	case inDialog:
		log.Info().Msg("request within a call ended by the edge's stop: 481")
		e.respond(tx, req, 481, "Call/Transaction Does Not Exist")
	default:
		return false
	}
	return true
}
