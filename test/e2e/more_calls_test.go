package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wantAnsweredCallEvents checks the events of a call the agent answered
// and the caller hung up, as TestAnsweredCall does for the UDP call.
func wantAnsweredCallEvents(t *testing.T, e *edge, c *sippProc, agentID string) map[string][]event {
	t.Helper()
	evs := e.events.callEvents(t, c.callID, eventDeadline)
	started, answered, completed := one(t, evs, "call.started"), one(t, evs, "call.answered"), one(t, evs, "call.completed")
	if n := len(evs["call.missed"]); n != 0 {
		t.Errorf("answered call has %d call.missed events: %v", n, evs["call.missed"])
	}
	for _, ev := range []event{started, answered, completed} {
		wantAttribution(t, ev, c.callID)
	}
	wantAbsent(t, started, "agent", "outcome", "talk_ms", "answered_at", "ended_at")
	wantFields(t, answered, map[string]string{"agent": agentID, "queue": queueName})
	wantFields(t, completed, map[string]string{
		"agent": agentID, "queue": queueName, "outcome": "answered", "hangup_by": "caller",
	})
	wantAbsent(t, completed, "missed_reason")
	wantTime(t, completed, "started_at", "answered_at", "ended_at")
	wantMs(t, completed, "talk_ms", 2000, 20000)
	wantMs(t, completed, "wait_ms", 0, 10000)
	return evs
}

// attempt is one entry of call.completed's attempts.
type attempt struct {
	Agent, Result, StartedAt string
	RingMs                   int64
	HasRingMs                bool
}

func attemptsOf(t *testing.T, ev event) []attempt {
	t.Helper()
	raw, ok := ev.Fields["attempts"].([]any)
	if !ok {
		t.Fatalf("%s: attempts missing or not a list (%s)", ev.name(), ev)
	}
	var out []attempt
	for i, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			t.Fatalf("%s: attempts[%d] is not an object (%s)", ev.name(), i, ev)
		}
		a := attempt{}
		a.Agent, _ = m["agent"].(string)
		a.Result, _ = m["result"].(string)
		a.StartedAt, _ = m["started_at"].(string)
		if f, ok := m["ring_ms"].(float64); ok {
			a.RingMs, a.HasRingMs = int64(f), true
		}
		if _, err := time.Parse(time.RFC3339Nano, a.StartedAt); err != nil {
			t.Errorf("%s: attempts[%d].started_at %q is not RFC 3339 (%s)", ev.name(), i, a.StartedAt, ev)
		}
		out = append(out, a)
	}
	return out
}

// between returns the time from the first message matching from to the
// first after it matching to, in one sipp's trace.
func between(t *testing.T, p *sippProc, fromWhat string, from func(sipMsg) bool, toWhat string, to func(sipMsg) bool) time.Duration {
	t.Helper()
	var start time.Time
	for _, m := range p.messages(t) {
		switch {
		case start.IsZero() && from(m):
			start = m.At
		case !start.IsZero() && to(m):
			if m.At.IsZero() || start.IsZero() {
				t.Fatalf("sipp %s: trace without times", p.name)
			}
			return m.At.Sub(start)
		}
	}
	t.Fatalf("sipp %s: no %s followed by %s in its trace", p.name, fromWhat, toWhat)
	return 0
}

func sent(match func(sipMsg) bool) func(sipMsg) bool {
	return func(m sipMsg) bool { return m.Sent && match(m) }
}

func recvd(match func(sipMsg) bool) func(sipMsg) bool {
	return func(m sipMsg) bool { return !m.Sent && match(m) }
}

func wantDuration(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s took %s, want %s..%s", what, d.Round(time.Millisecond), lo, hi)
	} else {
		t.Logf("%s took %s", what, d.Round(time.Millisecond))
	}
}

// httpGet returns the status and body of GET path on the edge's HTTP port.
func (e *edge) httpGet(t *testing.T, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", e.httpPort, path), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metrics reads /metrics into series (name{labels} as written) → value.
func (e *edge) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	code, body := e.httpGet(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndex(line, " ")
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Errorf("/metrics: unreadable line %q", line)
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// series returns the series of a metric whose labels contain every one of
// labels (as written, e.g. `outcome="answered"`).
func series(m map[string]float64, name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		n, rest, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if ok {
			out[k] = v
		}
	}
	return out
}

// TestTCPCall: the answered call with one leg over TCP. The carrier's
// trunk on TCP (the edge listens on udp and tcp on one port), then an
// agent's phone reached at a ;transport=tcp contact. /metrics after the
// first call shows it.
func TestTCPCall(t *testing.T) {
	t.Parallel()

	t.Run("carrier over tcp", func(t *testing.T) {
		t.Parallel()
		requireEdge(t)
		agent := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 40 * time.Second})
		e := startEdge(t, edgeConfig{
			Queue:  queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
			Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
		})
		carrierMedia := mediaPort(t)
		rtp := startCapture(t, carrierMedia, agent.mediaPort)
		c := startSipp(t, "carrier", sippOpts{
			Scenario:  "carrier-answered.xml",
			Remote:    e.sipTarget(),
			Service:   dialedUser,
			Calls:     1,
			Timeout:   40 * time.Second,
			Transport: "t1",
			MediaPort: carrierMedia,
		})
		c.succeed(t, 45*time.Second)
		agent.succeed(t, 10*time.Second)
		pkts := rtp.packets(t)
		wantRTPThroughEdge(t, e, pkts, "carrier", c.mediaPort, agent.mediaPort)
		wantRTPThroughEdge(t, e, pkts, "agent", agent.mediaPort, c.mediaPort)

		ok200 := firstReceived(t, c, "200 for the INVITE", isResponse(200, "INVITE"))
		wantAnsweredSDP(t, e, "carrier", ok200, agent.mediaPort)
		if len(received(c.messages(t), isResponse(180, "INVITE"))) == 0 {
			t.Errorf("carrier got no 180 over TCP while the agent rang")
		}
		firstReceived(t, agent, "the edge's BYE", isRequest("BYE"))
		wantAnsweredCallEvents(t, e, c, "carol")

		// /metrics, /healthz, /readyz after the call. The call's end is
		// counted as the carrier's BYE is answered, so allow a moment.
		var m map[string]float64
		deadline := time.Now().Add(5 * time.Second)
		for {
			m = e.metrics(t)
			if v, ok := m["callsign_active_calls"]; ok && v == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if v, ok := m["callsign_active_calls"]; !ok || v != 0 {
			t.Errorf("callsign_active_calls = %v (present %v) after the call ended, want 0", v, ok)
		}
		answered := series(m, "callsign_calls_total", `outcome="answered"`)
		total := 0.0
		for _, v := range answered {
			total += v
		}
		if total < 1 {
			t.Errorf("callsign_calls_total{outcome=\"answered\"} series %v, want a count of at least 1", answered)
		}
		if v := m["callsign_rtp_packets_relayed_total"]; v <= 100 {
			t.Errorf("callsign_rtp_packets_relayed_total = %v, want more than 100 after a call with about 3 s of audio each way", v)
		}
		if s := series(m, "callsign_sip_responses_total", `code="200"`); len(s) == 0 {
			t.Errorf("no callsign_sip_responses_total{code=\"200\"} after an answered call; responses: %v",
				series(m, "callsign_sip_responses_total"))
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, body := e.httpGet(t, path); code != http.StatusOK {
				t.Errorf("GET %s: %d, want 200 (%s)", path, code, body)
			}
		}
		if t.Failed() {
			_, body := e.httpGet(t, "/metrics")
			t.Logf("/metrics:\n%s", body)
		}
	})

	t.Run("agent over tcp", func(t *testing.T) {
		t.Parallel()
		requireEdge(t)
		agent := startSipp(t, "dave", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 40 * time.Second, Transport: "t1"})
		e := startEdge(t, edgeConfig{
			Queue:  queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"dave"}},
			Agents: []agentConfig{{ID: "dave", Name: "Dave", Contact: fmt.Sprintf("sip:dave@127.0.0.1:%d;transport=tcp", agent.port)}},
		})
		carrierMedia := mediaPort(t)
		rtp := startCapture(t, carrierMedia, agent.mediaPort)
		c := carrierOn(t, e, "carrier", "carrier-answered.xml", carrierMedia)
		c.succeed(t, 45*time.Second)
		agent.succeed(t, 10*time.Second)
		pkts := rtp.packets(t)
		wantRTPThroughEdge(t, e, pkts, "carrier", c.mediaPort, agent.mediaPort)
		wantRTPThroughEdge(t, e, pkts, "agent", agent.mediaPort, c.mediaPort)

		inv := firstReceived(t, agent, "the edge's INVITE over TCP", isRequest("INVITE"))
		if via := inv.header("Via"); !strings.Contains(strings.ToUpper(via), "SIP/2.0/TCP") {
			t.Errorf("the INVITE to a ;transport=tcp contact has Via %q, want SIP/2.0/TCP", via)
		}
		wantAnsweredSDP(t, e, "agent", inv, c.mediaPort)
		firstReceived(t, agent, "the edge's BYE over TCP", isRequest("BYE"))
		wantAnsweredCallEvents(t, e, c, "dave")
	})
}

// TestMediaTimeout: an answered call where neither side sends RTP is hung
// up by the edge on both legs after media.timeout.
func TestMediaTimeout(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-silent-wait-bye.xml", Calls: 1, Timeout: 30 * time.Second})
	e := startEdge(t, edgeConfig{
		MediaTimeout: "2s",
		Queue:        queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents:       []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	c := carrier(t, e, "carrier", "carrier-silent-wait-bye.xml")
	c.succeed(t, 30*time.Second)
	agent.succeed(t, 10*time.Second)

	// "About 2 s after the answer": from the 200 each side saw (or sent)
	// to the BYE it received from the edge.
	bye := firstReceived(t, c, "the edge's BYE", isRequest("BYE"))
	if got := bye.header("Call-ID"); got != c.callID {
		t.Errorf("BYE to the carrier has Call-ID %q, want the carrier leg's %q", got, c.callID)
	}
	// One dialog: the edge's tag is the same in its 180, its 200 and the
	// From of its BYE, or a carrier that keys dialogs by tags answers
	// the BYE 481 and keeps billing the call.
	edgeTag := tagOf(firstReceived(t, c, "the 200", isResponse(200, "INVITE")).header("To"))
	for _, m := range received(c.messages(t), isResponse(180, "INVITE")) {
		if got := tagOf(m.header("To")); got != edgeTag {
			t.Errorf("the 180's To tag %q differs from the 200's %q", got, edgeTag)
		}
	}
	if got := tagOf(bye.header("From")); got != edgeTag || got == "" {
		t.Errorf("the edge's BYE has From tag %q, want its 200's To tag %q", got, edgeTag)
	}
	wantDuration(t, "carrier: 200 to the edge's BYE",
		between(t, c, "200", recvd(isResponse(200, "INVITE")), "BYE", recvd(isRequest("BYE"))),
		1800*time.Millisecond, 4*time.Second)
	wantDuration(t, "agent: its 200 to the edge's BYE",
		between(t, agent, "200", sent(isResponse(200, "INVITE")), "BYE", recvd(isRequest("BYE"))),
		1800*time.Millisecond, 4*time.Second)

	evs := e.events.callEvents(t, c.callID, eventDeadline)
	completed := one(t, evs, "call.completed")
	wantFields(t, completed, map[string]string{"agent": "carol", "outcome": "answered", "hangup_by": "edge"})
	wantAbsent(t, completed, "missed_reason")
	wantMs(t, completed, "talk_ms", 1800, 4500)
}

// TestNoAnswerNextAgent: the first agent rings out its ring_timeout and is
// cancelled; the next one answers.
func TestNoAnswerNextAgent(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	carol := startSipp(t, "carol", sippOpts{Scenario: "agent-noanswer.xml", Calls: 1, Timeout: 30 * time.Second})
	dave := startSipp(t, "dave", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 30 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue: queueConfig{RingTimeout: "2s", MaxWait: "20s", Agents: []string{"carol", "dave"}},
		Agents: []agentConfig{
			fixedAgent("carol", "Carol", carol),
			fixedAgent("dave", "Dave", dave),
		},
	})
	c := carrier(t, e, "carrier", "carrier-answered.xml")
	c.succeed(t, 30*time.Second)
	carol.succeed(t, 10*time.Second)
	dave.succeed(t, 10*time.Second)

	wantDuration(t, "carol: INVITE to CANCEL",
		between(t, carol, "INVITE", recvd(isRequest("INVITE")), "CANCEL", recvd(isRequest("CANCEL"))),
		1800*time.Millisecond, 3*time.Second)
	if n := len(received(c.messages(t), isResponse(200, "INVITE"))); n == 0 {
		t.Errorf("the carrier got no 200")
	}

	evs := e.events.callEvents(t, c.callID, eventDeadline)
	wantFields(t, one(t, evs, "call.answered"), map[string]string{"agent": "dave"})
	completed := one(t, evs, "call.completed")
	wantFields(t, completed, map[string]string{"agent": "dave", "outcome": "answered", "hangup_by": "caller"})
	wantMs(t, completed, "wait_ms", 2000, 4500)
	atts := attemptsOf(t, completed)
	if len(atts) != 2 {
		t.Fatalf("attempts %+v, want carol (no_answer) then dave (answered) (%s)", atts, completed)
	}
	if atts[0].Agent != "carol" || atts[0].Result != "no_answer" {
		t.Errorf("attempts[0] = %+v, want agent carol, result no_answer", atts[0])
	}
	if !atts[0].HasRingMs || atts[0].RingMs < 1800 || atts[0].RingMs > 3000 {
		t.Errorf("attempts[0].ring_ms = %d (present %v), want about 2000 (ring_timeout)", atts[0].RingMs, atts[0].HasRingMs)
	}
	if atts[1].Agent != "dave" || atts[1].Result != "answered" {
		t.Errorf("attempts[1] = %+v, want agent dave, result answered", atts[1])
	}
}

// TestMaxWaitShorterThanRingTimeout: max_wait ends the call even while an
// agent's ring_timeout has far to go.
func TestMaxWaitShorterThanRingTimeout(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-noanswer.xml", Calls: 1, Timeout: 30 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "10s", MaxWait: "2s", Agents: []string{"carol"}},
		Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	c := carrier(t, e, "carrier", "carrier-expect-480.xml")
	c.succeed(t, 20*time.Second)
	agent.succeed(t, 10*time.Second)

	wantDuration(t, "carrier: INVITE to 480",
		between(t, c, "INVITE", sent(isRequest("INVITE")), "480", recvd(isResponse(480, "INVITE"))),
		1800*time.Millisecond, 3500*time.Millisecond)
	firstReceived(t, agent, "a CANCEL from the edge", isRequest("CANCEL"))
	evs := wantMissed(t, e, c, "ring_timeout")
	completed := one(t, evs, "call.completed")
	wantMs(t, completed, "wait_ms", 1800, 3500)
	for _, a := range attemptsOf(t, completed) {
		t.Logf("attempt: %+v", a)
		if a.Agent == "carol" && a.HasRingMs && a.RingMs > 3500 {
			t.Errorf("carol rang %d ms; max_wait is 2s", a.RingMs)
		}
	}
}

// TestUnreachableAgent: an agent whose contact nobody listens on is passed
// over within ring_timeout (not after 32 s of SIP timers); the next agent
// answers.
func TestUnreachableAgent(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	ghostPort := freePort(t) // reserved in this run, bound by nobody
	carol := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 30 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue: queueConfig{RingTimeout: "3s", MaxWait: "20s", Agents: []string{"ghost", "carol"}},
		Agents: []agentConfig{
			{ID: "ghost", Name: "Ghost", Contact: fmt.Sprintf("sip:ghost@127.0.0.1:%d", ghostPort)},
			fixedAgent("carol", "Carol", carol),
		},
	})
	c := carrier(t, e, "carrier", "carrier-answered.xml")
	c.succeed(t, 30*time.Second)
	carol.succeed(t, 10*time.Second)

	// ring_timeout, carol's 500 ms of ringing, and slack.
	wantDuration(t, "carrier: INVITE to 200",
		between(t, c, "INVITE", sent(isRequest("INVITE")), "200", recvd(isResponse(200, "INVITE"))),
		0, 5*time.Second)

	evs := e.events.callEvents(t, c.callID, eventDeadline)
	completed := one(t, evs, "call.completed")
	wantFields(t, completed, map[string]string{"agent": "carol", "outcome": "answered"})
	atts := attemptsOf(t, completed)
	if len(atts) != 2 {
		t.Fatalf("attempts %+v, want ghost (unreachable or no_answer) then carol (answered) (%s)", atts, completed)
	}
	t.Logf("ghost's attempt: %+v", atts[0])
	if atts[0].Agent != "ghost" || (atts[0].Result != "unreachable" && atts[0].Result != "no_answer") {
		t.Errorf("attempts[0] = %+v, want agent ghost, result unreachable or no_answer", atts[0])
	}
	if atts[1].Agent != "carol" || atts[1].Result != "answered" {
		t.Errorf("attempts[1] = %+v, want agent carol, result answered", atts[1])
	}
}

// TestDrain: SIGTERM with a call in progress. The edge stops being ready,
// refuses new calls with 503 and Retry-After, lets the call in progress
// end normally, and then exits 0 by itself.
func TestDrain(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:     queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents:    []agentConfig{fixedAgent("carol", "Carol", agent)},
		ServeArgs: []string{"-drain-timeout", "20s"},
	})
	c := startSipp(t, "carrier", sippOpts{
		Scenario: "carrier-talk.xml",
		Remote:   e.sipTarget(),
		Service:  dialedUser,
		Calls:    1,
		Timeout:  40 * time.Second,
		Extra:    []string{"-d", "5000"},
	})
	e.events.wait(t, "call.answered", bySIPCallID(c.callID), 10*time.Second)

	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	signalled := time.Now()

	// /readyz turns 503 at once; /healthz stays 200.
	deadline := time.Now().Add(2 * time.Second)
	for {
		code, _ := e.httpGet(t, "/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz still %d 2s after SIGTERM, want 503", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := e.httpGet(t, "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz while draining: %d, want 200", code)
	}

	// A new call is refused with 503 and a Retry-After.
	r := dialRaw(t, e, "udp")
	q := &rawReq{Method: "INVITE", URI: "sip:" + dialedUser + "@" + e.sipTarget(), Body: offerSDP}
	res := r.wantFinal(r.request(q), "INVITE", 503)
	r.send(r.ackFor(q, res))
	if res.header("Retry-After") == "" {
		t.Errorf("503 while draining has no Retry-After:\n%s", res.Raw)
	}
	select {
	case <-e.exited:
		t.Fatalf("the edge exited %s after SIGTERM with a call in progress (%v)", time.Since(signalled), e.exitErr)
	default:
	}

	// The call in progress ends as the carrier hangs up, normally.
	c.succeed(t, 20*time.Second)
	agent.succeed(t, 10*time.Second)
	completed := e.events.wait(t, "call.completed", bySIPCallID(c.callID), eventDeadline)
	wantFields(t, completed, map[string]string{"agent": "carol", "outcome": "answered", "hangup_by": "caller"})
	wantMs(t, completed, "talk_ms", 4000, 20000)
	if started := e.events.find("call.started", nil); len(started) != 1 {
		t.Errorf("%d call.started events, want 1 (the refused INVITE must not start a call): %v", len(started), started)
	}

	// Then the edge leaves by itself, well before -drain-timeout.
	select {
	case <-e.exited:
		hungUp := firstReceived(t, c, "the 200 for the carrier's BYE", isResponse(200, "BYE")).At
		t.Logf("edge exited %s after SIGTERM, %s after the carrier's BYE was answered",
			e.exitedAt.Sub(signalled).Round(time.Millisecond), e.exitedAt.Sub(hungUp).Round(time.Millisecond))
		if e.exitErr != nil {
			t.Errorf("edge exited with %v after draining, want 0", e.exitErr)
		}
	case <-time.After(8 * time.Second):
		t.Errorf("edge still running 8s after its last call ended (%s after SIGTERM, -drain-timeout 20s)", time.Since(signalled).Round(time.Millisecond))
	}
}
