package sip

import (
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
	sipmsg "github.com/emiago/sipgo/sip"
)

const goodInvite = "INVITE sip:+15550100001@127.0.0.1 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n" +
	"From: <sip:+15551234567@127.0.0.1>;tag=a\r\n" +
	"To: <sip:+15550100001@127.0.0.1>\r\n" +
	"Call-ID: c1@127.0.0.1\r\n" +
	"CSeq: 1 INVITE\r\n" +
	"Max-Forwards: 70\r\n" +
	"Content-Length: 4\r\n" +
	"\r\n" +
	"v=0\n"

func TestCheckDatagram(t *testing.T) {
	replace := func(old, new string) string { return strings.Replace(goodInvite, old, new, 1) }
	cases := []struct {
		name   string
		msg    string
		code   int
		reason string
	}{
		{"valid request", goodInvite, 0, ""},
		{"compact headers", replace("Via:", "v:"), 0, ""},
		{"folded header", replace("Max-Forwards: 70\r\n", "Subject: a\r\n  b\r\nMax-Forwards: 70\r\n"), 0, ""},
		{"response passes", "SIP/2.0 200 OK\r\n\r\n", 0, ""},
		{"no end of headers", strings.TrimSuffix(goodInvite, "\r\nv=0\n"), 400, "Incomplete Message"},
		{"other SIP version", replace("SIP/2.0\r\n", "SIP/7.0\r\n"), 505, "Version Not Supported"},
		{"bad request line", replace("INVITE sip:", "INVITE  sip:"), 400, "Malformed Request-Line"},
		{"bad method", replace("INVITE sip", "INV@TE sip"), 400, "Malformed Method"},
		{"missing Call-ID", replace("Call-ID: c1@127.0.0.1\r\n", ""), 400, "Missing Call-ID"},
		{"missing Via", replace("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n", ""), 400, "Missing Via"},
		{"CSeq method mismatch", replace("CSeq: 1 INVITE", "CSeq: 1 BYE"), 400, "CSeq Method Does Not Match"},
		{"CSeq not a number", replace("CSeq: 1 INVITE", "CSeq: x INVITE"), 400, "Malformed CSeq"},
		{"two CSeq", replace("CSeq: 1 INVITE\r\n", "CSeq: 1 INVITE\r\nCSeq: 2 INVITE\r\n"), 400, "Duplicate CSeq"},
		{"bad Max-Forwards", replace("Max-Forwards: 70", "Max-Forwards: seventy"), 400, "Malformed Max-Forwards"},
		{"Content-Length past the body", replace("Content-Length: 4", "Content-Length: 400"), 400, "Content-Length Exceeds Body"},
		{"header without colon", replace("Max-Forwards: 70", "Max-Forwards 70"), 400, "Malformed Header"},
		{"two Content-Length", replace("Content-Length: 4", "Content-Length: 4\r\nl: 2"), 400, "Duplicate Content-Length"},
		{"tel URI", replace("INVITE sip:+15550100001@127.0.0.1", "INVITE tel:+15550100001"), 0, ""},
		{"unknown scheme", replace("INVITE sip:", "INVITE soap.beep:"), 416, "Unsupported URI Scheme"},
		{"URI in <>", replace("INVITE sip:+15550100001@127.0.0.1", "INVITE <sip:+15550100001@127.0.0.1>"), 400, "Malformed Request-URI"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, reason := checkDatagram([]byte(tc.msg))
			if code != tc.code || reason != tc.reason {
				t.Fatalf("checkDatagram = %d %q, want %d %q", code, reason, tc.code, tc.reason)
			}
		})
	}
}

func TestStatelessResponseEchoesTransactionHeaders(t *testing.T) {
	bad := strings.Replace(goodInvite, "CSeq: 1 INVITE", "CSeq: 1 BYE", 1)
	res := string(statelessResponse(sipmsg.NewParser(), []byte(bad), 400, "CSeq Method Does Not Match"))
	for _, want := range []string{
		"SIP/2.0 400 CSeq Method Does Not Match\r\n",
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n",
		"Call-ID: c1@127.0.0.1\r\n",
		"CSeq: 1 BYE\r\n",
		"From: <sip:+15551234567@127.0.0.1>;tag=a\r\n",
		"Content-Length: 0\r\n\r\n",
	} {
		if !strings.Contains(res, want) {
			t.Errorf("response lacks %q:\n%s", want, res)
		}
	}
	if strings.Contains(res, "Max-Forwards") {
		t.Errorf("response copies headers it should not:\n%s", res)
	}
	noVia := strings.Replace(goodInvite, "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n", "", 1)
	if res := statelessResponse(sipmsg.NewParser(), []byte(noVia), 400, "Missing Via"); res != nil {
		t.Errorf("a request without Via cannot be answered, got:\n%s", res)
	}
}

func TestTrunkLoadLimits(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := &config.Trunk{Name: "carrier", MaxCalls: 2, CPS: 3}
	var l trunkLoad
	if r := l.admit(tr, now); r != "" {
		t.Fatalf("first call refused: %s", r)
	}
	if r := l.admit(tr, now); r != "" {
		t.Fatalf("second call refused: %s", r)
	}
	if r := l.admit(tr, now); r != "max_calls" {
		t.Fatalf("third concurrent call: %q, want max_calls", r)
	}
	l.release()
	if r := l.admit(tr, now); r != "" {
		t.Fatalf("call after a release refused: %s", r)
	}
	l.release()
	l.release()
	// Three calls went in within the same second: the bucket is empty.
	if r := l.admit(tr, now); r != "cps" {
		t.Fatalf("fourth call in one second: %q, want cps", r)
	}
	if r := l.admit(tr, now.Add(400*time.Millisecond)); r != "" {
		t.Fatalf("call after the bucket refilled refused: %s", r)
	}
}

func TestCheckParsed(t *testing.T) {
	replace := func(old, new string) string { return strings.Replace(goodInvite, old, new, 1) }
	cases := []struct {
		name   string
		msg    string
		code   int
		reason string
	}{
		{"valid request", goodInvite, 0, ""},
		{"two Call-IDs", replace("Call-ID: c1@127.0.0.1\r\n", "Call-ID: c1@127.0.0.1\r\ni: c2@127.0.0.1\r\n"), 400, "Duplicate Call-ID"},
		{"two To", replace("To: <sip:+15550100001@127.0.0.1>\r\n", "To: <sip:+15550100001@127.0.0.1>\r\nTo: <sip:x@127.0.0.1>\r\n"), 400, "Duplicate To"},
		{"headers in the Request-URI", replace("INVITE sip:+15550100001@127.0.0.1 ", "INVITE sip:+15550100001@127.0.0.1?Route=%3Csip:x%3E "), 400, "Headers In Request-URI"},
		{"unknown scheme", replace("INVITE sip:+15550100001@127.0.0.1 ", "INVITE nobodyKnowsThisScheme:opaque "), 416, "Unsupported URI Scheme"},
		{"CSeq of another method", replace("CSeq: 1 INVITE", "CSeq: 1 BYE"), 400, "CSeq Method Does Not Match"},
	}
	p := sipmsg.NewParser()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := p.ParseSIP([]byte(tc.msg))
			if err != nil {
				t.Fatalf("sipgo does not parse it: %v", err)
			}
			code, reason := checkParsed(msg.(*sipmsg.Request))
			if code != tc.code || reason != tc.reason {
				t.Fatalf("checkParsed = %d %q, want %d %q", code, reason, tc.code, tc.reason)
			}
		})
	}
}

func TestUnsupported(t *testing.T) {
	req := func(method, extra string) *sipmsg.Request {
		msg := strings.Replace(goodInvite, "Max-Forwards: 70\r\n", "Max-Forwards: 70\r\n"+extra, 1)
		msg = strings.ReplaceAll(msg, "INVITE", method)
		m, err := sipmsg.NewParser().ParseSIP([]byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		return m.(*sipmsg.Request)
	}
	if got := unsupported(req("OPTIONS", "Require: foo, bar\r\nRequire: baz\r\n")); got != "foo, bar, baz" {
		t.Errorf("unsupported = %q, want every tag", got)
	}
	if got := unsupported(req("OPTIONS", "")); got != "" {
		t.Errorf("no Require: %q", got)
	}
	if got := unsupported(req("ACK", "Require: foo\r\n")); got != "" {
		t.Errorf("an ACK is never refused for Require, got %q", got)
	}
}
