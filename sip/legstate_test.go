package sip

import (
	"strings"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
)

const legInvite = "INVITE sip:15550100001@192.0.2.1:5060 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKproxy;received=198.51.100.7\r\n" +
	"Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKorigin\r\n" +
	"Record-Route: <sip:198.51.100.7;lr>\r\n" +
	"From: \"Jane Caller\" <sip:+15551234567@198.51.100.7>;tag=carrier1\r\n" +
	"To: <sip:15550100001@192.0.2.1>\r\n" +
	"Call-ID: leg-state-1@198.51.100.7\r\n" +
	"CSeq: 7 INVITE\r\n" +
	"Contact: <sip:+15551234567@198.51.100.7:5060>\r\n" +
	"Max-Forwards: 69\r\n" +
	"Content-Type: application/sdp\r\n" +
	"Content-Length: 0\r\n\r\n"

func parseInvite(t *testing.T, raw string) *sipmsg.Request {
	t.Helper()
	msg, err := sipmsg.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	req := msg.(*sipmsg.Request)
	req.SetTransport("UDP")
	req.SetSource("198.51.100.7:5060")
	return req
}

// TestLegStateRoundTrip: what the journal keeps of a carrier leg gives
// back an INVITE that a 500 and a BYE can be built from, as for the
// live call.
func TestLegStateRoundTrip(t *testing.T) {
	invite := parseInvite(t, legInvite)
	state := legState(invite, "edgetag")
	if strings.Contains(state, "application/sdp") || strings.Contains(state, "Max-Forwards") {
		t.Errorf("leg state keeps more than the dialog needs:\n%s", state)
	}
	got, tag, err := parseLegState(state)
	if err != nil {
		t.Fatal(err)
	}
	if tag != "edgetag" || got.Transport() != "UDP" || got.Source() != "198.51.100.7:5060" {
		t.Errorf("tag %q transport %q source %q", tag, got.Transport(), got.Source())
	}
	if n := len(got.GetHeaders("Via")); n != 2 {
		t.Errorf("%d Via headers, want 2: a response goes back through every proxy", n)
	}

	res := sipmsg.NewResponseFromRequest(got, 500, "Server Internal Error", nil)
	if res.Via().Params.GetOr("branch", "") != "z9hG4bKproxy" || res.CSeq().SeqNo != 7 {
		t.Errorf("the 500 does not match the INVITE's transaction:\n%s", res)
	}

	live := carrierBye(invite, "edgetag")
	again := carrierBye(got, tag)
	for _, name := range []string{"From", "To", "Call-ID", "Route", "CSeq"} {
		if a, b := headerString(live, name), headerString(again, name); a != b || a == "" {
			t.Errorf("%s of the BYE after a restart %q, of the live call's %q", name, b, a)
		}
	}
	if again.Recipient.String() != live.Recipient.String() || again.Recipient.Host != "198.51.100.7" {
		t.Errorf("BYE Request-URI %s, want the carrier's Contact", again.Recipient.String())
	}
	if from := again.From(); from == nil || from.Params.GetOr("tag", "") != "edgetag" {
		t.Errorf("BYE From %v, want the edge's tag", again.From())
	}
}

func headerString(r *sipmsg.Request, name string) string {
	var parts []string
	for _, h := range r.GetHeaders(name) {
		parts = append(parts, h.Value())
	}
	return strings.Join(parts, ", ")
}

func TestLegStateRefusesJunk(t *testing.T) {
	valid := legState(parseInvite(t, legInvite), "t")
	for name, s := range map[string]string{
		"empty":         "",
		"other version": strings.Replace(valid, legStateVersion, "callsign-leg/9", 1),
		"short line":    "callsign-leg/1 UDP\r\n" + strings.SplitN(valid, "\r\n", 2)[1],
		"no Call-ID":    strings.Replace(valid, "Call-ID: leg-state-1@198.51.100.7\r\n", "", 1),
		"not an INVITE": strings.Replace(valid, "INVITE sip:", "OPTIONS sip:", 1),
		"torn":          valid[:len(valid)/2],
	} {
		if _, _, err := parseLegState(s); err == nil {
			t.Errorf("%s: parsed, want an error", name)
		}
	}
}

// TestAgentLegStateRoundTrip: an answered agent leg's state gives back the
// BYE the live leg would send.
func TestAgentLegStateRoundTrip(t *testing.T) {
	inv, err := sipmsg.ParseMessage([]byte("INVITE sip:carol@10.0.0.7:5062 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKedge\r\n" +
		"From: \"Jane Caller\" <sip:+15551234567@192.0.2.1>;tag=edgeagent\r\n" +
		"To: <sip:carol@10.0.0.7:5062>\r\n" +
		"Call-ID: agent-leg-1\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Content-Length: 0\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := sipmsg.ParseMessage([]byte("SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKedge\r\n" +
		"From: \"Jane Caller\" <sip:+15551234567@192.0.2.1>;tag=edgeagent\r\n" +
		"To: <sip:carol@10.0.0.7:5062>;tag=phone9\r\n" +
		"Call-ID: agent-leg-1\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:carol@10.0.0.7:5062;transport=udp>\r\n" +
		"Content-Length: 0\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	invite := inv.(*sipmsg.Request)
	invite.SetTransport("UDP")
	for _, flow := range []string{"", "10.0.0.7:40123"} {
		o := &outbound{invite: invite, ok: ok.(*sipmsg.Response), callID: "agent-leg-1", flow: flow}
		live := o.inDialogRequest(sipmsg.BYE, 2)
		bye, err := parseAgentLegState(o.LegState())
		if err != nil {
			t.Fatalf("flow %q: %v\n%s", flow, err, o.LegState())
		}
		for _, name := range []string{"From", "To", "Call-ID", "CSeq"} {
			if a, b := headerString(live, name), headerString(bye, name); a != b || a == "" {
				t.Errorf("flow %q: %s after a restart %q, live %q", flow, name, b, a)
			}
		}
		if bye.Recipient.String() != "sip:carol@10.0.0.7:5062;transport=udp" || bye.Destination() != live.Destination() {
			t.Errorf("flow %q: BYE to %s via %s, want %s via %s", flow, bye.Recipient.String(), bye.Destination(), live.Recipient.String(), live.Destination())
		}
		if bye.Via() != nil {
			t.Errorf("flow %q: the kept BYE has a Via; sending it adds one", flow)
		}
	}
	if _, err := parseAgentLegState("callsign-agent-leg/1 UDP -\r\nINVITE sip:x@y SIP/2.0\r\n\r\n"); err == nil {
		t.Error("an INVITE parsed as an agent leg's BYE")
	}
}
