package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icholy/digest"
)

// floodRate is what each flooder sends, requests a second: far above
// anything a phone or a person sends, low enough that the flooders' own
// sipp leaves the machine's CPU to the edge and the trunk's calls.
const floodRate = 1000

// flooder is a sipp sending one request per call at a rate, from a
// loopback address outside the trunk, with no message trace (it would
// write every one of them).
type flooder struct {
	name   string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	out    *syncBuffer
}

func startFlooder(t *testing.T, e *edge, name, scenario, localIP, service string, rate, total int) *flooder {
	t.Helper()
	requireTools(t, "sipp")
	f := &flooder{name: name, dir: filepath.Join(t.TempDir(), "flood-"+name), exited: make(chan struct{}), out: &syncBuffer{}}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{e.sipTarget(),
		"-sf", filepath.Join(sippDir, scenario),
		"-s", service,
		"-i", localIP, "-mi", localIP, "-bind_local",
		"-p", strconv.Itoa(freePort(t)),
		"-mp", strconv.Itoa(mediaPort(t)),
		"-cp", strconv.Itoa(freePort(t)),
		"-r", strconv.Itoa(rate), "-m", strconv.Itoa(total), "-nr",
		"-timeout", "60s", "-nostdin",
		"-trace_stat", "-stf", filepath.Join(f.dir, "stat.csv"), "-fd", "1",
	}
	f.cmd = exec.Command("sipp", args...)
	f.cmd.Dir = f.dir
	f.cmd.Stdout, f.cmd.Stderr = f.out, f.out
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("start sipp %s: %v", name, err)
	}
	go func() {
		_ = f.cmd.Wait()
		close(f.exited)
	}()
	t.Cleanup(func() {
		f.stop()
		if t.Failed() {
			t.Logf("sipp %s: sipp %s\n%s", name, strings.Join(args, " "), tail(f.out.String(), 20))
		}
	})
	return f
}

// stop ends the flood: SIGUSR1 has sipp stop placing calls and write its
// last statistics; after a bound it is killed.
func (f *flooder) stop() {
	select {
	case <-f.exited:
		return
	default:
	}
	_ = f.cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case <-f.exited:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.exited
	}
}

// sent is how many requests the flooder sent (the calls it created, one
// request each), from its last statistics row.
func (f *flooder) sent(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, "stat.csv"))
	if err != nil {
		t.Fatalf("sipp %s statistics: %v", f.name, err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		t.Fatalf("sipp %s statistics have no row:\n%s", f.name, b)
	}
	col := -1
	for i, name := range strings.Split(lines[0], ";") {
		if name == "TotalCallCreated" {
			col = i
		}
	}
	row := strings.Split(lines[len(lines)-1], ";")
	if col < 0 || col >= len(row) {
		t.Fatalf("sipp %s statistics have no TotalCallCreated:\n%s", f.name, lines[0])
	}
	n, err := strconv.Atoi(strings.TrimSpace(row[col]))
	if err != nil {
		t.Fatalf("sipp %s TotalCallCreated %q: %v", f.name, row[col], err)
	}
	return n
}

// metricDelta is how much a series grew between two readings.
func metricDelta(before, after map[string]float64, name string, labels ...string) float64 {
	sum := func(m map[string]float64) float64 {
		s := 0.0
		for _, v := range series(m, name, labels...) {
			s += v
		}
		return s
	}
	return sum(after) - sum(before)
}

// TestFlood: while two sources outside the trunk flood the edge, one with
// INVITEs and one with REGISTERs, the carrier's calls all go through.
// The flooders are blocked after a handful of requests and get nothing
// more; the edge stays up and answers.
func TestFlood(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	const calls, cps = 200, 20

	// One sipp answers for every agent; more agents than calls overlap.
	// The calls hang up as soon as they are answered: the harness gives
	// the edge RTP ports for a handful of calls at once.
	agentPhones := startSipp(t, "agents", sippOpts{
		Scenario: filepath.Join(moduleRoot, "scripts", "bench", "agent.xml"),
		Timeout:  90 * time.Second,
	})
	var agents []agentConfig
	var ids []string
	for i := range 40 {
		id := fmt.Sprintf("a%02d", i)
		ids = append(ids, id)
		agents = append(agents, agentConfig{ID: id, Name: "Agent " + id, Contact: fmt.Sprintf("sip:%s@127.0.0.1:%d", id, agentPhones.port)})
	}
	e := startEdge(t, edgeConfig{
		TrunkAllow: []string{"127.0.0.1/32"},
		Queue:      queueConfig{RingTimeout: "5s", Agents: ids},
		Agents:     agents,
	})
	before := e.metrics(t)

	invites := startFlooder(t, e, "invite", "flood-invite.xml", "127.0.0.2", dialedUser, floodRate, floodRate*30)
	registers := startFlooder(t, e, "register", "flood-register.xml", "127.0.0.3", "bob", floodRate, floodRate*30)
	time.Sleep(time.Second) // the floods are on before the first call

	c := startSipp(t, "carrier", sippOpts{
		Scenario: filepath.Join(moduleRoot, "scripts", "bench", "carrier.xml"),
		Remote:   e.sipTarget(),
		Service:  dialedUser,
		Calls:    calls,
		Timeout:  40 * time.Second,
		Extra:    []string{"-r", strconv.Itoa(cps), "-d", "0"},
	})
	c.succeed(t, 45*time.Second)
	during := e.metrics(t)
	invites.stop()
	registers.stop()

	select {
	case <-e.exited:
		t.Fatalf("the edge exited during the flood: %v", e.exitErr)
	default:
	}
	if code, _ := e.httpGet(t, "/healthz"); code != 200 {
		t.Errorf("/healthz after the flood: %d", code)
	}
	wantOptions200(t, e, "udp")

	// Every call of the carrier's completed, as the edge saw it too.
	var answered float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		answered = metricDelta(before, e.metrics(t), "callsign_calls_total", `outcome="answered"`)
		if answered >= calls || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if answered != calls {
		t.Errorf("%v of the carrier's %d calls answered during the flood, want all", answered, calls)
	}

	sentInvites, sentRegisters := invites.sent(t), registers.sent(t)
	dropped := metricDelta(before, during, "callsign_sip_dropped_total", `reason="rate_limit"`)
	refused := metricDelta(before, during, "callsign_sip_responses_total", `code="403"`)
	challenged := metricDelta(before, during, "callsign_sip_responses_total", `code="401"`)
	blocked := during["callsign_sip_blocked_sources"]
	t.Logf("flooders sent %d INVITEs and %d REGISTERs; the edge answered %v with 403 and %v with 401, dropped %v, has %v sources blocked",
		sentInvites, sentRegisters, refused, challenged, dropped, blocked)
	if sentInvites < 3*floodRate || sentRegisters < 3*floodRate {
		t.Fatalf("the flooders sent %d and %d requests: no flood to speak of", sentInvites, sentRegisters)
	}
	// What the flooders got back: the requests before their block, no
	// more. The rest was dropped by the guard, not lost in a queue.
	limit := 30.0 // the default MaxRequests a window
	if refused > 2*limit || challenged > 2*limit {
		t.Errorf("the flooders got %v 403s and %v 401s; want at most %v each: they were not blocked", refused, challenged, 2*limit)
	}
	// Not all of them: on a busy machine the kernel may drop some before
	// the edge reads them.
	if got, want := dropped, 0.8*float64(sentInvites+sentRegisters); got < want {
		t.Errorf("the guard dropped %v of the %d flood requests, want at least %v", got, sentInvites+sentRegisters, want)
	}
	if blocked != 2 {
		t.Errorf("callsign_sip_blocked_sources %v during the flood, want 2", blocked)
	}
	if n := strings.Count(e.log.String(), "over the request rate"); n != 2 {
		t.Errorf("%d log lines about blocked sources, want 2: one per block, not one per request", n)
	}
	// The INVITEs refused before the block are logged once per source.
	if n := strings.Count(e.log.String(), "INVITE from outside every trunk refused"); n < 1 || n > 2 {
		t.Errorf("%d log lines about refused INVITEs from the 2 flooders, want 1 or 2: one per source a minute", n)
	}
}

// dialFrom is dialRaw from a loopback address of the test's choosing.
func dialFrom(t *testing.T, e *edge, transport, localIP string) *rawSIP {
	t.Helper()
	ip := net.ParseIP(localIP)
	var local net.Addr = &net.UDPAddr{IP: ip}
	if transport == "tcp" {
		local = &net.TCPAddr{IP: ip}
	}
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: local}
	conn, err := d.Dial(transport, e.sipTarget())
	if err != nil {
		t.Fatalf("dial %s %s from %s: %v", transport, e.sipTarget(), localIP, err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &rawSIP{t: t, transport: strings.ToUpper(transport), conn: conn, local: conn.LocalAddr().String()}
	if r.transport == "TCP" {
		r.tcp = bufio.NewReader(conn)
	}
	return r
}

// withHeader adds a header line to a request rendered by rawSIP.request.
func withHeader(msg, header string) string {
	return strings.Replace(msg, "\r\nMax-Forwards:", "\r\n"+header+"\r\nMax-Forwards:", 1)
}

// wantSilence fails unless nothing comes back on r within d.
func wantSilence(t *testing.T, r *rawSIP, what string, d time.Duration) {
	t.Helper()
	if m, ok := r.read(time.Now().Add(d)); ok {
		t.Errorf("%s over %s got %q, want no answer at all", what, r.transport, m.Start)
	}
}

// TestScanner: a request whose User-Agent is a SIP scanner's, from outside
// the trunk, gets no answer at all, over UDP and TCP, where the same
// request without it gets the edge's usual answer; from the trunk it is
// answered as any other.
func TestScanner(t *testing.T) {
	t.Parallel()
	e := startEdge(t, edgeConfig{
		TrunkAllow: []string{"127.0.0.1/32"},
		Queue:      queueConfig{Agents: []string{"carol"}},
		Agents:     []agentConfig{{ID: "carol", Name: "Carol", Contact: "sip:carol@127.0.0.1:9"}},
	})
	number := "sip:" + dialedUser + "@" + e.sipTarget()
	for _, transport := range []string{"udp", "tcp"} {
		r := dialFrom(t, e, transport, "127.0.0.4")
		scan := withHeader(r.request(&rawReq{Method: "INVITE", URI: number, Body: offerSDP}), "User-Agent: friendly-scanner")
		r.send(scan)
		wantSilence(t, r, "an INVITE from friendly-scanner", 1500*time.Millisecond)
		q := &rawReq{Method: "INVITE", URI: number, Body: offerSDP}
		res := r.wantFinal(r.request(q), "INVITE", 403)
		r.send(r.ackFor(q, res))

		r.send(withHeader(r.request(&rawReq{Method: "OPTIONS", URI: "sip:" + e.sipTarget()}), "User-Agent: SIPVicious/0.3.4"))
		wantSilence(t, r, "an OPTIONS from sipvicious", 1500*time.Millisecond)
		r.wantFinal(r.request(&rawReq{Method: "OPTIONS", URI: "sip:" + e.sipTarget()}), "OPTIONS", 200)
	}
	// From the trunk's address, a carrier's equipment is not judged by
	// its User-Agent: a number that is no tracking number gets its 404.
	r := dialFrom(t, e, "udp", "127.0.0.1")
	q := &rawReq{Method: "INVITE", URI: "sip:" + unknownUser + "@" + e.sipTarget(), Body: offerSDP}
	r.send(withHeader(r.request(q), "User-Agent: friendly-scanner"))
	res, _, ok := r.final("INVITE", 3*time.Second)
	if !ok || res.status() != 404 {
		t.Errorf("the trunk's INVITE with a scanner's User-Agent got %q, want 404", res.Start)
	} else {
		r.send(r.ackFor(q, res))
	}
	if n := metricDelta(nil, e.metrics(t), "callsign_sip_dropped_total", `reason="scanner"`); n != 4 {
		t.Errorf("callsign_sip_dropped_total{reason=\"scanner\"} %v, want 4", n)
	}
}

// register runs a REGISTER for user on r: without credentials, then with
// the answer to the challenge for password. It returns the final response.
func register(t *testing.T, e *edge, r *rawSIP, user, password string) sipMsg {
	t.Helper()
	callID := "e2e-reg-" + randomToken() + "@127.0.0.1"
	msg := func(cseq int, auth string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\n", e.sipTarget())
		fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=z9hG4bK-reg-%s;rport\r\n", r.transport, r.local, randomToken())
		fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=r%s\r\n", user, e.sipTarget(), randomToken())
		fmt.Fprintf(&b, "To: <sip:%s@%s>\r\n", user, e.sipTarget())
		fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d REGISTER\r\n", callID, cseq)
		fmt.Fprintf(&b, "Contact: <sip:%s@%s>\r\nExpires: 600\r\nMax-Forwards: 70\r\n", user, r.local)
		if auth != "" {
			b.WriteString("Authorization: " + auth + "\r\n")
		}
		b.WriteString("Content-Length: 0\r\n\r\n")
		return b.String()
	}
	chal := r.wantFinal(msg(1, ""), "REGISTER", 401)
	c, err := digest.ParseChallenge(chal.header("WWW-Authenticate"))
	if err != nil {
		t.Fatalf("challenge %q: %v", chal.header("WWW-Authenticate"), err)
	}
	creds, err := digest.Digest(c, digest.Options{
		Method: "REGISTER", URI: "sip:" + e.sipTarget(), Username: user, Password: password, Count: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.send(msg(2, creds.String()))
	res, _, ok := r.final("REGISTER", 3*time.Second)
	if !ok {
		t.Fatalf("no answer to %s's REGISTER with credentials", user)
	}
	return res
}

// TestRegisterLockout: after five wrong passwords, the right one is
// refused too, from that address, and for that username from any other;
// another username from another address still registers.
func TestRegisterLockout(t *testing.T) {
	t.Parallel()
	const alicePassword = "alice-e2e-s3cret"
	e := startEdge(t, edgeConfig{
		TrunkAllow: []string{"127.0.0.1/32"},
		Queue:      queueConfig{Agents: []string{"bob", "alice"}},
		Agents: []agentConfig{
			{ID: "bob", Name: "Bob", Username: "bob", Password: bobPassword},
			{ID: "alice", Name: "Alice", Username: "alice", Password: alicePassword},
		},
	})
	guesser := dialFrom(t, e, "udp", "127.0.0.5")
	for i := range 5 {
		if res := register(t, e, guesser, "bob", "guess-"+strconv.Itoa(i)); res.status() != 403 {
			t.Fatalf("wrong password %d got %q, want 403", i+1, res.Start)
		}
	}
	if res := register(t, e, guesser, "bob", bobPassword); res.status() != 403 {
		t.Errorf("the right password after five wrong ones got %q, want 403", res.Start)
	}
	if res := register(t, e, dialFrom(t, e, "udp", "127.0.0.6"), "bob", bobPassword); res.status() != 403 {
		t.Errorf("bob's right password from another address got %q, want 403: the username is locked out", res.Start)
	}
	if res := register(t, e, dialFrom(t, e, "tcp", "127.0.0.7"), "alice", alicePassword); res.status() != 200 {
		t.Errorf("alice from another address got %q, want 200", res.Start)
	}
	m := e.metrics(t)
	for _, by := range []string{"source", "username"} {
		if n := metricDelta(nil, m, "callsign_register_lockouts_total", `by="`+by+`"`); n != 1 {
			t.Errorf("callsign_register_lockouts_total{by=%q} %v, want 1", by, n)
		}
	}
	if strings.Contains(e.log.String(), bobPassword) || strings.Contains(e.log.String(), "guess-") {
		t.Error("a password is in the edge's log")
	}
}
