package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// carrierCall is a call a raw carrier socket placed to the tracking number.
type carrierCall struct {
	r      *rawSIP
	invite *rawReq
	toTag  string // the edge's tag, once it answered or rang
}

// carrierOffer is an SDP offer of PCMA on port, where the test reads
// (and drops) the RTP the edge sends.
func carrierOffer(port int) string {
	return strings.Replace(offerSDP, "m=audio 9 ", fmt.Sprintf("m=audio %d ", port), 1)
}

// rtpSink is a UDP socket that takes a call's RTP, so the edge's packets
// land somewhere; closed when the test ends.
func rtpSink(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func placeCall(t *testing.T, e *edge) *carrierCall {
	t.Helper()
	r := dialRaw(t, e, "udp")
	q := &rawReq{Method: "INVITE", URI: "sip:" + dialedUser + "@" + e.sipTarget(), Body: carrierOffer(rtpSink(t))}
	r.send(r.request(q))
	return &carrierCall{r: r, invite: q}
}

// waitResponse reads until a response to the INVITE with code comes.
func (c *carrierCall) waitResponse(t *testing.T, code int, within time.Duration) sipMsg {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, ok := c.r.read(deadline)
		if !ok {
			t.Fatalf("no %d to INVITE %s within %s", code, c.invite.CallID, within)
		}
		if m.cseqMethod() == "INVITE" && m.status() == code {
			c.toTag = tagOf(m.header("To"))
			return m
		}
		if m.cseqMethod() == "INVITE" && m.status() >= 300 {
			t.Fatalf("INVITE %s got %s, want %d", c.invite.CallID, m.Start, code)
		}
	}
}

// inDialog is a request of the carrier within the call's dialog.
func (c *carrierCall) inDialog(method string, cseq int, body string) *rawReq {
	return &rawReq{
		Method: method, URI: c.invite.URI, CallID: c.invite.CallID, FromTag: c.invite.FromTag,
		ToTag: c.toTag, CSeq: fmt.Sprintf("%d %s", cseq, method), Body: body,
	}
}

// TestCrashEndsCallsLeftUp: the edge is killed (SIGKILL) with one call
// talking and one waiting for an agent. At its next start, from its
// journal, each gets exactly one call.completed (hangup_by edge), the
// waiting one a call.missed (missed_reason error) too, ended when the
// killed edge was last alive; both carriers get a 500 and a BYE, the
// talking agent's phone a BYE; and what the carrier still sends for those
// calls gets sensible answers, never a second call.
func TestCrashEndsCallsLeftUp(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	answerer := startSipp(t, "answerer", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 60 * time.Second})
	ringer := startSipp(t, "ringer", sippOpts{Scenario: "agent-noanswer.xml", Timeout: 60 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue: queueConfig{
			RingTimeout: "40s",
			// The waiting call rings the second tier: the first is busy.
			Agents: []string{"{id: answerer, priority: 1}", "{id: ringer, priority: 2}"},
		},
		Agents: []agentConfig{fixedAgent("answerer", "Answerer", answerer), fixedAgent("ringer", "Ringer", ringer)},
	})

	talking := placeCall(t, e)
	talking.waitResponse(t, 200, 15*time.Second)
	talking.r.send(talking.r.request(talking.inDialog("ACK", 1, "")))
	answered := e.events.wait(t, "call.answered", bySIPCallID(talking.invite.CallID), eventDeadline)

	waiting := placeCall(t, e)
	waiting.waitResponse(t, 180, 15*time.Second)
	started := e.events.wait(t, "call.started", bySIPCallID(waiting.invite.CallID), eventDeadline)

	// Past an alive tick of the journal after the answer.
	time.Sleep(2 * time.Second)
	e.kill9(t)
	killedAt := time.Now()
	// The answering agent's phone stays up: the restarted edge must end
	// its call too, or a desk phone stays busy for good.
	ringer.kill()
	time.Sleep(time.Second)
	restartAt := time.Now()
	e.restart(t)

	talkingID, waitingID := answered.str("call_id"), started.str("call_id")
	url := fmt.Sprintf("nats://127.0.0.1:%d", e.natsPort)
	var evs []streamEvent
	deadline := time.Now().Add(eventDeadline)
	for {
		evs = readStream(t, url)
		n := 0
		for _, ev := range evs {
			if ev.name() == "call.completed" && (ev.str("call_id") == talkingID || ev.str("call_id") == waitingID) {
				n++
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call.completed for both calls in the stream within %s after the restart", eventDeadline)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Anything published twice would be there by now.
	time.Sleep(time.Second)
	evs = readStream(t, url)
	byID := map[string]int{}
	byCall := map[string]map[string][]event{talkingID: {}, waitingID: {}}
	for _, ev := range evs {
		byID[ev.str("id")]++
		if ev.MsgID != ev.str("id") {
			t.Errorf("Nats-Msg-Id %q, id %q: %s", ev.MsgID, ev.str("id"), ev.event)
		}
		if m, ok := byCall[ev.str("call_id")]; ok {
			m[ev.name()] = append(m[ev.name()], ev.event)
		}
	}
	for id, n := range byID {
		if n != 1 {
			t.Errorf("event %s %d times in the stream, want once", id, n)
		}
	}

	endedWhenKilled := func(ev event) time.Time {
		t.Helper()
		ended, err := time.Parse(time.RFC3339Nano, ev.str("ended_at"))
		if err != nil {
			t.Fatalf("%s: ended_at %q: %v", ev.name(), ev.str("ended_at"), err)
		}
		// The journal ticks every second while calls are up.
		if ended.After(restartAt) || ended.Before(killedAt.Add(-2500*time.Millisecond)) {
			t.Errorf("%s: ended_at %s, want within the last seconds before the kill at %s (restart at %s)",
				ev.name(), ended.Format(time.RFC3339Nano), killedAt.Format(time.RFC3339Nano), restartAt.Format(time.RFC3339Nano))
		}
		return ended
	}
	ms := func(ev event, key string) int64 {
		t.Helper()
		v, ok := ev.num(key)
		if !ok {
			t.Errorf("%s: %s missing: %s", ev.name(), key, ev)
		}
		return v
	}

	talk := byCall[talkingID]
	if n := len(talk["call.missed"]); n != 0 {
		t.Errorf("%d call.missed for the answered call", n)
	}
	done := one(t, talk, "call.completed")
	wantFields(t, done, map[string]string{"outcome": "answered", "hangup_by": "edge", "agent": "answerer", "sip_call_id": talking.invite.CallID})
	wantAbsent(t, done, "missed_reason")
	ended := endedWhenKilled(done)
	answeredAt, _ := time.Parse(time.RFC3339Nano, answered.str("answered_at"))
	startedAt, _ := time.Parse(time.RFC3339Nano, answered.str("started_at"))
	if !ended.After(answeredAt) {
		t.Errorf("ended_at %s not after answered_at %s", ended, answeredAt)
	}
	if done.str("answered_at") != answered.str("answered_at") || done.str("started_at") != answered.str("started_at") {
		t.Errorf("call.completed times differ from call.answered's: %s", done)
	}
	if got, want := ms(done, "talk_ms"), ended.Sub(answeredAt).Milliseconds(); got < want-1 || got > want+1 {
		t.Errorf("talk_ms %d, want %d", got, want)
	}
	if got, want := ms(done, "duration_ms"), ended.Sub(startedAt).Milliseconds(); got < want-1 || got > want+1 {
		t.Errorf("duration_ms %d, want %d", got, want)
	}

	wait := byCall[waitingID]
	missed := one(t, wait, "call.missed")
	done = one(t, wait, "call.completed")
	for _, ev := range []event{missed, done} {
		wantFields(t, ev, map[string]string{"outcome": "missed", "missed_reason": "error", "hangup_by": "edge", "sip_call_id": waiting.invite.CallID})
		wantAbsent(t, ev, "answered_at", "agent")
		endedWhenKilled(ev)
		if ms(ev, "talk_ms") != 0 || ms(ev, "wait_ms") != ms(ev, "duration_ms") {
			t.Errorf("%s: talk_ms %d, wait_ms %d, duration_ms %d; want 0 and wait = duration", ev.name(),
				ms(ev, "talk_ms"), ms(ev, "wait_ms"), ms(ev, "duration_ms"))
		}
	}
	if missed.str("ended_at") != done.str("ended_at") {
		t.Errorf("call.missed ended_at %s, call.completed %s", missed.str("ended_at"), done.str("ended_at"))
	}

	// At its start the edge tells both carriers their calls are over: a
	// 500 to each INVITE (the talking call's carrier had its 200 and
	// drops it as stray; the ringing one's caller is released at once,
	// not when the carrier gives up) and a BYE within each dialog.
	for _, c := range []struct {
		name     string
		call     *carrierCall
		answered bool
	}{{"talking", talking, true}, {"waiting", waiting, false}} {
		var bye, final sipMsg
		deadline := time.Now().Add(5 * time.Second)
		for bye.Start == "" || final.Start == "" {
			m, ok := c.call.r.read(deadline)
			if !ok {
				t.Fatalf("%s call: within 5s of the restart, BYE %q and final response %q from the edge; want both", c.name, bye.Start, final.Start)
			}
			switch {
			case m.method() == "BYE":
				bye = m
				want := 481 // a BYE in a dialog never confirmed
				if c.answered {
					want = 200
				}
				c.call.r.send(responseTo(m, want))
			case m.cseqMethod() == "INVITE" && m.status() >= 200:
				final = m
				if !c.answered {
					c.call.r.send(c.call.r.ackFor(c.call.invite, m))
				}
			}
		}
		if bye.header("Call-ID") != c.call.invite.CallID || tagOf(bye.header("From")) != c.call.toTag ||
			tagOf(bye.header("To")) != c.call.invite.FromTag {
			t.Errorf("%s call: the edge's BYE is not within the call's dialog (edge tag %s, carrier tag %s):\n%s",
				c.name, c.call.toTag, c.call.invite.FromTag, bye.Raw)
		}
		if final.status() != 500 || tagOf(final.header("To")) != c.call.toTag || final.header("Call-ID") != c.call.invite.CallID {
			t.Errorf("%s call: the final response to its INVITE is %q with To tag %q, want 500 with the edge's tag %s:\n%s",
				c.name, final.Start, tagOf(final.header("To")), c.call.toTag, final.Raw)
		}
	}

	// And the answered agent's phone got its BYE, after the restart.
	answerer.succeed(t, 10*time.Second)
	agentBye := firstReceived(t, answerer, "the restarted edge's BYE", isRequest("BYE"))
	if !agentBye.At.After(restartAt) {
		t.Errorf("the agent's BYE came at %s, before the restart at %s", agentBye.At, restartAt)
	}

	// What the carrier still sends for the answered call: keys, a session
	// refresh, then its BYE.
	r := talking.r
	r.wantFinal(r.request(talking.inDialog("INFO", 2, "")), "INFO", 481)
	reinvite := talking.inDialog("INVITE", 3, carrierOffer(9))
	res := r.wantFinal(r.request(reinvite), "INVITE", 481)
	r.send(r.ackFor(reinvite, res))
	r.wantFinal(r.request(talking.inDialog("BYE", 4, "")), "BYE", 200)

	// The waiting call's INVITE, sent again as a carrier that missed the
	// edge's answers would: an error, never a second call.
	w := waiting.r
	w.send(w.request(waiting.invite))
	res, _, ok := w.final("INVITE", 3*time.Second)
	if !ok || res.status() != 500 {
		t.Fatalf("the waiting call's INVITE again got %q (ok %v), want 500", res.Start, ok)
	}
	w.send(w.ackFor(waiting.invite, res))
	time.Sleep(500 * time.Millisecond)
	for _, ev := range readStream(t, url) {
		if ev.name() == "call.started" && ev.str("sip_call_id") == waiting.invite.CallID && ev.str("call_id") != waitingID {
			t.Errorf("a second call for the waiting call's INVITE: %s", ev.event)
		}
	}

	// A dialog nobody knows still gets 481.
	stranger := dialRaw(t, e, "udp")
	stranger.wantFinal(stranger.request(&rawReq{Method: "BYE", URI: talking.invite.URI, ToTag: "nosuchtag", CSeq: "2 BYE"}), "BYE", 481)
	if !strings.Contains(e.log.String(), `"call_id":"`+talkingID+`"`) {
		t.Error("no log line of the restarted edge names the answered call")
	}
}

// responseTo is a response with code to the request m, as a UAS writes it.
func responseTo(m sipMsg, code int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\n", code, map[int]string{200: "OK", 481: "Call/Transaction Does Not Exist"}[code])
	for _, line := range strings.Split(m.Raw, "\n") {
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq":
			b.WriteString(line + "\n")
		}
	}
	b.WriteString("Content-Length: 0\n\n")
	return b.String()
}
