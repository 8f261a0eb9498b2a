package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// noAnswer in a torture case's codes: the edge may send nothing, because
// the message is a response matching no transaction, cannot be keyed to
// one, or (over TCP) cannot be framed.
const noAnswer = 0

// tortureCase is what RFC 4475 §3 says an element does with one message,
// as the edge, a UAS for carriers, means it: a valid request is answered
// like any other request (an INVITE to a number the edge does not know
// gets 404, an OPTIONS 200, a REGISTER without credentials a 401
// challenge), an invalid one gets the 4xx the RFC names.
type tortureCase struct {
	file string
	udp  []int // acceptable final codes over UDP
	tcp  []int // over TCP, when not the same
	why  string
}

var tortureCases = []tortureCase{
	// §3.1.1, valid messages.
	{file: "valid/wsinv.dat", udp: []int{481, 400}, why: "3.1.1.1: an INVITE with a To tag, for a dialog the edge does not know; sipgo reads no From tag in `tag = 98asjd8` and cannot key its RFC 2543 transaction without one, and answers 400 itself"},
	{file: "valid/intmeth.dat", udp: []int{501}, why: "3.1.1.2: an unknown method"},
	{file: "valid/esc01.dat", udp: []int{404}, why: "3.1.1.3: an INVITE to a user that is no tracking number"},
	{file: "valid/escnull.dat", udp: []int{401}, why: "3.1.1.4: a REGISTER, challenged"},
	{file: "valid/esc02.dat", udp: []int{501}, why: "3.1.1.5: RE%47IST%45R is not REGISTER but an unknown method"},
	{file: "valid/lwsdisp.dat", udp: []int{200}, why: "3.1.1.6: an OPTIONS"},
	{file: "valid/longreq.dat", udp: []int{404, noAnswer}, tcp: []int{404}, why: "3.1.1.7: an INVITE to a user that is no tracking number; over UDP its 404, carrying every Via, is over the 1300 bytes sipgo sends over UDP (the RFC shows it with TCP Vias)"},
	{file: "valid/dblreq.dat", udp: []int{401}, why: "3.1.1.8: the REGISTER is challenged; over UDP the INVITE after it is ignored"},
	{file: "valid/semiuri.dat", udp: []int{200}, why: "3.1.1.9: an OPTIONS"},
	{file: "valid/transports.dat", udp: []int{200}, why: "3.1.1.10: an OPTIONS"},
	{file: "valid/mpart01.dat", udp: []int{405}, why: "3.1.1.11: a MESSAGE, a method the edge knows and does not take"},
	{file: "valid/unreason.dat", udp: []int{noAnswer}, why: "3.1.1.12: a response matching no transaction"},
	{file: "valid/noreason.dat", udp: []int{noAnswer}, why: "3.1.1.13: a response matching no transaction"},
	// §3.1.2, invalid messages.
	{file: "invalid/badinv01.dat", udp: []int{400, noAnswer}, why: "3.1.2.1: extraneous header field separators; the separators are in the Via, which a response would echo, so there is no Via to answer to"},
	{file: "invalid/clerr.dat", udp: []int{400}, tcp: []int{noAnswer}, why: "3.1.2.2: Content-Length larger than the message; over TCP the rest may yet come"},
	{file: "invalid/ncl.dat", udp: []int{400}, why: "3.1.2.3: negative Content-Length; over TCP what came with it is dropped too"},
	{file: "invalid/scalar02.dat", udp: []int{400, noAnswer}, why: "3.1.2.4: overlarge scalar values; its CSeq number is over 2**32 and its Via port over 65535, so no response echoing them parses"},
	{file: "invalid/scalarlg.dat", udp: []int{noAnswer}, why: "3.1.2.5: a response"},
	{file: "invalid/quotbal.dat", udp: []int{400}, why: "3.1.2.6: unterminated quoted string"},
	{file: "invalid/ltgtruri.dat", udp: []int{400}, why: "3.1.2.7: <> around the Request-URI"},
	{file: "invalid/lwsruri.dat", udp: []int{400}, why: "3.1.2.8: LWS in the Request-URI"},
	{file: "invalid/lwsstart.dat", udp: []int{400}, why: "3.1.2.9: several SP in the Request-Line"},
	{file: "invalid/trws.dat", udp: []int{400}, why: "3.1.2.10: SP at the end of the Request-Line"},
	{file: "invalid/escruri.dat", udp: []int{400}, why: "3.1.2.11: escaped headers in the Request-URI"},
	{file: "invalid/baddate.dat", udp: []int{400, 404}, why: "3.1.2.12: bad Date time zone; the edge does not read Date"},
	{file: "invalid/regbadct.dat", udp: []int{400, 401}, why: "3.1.2.13: Contact URI with a header outside <>"},
	{file: "invalid/badaspec.dat", udp: []int{400}, why: "3.1.2.14: spaces within an addr-spec"},
	{file: "invalid/baddn.dat", udp: []int{400}, tcp: []int{noAnswer}, why: "3.1.2.15: non-token characters in a display name; the file has no empty line after the header, which over TCP may yet come"},
	{file: "invalid/badvers.dat", udp: []int{505}, why: "3.1.2.16: SIP/7.0"},
	{file: "invalid/mismatch01.dat", udp: []int{400}, why: "3.1.2.17: start line and CSeq method differ"},
	{file: "invalid/mismatch02.dat", udp: []int{400}, why: "3.1.2.18: unknown method, CSeq method differs"},
	{file: "invalid/bigcode.dat", udp: []int{noAnswer}, why: "3.1.2.19: a response"},
	// §3.2, transaction layer.
	{file: "invalid/badbranch.dat", udp: []int{200}, why: "3.2.1: a branch that is only the magic cookie is a valid OPTIONS"},
	// §3.3, application layer.
	{file: "invalid/insuf.dat", udp: []int{400, noAnswer}, why: "3.3.1: no Call-ID, From or To: cannot be keyed over UDP"},
	{file: "invalid/unkscm.dat", udp: []int{416}, why: "3.3.2: unknown Request-URI scheme"},
	{file: "invalid/novelsc.dat", udp: []int{416}, why: "3.3.3: a scheme the edge does not take"},
	{file: "invalid/unksm2.dat", udp: []int{400, 401}, why: "3.3.4: a REGISTER whose To is not a SIP URI; the registrar challenges before it looks at the AoR, so as not to tell which exist"},
	{file: "invalid/bext01.dat", udp: []int{420}, why: "3.3.5: Require of unsupported extensions"},
	{file: "invalid/invut.dat", udp: []int{404, 415}, why: "3.3.6: unknown Content-Type; RFC 3261 8.2 looks at the Request-URI (404) first"},
	{file: "invalid/regaut01.dat", udp: []int{401}, why: "3.3.7: unknown authorization scheme, challenged"},
	{file: "invalid/multi01.dat", udp: []int{400}, why: "3.3.8: several values in single-value header fields"},
	{file: "invalid/mcl01.dat", udp: []int{400}, why: "3.3.9: several Content-Length values; over TCP what came with it is dropped too"},
	{file: "invalid/bcast.dat", udp: []int{noAnswer}, why: "3.3.10: a response"},
	{file: "invalid/zeromf.dat", udp: []int{483}, why: "3.3.11: Max-Forwards 0"},
	{file: "invalid/cparam01.dat", udp: []int{401}, why: "3.3.12: a valid REGISTER, challenged"},
	{file: "invalid/cparam02.dat", udp: []int{401}, why: "3.3.13: a valid REGISTER, challenged"},
	{file: "invalid/regescrt.dat", udp: []int{400, 401}, why: "3.3.14: an escaped header in a Contact URI"},
	{file: "invalid/sdp01.dat", udp: []int{404, 406}, why: "3.3.15: unacceptable Accept; the Request-URI (404) comes first"},
	// §3.4, backward compatibility.
	{file: "invalid/inv2543.dat", udp: []int{404, 400}, tcp: []int{400}, why: "3.4.1: an RFC 2543 INVITE to a user that is no tracking number; without a From tag sipgo cannot key its transaction and answers 400 itself; over TCP it lacks the Content-Length a stream needs (RFC 3261 18.3)"},
	// Not in RFC 4475: sipgo's own, a request line without a version.
	{file: "invalid/test.dat", udp: []int{noAnswer}, why: "no SIP version in the request line, and no Via or CSeq to answer with"},
}

// cookieBranch is a branch with something after the magic cookie.
var cookieBranch = regexp.MustCompile(`z9hG4bK([^\s;,])`)

// uniqueBranches makes the branches of msg its own: several RFC 4475
// messages share a branch and sent-by, and a real sender never reuses
// them (RFC 3261 8.1.1.7), so as written they would match each other's
// transactions. A bare magic cookie (badbranch.dat) is left as it is.
func uniqueBranches(msg []byte, tag string) []byte {
	return cookieBranch.ReplaceAll(msg, []byte("z9hG4bK"+tag+"-$1"))
}

// TestTortureRFC4475 sends each RFC 4475 torture message over UDP and over
// TCP to a running edge, and checks the answer against what the RFC says
// the message means; the edge must stay up, ring nobody, and give back
// the goroutines and memory the messages took.
func TestTortureRFC4475(t *testing.T) {
	// Not in parallel: the UDP messages are sent from their Via's port,
	// 5060 for most, which a parallel test's process could hold.
	requireEdge(t)
	// The whole of 127/8: the UDP messages come from an address of their
	// own, see udpSource.
	e := startEdge(t, edgeConfig{
		TrunkAllow: []string{"127.0.0.0/8"},
		Queue:      queueConfig{RingTimeout: "5s", MaxWait: "10s", Agents: []string{"bob"}},
		Agents:     []agentConfig{{ID: "bob", Name: "Bob", Username: "bob", Password: bobPassword}},
	})
	if len(tortureCases) != 50 {
		t.Fatalf("%d torture cases, want the 50 of the testdata", len(tortureCases))
	}
	// Once over each transport first, so that the baseline holds what
	// any traffic sets up (listeners' pools, sipgo's lazy state).
	wantOptions200(t, e, "udp")
	wantOptions200(t, e, "tcp")
	time.Sleep(500 * time.Millisecond)
	before := e.metrics(t)

	src := udpSource(t)
	// TCP first: its transactions end with their final response (or
	// ACK), so the UDP run after it does not meet them.
	n := 0
	for _, transport := range []string{"tcp", "udp"} {
		for _, tc := range tortureCases {
			n++
			t.Run(transport+"/"+strings.TrimSuffix(tc.file, ".dat"), func(t *testing.T) {
				raw, err := os.ReadFile(filepath.Join("testdata", "rfc4475", tc.file))
				if err != nil {
					t.Fatal(err)
				}
				msg := uniqueBranches(raw, "t"+strconv.Itoa(n))
				want := tc.udp
				if transport == "tcp" && tc.tcp != nil {
					want = tc.tcp
				}
				got, detail := sendTorture(t, e, transport, src, msg)
				if !slices.Contains(want, got) {
					t.Errorf("%s (%s) over %s: got %s, want one of %v\n%s", tc.file, tc.why, transport, describeCode(got), want, detail)
				} else {
					t.Logf("%s over %s: %s", tc.file, transport, describeCode(got))
				}
			})
		}
	}

	select {
	case <-e.exited:
		t.Fatalf("the edge exited: %v", e.exitErr)
	default:
	}
	wantOptions200(t, e, "udp")
	wantOptions200(t, e, "tcp")
	if started := e.events.find("call.started", nil); len(started) > 0 {
		t.Errorf("torture messages produced call.started: %v", started)
	}
	if strings.Contains(e.log.String(), "panic") {
		t.Errorf("the edge's log mentions a panic")
	}
	checkSettled(t, e, before)
}

func describeCode(code int) string {
	if code == noAnswer {
		return "no answer"
	}
	return strconv.Itoa(code)
}

// sendTorture sends msg on a socket of its own and returns the code of the
// final response to it (noAnswer when none came within a bound), and what
// came back, for the failure message. A non-2xx final response to an
// INVITE is acknowledged, as a carrier would, so the transaction ends.
func sendTorture(t *testing.T, e *edge, transport string, src netip.Addr, msg []byte) (int, string) {
	t.Helper()
	var conn net.Conn
	var err error
	if transport == "udp" {
		// The port is the Via's, so another process of the run may hold
		// it on this address (or on 0.0.0.0): then another address.
		for range 5 {
			conn, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, viaPort(msg))),
				net.UDPAddrFromAddrPort(netip.MustParseAddrPort(e.sipTarget())))
			if !errors.Is(err, syscall.EADDRINUSE) {
				break
			}
			src = udpSource(t)
		}
	} else {
		conn, err = net.DialTimeout(transport, e.sipTarget(), 5*time.Second)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", transport, err)
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write(msg); err != nil {
		t.Fatalf("write %s: %v", transport, err)
	}
	method, callID := requestKey(msg)
	var rd *bufio.Reader
	if transport == "tcp" {
		rd = bufio.NewReader(conn)
	}
	deadline := time.Now().Add(2 * time.Second)
	var seen []string
	for {
		res, ok := readSIP(conn, rd, deadline)
		if !ok {
			return noAnswer, strings.Join(seen, "\n")
		}
		seen = append(seen, res.Start)
		code := res.status()
		if code < 200 {
			continue
		}
		// Not for this message: the INVITE after dblreq.dat's REGISTER
		// over TCP, or over UDP a retransmission for an earlier one.
		if method != "" && res.cseqMethod() != method || callID != "" && res.header("Call-ID") != callID {
			continue
		}
		if method == "INVITE" && code >= 300 {
			_, _ = conn.Write(ackOf(msg, res))
		}
		return code, res.Raw
	}
}

// udpSource is a loopback address for the UDP messages to come from. The
// edge answers a request over UDP without rport at the port of its Via
// (RFC 3261 18.2.2), 5060 for most of these messages, so the test sends
// from that port, on an address of 127/8 nothing else of the test run
// binds.
func udpSource(t *testing.T) netip.Addr {
	t.Helper()
	for range 20 {
		a := netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(254)), byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
		free := true
		for _, port := range []uint16{5050, 5060, 5070} {
			pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
			if err != nil {
				free = false
				break
			}
			pc.Close()
		}
		if free {
			return a
		}
	}
	t.Fatal("no loopback address with ports 5050, 5060 and 5070 free")
	return netip.Addr{}
}

// topVia finds the first Via (or v) header line and its port.
var topVia = regexp.MustCompile(`(?im)^(?:via|v)[ \t]*:[ \t]*SIP/2\.0/\w+[ \t]+[^\s;:,]+(?::(\d+))?`)

// viaPort is the port of msg's top Via, where the edge answers over UDP;
// 5060 when it names none or is too twisted to read here (wsinv.dat's
// folded Via has none either).
func viaPort(msg []byte) uint16 {
	if m := topVia.FindSubmatch(msg); m != nil && len(m[1]) > 0 {
		if p, err := strconv.ParseUint(string(m[1]), 10, 16); err == nil {
			return uint16(p)
		}
	}
	return 5060
}

// requestKey is the CSeq method and Call-ID of a request, "" for what it
// lacks or a response.
func requestKey(msg []byte) (method, callID string) {
	if strings.HasPrefix(string(msg), "SIP/") {
		return "", ""
	}
	m := parseSIP(strings.ReplaceAll(string(msg), "\r\n", "\n"))
	return m.cseqMethod(), m.header("Call-ID")
}

// ackOf acknowledges a non-2xx final response: top Via, From, To with
// the edge's tag, Call-ID and CSeq number of the response.
func ackOf(req []byte, res sipMsg) []byte {
	uri := "sip:edge@127.0.0.1"
	if f := strings.Fields(string(req[:max(0, strings.Index(string(req), "\n"))])); len(f) == 3 {
		uri = f[1]
	}
	seq := strings.Fields(res.header("CSeq") + " 0")[0]
	var b strings.Builder
	fmt.Fprintf(&b, "ACK %s SIP/2.0\r\n", uri)
	fmt.Fprintf(&b, "Via: %s\r\n", res.header("Via"))
	fmt.Fprintf(&b, "From: %s\r\n", res.header("From"))
	fmt.Fprintf(&b, "To: %s\r\n", res.header("To"))
	fmt.Fprintf(&b, "Call-ID: %s\r\n", res.header("Call-ID"))
	fmt.Fprintf(&b, "CSeq: %s ACK\r\n", seq)
	b.WriteString("Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// readSIP reads one message from a UDP socket (rd nil) or a TCP stream.
func readSIP(conn net.Conn, rd *bufio.Reader, deadline time.Time) (sipMsg, bool) {
	_ = conn.SetReadDeadline(deadline)
	if rd == nil {
		buf := make([]byte, 65535)
		n, err := conn.Read(buf)
		if err != nil {
			return sipMsg{}, false
		}
		return parseSIP(strings.ReplaceAll(string(buf[:n]), "\r\n", "\n")), true
	}
	var head strings.Builder
	length := 0
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return sipMsg{}, false
		}
		if strings.TrimSpace(line) == "" {
			if head.Len() == 0 {
				continue
			}
			break
		}
		head.WriteString(line)
		if k, v, ok := strings.Cut(line, ":"); ok {
			if k = strings.ToLower(strings.TrimSpace(k)); k == "content-length" || k == "l" {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(rd, body); err != nil {
		return sipMsg{}, false
	}
	return parseSIP(strings.ReplaceAll(head.String()+"\r\n"+string(body), "\r\n", "\n")), true
}

// Bounds on what the edge may keep after the torture, over the baseline.
const (
	// A few goroutines come and go on their own (the HTTP connection of
	// the scrape itself, NATS's, timers'); a leak per message would be
	// 100, one per message sent.
	goroutineSlack = 5
	// The edge cannot be made to collect garbage from here, so its heap
	// holds some of unknown size, and 4 MB is loose enough for that. It
	// catches the 50 TCP connections' read buffers kept for good (sipgo's
	// 64 KB and checkedConn's 16 KB each), not a few small objects per
	// message: the goroutine count is the sharper test of leaked
	// connections and transactions.
	heapSlack = 4 << 20
)

// checkSettled waits for the edge's goroutines to come back near before,
// within the bounds of the transactions still running (32 s for a UDP
// non-INVITE transaction, RFC 3261 Timer J), and compares its heap.
func checkSettled(t *testing.T, e *edge, before map[string]float64) {
	t.Helper()
	g0, h0 := before["callsign_go_goroutines"], before["callsign_go_heap_inuse_bytes"]
	if g0 == 0 || h0 == 0 {
		t.Fatalf("/metrics has no callsign_go_goroutines or callsign_go_heap_inuse_bytes")
	}
	deadline := time.Now().Add(40 * time.Second)
	var m map[string]float64
	for {
		m = e.metrics(t)
		if m["callsign_go_goroutines"] <= g0+goroutineSlack || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	g1, h1 := m["callsign_go_goroutines"], m["callsign_go_heap_inuse_bytes"]
	t.Logf("goroutines %v → %v, heap in use %.1f MB → %.1f MB", g0, g1, h0/(1<<20), h1/(1<<20))
	if g1 > g0+goroutineSlack {
		t.Errorf("goroutines did not come back: %v before, %v 40s after (slack %d)", g0, g1, goroutineSlack)
	}
	if h1 > h0+heapSlack {
		t.Errorf("heap in use grew from %.1f MB to %.1f MB (slack %d MB)", h0/(1<<20), h1/(1<<20), heapSlack>>20)
	}
}
