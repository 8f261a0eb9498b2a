package sip

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// A carrier leg's state travels in call.Record.Leg, through the call
// journal, so that an edge killed with the call up can end the leg at its
// next start: without that the caller hears silence until the carrier
// gives up on the call, minutes later for many. It is text only this
// package reads: a first line with the version, the transport, the
// address the INVITE came from and the edge's tag, then the INVITE's
// request line and the headers that define its transaction and dialog.
const legStateVersion = "callsign-leg/1"

// legHeaders are what answering the INVITE and sending a BYE within its
// dialog take (RFC 3261 8.2.6, 12.1.1).
var legHeaders = []string{"Via", "From", "To", "Call-ID", "CSeq", "Contact", "Record-Route"}

// legState is the state of the carrier leg begun by invite, which the edge
// answers with localTag.
func legState(invite *sipmsg.Request, localTag string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s\r\n", legStateVersion, invite.Transport(), invite.Source(), localTag)
	invite.StartLineWrite(&b)
	b.WriteString("\r\n")
	for _, name := range legHeaders {
		for _, h := range invite.GetHeaders(name) {
			h.StringWrite(&b)
			b.WriteString("\r\n")
		}
	}
	return b.String()
}

// parseLegState reads legState's text back: the INVITE (with its transport
// and source set) and the edge's tag.
func parseLegState(s string) (*sipmsg.Request, string, error) {
	first, rest, ok := strings.Cut(s, "\r\n")
	if !ok {
		return nil, "", errors.New("leg state: no header line")
	}
	f := strings.Fields(first)
	if len(f) != 4 || f[0] != legStateVersion {
		return nil, "", fmt.Errorf("leg state: unknown header line %q", first)
	}
	msg, err := sipmsg.ParseMessage([]byte(rest + "Content-Length: 0\r\n\r\n"))
	if err != nil {
		return nil, "", fmt.Errorf("leg state: %w", err)
	}
	invite, ok := msg.(*sipmsg.Request)
	if !ok || !invite.IsInvite() || invite.Via() == nil || invite.From() == nil || invite.To() == nil || invite.CallID() == nil || invite.CSeq() == nil {
		return nil, "", errors.New("leg state: not a whole INVITE")
	}
	invite.SetTransport(f[1])
	invite.SetSource(f[2])
	return invite, f[3], nil
}

// endRecoveredLegs tells the carriers of the calls an earlier run left up
// that they are over, once the listeners are bound. The edge does not know
// whether it had answered a call (a flow with prompts answers before any
// agent does), so each leg gets both, in this order: a final response to
// its INVITE, which ends a call still ringing (and its early dialog) and
// which a carrier drops as stray once it had a 200; then a BYE, which ends
// an answered call and which a carrier answers 481 for a dialog the 500
// ended.
func (e *Edge) endRecoveredLegs() {
	r := e.recovered.Load()
	if r == nil || len(r.legs)+len(r.agentLegs) == 0 {
		return
	}
	e.waitUDPServed()
	for id, state := range r.agentLegs {
		log := e.log.With().Str("call_id", id).Logger()
		bye, err := parseAgentLegState(state)
		if err != nil {
			log.Warn().Err(err).Msg("cannot end the agent leg of a call the edge's last stop left up")
			continue
		}
		log = log.With().Str("agent_sip_call_id", callID(bye)).Logger()
		log.Info().Msg("agent leg of a call the edge's last stop left up ended: BYE")
		e.sendInDialog(bye, &log)
	}
	for id, state := range r.legs {
		log := e.log.With().Str("call_id", id).Logger()
		invite, tag, err := parseLegState(state)
		if err != nil {
			log.Warn().Err(err).Msg("cannot end the carrier leg of a call the edge's last stop left up")
			continue
		}
		log = log.With().Str("sip_call_id", callID(invite)).Logger()
		stream := isStream(invite.Transport())

		if !stream {
			// Over TCP or TLS the response had only the connection the
			// INVITE came on, gone with the edge.
			e.answerLeftUp(invite, tag, &log)
		}
		bye := carrierBye(invite, tag)
		if stream {
			// The connection died with the edge: a new one goes to the
			// carrier's Contact (or its route).
			bye.SetDestination("")
		}
		log.Info().Msg("carrier leg of a call the edge's last stop left up ended: 500 to its INVITE, BYE to its dialog")
		e.sendInDialog(bye, &log)
	}
}

// answerLeftUp sends the 500 of endRecoveredLegs over UDP, from the
// edge's own listener to where the INVITE came from (RFC 3261 18.2.2 with
// rport), written directly: sipgo sends responses only to peers it has
// heard from since the start.
func (e *Edge) answerLeftUp(invite *sipmsg.Request, tag string, log *zerolog.Logger) {
	if len(e.udpConns) == 0 {
		return
	}
	to, err := net.ResolveUDPAddr("udp", invite.Source())
	if err != nil {
		log.Warn().Err(err).Msg("final response to a left-up call's INVITE not sent")
		return
	}
	res := sipmsg.NewResponseFromRequest(invite, 500, "Server Internal Error", nil)
	if t := res.To(); t != nil {
		// The tag of the edge's 180, not the fresh one sipgo gives.
		t.Params = t.Params.Add("tag", tag)
	}
	res.AppendHeader(warning("the call ended when the edge restarted"))
	if _, err := e.udpConns[0].WriteTo([]byte(res.String()), to); err != nil {
		log.Warn().Err(err).Msg("final response to a left-up call's INVITE not sent")
		return
	}
	e.countResponse(500)
}

// waitUDPServed returns once sipgo sends through the edge's UDP listeners
// (it takes them up on the goroutines Start began), or after a bound:
// until then a request would make sipgo bind the listener's port again,
// and fail.
func (e *Edge) waitUDPServed() {
	tl := e.ua.TransportLayer()
	deadline := time.Now().Add(2 * time.Second)
	for _, pc := range e.udpConns {
		for {
			c, err := tl.GetConnection("udp", pc.LocalAddr().String())
			if err == nil {
				_, _ = c.TryClose() // GetConnection counted a use
				break
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// agentLegStateVersion heads an answered agent leg's state: the transport
// and destination ("-" for the Request-URI's), then the BYE that ends the
// leg, whole but for its Via, which sending it adds.
const agentLegStateVersion = "callsign-agent-leg/1"

// LegState is what ending the answered leg after a restart takes
// (call.LegStater): an agent's phone left in a call nobody ends stays
// busy, and desk phones rarely time out on silence.
func (o *outbound) LegState() string {
	bye := o.inDialogRequest(sipmsg.BYE, 2)
	dest := o.flow
	if dest == "" {
		dest = "-"
	}
	return fmt.Sprintf("%s %s %s\r\n%s", agentLegStateVersion, bye.Transport(), dest, bye.String())
}

// parseAgentLegState reads LegState's text back into the BYE to send.
func parseAgentLegState(s string) (*sipmsg.Request, error) {
	first, rest, ok := strings.Cut(s, "\r\n")
	if !ok {
		return nil, errors.New("agent leg state: no header line")
	}
	f := strings.Fields(first)
	if len(f) != 3 || f[0] != agentLegStateVersion {
		return nil, fmt.Errorf("agent leg state: unknown header line %q", first)
	}
	msg, err := sipmsg.ParseMessage([]byte(rest))
	if err != nil {
		return nil, fmt.Errorf("agent leg state: %w", err)
	}
	bye, ok := msg.(*sipmsg.Request)
	if !ok || bye.Method != sipmsg.BYE || bye.From() == nil || bye.To() == nil || bye.CallID() == nil || bye.CSeq() == nil {
		return nil, errors.New("agent leg state: not a whole BYE")
	}
	bye.SetTransport(f[1])
	if f[2] != "-" {
		bye.SetDestination(f[2])
	}
	return bye, nil
}

func isStream(transport string) bool {
	t := sipmsg.NetworkToLower(transport)
	return t == "tcp" || t == "tls"
}
