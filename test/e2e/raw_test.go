package e2e

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawSIP is a hand-written SIP client on one socket: it writes requests
// exactly as a test spells them, malformed ones included, and reads what
// comes back. UDP or TCP.
type rawSIP struct {
	t         *testing.T
	transport string // "UDP" or "TCP"
	conn      net.Conn
	tcp       *bufio.Reader
	local     string // host:port of our socket, for Via and Contact
}

// dialRaw opens a socket to the edge's SIP port over transport (udp or
// tcp), closed when the test ends.
func dialRaw(t *testing.T, e *edge, transport string) *rawSIP {
	t.Helper()
	conn, err := net.DialTimeout(transport, e.sipTarget(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", transport, e.sipTarget(), err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &rawSIP{t: t, transport: strings.ToUpper(transport), conn: conn, local: conn.LocalAddr().String()}
	if r.transport == "TCP" {
		r.tcp = bufio.NewReader(conn)
	}
	return r
}

// send writes one message; lines are joined with CRLF.
func (r *rawSIP) send(msg string) {
	r.t.Helper()
	msg = strings.ReplaceAll(strings.ReplaceAll(msg, "\r\n", "\n"), "\n", "\r\n")
	_ = r.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.conn.Write([]byte(msg)); err != nil {
		r.t.Fatalf("write %s: %v", r.transport, err)
	}
}

// read returns the next message the edge sent, or ok false when none came
// by the deadline.
func (r *rawSIP) read(deadline time.Time) (sipMsg, bool) {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(deadline)
	if r.tcp == nil {
		buf := make([]byte, 65535)
		n, err := r.conn.Read(buf)
		if err != nil {
			return sipMsg{}, false
		}
		return parseSIP(strings.ReplaceAll(string(buf[:n]), "\r\n", "\n")), true
	}
	// TCP: headers up to the empty line, then Content-Length bytes.
	var head strings.Builder
	length := 0
	for {
		line, err := r.tcp.ReadString('\n')
		if err != nil {
			return sipMsg{}, false
		}
		if strings.TrimSpace(line) == "" {
			if head.Len() == 0 {
				continue // keepalive CRLFs
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
	if _, err := io.ReadFull(r.tcp, body); err != nil {
		return sipMsg{}, false
	}
	return parseSIP(strings.ReplaceAll(head.String()+"\r\n"+string(body), "\r\n", "\n")), true
}

// final reads until a final response (200 and up) to the request with
// that CSeq method, within; provisional responses and anything else are
// returned in others. ok is false when no final response came.
func (r *rawSIP) final(cseqMethod string, within time.Duration) (final sipMsg, others []sipMsg, ok bool) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, got := r.read(deadline)
		if !got {
			return sipMsg{}, others, false
		}
		if m.status() >= 200 && m.cseqMethod() == cseqMethod {
			return m, others, true
		}
		others = append(others, m)
	}
}

// wantFinal sends msg and needs a final response with code within a bound.
func (r *rawSIP) wantFinal(msg, cseqMethod string, code int) sipMsg {
	r.t.Helper()
	r.send(msg)
	res, others, ok := r.final(cseqMethod, 3*time.Second)
	if !ok {
		r.t.Fatalf("no final response to %s over %s within 3s (got %d other messages); sent:\n%s",
			cseqMethod, r.transport, len(others), msg)
	}
	if res.status() != code {
		r.t.Fatalf("%s over %s got %q, want %d; sent:\n%s\ngot:\n%s", cseqMethod, r.transport, res.Start, code, msg, res.Raw)
	}
	return res
}

// rawReq holds what varies in a hand-written request; request renders it
// with the usual headers around.
type rawReq struct {
	Method, URI string
	CallID      string // "" for a fresh one; "-" for none at all
	FromTag     string // "" for a fresh one
	ToTag       string
	CSeq        string // "1 METHOD" by default
	Branch      string // "" for a fresh one
	MaxForwards string // "70" by default; "-" for none
	User        string // the To user; the URI's by default
	Body        string // SDP when not ""
}

func randomToken() string { return strconv.FormatUint(rand.Uint64(), 36) }

// request renders q, filling in (and keeping in q) what it left empty.
func (r *rawSIP) request(q *rawReq) string {
	if q.CallID == "" {
		q.CallID = "e2e-raw-" + randomToken() + "@127.0.0.1"
	}
	if q.FromTag == "" {
		q.FromTag = "raw" + randomToken()
	}
	if q.CSeq == "" {
		q.CSeq = "1 " + q.Method
	}
	if q.Branch == "" {
		q.Branch = "z9hG4bK-raw-" + randomToken()
	}
	if q.MaxForwards == "" {
		q.MaxForwards = "70"
	}
	to := "<" + q.URI + ">"
	if q.ToTag != "" {
		to += ";tag=" + q.ToTag
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\n", q.Method, q.URI)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=%s;rport\n", r.transport, r.local, q.Branch)
	fmt.Fprintf(&b, "From: \"Jane Caller\" <sip:+15551234567@%s>;tag=%s\n", r.local, q.FromTag)
	fmt.Fprintf(&b, "To: %s\n", to)
	if q.CallID != "-" {
		fmt.Fprintf(&b, "Call-ID: %s\n", q.CallID)
	}
	fmt.Fprintf(&b, "CSeq: %s\n", q.CSeq)
	fmt.Fprintf(&b, "Contact: <sip:+15551234567@%s;transport=%s>\n", r.local, strings.ToLower(r.transport))
	if q.MaxForwards != "-" {
		fmt.Fprintf(&b, "Max-Forwards: %s\n", q.MaxForwards)
	}
	body := strings.ReplaceAll(strings.ReplaceAll(q.Body, "\r\n", "\n"), "\n", "\r\n")
	if body != "" {
		b.WriteString("Content-Type: application/sdp\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\n\n", len(body))
	return strings.ReplaceAll(b.String(), "\n", "\r\n") + body
}

// ackFor is the ACK of a non-2xx final response to an INVITE sent with
// q: same branch, Call-ID and From tag, the response's To.
func (r *rawSIP) ackFor(q *rawReq, res sipMsg) string {
	ack := *q
	ack.Method = "ACK"
	ack.CSeq = strings.Fields(q.CSeq)[0] + " ACK"
	ack.ToTag = tagOf(res.header("To"))
	ack.Body = ""
	return r.request(&ack)
}

// offerSDP is a carrier's offer of PCMA, PCMU and telephone-event on a
// port nothing listens to (the requests that carry it are refused).
const offerSDP = `v=0
o=carrier 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 9 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=sendrecv
`

// wantOptions200 checks that the edge still answers a well-formed OPTIONS.
func wantOptions200(t *testing.T, e *edge, transport string) {
	t.Helper()
	r := dialRaw(t, e, transport)
	r.wantFinal(r.request(&rawReq{Method: "OPTIONS", URI: "sip:" + e.sipTarget()}), "OPTIONS", 200)
}

// TestAdmissionRaw sends hand-written requests a carrier's broken or
// hostile equipment might send, one socket each, and checks what comes
// back; the edge must stay up and keep answering.
func TestAdmissionRaw(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "5s", MaxWait: "10s", Agents: []string{"bob"}},
		Agents: []agentConfig{{ID: "bob", Name: "Bob", Username: "bob", Password: bobPassword}},
	})
	uri := "sip:" + dialedUser + "@" + e.sipTarget()

	t.Run("CSeq method does not match 400", func(t *testing.T) {
		r := dialRaw(t, e, "udp")
		r.wantFinal(r.request(&rawReq{Method: "OPTIONS", URI: "sip:" + e.sipTarget(), CSeq: "1 INVITE"}), "INVITE", 400)
	})

	t.Run("missing Call-ID no crash", func(t *testing.T) {
		r := dialRaw(t, e, "udp")
		msg := r.request(&rawReq{Method: "OPTIONS", URI: "sip:" + e.sipTarget(), CallID: "-"})
		r.send(msg)
		// A request without Call-ID cannot be keyed; 400 or silence are
		// both fine, anything else is not.
		if res, _, ok := r.final("OPTIONS", time.Second); ok {
			if res.status() != 400 {
				t.Errorf("OPTIONS without Call-ID got %q, want 400 or nothing\n%s", res.Start, res.Raw)
			} else {
				t.Logf("OPTIONS without Call-ID got %s", res.Start)
			}
		} else {
			t.Logf("OPTIONS without Call-ID got no answer")
		}
		select {
		case <-e.exited:
			t.Fatalf("the edge exited after a request without Call-ID: %v", e.exitErr)
		default:
		}
		wantOptions200(t, e, "udp")
	})

	t.Run("Max-Forwards 0 INVITE 483", func(t *testing.T) {
		r := dialRaw(t, e, "udp")
		q := &rawReq{Method: "INVITE", URI: uri, MaxForwards: "0", Body: offerSDP}
		res := r.wantFinal(r.request(q), "INVITE", 483)
		r.send(r.ackFor(q, res))
	})

	t.Run("BYE unknown dialog 481", func(t *testing.T) {
		r := dialRaw(t, e, "udp")
		r.wantFinal(r.request(&rawReq{Method: "BYE", URI: uri, ToTag: "nosuchtag", CSeq: "2 BYE"}), "BYE", 481)
	})

	t.Run("CANCEL matching nothing 481", func(t *testing.T) {
		r := dialRaw(t, e, "udp")
		r.wantFinal(r.request(&rawReq{Method: "CANCEL", URI: uri}), "CANCEL", 481)
	})

	t.Run("TCP INVITE unknown number 404", func(t *testing.T) {
		r := dialRaw(t, e, "tcp")
		q := &rawReq{Method: "INVITE", URI: "sip:" + unknownUser + "@" + e.sipTarget() + ";transport=tcp", Body: offerSDP}
		res := r.wantFinal(r.request(q), "INVITE", 404)
		r.send(r.ackFor(q, res))
	})

	// Over TCP the same checks fall to the stream parser, not the UDP
	// datagram filter: a carrier on TCP deserves the same answers.
	t.Run("TCP CSeq method does not match 400", func(t *testing.T) {
		r := dialRaw(t, e, "tcp")
		r.wantFinal(r.request(&rawReq{Method: "OPTIONS", URI: "sip:" + e.sipTarget() + ";transport=tcp", CSeq: "1 INVITE"}), "INVITE", 400)
	})

	t.Run("TCP missing Call-ID no crash", func(t *testing.T) {
		r := dialRaw(t, e, "tcp")
		msg := r.request(&rawReq{Method: "OPTIONS", URI: "sip:" + e.sipTarget() + ";transport=tcp", CallID: "-"})
		r.send(msg)
		if res, _, ok := r.final("OPTIONS", time.Second); ok && res.status() != 400 {
			t.Errorf("OPTIONS without Call-ID over TCP got %q, want 400 or nothing; sent:\n%s\ngot:\n%s", res.Start, msg, res.Raw)
		}
		wantOptions200(t, e, "tcp")
	})

	// After all of that, the edge is up and answers over both transports.
	select {
	case <-e.exited:
		t.Fatalf("the edge exited: %v", e.exitErr)
	default:
	}
	wantOptions200(t, e, "udp")
	wantOptions200(t, e, "tcp")
	time.Sleep(500 * time.Millisecond)
	if started := e.events.find("call.started", nil); len(started) > 0 {
		t.Errorf("refused requests produced call.started: %v", started)
	}
	if strings.Contains(e.log.String(), "panic") {
		t.Errorf("the edge's log mentions a panic")
	}
}
