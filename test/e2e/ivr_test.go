package e2e

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// menuFlows is flow main of the IVR tests: a short prompt, then a menu
// whose 2 leads to queue support; the prompts are the shipped ones, which
// the edge finds built in since the test's config directory has none.
func menuFlows(menu string) string {
	return `  main:
    steps:
      - play: prompts/goodbye.wav
      - menu:
` + menu
}

// ivrCall is one call through a flow, with the agents of both queues and a
// capture of every RTP packet to the caller and to the edge.
type ivrCall struct {
	e        *edge
	c        *sippProc
	sales    *sippProc
	support  *sippProc
	rtp      *capture
	carrierM int
}

// startIVRCall starts the agents and the edge; the caller follows script.
// Queue main rings sales, queue support rings support; both answer.
func startIVRCall(t *testing.T, flows string, script carrierScript) *ivrCall {
	t.Helper()
	ic := &ivrCall{}
	ic.sales = startSipp(t, "sales", sippOpts{Scenario: "agent-answer.xml", Timeout: 60 * time.Second})
	ic.support = startSipp(t, "support", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 60 * time.Second})
	ic.e = startEdge(t, edgeConfig{
		Queue:   queueConfig{RingTimeout: "10s", Agents: []string{"sales"}},
		Support: []string{"support"},
		Agents: []agentConfig{
			fixedAgent("sales", "Sales", ic.sales),
			fixedAgent("support", "Support", ic.support),
		},
		Flows: flows,
	})
	ic.carrierM = mediaPort(t)
	// Everything to the caller, and everything to the edge's RTP ports
	// (which includes the caller's keys).
	ic.rtp = startCaptureFilter(t, "udp and (dst port "+itoa(ic.carrierM)+" or dst portrange "+
		itoa(ic.e.rtpLow)+"-"+itoa(ic.e.rtpHigh)+")")
	ic.c = startSipp(t, "carrier", sippOpts{
		Scenario:  writeCarrierScenario(t, script),
		Remote:    ic.e.sipTarget(),
		Service:   dialedUser,
		Calls:     1,
		Timeout:   60 * time.Second,
		MediaPort: ic.carrierM,
	})
	return ic
}

// toCaller is the RTP stream the caller received from the edge.
func (ic *ivrCall) toCaller(t *testing.T, pkts []packet) []rtpFull {
	t.Helper()
	return rtpStream(t, fromEdgeTo(t, ic.e, pkts, "carrier", ic.carrierM, -1))
}

// edgeCarrierPort is the edge's RTP port on the caller's leg, from its
// 200 OK.
func (ic *ivrCall) edgeCarrierPort(t *testing.T) int {
	t.Helper()
	return edgeLegPort(t, ic.e, "carrier", firstReceived(t, ic.c, "200 for the INVITE", isResponse(200, "INVITE")))
}

// completed waits for the call's final record.
func (ic *ivrCall) completed(t *testing.T) event {
	t.Helper()
	evs := ic.e.events.callEvents(t, ic.c.callID, eventDeadline)
	return one(t, evs, "call.completed")
}

// wantIVR checks the keys the event says the caller pressed.
func wantIVR(t *testing.T, ev event, want ...string) {
	t.Helper()
	raw, ok := ev.Fields["ivr"]
	if !ok {
		t.Errorf("%s has no ivr, want %q", ev.name(), want)
		return
	}
	list, ok := raw.([]any)
	if !ok {
		t.Errorf("%s ivr is %T, want an array", ev.name(), raw)
		return
	}
	var got []string
	for _, v := range list {
		s, _ := v.(string)
		got = append(got, s)
	}
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("%s ivr = %q, want %q", ev.name(), got, want)
	}
}

// reachedSupport checks the call went through its flow to the support
// agent, who answered, and the sales agent was never rung; it returns the
// call's final record.
func (ic *ivrCall) reachedSupport(t *testing.T) event {
	t.Helper()
	ic.c.succeed(t, 40*time.Second)
	ic.support.succeed(t, 10*time.Second)
	wantNoCall(t, ic.sales)
	ev := ic.completed(t)
	wantFields(t, ev, map[string]string{"queue": "support", "agent": "support", "outcome": "answered"})
	return ev
}

// wantNoCall checks an agent's phone was never rung.
func wantNoCall(t *testing.T, p *sippProc) {
	t.Helper()
	if got := received(p.messages(t), isRequest("INVITE")); len(got) != 0 {
		t.Errorf("%s was rung, want not", p.name)
	}
}

// TestIVRMenuByTelephoneEvent: the caller hears the welcome prompt and the
// menu, presses 2 (RFC 4733) during the menu prompt, and reaches the
// support queue. What the caller received is decoded and compared with the
// prompts; the key stops the menu prompt within 100 ms of audio; prompts
// and the agent's voice reach the caller as one RTP stream.
func TestIVRMenuByTelephoneEvent(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	payloads, maps := offerPCMA()
	ic := startIVRCall(t, menuFlows(`          prompt: prompts/sales-menu.wav
          timeout: 5s
          retries: 1
          options:
            "1": {queue: main}
            "2": {queue: support}
`), carrierScript{
		Payloads: payloads, RTPMaps: maps,
		// goodbye.wav is 1.5 s: the key comes 2 s into the 5 s menu.
		Steps:    []carrierStep{{Pause: 3500 * time.Millisecond, PCAP: dtmfPCAP("2")}},
		ByeAfter: 4 * time.Second,
	})
	ev := ic.reachedSupport(t)
	wantFields(t, ev, map[string]string{"flow": "main", "source": numberSource, "campaign": numberCampaign})
	wantIVR(t, ev, "2")

	pkts := ic.rtp.datagrams(t)
	stream := ic.toCaller(t, pkts)
	wantOneStream(t, stream)
	spurts := talkspurts(stream)
	if len(spurts) < 2 {
		t.Fatalf("the caller got %d talkspurts, want the prompts, then the agent", len(spurts))
	}
	prompts := spurts[0]
	audio := decodeG711(t, prompts)
	wantHeard(t, "welcome", audio, 0, "goodbye.wav", "invalid.wav", 1.2)
	// The menu follows the first prompt's last frame.
	welcomeFrames := (len(promptPCM(t, "goodbye.wav")) + 159) / 160
	wantHeard(t, "menu", audio, welcomeFrames*160, "sales-menu.wav", "welcome.wav", 1.5)

	// Barge-in: once the first telephone-event reached the edge, at most
	// five more 20 ms prompt packets (100 ms of audio) went to the caller.
	edgePort := ic.edgeCarrierPort(t)
	var keyAt time.Time
	for _, p := range pkts {
		if int(p.Dst.Port()) == edgePort && int(p.Src.Port()) == ic.carrierM {
			if r, ok := parseRTP(p.Payload); ok && r.PT == pcapTEPT {
				keyAt = p.At
				break
			}
		}
	}
	if keyAt.IsZero() {
		t.Fatal("the capture has no telephone-event from the caller to the edge")
	}
	after := 0
	for _, p := range prompts {
		if p.At.After(keyAt) {
			after++
		}
	}
	t.Logf("prompt packets after the key: %d (of %d prompt packets)", after, len(prompts))
	if after > 5 {
		t.Errorf("the menu prompt went on for %d packets (%d ms) after the key, want at most 100 ms", after, after*20)
	}
	// The agent's voice is relayed after the prompts, on the same stream.
	if n := len(stream) - len(prompts); n < minRTP {
		t.Errorf("the caller got %d packets of the agent's audio, want at least %d", n, minRTP)
	}

	m := ic.e.metrics(t)
	if got := m["callsign_prompt_packets_sent_total"]; int(got) != len(prompts) {
		t.Errorf("callsign_prompt_packets_sent_total = %v, the caller got %d prompt packets", got, len(prompts))
	}
	if got := m[`callsign_dtmf_keys_total{via="rfc4733"}`]; got != 1 {
		t.Errorf(`callsign_dtmf_keys_total{via="rfc4733"} = %v, want 1`, got)
	}
}

// TestIVRTimeoutThenDefault: the caller presses nothing; the menu prompt is
// played again after its timeout, then the default queue takes the call.
func TestIVRTimeoutThenDefault(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	payloads, maps := offerPCMA()
	ic := startIVRCall(t, `  main:
    steps:
      - menu:
          prompt: prompts/goodbye.wav
          timeout: 1s
          retries: 1
          options:
            "1": {queue: main}
          default: {queue: support}
`, carrierScript{
		Payloads: payloads, RTPMaps: maps,
		// Two 1.5 s prompts, two 1 s timeouts, the agent rings 0.5 s.
		ByeAfter: 8 * time.Second,
	})
	ev := ic.reachedSupport(t)
	wantIVR(t, ev)

	spurts := talkspurts(ic.toCaller(t, ic.rtp.datagrams(t)))
	if len(spurts) < 3 {
		t.Fatalf("the caller got %d talkspurts, want the menu prompt twice, then the agent", len(spurts))
	}
	for i := range 2 {
		wantHeard(t, "menu prompt #"+itoa(i+1), decodeG711(t, spurts[i]), 0, "goodbye.wav", "invalid.wav", 1.2)
	}
	if n := len(spurts[1]); n < 70 || n > 80 {
		t.Errorf("the second menu prompt was %d packets, want the whole prompt, 75", n)
	}
}

// TestIVRInvalidKeyThenValid: 7 is no option: the caller hears the
// invalid-choice prompt and the menu again, then 2 leads to support.
func TestIVRInvalidKeyThenValid(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	payloads, maps := offerPCMA()
	ic := startIVRCall(t, `  main:
    steps:
      - menu:
          prompt: prompts/goodbye.wav
          timeout: 4s
          retries: 2
          invalid_prompt: prompts/invalid.wav
          options:
            "1": {queue: main}
            "2": {queue: support}
`, carrierScript{
		Payloads: payloads, RTPMaps: maps,
		Steps: []carrierStep{
			{Pause: 2 * time.Second, PCAP: dtmfPCAP("7")},
			// invalid.wav (3.2 s), then the menu again (1.5 s).
			{Pause: 5500 * time.Millisecond, PCAP: dtmfPCAP("2")},
		},
		ByeAfter: 3 * time.Second,
	})
	ev := ic.reachedSupport(t)
	wantIVR(t, ev, "7", "2")

	spurts := talkspurts(ic.toCaller(t, ic.rtp.datagrams(t)))
	if len(spurts) < 3 {
		t.Fatalf("the caller got %d talkspurts, want menu, invalid + menu, agent", len(spurts))
	}
	wantHeard(t, "menu", decodeG711(t, spurts[0]), 0, "goodbye.wav", "invalid.wav", 1.2)
	second := decodeG711(t, spurts[1])
	wantHeard(t, "invalid choice", second, 0, "invalid.wav", "goodbye.wav", 2.5)
	invalidFrames := (len(promptPCM(t, "invalid.wav")) + 159) / 160
	wantHeard(t, "menu again", second, invalidFrames*160, "goodbye.wav", "invalid.wav", 1.2)
}

// TestIVRDigitsBySIPInfo: keys sent as SIP INFO, in both body formats; an
// INFO of another kind gets 415, a body that is no key 400, and neither
// counts.
func TestIVRDigitsBySIPInfo(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	for _, tc := range []struct{ name, ctype, body, bad string }{
		{"dtmf-relay", "application/dtmf-relay", "Signal=2\nDuration=160", "Signal=Z\nDuration=160"},
		{"dtmf", "application/dtmf", "2", "twelve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			payloads, maps := offerPCMA()
			ic := startIVRCall(t, menuFlows(`          prompt: prompts/sales-menu.wav
          timeout: 5s
          options:
            "1": {queue: main}
            "2": {queue: support}
`), carrierScript{
				Payloads: payloads, RTPMaps: maps,
				Steps: []carrierStep{
					{Pause: 2 * time.Second, InfoType: "text/plain", InfoBody: "1", InfoWant: 415},
					{InfoType: tc.ctype, InfoBody: tc.bad, InfoWant: 400},
					{InfoType: tc.ctype, InfoBody: tc.body, InfoWant: 200},
				},
				ByeAfter: 3 * time.Second,
			})
			ev := ic.reachedSupport(t)
			wantIVR(t, ev, "2")
		})
	}
}

// TestIVRInbandDigit: a caller that did not offer telephone-event presses
// 2 as tones in its audio (PCMU); the edge hears it.
func TestIVRInbandDigit(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	ic := startIVRCall(t, menuFlows(`          prompt: prompts/sales-menu.wav
          timeout: 5s
          options:
            "1": {queue: main}
            "2": {queue: support}
`), carrierScript{
		Payloads: "0", RTPMaps: []string{"0 PCMU/8000"},
		Steps:    []carrierStep{{Pause: 2500 * time.Millisecond, PCAP: writeTonePCAP(t, '2', 80)}},
		ByeAfter: 4 * time.Second,
	})
	ev := ic.reachedSupport(t)
	ok200 := firstReceived(t, ic.c, "200 for the INVITE", isResponse(200, "INVITE"))
	if strings.Contains(ok200.Body, "telephone-event") {
		t.Errorf("the edge answered with telephone-event the caller did not offer:\n%s", ok200.Body)
	}
	wantIVR(t, ev, "2")
	// The caller got PCMU prompts: its only codec.
	stream := ic.toCaller(t, ic.rtp.datagrams(t))
	if len(stream) == 0 || stream[0].PT != 0 {
		t.Fatalf("the caller's first packet %v, want PCMU", stream)
	}
	wantHeard(t, "welcome in PCMU", decodeG711(t, talkspurts(stream)[0]), 0, "goodbye.wav", "invalid.wav", 1.2)
}

// TestIVRHangupOption: a menu option that hangs up ends the call with a
// BYE from the edge, a missed call that says why.
func TestIVRHangupOption(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	payloads, maps := offerPCMA()
	ic := startIVRCall(t, menuFlows(`          prompt: prompts/sales-menu.wav
          timeout: 5s
          options:
            "1": {queue: main}
            "#": {hangup: true}
`), carrierScript{
		Payloads: payloads, RTPMaps: maps,
		Steps: []carrierStep{{Pause: 2 * time.Second, PCAP: dtmfPCAP("#")}},
	})
	ic.c.succeed(t, 30*time.Second)
	wantNoCall(t, ic.sales)
	wantNoCall(t, ic.support)
	ev := ic.completed(t)
	wantFields(t, ev, map[string]string{
		"outcome": "missed", "missed_reason": "caller_hangup", "hangup_by": "edge", "ivr_exit": "hangup_option",
	})
	wantAbsent(t, ev, "queue", "agent")
	wantIVR(t, ev, "#")
}

func itoa(n int) string { return strconv.Itoa(n) }
