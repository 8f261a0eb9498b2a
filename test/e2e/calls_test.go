package e2e

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// minRTP is the least number of RTP packets each side must receive through
// the edge. The scenarios play g711a.pcap (30 ms packets, about 33 per
// second) for about 3 s, so a working relay delivers around 100.
const minRTP = 50

const (
	bobPassword   = "s3cret-e2e"
	eventDeadline = 15 * time.Second
)

func fixedAgent(id, name string, p *sippProc) agentConfig {
	return agentConfig{ID: id, Name: name, Contact: p.contact()}
}

func carrier(t *testing.T, e *edge, name, scenario string) *sippProc {
	t.Helper()
	return carrierOn(t, e, name, scenario, 0)
}

func carrierOn(t *testing.T, e *edge, name, scenario string, media int) *sippProc {
	t.Helper()
	return startSipp(t, name, sippOpts{
		Scenario:  scenario,
		Remote:    e.sipTarget(),
		Service:   dialedUser,
		Calls:     1,
		Timeout:   40 * time.Second,
		MediaPort: media,
	})
}

// wantRTPThroughEdge checks that the sipp listening on media port received
// at least minRTP packets from the edge's address and RTP range, and none
// straight from the other side's media port.
func wantRTPThroughEdge(t *testing.T, e *edge, pkts []packet, side string, port, otherPort int) {
	t.Helper()
	fromEdge := 0
	for src, n := range rtpTo(pkts, port) {
		switch {
		case int(src.Port()) == otherPort:
			t.Errorf("%s received %d RTP packets straight from the other side (%s), not through the edge", side, n, src)
		case src.Addr() == netip.MustParseAddr("127.0.0.1") && e.inRTPRange(int(src.Port())):
			fromEdge += n
		default:
			t.Errorf("%s received %d packets from %s, outside the edge's RTP range %d-%d", side, n, src, e.rtpLow, e.rtpHigh)
		}
	}
	t.Logf("%s received %d RTP packets from the edge on port %d", side, fromEdge, port)
	if fromEdge < minRTP {
		t.Errorf("%s received %d RTP packets from the edge on port %d, want at least %d (all it got: %v)",
			side, fromEdge, port, minRTP, rtpTo(pkts, port))
	}
}

// wantNoLeak checks that nothing identifying one side shows in what the
// other side received.
func wantNoLeak(t *testing.T, side string, msgs []sipMsg, secrets map[string]string) {
	t.Helper()
	for _, m := range received(msgs, func(sipMsg) bool { return true }) {
		for what, s := range secrets {
			if s != "" && strings.Contains(m.Raw, s) {
				t.Errorf("%s received the other side's %s (%q) in %s:\n%s", side, what, s, m.Start, m.Raw)
			}
		}
	}
}

// wantAnsweredSDP checks the SDP a side received from the edge anchors
// media at the edge.
func wantAnsweredSDP(t *testing.T, e *edge, side string, m sipMsg, otherMediaPort int) {
	t.Helper()
	sdp, ok := parseSDP(m.Body)
	if !ok {
		t.Errorf("%s: %s from the edge carries no audio SDP:\n%s", side, m.Start, m.Raw)
		return
	}
	if sdp.Addr != "127.0.0.1" {
		t.Errorf("%s: SDP c= address %q, want the edge's 127.0.0.1", side, sdp.Addr)
	}
	if !e.inRTPRange(sdp.Port) || sdp.Port == otherMediaPort {
		t.Errorf("%s: SDP m= port %d, want one of the edge's %d-%d (the other side's media port is %d)",
			side, sdp.Port, e.rtpLow, e.rtpHigh, otherMediaPort)
	}
}

// TestAnsweredCall is the basic answered call: the carrier calls the
// tracking number, the edge rings the agent with its own INVITE, the agent
// answers, audio flows both ways through the edge, the caller hangs up.
func TestAnsweredCall(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	carrierMedia := mediaPort(t)
	rtp := startCapture(t, carrierMedia, agent.mediaPort)
	c := carrierOn(t, e, "carrier", "carrier-answered.xml", carrierMedia)

	c.succeed(t, 45*time.Second)
	agent.succeed(t, 10*time.Second)
	pkts := rtp.packets(t)

	wantRTPThroughEdge(t, e, pkts, "carrier", c.mediaPort, agent.mediaPort)
	wantRTPThroughEdge(t, e, pkts, "agent", agent.mediaPort, c.mediaPort)

	// B2BUA: two dialogs that share nothing but caller number and name.
	cm, am := c.messages(t), agent.messages(t)
	ok200 := firstReceived(t, c, "200 for the INVITE", isResponse(200, "INVITE"))
	inv := firstReceived(t, agent, "the edge's INVITE", isRequest("INVITE"))
	if got := inv.header("Call-ID"); got == "" || got == c.callID {
		t.Errorf("agent's INVITE Call-ID %q; want one of the edge's own, not the carrier's %q", got, c.callID)
	}
	carrierTag := tagOf(firstSent(t, cm, "INVITE").header("From"))
	agentTag := tagOf(firstSentResponse(t, am, 200).header("To"))
	if got := tagOf(inv.header("From")); got == carrierTag {
		t.Errorf("agent's INVITE From tag is the carrier's %q", got)
	}
	if got := tagOf(ok200.header("To")); got == agentTag || got == "" {
		t.Errorf("carrier's 200 To tag %q; want the edge's own, not the agent's %q", got, agentTag)
	}
	wantAnsweredSDP(t, e, "carrier", ok200, agent.mediaPort)
	wantAnsweredSDP(t, e, "agent", inv, c.mediaPort)
	wantNoLeak(t, "carrier", cm, map[string]string{
		"Call-ID":     inv.header("Call-ID"),
		"tag":         agentTag,
		"SIP address": fmt.Sprintf("127.0.0.1:%d", agent.port),
		"media port":  fmt.Sprintf("m=audio %d ", agent.mediaPort),
	})
	wantNoLeak(t, "agent", am, map[string]string{
		"Call-ID":     c.callID,
		"tag":         carrierTag,
		"SIP address": fmt.Sprintf("127.0.0.1:%d", c.port),
		"media port":  fmt.Sprintf("m=audio %d ", c.mediaPort),
	})
	if got := len(received(cm, isResponse(180, "INVITE"))); got == 0 {
		t.Errorf("carrier got no 180 while the agent rang")
	}

	evs := e.events.callEvents(t, c.callID, eventDeadline)
	started, answered, completed := one(t, evs, "call.started"), one(t, evs, "call.answered"), one(t, evs, "call.completed")
	if n := len(evs["call.missed"]); n != 0 {
		t.Errorf("answered call has %d call.missed events: %v", n, evs["call.missed"])
	}
	for _, ev := range []event{started, answered, completed} {
		wantAttribution(t, ev, c.callID)
	}
	if started.str("sip_call_id") == inv.header("Call-ID") {
		t.Errorf("sip_call_id is the agent leg's Call-ID; want the carrier's")
	}
	wantAbsent(t, started, "agent", "outcome", "talk_ms", "answered_at", "ended_at")
	wantFields(t, answered, map[string]string{"agent": "carol", "queue": queueName})
	wantFields(t, completed, map[string]string{
		"agent": "carol", "queue": queueName, "outcome": "answered", "hangup_by": "caller",
	})
	wantAbsent(t, completed, "missed_reason")
	wantTime(t, completed, "started_at", "answered_at", "ended_at")
	wantMs(t, completed, "talk_ms", 2000, 20000)
	wantMs(t, completed, "wait_ms", 0, 10000)
	wantMs(t, completed, "duration_ms", 2000, 30000)
	if d, _ := completed.num("duration_ms"); d != 0 {
		talk, _ := completed.num("talk_ms")
		wait, _ := completed.num("wait_ms")
		if d < talk || d < wait {
			t.Errorf("duration_ms %d shorter than talk_ms %d or wait_ms %d", d, talk, wait)
		}
	}
	e.events.checkStream(t, 3)
}

func firstSent(t *testing.T, msgs []sipMsg, method string) sipMsg {
	t.Helper()
	for _, m := range msgs {
		if m.Sent && m.method() == method {
			return m
		}
	}
	t.Fatalf("no %s sent", method)
	return sipMsg{}
}

func firstSentResponse(t *testing.T, msgs []sipMsg, code int) sipMsg {
	t.Helper()
	for _, m := range msgs {
		if m.Sent && m.status() == code {
			return m
		}
	}
	t.Fatalf("no %d sent", code)
	return sipMsg{}
}

// wantMissed checks the events of a call that ended unanswered.
func wantMissed(t *testing.T, e *edge, c *sippProc, reason string) map[string][]event {
	t.Helper()
	evs := e.events.callEvents(t, c.callID, eventDeadline)
	started, missed, completed := one(t, evs, "call.started"), one(t, evs, "call.missed"), one(t, evs, "call.completed")
	if n := len(evs["call.answered"]); n != 0 {
		t.Errorf("missed call has %d call.answered events: %v", n, evs["call.answered"])
	}
	for _, ev := range []event{started, missed, completed} {
		wantAttribution(t, ev, c.callID)
	}
	wantFields(t, missed, map[string]string{"missed_reason": reason})
	wantAbsent(t, missed, "agent", "answered_at")
	wantFields(t, completed, map[string]string{"outcome": "missed", "missed_reason": reason})
	wantAbsent(t, completed, "agent", "answered_at")
	wantMs(t, completed, "talk_ms", 0, 0)
	wantTime(t, completed, "started_at", "ended_at")
	return evs
}

// TestMissedRingTimeout: the only agent rings and never answers; after
// max_wait the carrier gets 480 and the call is missed for ring_timeout.
func TestMissedRingTimeout(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	// No -m: with one agent, round-robin may ring it again after its
	// ring_timeout, before max_wait ends the call.
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-noanswer.xml", Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "2s", MaxWait: "3s", Agents: []string{"carol"}},
		Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	start := time.Now()
	c := carrier(t, e, "carrier", "carrier-expect-480.xml")
	c.succeed(t, 45*time.Second)
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("carrier got its 480 after %s; max_wait is 3s", took)
	}

	// Missed no sooner than one ring_timeout and no later than max_wait
	// (plus slack): whether the edge rings the lone agent again in between
	// is its choice.
	evs := wantMissed(t, e, c, "ring_timeout")
	wantMs(t, one(t, evs, "call.completed"), "wait_ms", 1900, 4500)

	agent.stop()
	am := agent.messages(t)
	invites := received(am, isRequest("INVITE"))
	cancels := received(am, isRequest("CANCEL"))
	if len(invites) == 0 {
		t.Fatalf("the agent was never rung")
	}
	if len(cancels) != len(invites) {
		t.Errorf("the agent was rung %d times and CANCELed %d times; every ring must end", len(invites), len(cancels))
	}
}

// TestMissedCallerHangup: the caller CANCELs while the agent rings; the
// carrier gets 487, the agent a CANCEL, the call is missed for
// caller_hangup.
func TestMissedCallerHangup(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-noanswer.xml", Calls: 1, Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "20s", MaxWait: "60s", Agents: []string{"carol"}},
		Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	c := carrier(t, e, "carrier", "carrier-cancel.xml")
	c.succeed(t, 45*time.Second)
	agent.succeed(t, 10*time.Second)
	firstReceived(t, agent, "a CANCEL from the edge", isRequest("CANCEL"))

	evs := wantMissed(t, e, c, "caller_hangup")
	wantFields(t, one(t, evs, "call.completed"), map[string]string{"hangup_by": "caller"})
}

// TestMissedNoAgent: the queue's only agent is a phone that never
// registered, so there is nobody to ring.
func TestMissedNoAgent(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "5s", MaxWait: "10s", Agents: []string{"bob"}},
		Agents: []agentConfig{{ID: "bob", Name: "Bob", Username: "bob", Password: bobPassword}},
	})
	c := carrier(t, e, "carrier", "carrier-expect-480.xml")
	c.succeed(t, 45*time.Second)
	wantMissed(t, e, c, "no_agent")
}

// TestBusyAgent: an agent that declines (486) is passed over for the next
// one; when every agent declines the carrier gets 486 and the call is
// missed as rejected.
func TestBusyAgent(t *testing.T) {
	t.Parallel()
	t.Run("next agent answers", func(t *testing.T) {
		requireEdge(t)
		busy := startSipp(t, "erin", sippOpts{Scenario: "agent-busy.xml", Timeout: 40 * time.Second})
		carol := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 40 * time.Second})
		e := startEdge(t, edgeConfig{
			Queue: queueConfig{RingTimeout: "10s", MaxWait: "30s", Agents: []string{"erin", "carol"}},
			Agents: []agentConfig{
				fixedAgent("erin", "Erin", busy),
				fixedAgent("carol", "Carol", carol),
			},
		})
		c := carrier(t, e, "carrier", "carrier-answered.xml")
		c.succeed(t, 45*time.Second)
		carol.succeed(t, 10*time.Second)

		evs := e.events.callEvents(t, c.callID, eventDeadline)
		wantFields(t, one(t, evs, "call.answered"), map[string]string{"agent": "carol"})
		wantFields(t, one(t, evs, "call.completed"), map[string]string{"agent": "carol", "outcome": "answered"})

		busy.stop()
		// The queue lists erin first, so a fresh round-robin rings her
		// first; her 486 must have sent the call on to carol.
		bm := busy.messages(t)
		if len(received(bm, isRequest("INVITE"))) == 0 {
			t.Errorf("erin (first in the round-robin queue) was never rung, so a busy agent was not exercised")
		}
		if n := len(received(bm, isRequest("ACK"))); n != len(received(bm, isRequest("INVITE"))) {
			t.Errorf("erin's 486s were ACKed %d times for %d INVITEs", n, len(received(bm, isRequest("INVITE"))))
		}
	})

	t.Run("every agent busy", func(t *testing.T) {
		requireEdge(t)
		busy := startSipp(t, "erin", sippOpts{Scenario: "agent-busy.xml", Timeout: 40 * time.Second})
		e := startEdge(t, edgeConfig{
			Queue:  queueConfig{RingTimeout: "10s", MaxWait: "30s", Agents: []string{"erin"}},
			Agents: []agentConfig{fixedAgent("erin", "Erin", busy)},
		})
		c := carrier(t, e, "carrier", "carrier-expect-486.xml")
		c.succeed(t, 45*time.Second)
		wantMissed(t, e, c, "rejected")
	})
}

// TestRefusedCalls: calls the edge must refuse before anything starts.
func TestRefusedCalls(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Timeout: 60 * time.Second})
	e := startEdge(t, edgeConfig{
		TrunkAllow: []string{"127.0.0.1/32"},
		Queue:      queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents:     []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	cases := []struct {
		name, scenario, service, ip string
	}{
		{"403 outside every trunk", "carrier-expect-403.xml", dialedUser, "127.0.0.2"},
		{"404 unknown number", "carrier-expect-404.xml", unknownUser, ""},
		{"488 G.729 only", "carrier-g729.xml", dialedUser, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startSipp(t, fmt.Sprintf("carrier%d", i), sippOpts{
				Scenario: tc.scenario,
				Remote:   e.sipTarget(),
				LocalIP:  tc.ip,
				Service:  tc.service,
				Calls:    1,
				Timeout:  20 * time.Second,
			})
			c.succeed(t, 25*time.Second)
		})
	}
	// Events are published after the SIP answer, so give them a moment to
	// show up before asserting there are none.
	time.Sleep(time.Second)
	if started := e.events.find("call.started", nil); len(started) > 0 {
		t.Errorf("refused calls produced call.started: %v", started)
	}
	agent.stop()
	if n := len(received(agent.messages(t), isRequest("INVITE"))); n != 0 {
		t.Errorf("the agent was rung %d times for refused calls", n)
	}
}

// TestRegistration: a phone that fails digest auth is not reachable; one
// that registers with the right password is rung at its contact.
func TestRegistration(t *testing.T) {
	t.Parallel()
	bob := []agentConfig{{ID: "bob", Name: "Bob", Username: "bob", Password: bobPassword}}
	queue := queueConfig{RingTimeout: "5s", MaxWait: "10s", Agents: []string{"bob"}}

	t.Run("wrong password", func(t *testing.T) {
		requireEdge(t)
		e := startEdge(t, edgeConfig{Queue: queue, Agents: bob})
		reg := startSipp(t, "bob", sippOpts{
			Scenario: "register-wrong.xml",
			Remote:   e.sipTarget(),
			Service:  "bob",
			Calls:    1,
			Timeout:  15 * time.Second,
			Extra:    []string{"-au", "bob", "-ap", "not-" + bobPassword},
		})
		reg.succeed(t, 20*time.Second)
		c := carrier(t, e, "carrier", "carrier-expect-480.xml")
		c.succeed(t, 45*time.Second)
		wantMissed(t, e, c, "no_agent")
	})

	t.Run("registered phone answers", func(t *testing.T) {
		requireEdge(t)
		e := startEdge(t, edgeConfig{Queue: queue, Agents: bob})
		agent := startSipp(t, "bob", sippOpts{
			Scenario: "register-then-answer.xml",
			Remote:   e.sipTarget(),
			Service:  "bob",
			Calls:    1,
			Timeout:  50 * time.Second,
			Extra: []string{
				"-oocsf", filepath.Join(sippDir, "register-then-answer-ooc.xml"),
				"-au", "bob", "-ap", bobPassword,
			},
		})
		waitRegistered(t, agent, 10*time.Second)
		carrierMedia := mediaPort(t)
		rtp := startCapture(t, carrierMedia, agent.mediaPort)
		c := carrierOn(t, e, "carrier", "carrier-answered.xml", carrierMedia)
		c.succeed(t, 45*time.Second)
		agent.succeed(t, 15*time.Second)
		pkts := rtp.packets(t)
		wantRTPThroughEdge(t, e, pkts, "carrier", c.mediaPort, agent.mediaPort)
		wantRTPThroughEdge(t, e, pkts, "agent", agent.mediaPort, c.mediaPort)

		evs := e.events.callEvents(t, c.callID, eventDeadline)
		wantFields(t, one(t, evs, "call.answered"), map[string]string{"agent": "bob"})
		wantFields(t, one(t, evs, "call.completed"), map[string]string{
			"agent": "bob", "outcome": "answered", "hangup_by": "caller",
		})
	})
}

// waitRegistered waits until the phone got the 200 for its REGISTER.
func waitRegistered(t *testing.T, p *sippProc, within time.Duration) {
	t.Helper()
	waitRegisterOKs(t, p, 1, within)
}

// waitRegisterOKs waits until sipp has received n 200 OKs to its REGISTERs.
func waitRegisterOKs(t *testing.T, p *sippProc, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			t.Fatalf("sipp %s exited before its registrations were answered (%v): %s", p.name, p.exitErr, p.errorsLog())
		default:
		}
		oks := 0
		for _, m := range p.messages(t) {
			if !m.Sent && m.status() == 200 && m.cseqMethod() == "REGISTER" {
				oks++
			}
		}
		if oks >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("sipp %s: %d REGISTERs not answered 200 within %s", p.name, n, within)
}

// TestAgentHangsUp: the agent sends BYE; the edge hangs up the carrier
// with its own BYE and records hangup_by agent.
func TestAgentHangsUp(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-bye.xml", Calls: 1, Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	c := carrier(t, e, "carrier", "carrier-wait-bye.xml")
	c.succeed(t, 45*time.Second)
	agent.succeed(t, 10*time.Second)

	bye := firstReceived(t, c, "the edge's BYE", isRequest("BYE"))
	if got := bye.header("Call-ID"); got != c.callID {
		t.Errorf("BYE to the carrier has Call-ID %q, want the carrier leg's %q", got, c.callID)
	}
	evs := e.events.callEvents(t, c.callID, eventDeadline)
	wantFields(t, one(t, evs, "call.completed"), map[string]string{
		"agent": "carol", "outcome": "answered", "hangup_by": "agent",
	})
	wantMs(t, one(t, evs, "call.completed"), "talk_ms", 1000, 20000)
}

// TestOptions: carriers probe trunks with OPTIONS and want 200.
func TestOptions(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "10s", Agents: []string{"bob"}},
		Agents: []agentConfig{{ID: "bob", Name: "Bob", Username: "bob", Password: bobPassword}},
	})
	for _, tr := range []struct{ name, flag string }{{"udp", ""}, {"tcp", "t1"}} {
		t.Run(tr.name, func(t *testing.T) {
			p := startSipp(t, "options-"+tr.name, sippOpts{
				Scenario:  "options.xml",
				Remote:    e.sipTarget(),
				Transport: tr.flag,
				Calls:     1,
				Timeout:   10 * time.Second,
			})
			p.succeed(t, 15*time.Second)
		})
	}
}

// A phone that unregisters (Expires: 0) is no longer rung: the call finds
// no agent, though the phone is still up and would answer.
func TestUnregister(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "5s", MaxWait: "10s", Agents: []string{"bob"}},
		Agents: []agentConfig{{ID: "bob", Name: "Bob", Username: "bob", Password: bobPassword}},
	})
	phone := startSipp(t, "bob", sippOpts{
		Scenario: "register-unregister.xml",
		Remote:   e.sipTarget(),
		Service:  "bob",
		Calls:    1,
		Timeout:  30 * time.Second,
		Extra: []string{
			"-oocsf", filepath.Join(sippDir, "register-then-answer-ooc.xml"),
			"-au", "bob", "-ap", bobPassword,
		},
	})
	waitRegisterOKs(t, phone, 2, 10*time.Second)
	c := carrier(t, e, "carrier", "carrier-expect-480.xml")
	c.succeed(t, 45*time.Second)
	wantMissed(t, e, c, "no_agent")
	phone.stop()
	if invites := received(phone.messages(t), isRequest("INVITE")); len(invites) != 0 {
		t.Errorf("the unregistered phone was rung %d times", len(invites))
	}
}
