package e2e

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// netnsEnv, set to the network namespace of the run that started it,
// tells a run of this test binary that it is the one inside the namespace
// TestSignalingLoss made, where it may drop packets on loopback.
const netnsEnv = "CALLSIGN_E2E_LOSS_NETNS"

// lossPercent is the share of SIP packets lost, each way.
const lossPercent = 5

// TestSignalingLoss: with 5% of the SIP packets lost on the way, calls
// still complete, through the retransmissions of the edge and of the
// peers. Losing packets needs a loopback of the test's own, so the test
// runs this binary again in a new network namespace (and a PID namespace,
// so nothing it starts outlives it), where TestSignalingLossInNamespace
// does the work; the machine's own network is never touched.
func TestSignalingLoss(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	requireTools(t, "unshare", "ip", "nft")
	parentNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("cannot tell this process's network namespace: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("cannot find the test binary to run it in a network namespace: %v", err)
	}

	// Root makes the namespaces itself; anyone else needs a user
	// namespace where they are root.
	private := []string{"--net", "--pid", "--fork", "--kill-child"}
	candidates := [][]string{append([]string{"--map-root-user"}, private...)}
	if os.Geteuid() == 0 {
		candidates = append([][]string{private}, candidates...)
	}
	var flags []string
	var refusals []string
	for _, c := range candidates {
		out, err := exec.Command("unshare", append(c, "--", "true")...).CombinedOutput()
		if err == nil {
			flags = c
			break
		}
		refusals = append(refusals, fmt.Sprintf("unshare %s: %v: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out))))
	}
	if flags == nil {
		t.Fatalf("cannot make a network namespace of the test's own, where packets may be lost without touching the machine's network "+
			"(run as root, or allow unprivileged user namespaces):\n%s", strings.Join(refusals, "\n"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(slices.Clone(flags), "--", exe,
		"-test.run=^TestSignalingLossInNamespace$", "-test.count=1", "-test.v=true", "-test.timeout=55s")
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+parentNS, edgeBinaryEnv+"="+edgeBinary)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// --kill-child takes everything in the namespaces down with unshare.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	started := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("TestSignalingLossInNamespace, run with unshare %s in %s:\n%s",
		strings.Join(flags, " "), time.Since(started).Round(time.Millisecond), strings.TrimRight(string(out), "\n"))
	switch {
	case ctx.Err() != nil:
		t.Fatalf("the run in the network namespace did not end within 60s; killed")
	case err != nil:
		t.Fatalf("the run in the network namespace failed: %v", err)
	case !strings.Contains(string(out), "--- PASS: TestSignalingLossInNamespace"):
		t.Fatalf("the run in the network namespace did not pass TestSignalingLossInNamespace (skipped, or not run)")
	}
}

// TestSignalingLossInNamespace is the inner half of TestSignalingLoss,
// which runs it in a network namespace of its own; started any other way
// it skips. It loses lossPercent of the UDP packets to or from the SIP
// ports (the edge's and the sipps'; RTP, NATS and HTTP are spared), places
// calls several at a time and wants every one of them answered and
// recorded once.
func TestSignalingLossInNamespace(t *testing.T) {
	parentNS := os.Getenv(netnsEnv)
	if parentNS == "" {
		t.Skip("inner half of TestSignalingLoss: runs only in the network namespace that test makes")
	}
	if ns, err := os.Readlink("/proc/self/ns/net"); err != nil || ns == parentNS {
		t.Fatalf("refusing to lose packets: this run is in network namespace %s (%v), the one it was started from", ns, err)
	}
	requireEdge(t)
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}

	// More agents than calls at a time: an agent is free again only once
	// the edge has seen its call end, and a call finding every agent busy
	// would be missed.
	const calls, atOnce, nAgents = 40, 8, 12
	agents := startSipp(t, "agents", sippOpts{
		Scenario: "agent-answer-lossy.xml",
		Calls:    calls,
		Timeout:  50 * time.Second,
		Extra:    []string{"-trace_stat", "-stf", "stats.csv", "-fd", "1"},
	})
	var ids []string
	var cfgAgents []agentConfig
	for i := 1; i <= nAgents; i++ {
		id := fmt.Sprintf("agent%02d", i)
		ids = append(ids, id)
		cfgAgents = append(cfgAgents, agentConfig{ID: id, Name: id, Contact: fmt.Sprintf("sip:%s@127.0.0.1:%d", id, agents.port)})
	}
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "10s", MaxWait: "30s", Agents: ids},
		Agents: cfgAgents,
	})

	loss := startSignalingLoss(t, e.sipPort, agents.port)
	c := startSipp(t, "carrier", sippOpts{
		Scenario: "carrier-answered.xml",
		Remote:   e.sipTarget(),
		Service:  dialedUser,
		Calls:    calls,
		Timeout:  50 * time.Second,
		Extra:    []string{"-l", strconv.Itoa(atOnce), "-r", "20", "-trace_stat", "-stf", "stats.csv", "-fd", "1"},
	})
	// Every SIP packet of the test has the edge's port at one end, so the
	// carrier's first packets were already subject to loss.
	loss.addPorts(t, c.port)
	c.succeed(t, 50*time.Second)
	// The agents' side of the last calls ends later: the edge's BYE may
	// have to be retransmitted, and each call waits for a late ACK.
	agents.succeed(t, 20*time.Second)

	// Each call once: answered, never missed, one call.completed.
	deadline := time.Now().Add(eventDeadline)
	for len(e.events.find("call.completed", nil)) < calls && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	byCall := map[string]map[string][]event{}
	for _, ev := range e.events.all() {
		if !strings.HasPrefix(ev.name(), "call.") {
			continue
		}
		id := ev.str("sip_call_id")
		if byCall[id] == nil {
			byCall[id] = map[string][]event{}
		}
		byCall[id][ev.name()] = append(byCall[id][ev.name()], ev)
	}
	answered := 0
	for i := 1; i <= calls; i++ {
		id := fmt.Sprintf("e2e-carrier-%d-%d@127.0.0.1", c.port, i)
		evs := byCall[id]
		delete(byCall, id)
		for _, name := range []string{"call.started", "call.answered", "call.completed"} {
			if n := len(evs[name]); n != 1 {
				t.Errorf("call %d (%s): %d %s events, want 1: %v", i, id, n, name, evs[name])
			}
		}
		if n := len(evs["call.missed"]); n != 0 {
			t.Errorf("call %d (%s): missed: %v", i, id, evs["call.missed"])
		}
		if len(evs["call.completed"]) == 1 {
			done := evs["call.completed"][0]
			wantFields(t, done, map[string]string{"outcome": "answered", "hangup_by": "caller"})
			if done.str("outcome") == "answered" && done.str("agent") != "" {
				answered++
			}
		}
	}
	for id, evs := range byCall {
		t.Errorf("events of a call the carrier did not place (Call-ID %q): %v", id, evs)
	}

	seen, dropped := loss.counts(t)
	if dropped == 0 {
		t.Errorf("no SIP packet was dropped (%d seen): the loss did not happen", seen)
	}
	carrierRetrans, agentRetrans := sippRetransmissions(t, c), sippRetransmissions(t, agents)
	edgeAgain := receivedAgain(c.messages(t)) + receivedAgain(agents.messages(t))
	t.Logf("loss (%s): %d of %d SIP packets dropped (%.1f%%)", loss.how, dropped, seen, 100*float64(dropped)/float64(max(seen, 1)))
	t.Logf("retransmissions: carrier %d, agents %d (sipp's counts); %d messages from the edge received again (its retransmissions, and its answers to retransmitted requests)",
		carrierRetrans, agentRetrans, edgeAgain)
	t.Logf("calls: %d of %d answered and completed once, %d at a time", answered, calls, atOnce)
	if carrierRetrans+agentRetrans+edgeAgain == 0 {
		t.Errorf("no retransmission anywhere, yet %d packets were dropped", dropped)
	}
}

// signalingLoss drops lossPercent of the UDP packets to or from a set of
// ports on loopback. The drops happen where they are silent to the
// sender, as on a real network: a netem qdisc on egress, or an nftables
// rule on input (on output, the sender would get EPERM).
type signalingLoss struct {
	how string // "netem" or "nftables"
}

const lossTable = "callsign_loss"

func startSignalingLoss(t *testing.T, ports ...int) *signalingLoss {
	t.Helper()
	l := &signalingLoss{how: "netem"}
	err := l.netem(ports)
	if err != nil {
		t.Logf("netem: %v; losing packets with nftables instead", err)
		l.how = "nftables"
		if err := l.nftables(ports); err != nil {
			t.Fatalf("nftables: %v", err)
		}
	}
	t.Logf("losing %d%% of the UDP packets to or from ports %v with %s", lossPercent, ports, l.how)
	return l
}

func command(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// netem classifies the SIP ports' packets into an htb class whose queue
// is netem, and lets everything else through as it was.
func (l *signalingLoss) netem(ports []int) error {
	if _, err := exec.LookPath("tc"); err != nil {
		return err
	}
	steps := [][]string{
		{"qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb"},
		{"class", "add", "dev", "lo", "parent", "1:", "classid", "1:4", "htb", "rate", "10gbit"},
		{"qdisc", "add", "dev", "lo", "parent", "1:4", "handle", "40:", "netem", "loss", fmt.Sprintf("%d%%", lossPercent)},
	}
	for _, s := range steps {
		if err := command("tc", s...); err != nil {
			_ = command("tc", "qdisc", "del", "dev", "lo", "root")
			return err
		}
	}
	return l.netemPorts(ports)
}

func (l *signalingLoss) netemPorts(ports []int) error {
	for _, p := range ports {
		for _, dir := range []string{"sport", "dport"} {
			if err := command("tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
				"match", "ip", "protocol", "17", "0xff", "match", "ip", dir, strconv.Itoa(p), "0xffff", "flowid", "1:4"); err != nil {
				return err
			}
		}
	}
	return nil
}

// nftables drops on the input hook. A packet to and from lossy ports goes
// to the lossy chain once, and takes its chance of loss once.
func (l *signalingLoss) nftables(ports []int) error {
	var elems []string
	for _, p := range ports {
		elems = append(elems, strconv.Itoa(p))
	}
	ruleset := fmt.Sprintf(`table inet %s {
	set sip_ports { type inet_service; elements = { %s } }
	counter sip_seen { }
	counter sip_dropped { }
	chain lossy {
		counter name sip_seen
		numgen random mod 100 < %d counter name sip_dropped drop
	}
	chain input {
		type filter hook input priority 0; policy accept;
		udp dport @sip_ports goto lossy
		udp sport @sip_ports goto lossy
	}
}
`, lossTable, strings.Join(elems, ", "), lossPercent)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f: %v: %s\n%s", err, strings.TrimSpace(string(out)), ruleset)
	}
	return nil
}

func (l *signalingLoss) addPorts(t *testing.T, ports ...int) {
	t.Helper()
	var err error
	if l.how == "netem" {
		err = l.netemPorts(ports)
	} else {
		for _, p := range ports {
			if err = command("nft", "add", "element", "inet", lossTable, "sip_ports", fmt.Sprintf("{ %d }", p)); err != nil {
				break
			}
		}
	}
	if err != nil {
		t.Fatalf("losing packets of ports %v too: %v", ports, err)
	}
}

var (
	netemStats  = regexp.MustCompile(`qdisc netem 40:[^\n]*\n\s*Sent \d+ bytes (\d+) pkt \(dropped (\d+)`)
	nftPackets  = regexp.MustCompile(`packets (\d+)`)
	errNoFigure = errors.New("no figure in the output")
)

// counts returns how many SIP packets the loss saw and how many it
// dropped.
func (l *signalingLoss) counts(t *testing.T) (seen, dropped int) {
	t.Helper()
	if l.how == "netem" {
		out, err := exec.Command("tc", "-s", "qdisc", "show", "dev", "lo").CombinedOutput()
		m := netemStats.FindStringSubmatch(string(out))
		if err != nil || m == nil {
			t.Fatalf("tc -s qdisc show dev lo: %v: %s", err, out)
		}
		sent, _ := strconv.Atoi(m[1])
		dropped, _ = strconv.Atoi(m[2])
		return sent + dropped, dropped
	}
	counter := func(name string) int {
		out, err := exec.Command("nft", "list", "counter", "inet", lossTable, name).CombinedOutput()
		m := nftPackets.FindStringSubmatch(string(out))
		if err == nil && m == nil {
			err = errNoFigure
		}
		if err != nil {
			t.Fatalf("nft list counter %s: %v: %s", name, err, out)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return counter("sip_seen"), counter("sip_dropped")
}

// sippRetransmissions reads the messages sipp sent again, from the
// statistics it wrote with -trace_stat -stf stats.csv.
func sippRetransmissions(t *testing.T, p *sippProc) int {
	t.Helper()
	f, err := os.Open(p.file("stats.csv"))
	if err != nil {
		t.Fatalf("sipp %s statistics: %v", p.name, err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = ';'
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("sipp %s statistics: %d rows, %v", p.name, len(rows), err)
	}
	last := rows[len(rows)-1]
	for i, name := range rows[0] {
		if name == "Retransmissions(C)" && i < len(last) {
			n, err := strconv.Atoi(last[i])
			if err != nil {
				t.Fatalf("sipp %s statistics: Retransmissions(C) = %q", p.name, last[i])
			}
			return n
		}
	}
	t.Fatalf("sipp %s statistics have no Retransmissions(C) column", p.name)
	return 0
}

// receivedAgain counts the messages sipp received more than once: the
// same request of the same transaction, or the same response.
func receivedAgain(msgs []sipMsg) int {
	seen := map[string]bool{}
	again := 0
	for _, m := range received(msgs, func(sipMsg) bool { return true }) {
		key := strings.Join([]string{m.Start, m.header("Call-ID"), m.header("CSeq"), viaBranch(m.header("Via")), tagOf(m.header("To"))}, "\x00")
		if seen[key] {
			again++
		}
		seen[key] = true
	}
	return again
}
