package sip

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/routing"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// stepClock is a clock the test moves by hand.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) AfterFunc(d time.Duration, f func()) call.Timer { return time.AfterFunc(d, f) }

func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestRecoveredCallRequests: what a carrier sends for a call the edge's
// last stop ended gets the answer the edge means, and never a call.
func TestRecoveredCallRequests(t *testing.T) {
	cfg := &config.Config{
		SIP: config.SIP{Advertise: "127.0.0.1"},
		Trunks: map[string]*config.Trunk{
			"carrier": {Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		},
	}
	clk := &stepClock{now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	e, err := New(Options{
		Config: cfg,
		Router: routing.NewRouter(routing.NewTable(cfg), clk),
		Clock:  clk,
		Log:    zerolog.New(zerolog.NewTestWriter(t)),
		NewID:  func() string { return "new-call" },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	e.Recovered([]call.Record{{ID: "01JRECOVERED", SIPCallID: "carrier-leg-1@127.0.0.1"}}, time.Minute)
	byMethod, other := e.handlers()

	send := func(method, callID, toTag string) []*sipmsg.Response {
		t.Helper()
		uri := "sip:15550100001@127.0.0.1:5060"
		to := "<" + uri + ">"
		if toTag != "" {
			to += ";tag=" + toTag
		}
		raw := method + " " + uri + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-" + strings.ToLower(method) + "-" + toTag + ";rport\r\n" +
			"From: <sip:+15551234567@127.0.0.1:5070>;tag=carrier1\r\n" +
			"To: " + to + "\r\n" +
			"Call-ID: " + callID + "\r\n" +
			"CSeq: 2 " + method + "\r\n" +
			"Contact: <sip:+15551234567@127.0.0.1:5070>\r\n" +
			"Max-Forwards: 70\r\n" +
			"Content-Length: 0\r\n\r\n"
		msg, err := e.parser.ParseSIP([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		req := msg.(*sipmsg.Request)
		req.SetTransport("UDP")
		req.SetSource("127.0.0.1:5070")
		h, ok := byMethod[req.Method]
		if !ok {
			h = other
		}
		tx := &recordingTx{}
		h(req, tx)
		return tx.sent()
	}
	want := func(what string, got []*sipmsg.Response, code int) {
		t.Helper()
		if code == 0 {
			if len(got) != 0 {
				t.Errorf("%s: answered %d, want nothing", what, got[0].StatusCode)
			}
			return
		}
		if len(got) != 1 || got[0].StatusCode != code {
			var codes []int
			for _, r := range got {
				codes = append(codes, r.StatusCode)
			}
			t.Errorf("%s: answered %v, want one %d", what, codes, code)
		}
	}

	const leg = "carrier-leg-1@127.0.0.1"
	want("in-dialog INFO", send("INFO", leg, "edge1"), 481)
	want("re-INVITE", send("INVITE", leg, "edge1"), 481)
	want("UPDATE", send("UPDATE", leg, "edge1"), 481)
	want("ACK", send("ACK", leg, "edge1"), 0)
	want("CANCEL", send("CANCEL", leg, ""), 481)
	res := send("INVITE", leg, "")
	want("the first INVITE again", res, 500)
	if len(res) == 1 {
		if to := res[0].To(); to == nil || !to.Params.Has("tag") {
			t.Errorf("500 to the INVITE without a To tag: %s", res[0])
		}
		if res[0].GetHeader("Warning") == nil {
			t.Errorf("500 to the INVITE without a Warning: %s", res[0])
		}
	}
	if n := e.Active(); n != 0 {
		t.Errorf("%d calls after the INVITE of a recovered call, want none", n)
	}
	want("BYE", send("BYE", leg, "edge1"), 200)
	want("BYE again", send("BYE", leg, "edge1"), 200)

	// Dialogs nobody knows get 481 as ever.
	want("BYE of an unknown dialog", send("BYE", "nobody@127.0.0.1", "x"), 481)
	want("INFO of an unknown dialog", send("INFO", "nobody@127.0.0.1", "x"), 481)

	// Once the edge has forgotten the call, it is a dialog nobody knows.
	clk.add(time.Minute)
	want("BYE after the call was forgotten", send("BYE", leg, "edge1"), 481)
}
