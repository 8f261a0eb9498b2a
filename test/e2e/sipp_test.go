package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sippOpts describe one sipp process.
type sippOpts struct {
	Scenario string // file in test/sipp, or an absolute path
	Remote   string // host:port to call; "" for a scenario that starts by receiving
	LocalIP  string // -i; 127.0.0.1 by default
	Service  string // -s: the user part of the request URI
	// Calls is -m. 0 leaves sipp running until stop, for phones the edge
	// may ring more than once.
	Calls     int
	Timeout   time.Duration // -timeout, the hard bound of the whole run
	Transport string        // -t; UDP (u1) by default
	// MediaPort is -mp, allocated when 0; set it to start a capture on it
	// before sipp runs.
	MediaPort int
	Extra     []string
}

// sippProc is one running sipp.
type sippProc struct {
	name      string
	opts      sippOpts
	port      int // SIP
	mediaPort int // -mp; sipp also binds mediaPort+2
	callID    string
	dir       string
	cmd       *exec.Cmd
	exited    chan struct{}
	exitErr   error
	out       *syncBuffer
}

// sipp exit codes worth naming in a failure.
var sippExitCodes = map[int]string{
	0:   "all calls succeeded",
	1:   "at least one call failed",
	97:  "exit on internal command",
	99:  "normal exit without calls processed",
	254: "fatal error binding a socket",
	255: "fatal error",
}

// startSipp starts sipp in its own process group. Output, the message
// trace (-trace_msg), unexpected messages (-trace_err) and the final
// screen go to files under the test's temp dir and are printed when the
// test fails.
func startSipp(t *testing.T, name string, o sippOpts) *sippProc {
	t.Helper()
	requireTools(t, "sipp")
	if o.LocalIP == "" {
		o.LocalIP = "127.0.0.1"
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	p := &sippProc{
		name:      name,
		opts:      o,
		port:      freePort(t),
		mediaPort: o.MediaPort,
		dir:       filepath.Join(t.TempDir(), "sipp-"+name),
		exited:    make(chan struct{}),
		out:       &syncBuffer{},
	}
	if p.mediaPort == 0 {
		p.mediaPort = mediaPort(t)
	}
	// A Call-ID the test knows before the call starts, to find the call's
	// events by sip_call_id; unique per process so runs never mix.
	p.callID = fmt.Sprintf("e2e-%s-%d-1@%s", name, p.port, o.LocalIP)
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{}
	if o.Remote != "" {
		args = append(args, o.Remote)
	}
	scenario := o.Scenario
	if !filepath.IsAbs(scenario) {
		scenario = filepath.Join(sippDir, scenario)
	}
	args = append(args,
		"-sf", scenario,
		"-i", o.LocalIP,
		"-mi", o.LocalIP,
		"-p", strconv.Itoa(p.port),
		"-mp", strconv.Itoa(p.mediaPort),
		// sipp's control socket defaults to UDP 8888 on every address;
		// a port of our own keeps parallel runs apart.
		"-cp", strconv.Itoa(freePort(t)),
		"-cid_str", fmt.Sprintf("e2e-%s-%d-%%u@%%s", name, p.port),
		"-timeout", fmt.Sprintf("%ds", int(o.Timeout.Seconds())),
		"-nostdin",
		"-trace_msg", "-message_file", p.file("messages.log"),
		"-trace_err", "-error_file", p.file("errors.log"),
		"-trace_screen", "-screen_file", p.file("screen.log"),
		"-trace_logs", "-log_file", p.file("logs.log"),
	)
	if o.LocalIP != "127.0.0.1" {
		args = append(args, "-bind_local")
	}
	if o.Service != "" {
		args = append(args, "-s", o.Service)
	}
	if o.Transport != "" {
		args = append(args, "-t", o.Transport)
	}
	if o.Calls > 0 {
		args = append(args, "-m", strconv.Itoa(o.Calls), "-timeout_error")
	}
	args = append(args, o.Extra...)

	p.cmd = exec.Command("sipp", args...)
	p.cmd.Dir = p.dir // sipp drops stat files in its working directory
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start sipp %s: %v", name, err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s", p.report())
		}
	})
	t.Logf("sipp %s: sipp %s", name, strings.Join(args, " "))
	switch {
	case o.Remote != "":
	case o.Transport == "":
		waitUDPBound(t, "sipp "+name, p.port, 5*time.Second)
	case strings.HasPrefix(o.Transport, "t"):
		waitTCPListening(t, "sipp "+name, p.port, 5*time.Second)
	}
	return p
}

// mediaPort reserves an even port and the three above it: sipp binds -mp
// for audio and -mp+2 for video.
func mediaPort(t *testing.T) int { return freePorts(t, 4) }

func (p *sippProc) file(name string) string { return filepath.Join(p.dir, name) }

// contact is the SIP URI the edge reaches this phone at; with ;transport=tcp
// when sipp runs over TCP (-t t1).
func (p *sippProc) contact() string {
	c := fmt.Sprintf("sip:agent@%s:%d", p.opts.LocalIP, p.port)
	if strings.HasPrefix(p.opts.Transport, "t") {
		c += ";transport=tcp"
	}
	return c
}

// exitCode waits for sipp to exit by itself, at most within, and returns
// its exit code; -1 when it had to be killed.
func (p *sippProc) exitCode(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Errorf("sipp %s still running after %s; killed", p.name, within)
		p.kill()
		return -1
	}
	if p.exitErr == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode()
	}
	t.Errorf("sipp %s: %v", p.name, p.exitErr)
	return -1
}

// succeed fails the test unless sipp ran its scenario to the end for
// every call (exit 0) within the bound.
func (p *sippProc) succeed(t *testing.T, within time.Duration) {
	t.Helper()
	if code := p.exitCode(t, within); code != 0 {
		t.Errorf("sipp %s (%s) exited %d (%s); want 0: the call did not follow the scenario\n%s",
			p.name, p.opts.Scenario, code, sippExitCodes[code], p.errorsLog())
	}
}

// stop ends a sipp that runs without -m: SIGUSR1 lets calls in progress
// finish and the trace files close; after a bound it is killed.
func (p *sippProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case <-p.exited:
	case <-time.After(3 * time.Second):
		p.kill()
	}
}

func (p *sippProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
}

func (p *sippProc) errorsLog() string {
	b, _ := os.ReadFile(p.file("errors.log"))
	return strings.TrimSpace(string(b))
}

func (p *sippProc) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "---- sipp %s (%s), files in %s\n", p.name, p.opts.Scenario, p.dir)
	if s := p.errorsLog(); s != "" {
		fmt.Fprintf(&b, "errors.log:\n%s\n", s)
	}
	if s, err := os.ReadFile(p.file("screen.log")); err == nil {
		fmt.Fprintf(&b, "screen.log:\n%s\n", tail(string(s), 60))
	}
	if s, err := os.ReadFile(p.file("messages.log")); err == nil {
		fmt.Fprintf(&b, "messages.log:\n%s\n", tail(string(s), 250))
	}
	return b.String()
}

// sipMsg is one message from sipp's -trace_msg log.
type sipMsg struct {
	Raw     string
	Sent    bool
	At      time.Time // when sipp logged it (zero when the trace had no time)
	Start   string    // request or status line
	Headers [][2]string
	Body    string
}

var compactHeaders = map[string]string{
	"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact",
	"c": "content-type", "l": "content-length", "k": "supported",
}

// header returns the first value of a header, matching compact forms.
func (m sipMsg) header(name string) string {
	name = strings.ToLower(name)
	for _, h := range m.Headers {
		k := strings.ToLower(h[0])
		if long, ok := compactHeaders[k]; ok {
			k = long
		}
		if k == name {
			return h[1]
		}
	}
	return ""
}

func (m sipMsg) method() string {
	if strings.HasPrefix(m.Start, "SIP/2.0 ") {
		return ""
	}
	method, _, _ := strings.Cut(m.Start, " ")
	return method
}

func (m sipMsg) status() int {
	rest, ok := strings.CutPrefix(m.Start, "SIP/2.0 ")
	if !ok {
		return 0
	}
	code, _ := strconv.Atoi(strings.Fields(rest + " ")[0])
	return code
}

// cseqMethod is the method in CSeq, which tells what a response answers.
func (m sipMsg) cseqMethod() string {
	f := strings.Fields(m.header("CSeq"))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

func (m sipMsg) String() string {
	dir := "received"
	if m.Sent {
		dir = "sent"
	}
	return dir + " " + m.Start
}

// traceSeparator heads every message of the trace:
//
//	----------------------------------------------- 2026-11-23 09:38:03.660435
//	UDP message sent (326 bytes):
var traceSeparator = regexp.MustCompile(`(?m)^-{20,} (.*)\n(?:UDP|TCP|TLS|SCTP) message (sent|received) [^\n]*\n`)

// messages parses sipp's message trace.
func (p *sippProc) messages(t *testing.T) []sipMsg {
	t.Helper()
	raw, err := os.ReadFile(p.file("messages.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("sipp %s message trace: %v", p.name, err)
	}
	// sipp creates the trace with the first message; no file, no message.
	text := strings.ReplaceAll(string(raw), "\r\n", "\n")
	locs := traceSeparator.FindAllStringSubmatchIndex(text, -1)
	var out []sipMsg
	for i, loc := range locs {
		end := len(text)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		m := parseSIP(strings.TrimLeft(text[loc[1]:end], "\n"))
		m.At, _ = time.ParseInLocation("2006-01-02 15:04:05.999999", strings.TrimSpace(text[loc[2]:loc[3]]), time.Local)
		m.Sent = text[loc[4]:loc[5]] == "sent"
		out = append(out, m)
	}
	return out
}

func parseSIP(s string) sipMsg {
	head, body, _ := strings.Cut(s, "\n\n")
	lines := strings.Split(head, "\n")
	m := sipMsg{Raw: s, Start: strings.TrimSpace(lines[0]), Body: strings.TrimSpace(body)}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		m.Headers = append(m.Headers, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return m
}

// received returns the messages sipp received that match.
func received(msgs []sipMsg, match func(sipMsg) bool) []sipMsg {
	var out []sipMsg
	for _, m := range msgs {
		if !m.Sent && match(m) {
			out = append(out, m)
		}
	}
	return out
}

// sentResponses returns the responses sipp sent with that code to a
// cseqMethod request.
func sentResponses(msgs []sipMsg, code int, cseqMethod string) []sipMsg {
	var out []sipMsg
	for _, m := range msgs {
		if m.Sent && m.status() == code && m.cseqMethod() == cseqMethod {
			out = append(out, m)
		}
	}
	return out
}

func isRequest(method string) func(sipMsg) bool {
	return func(m sipMsg) bool { return m.method() == method }
}

func isResponse(code int, cseqMethod string) func(sipMsg) bool {
	return func(m sipMsg) bool { return m.status() == code && m.cseqMethod() == cseqMethod }
}

// firstReceived returns the first received message that matches or
// fails the test.
func firstReceived(t *testing.T, p *sippProc, what string, match func(sipMsg) bool) sipMsg {
	t.Helper()
	msgs := p.messages(t)
	got := received(msgs, match)
	if len(got) == 0 {
		var seen []string
		for _, m := range msgs {
			seen = append(seen, m.String())
		}
		t.Fatalf("sipp %s never received %s; its messages: %v", p.name, what, seen)
	}
	return got[0]
}

// sdpAudio is the audio stream of an SDP body.
type sdpAudio struct {
	Addr     string
	Port     int
	Payloads []string
}

func parseSDP(body string) (sdpAudio, bool) {
	var a sdpAudio
	var sessionAddr, mediaAddr string
	inAudio := false
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "m="):
			f := strings.Fields(l[2:])
			inAudio = len(f) >= 3 && f[0] == "audio"
			if inAudio {
				a.Port, _ = strconv.Atoi(f[1])
				a.Payloads = f[3:]
			}
		case strings.HasPrefix(l, "c="):
			f := strings.Fields(l[2:])
			if len(f) == 3 {
				if inAudio {
					mediaAddr = f[2]
				} else if a.Port == 0 {
					sessionAddr = f[2]
				}
			}
		}
	}
	a.Addr = mediaAddr
	if a.Addr == "" {
		a.Addr = sessionAddr
	}
	return a, a.Port != 0
}

// tagOf returns the tag parameter of a From or To value.
func tagOf(v string) string {
	// Parameters inside <...> belong to the URI, not to the header.
	if i := strings.LastIndex(v, ">"); i >= 0 {
		v = v[i+1:]
	}
	for _, p := range strings.Split(v, ";") {
		if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "tag") {
			return val
		}
	}
	return ""
}
