package sip

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// datagram is a request as it comes off the wire, with the User-Agent ua
// ("" for none).
func datagram(method, ua string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:15550100001@127.0.0.1:5060 SIP/2.0\r\n", method)
	b.WriteString("Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-1;rport\r\n")
	b.WriteString("From: <sip:100@203.0.113.5>;tag=1\r\nTo: <sip:15550100001@127.0.0.1>\r\n")
	b.WriteString("Call-ID: flood-1@203.0.113.5\r\n")
	fmt.Fprintf(&b, "CSeq: 1 %s\r\nMax-Forwards: 70\r\n", method)
	if ua != "" {
		b.WriteString("User-Agent: " + ua + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

func udpFrom(ip string) net.Addr {
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 5060))
}

// TestPikeBlocksAFlood: a source over the rate is blocked for the block
// time, everything it sends dropped, with one log line for the block;
// then it is let in again.
func TestPikeBlocksAFlood(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	var log bytes.Buffer
	e := testEdge(t, clock, GuardOptions{}, &log)
	d := DefaultGuard()
	src, other := udpFrom("203.0.113.5"), udpFrom("203.0.113.6")
	invite := datagram("INVITE", "")
	for i := range d.MaxRequests {
		if !e.admit(src, invite) {
			t.Fatalf("request %d of %d within the window dropped", i+1, d.MaxRequests)
		}
	}
	if e.admit(src, invite) {
		t.Fatalf("request %d within %s admitted", d.MaxRequests+1, d.Window)
	}
	if e.BlockedSources() != 1 {
		t.Fatalf("%d blocked sources, want 1", e.BlockedSources())
	}
	for range 1000 {
		clock.now = clock.now.Add(time.Millisecond)
		if e.admit(src, invite) || e.admit(src, []byte("SIP/2.0 200 OK\r\n\r\n")) || e.admit(src, []byte("\r\n\r\n")) {
			t.Fatal("a blocked source's request, response or keepalive admitted")
		}
	}
	if !e.admit(other, invite) {
		t.Fatal("another source held back by the flooder's block")
	}
	if n := strings.Count(log.String(), "over the request rate"); n != 1 {
		t.Fatalf("%d log lines for one block, want 1:\n%s", n, log.String())
	}
	var dropped uint64
	e.Dropped(func(reason string, n uint64) {
		if reason == "rate_limit" {
			dropped = n
		}
	})
	if dropped != 1+3000 {
		t.Fatalf("dropped %d for the rate, want 3001", dropped)
	}

	clock.now = clock.now.Add(d.Block)
	if e.BlockedSources() != 0 {
		t.Fatalf("%d blocked sources after the block time, want 0", e.BlockedSources())
	}
	if !e.admit(src, invite) {
		t.Fatal("the source is still blocked after the block time")
	}
	// It may flood again, and is blocked again: logged again.
	for range d.MaxRequests + 1 {
		e.admit(src, invite)
	}
	if e.admit(src, invite) {
		t.Fatal("a second flood not blocked")
	}
	if n := strings.Count(log.String(), "over the request rate"); n != 2 {
		t.Fatalf("%d log lines for two blocks, want 2", n)
	}
}

// TestPikeSlidingWindow: a burst across the boundary of two fixed
// windows is still a burst.
func TestPikeSlidingWindow(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	e := testEdge(t, clock, GuardOptions{}, nil)
	src := udpFrom("203.0.113.5")
	e.admit(src, datagram("OPTIONS", "")) // opens a window
	clock.now = clock.now.Add(1900 * time.Millisecond)
	for range 20 {
		if !e.admit(src, datagram("OPTIONS", "")) {
			t.Fatal("20 requests at the end of a window dropped")
		}
	}
	clock.now = clock.now.Add(200 * time.Millisecond) // the next window
	blocked := false
	for range 20 {
		blocked = blocked || !e.admit(src, datagram("OPTIONS", ""))
	}
	if !blocked {
		t.Fatal("40 requests within 0.3 s, across two windows, not blocked")
	}
}

// TestPikeSparesPhones: what registered phones send in a day of use,
// and a roomful of them behind one address booting at once, never trips
// the limit.
func TestPikeSparesPhones(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	e := testEdge(t, clock, GuardOptions{}, nil)
	phone := udpFrom("198.51.100.7")
	start := clock.now
	for step := 0; clock.now.Sub(start) < 24*time.Hour; step++ {
		clock.now = clock.now.Add(5 * time.Second)
		var msgs [][]byte
		if step%12 == 0 { // every minute: re-register, a challenge and its answer
			msgs = append(msgs, datagram("REGISTER", "Yealink SIP-T46U"), datagram("REGISTER", "Yealink SIP-T46U"))
		}
		if step%3 == 0 { // OPTIONS keepalive every 15 s, and CRLF keepalives
			msgs = append(msgs, datagram("OPTIONS", "Yealink SIP-T46U"), []byte("\r\n\r\n"))
		}
		if step%6 == 0 { // a call answered every 30 s: responses to the edge, then the agent's BYE
			msgs = append(msgs, []byte("SIP/2.0 180 Ringing\r\n\r\n"), []byte("SIP/2.0 200 OK\r\n\r\n"),
				[]byte("SIP/2.0 200 OK\r\n\r\n"), datagram("BYE", "Yealink SIP-T46U"))
		}
		for _, m := range msgs {
			if !e.admit(phone, m) {
				t.Fatalf("after %s, a phone's %q dropped", clock.now.Sub(start), m[:12])
			}
		}
	}
	// Ten phones behind one NAT address boot: each registers (twice, for
	// the challenge) and sends an OPTIONS within the same second.
	office := udpFrom("198.51.100.8")
	for i := range 30 {
		if !e.admit(office, datagram([]string{"REGISTER", "REGISTER", "OPTIONS"}[i%3], "Grandstream GXP2170")) {
			t.Fatalf("an office's phones booting: request %d dropped", i+1)
		}
	}
}

// TestGuardSparesTrunks: a trunk's address is never rate limited, and a
// scanner's User-Agent from it is the carrier's business.
func TestGuardSparesTrunks(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	e := testEdge(t, clock, GuardOptions{}, nil)
	trunk := udpFrom("10.1.2.3") // in the trunk's 10.0.0.0/8
	for i := range 10000 {
		if !e.admit(trunk, datagram("INVITE", "")) {
			t.Fatalf("a trunk's request %d dropped", i+1)
		}
	}
	if !e.admit(trunk, datagram("OPTIONS", "friendly-scanner")) {
		t.Fatal("a trunk's request with a scanner's User-Agent dropped")
	}
	if e.BlockedSources() != 0 {
		t.Fatal("a trunk blocked")
	}
}

// TestScannersDropped: a scanner's requests from outside the trunks are
// dropped, counted, and logged once per source a block time.
func TestScannersDropped(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	var log bytes.Buffer
	e := testEdge(t, clock, GuardOptions{}, &log)
	src := udpFrom("203.0.113.9")
	for _, ua := range []string{"friendly-scanner", "SIPVicious/0.3.4", "sipcli/v1.8", "sip-scan", "VaxSIPUserAgent/3.1", "iWar", "sundayddr", "Mozilla friendly-SCANNER"} {
		clock.now = clock.now.Add(time.Second)
		if e.admit(src, datagram("OPTIONS", ua)) {
			t.Errorf("User-Agent %q admitted", ua)
		}
	}
	for _, ua := range []string{"", "Yealink SIP-T46U 66.86.0.15", "baresip v1.0.0 (x86_64/linux)", "sipp-agent", "Linphone/5.2", "sipsak 0.9.8"} {
		clock.now = clock.now.Add(time.Second)
		if !e.admit(src, datagram("OPTIONS", ua)) {
			t.Errorf("User-Agent %q dropped", ua)
		}
	}
	var scanned uint64
	e.Dropped(func(reason string, n uint64) {
		if reason == "scanner" {
			scanned = n
		}
	})
	if scanned != 8 {
		t.Errorf("%d scanner requests counted, want 8", scanned)
	}
	if n := strings.Count(log.String(), "SIP scanner"); n != 1 {
		t.Errorf("%d log lines for one scanning source, want 1:\n%s", n, log.String())
	}
	// A scanner's responses are not requests: nothing to drop them for.
	if !e.admit(src, []byte("SIP/2.0 200 OK\r\nUser-Agent: friendly-scanner\r\n\r\n")) {
		t.Error("a response with a scanner's User-Agent dropped")
	}
}

func TestUserAgent(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"OPTIONS sip:a SIP/2.0\r\nVia: x\r\nUser-Agent: friendly-scanner\r\n\r\n", "friendly-scanner"},
		{"OPTIONS sip:a SIP/2.0\r\nuser-agent:sipcli\r\n\r\n", "sipcli"},
		{"OPTIONS sip:a SIP/2.0\r\nUSER-AGENT \t:  iWar \r\n\r\n", "iWar"},
		{"OPTIONS sip:a SIP/2.0\nUser-Agent: lf only\n\n", "lf only"},
		{"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\nUser-Agent: in the body\r\n", ""},
		{"OPTIONS sip:a SIP/2.0\r\nUser-Agents: no\r\nUser: no\r\n\r\n", ""},
		{"User-Agent: the request line is no header\r\n\r\n", ""},
		{"", ""},
	} {
		if got := string(userAgent([]byte(tc.msg))); got != tc.want {
			t.Errorf("userAgent(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}

// TestPikeMemoryBounded: sources from ever new addresses do not grow the
// table past its bound, and a blocked source stays blocked through the
// churn.
func TestPikeMemoryBounded(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	e := testEdge(t, clock, GuardOptions{MaxSources: 1000}, nil)
	flooder := udpFrom("203.0.113.5")
	for range 40 {
		e.admit(flooder, datagram("INVITE", ""))
	}
	if e.admit(flooder, datagram("INVITE", "")) {
		t.Fatal("the flooder is not blocked")
	}
	for i := range 100000 {
		if i%100 == 0 {
			clock.now = clock.now.Add(time.Millisecond)
		}
		ip := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		if i >= 65536 {
			ip = netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		}
		e.admit(net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 5060)), datagram("INVITE", ""))
		if n := len(e.guard.pike.sources); n > 1000 {
			t.Fatalf("%d sources tracked, bound 1000", n)
		}
	}
	if e.admit(flooder, datagram("INVITE", "")) {
		t.Fatal("the flooder's block was lost to the churn of spoofed sources")
	}
}

// TestIPv6SourcesByPrefix: the hosts of one /64 share a count.
func TestIPv6SourcesByPrefix(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	e := testEdge(t, clock, GuardOptions{}, nil)
	blocked := false
	for i := range 40 {
		ip := netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1))
		blocked = blocked || !e.admit(net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 5060)), datagram("INVITE", ""))
	}
	if !blocked {
		t.Fatal("40 requests from one /64 within a second not blocked")
	}
	if !e.admit(udpFrom("2001:db8:1:3::1"), datagram("INVITE", "")) {
		t.Fatal("another /64 blocked")
	}
}

// TestLockoutMemoryBounded: guesses for ever new usernames from ever new
// sources do not grow the tables past their bound.
func TestLockoutMemoryBounded(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	g := newGuard(GuardOptions{MaxRegisterKeys: 100}, clock.Now)
	for i := range 10000 {
		g.registerFailed(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), strings.Repeat("u", 1000)+fmt.Sprint(i))
	}
	if len(g.bySource.keys) > 100 || len(g.byUser.keys) > 100 {
		t.Fatalf("%d sources and %d usernames remembered, bound 100", len(g.bySource.keys), len(g.byUser.keys))
	}
}

// TestTrunkLimitsRetryAfter: a trunk over its cps gets 503 with a
// Retry-After, never a silent drop.
func TestTrunkLimitsRetryAfter(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	e := testEdge(t, clock, GuardOptions{}, nil)
	trunk := e.settings.Load().trunks[0]
	if reason := e.trunkLoadFor(trunk.Name).admit(trunk, clock.now); reason != "" {
		t.Fatalf("the first call of the second refused: %s", reason)
	}
	sdp := "v=0\r\no=c 1 1 IN IP4 10.1.2.3\r\ns=-\r\nc=IN IP4 10.1.2.3\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	raw := "INVITE sip:15550100001@127.0.0.1:5060 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bK-cps\r\n" +
		"From: <sip:+15551234567@10.1.2.3>;tag=1\r\nTo: <sip:15550100001@127.0.0.1>\r\n" +
		"Call-ID: cps@10.1.2.3\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:c@10.1.2.3:5060>\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: " + fmt.Sprint(len(sdp)) + "\r\n\r\n" + sdp
	msg, err := sipmsg.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	req := msg.(*sipmsg.Request)
	req.SetSource("10.1.2.3:5060")
	req.SetTransport("UDP")
	tx := &recordingTx{}
	e.onInvite(req, tx)
	sent := tx.sent()
	if len(sent) != 1 || sent[0].StatusCode != 503 {
		t.Fatalf("the second call within a second of a 1-cps trunk got %v, want a 503", sent)
	}
	if h := sent[0].GetHeader("Retry-After"); h == nil || h.Value() == "" {
		t.Fatalf("503 without Retry-After:\n%s", sent[0])
	}
}

// BenchmarkGuard is the guard's cost per message, which it pays for every
// one the edge receives.
func BenchmarkGuard(b *testing.B) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	invite := datagram("INVITE", "Yealink SIP-T46U 66.86.0.15")
	b.Run("trunk", func(b *testing.B) {
		e := testEdge(b, clock, GuardOptions{}, nil)
		src := udpFrom("10.1.2.3")
		b.ReportAllocs()
		for b.Loop() {
			e.admit(src, invite)
		}
	})
	b.Run("phone", func(b *testing.B) {
		// A non-trunk source under the rate: counted, User-Agent read.
		e := testEdge(b, clock, GuardOptions{MaxRequests: 1 << 30}, nil)
		src := udpFrom("198.51.100.7")
		b.ReportAllocs()
		for b.Loop() {
			if !e.admit(src, invite) {
				b.Fatal("dropped")
			}
		}
	})
	b.Run("blocked", func(b *testing.B) {
		e := testEdge(b, clock, GuardOptions{}, nil)
		src := udpFrom("203.0.113.5")
		for range 100 {
			e.admit(src, invite)
		}
		b.ReportAllocs()
		for b.Loop() {
			if e.admit(src, invite) {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("scanner", func(b *testing.B) {
		e := testEdge(b, clock, GuardOptions{MaxRequests: 1 << 30}, nil)
		src := udpFrom("203.0.113.9")
		scan := datagram("OPTIONS", "friendly-scanner")
		b.ReportAllocs()
		for b.Loop() {
			e.admit(src, scan)
		}
	})
	b.Run("sipgo-parse", func(b *testing.B) {
		// Not the guard's: what parsing the same message costs, for scale.
		p := sipmsg.NewParser()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.ParseSIP(invite); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("spoofed", func(b *testing.B) {
		// Every message from a new address, the table full: each one
		// evicts another.
		e := testEdge(b, clock, GuardOptions{}, nil)
		addrs := make([]net.Addr, 1<<16)
		for i := range addrs {
			addrs[i] = net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 5060))
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			e.admit(addrs[i&(1<<16-1)], invite)
			i++
		}
	})
}
