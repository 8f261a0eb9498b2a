package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// blackHole is an agent's host that swallows everything: a UDP socket that
// reads what the edge sends and answers nothing, not even the ICMP port
// unreachable a closed port would give (a phone behind a firewall that
// drops, or a host that is down).
type blackHole struct {
	conn *net.UDPConn
	port int
	mu   sync.Mutex
	got  []heldMsg
}

// heldMsg is one datagram the black hole swallowed.
type heldMsg struct {
	at  time.Time
	msg sipMsg
}

func startBlackHole(t *testing.T) *blackHole {
	t.Helper()
	var conn *net.UDPConn
	var port int
	err := bindRetrying(func() error {
		port = freePort(t)
		var err error
		conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		return err
	})
	if err != nil {
		t.Fatalf("black hole on udp port %d: %v", port, err)
	}
	h := &blackHole{conn: conn, port: port}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			m := parseSIP(strings.ReplaceAll(string(buf[:n]), "\r\n", "\n"))
			h.mu.Lock()
			h.got = append(h.got, heldMsg{at: time.Now(), msg: m})
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return h
}

func (h *blackHole) messages() []heldMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]heldMsg(nil), h.got...)
}

// viaBranch is the branch parameter of a Via value: what makes requests
// one transaction.
func viaBranch(via string) string {
	for _, p := range strings.Split(via, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "branch") {
			return v
		}
	}
	return ""
}

// wantFailedOver checks that the carrier was answered by carol after the
// first agent (first) was given up within ringTimeout, and returns the
// first agent's attempt.
func wantFailedOver(t *testing.T, e *edge, c *sippProc, first string, ringTimeout time.Duration) attempt {
	t.Helper()
	// ring_timeout, carol's 500 ms of ringing, and slack.
	wantDuration(t, "carrier: INVITE to 200",
		between(t, c, "INVITE", sent(isRequest("INVITE")), "200", recvd(isResponse(200, "INVITE"))),
		0, ringTimeout+2*time.Second)
	evs := e.events.callEvents(t, c.callID, eventDeadline)
	completed := one(t, evs, "call.completed")
	wantFields(t, completed, map[string]string{"agent": "carol", "outcome": "answered"})
	atts := attemptsOf(t, completed)
	if len(atts) != 2 {
		t.Fatalf("attempts %+v, want %s (unreachable or no_answer) then carol (answered) (%s)", atts, first, completed)
	}
	t.Logf("%s's attempt: %+v", first, atts[0])
	if atts[0].Agent != first || (atts[0].Result != "unreachable" && atts[0].Result != "no_answer") {
		t.Errorf("attempts[0] = %+v, want agent %s, result unreachable or no_answer", atts[0], first)
	}
	if !atts[0].HasRingMs || atts[0].RingMs > (ringTimeout+500*time.Millisecond).Milliseconds() {
		t.Errorf("attempts[0].ring_ms = %d (present %v), want at most ring_timeout (%s) and a little",
			atts[0].RingMs, atts[0].HasRingMs, ringTimeout)
	}
	if atts[1].Agent != "carol" || atts[1].Result != "answered" {
		t.Errorf("attempts[1] = %+v, want agent carol, result answered", atts[1])
	}
	return atts[0]
}

// TestUnreachableBlackHole: an agent whose host swallows every packet (no
// answer, no ICMP) is given up after ring_timeout, not after the 32 s of
// Timer B, and the next agent answers. The edge retransmits its INVITE as
// Timer A says while the agent may still ring, sends no CANCEL (nothing
// answered the INVITE, RFC 3261 9.1), and stops retransmitting once it
// gave the agent up: a phone that comes back later must not be rung for a
// call that has moved on.
func TestUnreachableBlackHole(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	const ringTimeout = 3 * time.Second
	hole := startBlackHole(t)
	carol := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue: queueConfig{RingTimeout: "3s", MaxWait: "20s", Agents: []string{"hole", "carol"}},
		Agents: []agentConfig{
			{ID: "hole", Name: "Hole", Contact: fmt.Sprintf("sip:hole@127.0.0.1:%d", hole.port)},
			fixedAgent("carol", "Carol", carol),
		},
	})
	// The call goes on well past the INVITE retransmission Timer A would
	// send 7.5 s after the first, so that one shows if the edge kept the
	// transaction after giving the agent up.
	c := startSipp(t, "carrier", sippOpts{
		Scenario: "carrier-talk.xml",
		Remote:   e.sipTarget(),
		Service:  dialedUser,
		Calls:    1,
		Timeout:  40 * time.Second,
		Extra:    []string{"-d", "6000"},
	})
	c.succeed(t, 40*time.Second)
	carol.succeed(t, 10*time.Second)
	wantFailedOver(t, e, c, "hole", ringTimeout)

	held := hole.messages()
	if len(held) == 0 {
		t.Fatalf("the black hole received nothing: the edge never rang its agent")
	}
	first := held[0]
	if first.msg.method() != "INVITE" {
		t.Fatalf("the black hole first received %q, want an INVITE", first.msg.Start)
	}
	if time.Since(first.at) < 8*time.Second {
		t.Fatalf("the call ended %s after the INVITE to the black hole; the test needs 8 s to see a late retransmission",
			time.Since(first.at).Round(time.Millisecond))
	}
	var times []string
	for _, h := range held {
		after := h.at.Sub(first.at)
		times = append(times, after.Round(10*time.Millisecond).String())
		switch {
		case h.msg.method() == "CANCEL":
			t.Errorf("the edge sent CANCEL %s after the INVITE, to a host that sent no provisional response (RFC 3261 9.1)", after)
		case h.msg.method() != "INVITE":
			t.Errorf("the black hole received %q %s after the INVITE, want only the INVITE and its retransmissions", h.msg.Start, after)
		case h.msg.header("Call-ID") != first.msg.header("Call-ID") ||
			viaBranch(h.msg.header("Via")) != viaBranch(first.msg.header("Via")) ||
			h.msg.header("CSeq") != first.msg.header("CSeq"):
			t.Errorf("INVITE %s after the first is a new request (Call-ID %q, branch %q, CSeq %q), not a retransmission of the first (%q, %q, %q)",
				after, h.msg.header("Call-ID"), viaBranch(h.msg.header("Via")), h.msg.header("CSeq"),
				first.msg.header("Call-ID"), viaBranch(first.msg.header("Via")), first.msg.header("CSeq"))
		case after > ringTimeout+250*time.Millisecond:
			t.Errorf("the edge retransmitted the INVITE %s after the first, past ring_timeout (%s): it kept the transaction of an agent it gave up",
				after.Round(time.Millisecond), ringTimeout)
		}
	}
	t.Logf("the black hole received %d INVITEs (the first and %d retransmissions), at %s",
		len(held), len(held)-1, strings.Join(times, ", "))
	// Timer A doubles from T1 = 500 ms: 0, 0.5, 1.5 s fall within a 3 s
	// ring_timeout; more means retransmitting faster than RFC 3261 17.1.1.2.
	if len(held) > 3 {
		t.Errorf("%d INVITEs to the black hole, want at most 3 (Timer A from T1 = 500 ms, within ring_timeout %s)", len(held), ringTimeout)
	}
	if len(held) < 2 {
		t.Errorf("%d INVITE to the black hole, want retransmissions while no response comes (Timer A)", len(held))
	}
}

// stuckTCPListener is a host whose SIP port never takes a connection: a
// listening socket whose accept queue is full and never accepted from,
// so the kernel drops every new SYN and a connect hangs, as it does
// towards a host behind a firewall that drops. It returns the port.
func stuckTCPListener(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	// As net.Listen does: a connection of an earlier test in TIME_WAIT
	// on the port must not stop the bind.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		t.Fatalf("SO_REUSEADDR: %v", err)
	}
	var port int
	if err := bindRetrying(func() error {
		port = freePort(t)
		return syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	}); err != nil {
		t.Fatalf("bind tcp port %d: %v", port, err)
	}
	// A backlog of 0 leaves room for one connection in the accept queue.
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("listen on tcp port %d: %v", port, err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		conn, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return port // the queue is full: connects hang from now on
			}
			t.Fatalf("filling the accept queue of %s: %v", addr, err)
		}
		t.Cleanup(func() { conn.Close() })
		if i == 10 {
			t.Fatalf("%s accepted %d connections without accept(); the kernel does not hold the backlog", addr, i+1)
		}
	}
}

// bindRetrying binds on another free port while the port it got was taken
// in the meantime: freePort checks a port, and a test run in another
// process can bind it before this one does.
func bindRetrying(bind func() error) error {
	var err error
	for range 5 {
		if err = bind(); !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
	}
	return err
}

// tcpConnecting counts the sockets still trying to connect (SYN_SENT) to
// the loopback TCP port.
func tcpConnecting(t *testing.T, port int) int {
	t.Helper()
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(name)
		if err != nil && !os.IsNotExist(err) {
			t.Fatalf("%s: %v", name, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[2], want) && f[3] == "02" {
				n++
			}
		}
	}
	return n
}

// TestUnreachableTCPAgent: an agent reached over TCP whose host takes no
// connection (the connect hangs) is given up within ring_timeout, not
// after the connect times out, and the next agent answers; the edge stops
// trying to connect once it gave the agent up.
func TestUnreachableTCPAgent(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	const ringTimeout = 3 * time.Second
	stuck := stuckTCPListener(t)
	carol := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue: queueConfig{RingTimeout: "3s", MaxWait: "20s", Agents: []string{"stuck", "carol"}},
		Agents: []agentConfig{
			{ID: "stuck", Name: "Stuck", Contact: fmt.Sprintf("sip:stuck@127.0.0.1:%d;transport=tcp", stuck)},
			fixedAgent("carol", "Carol", carol),
		},
	})
	c := carrier(t, e, "carrier", "carrier-answered.xml")
	// While it rings, the edge hangs in its connect: that is the case.
	connecting := false
	for deadline := time.Now().Add(ringTimeout - 500*time.Millisecond); !connecting && time.Now().Before(deadline); {
		connecting = tcpConnecting(t, stuck) > 0
		time.Sleep(20 * time.Millisecond)
	}
	if !connecting {
		t.Errorf("no connect to the stuck agent's port %d seen while the call rang", stuck)
	}
	c.succeed(t, 40*time.Second)
	carol.succeed(t, 10*time.Second)
	wantFailedOver(t, e, c, "stuck", ringTimeout)

	// The connect the edge gave up on is abandoned, not left to the
	// kernel's SYN retries (about 2 minutes).
	deadline := time.Now().Add(2 * time.Second)
	for tcpConnecting(t, stuck) > 0 {
		if time.Now().After(deadline) {
			t.Errorf("%d connects to the stuck agent still pending after the call ended", tcpConnecting(t, stuck))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}
