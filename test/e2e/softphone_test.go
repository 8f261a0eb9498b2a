package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const aliceToken = "alice-e2e-token-7f3a"

// screenshotDir is where the softphone tests leave their screenshots:
// $SCREENSHOT_DIR (make screenshots points it at docs/images), else the
// test's temp dir.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("SCREENSHOT_DIR"); d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			t.Fatal(err)
		}
		return abs
	}
	return t.TempDir()
}

// loginAgent opens the softphone as agent and makes it available.
func loginAgent(t *testing.T, b *browser, e *edge, agent, token string) *tab {
	t.Helper()
	p := b.open(agent, fmt.Sprintf("http://127.0.0.1:%d/softphone/?agent=%s", e.httpPort, agent))
	p.fill("#token", token)
	p.click("#login-button")
	p.waitVisible("#app", 10*time.Second)
	p.selectOption("#presence", "available")
	waitText(t, p, "#status", "Available", 10*time.Second)
	return p
}

// waitText waits until the text of sel contains want.
func waitText(t *testing.T, p *tab, sel, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := p.text(sel)
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s says %q, want %q", p.name, sel, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rtcStats is what the page's getStats() says of the call's audio.
type rtcStats struct {
	InPackets  int64   `json:"inPackets"`
	InLevel    float64 `json:"inLevel"`
	InEnergy   float64 `json:"inEnergy"`
	OutPackets int64   `json:"outPackets"`
	Codec      string  `json:"codec"`
}

func pageStats(t *testing.T, p *tab) rtcStats {
	t.Helper()
	var s rtcStats
	p.eval(`
		const pc = window.softphone.pc;
		if (!pc) return {};
		const out = {inPackets: 0, inLevel: 0, inEnergy: 0, outPackets: 0, codec: ''};
		const stats = await pc.getStats();
		stats.forEach((r) => {
			if (r.type === 'inbound-rtp' && r.kind === 'audio') {
				out.inPackets = r.packetsReceived || 0;
				out.inLevel = r.audioLevel || 0;
				out.inEnergy = r.totalAudioEnergy || 0;
				if (r.codecId && stats.get(r.codecId)) out.codec = stats.get(r.codecId).mimeType;
			}
			if (r.type === 'outbound-rtp' && r.kind === 'audio') out.outPackets = r.packetsSent || 0;
		});
		return out;`, &s)
	return s
}

// TestSoftphoneCall is an agent taking a call in Chromium: login, the
// ringing card with the number's source, answer, audio both ways through
// the edge, mute, a key from the keypad reaching the caller as RFC 4733,
// hang up, the recording.
//
// The softphone tests do not run in parallel: the browser's CPU load would
// disturb the audio timing the other tests measure.
func TestSoftphoneCall(t *testing.T) {
	requireEdge(t)
	// The agent's microphone plays 440 Hz; the caller sends 1 kHz.
	mic := filepath.Join(t.TempDir(), "mic.wav")
	writeToneWAV(t, mic, 440, 20*time.Second)
	softphoneCall(t, startBrowser(t, mic), 440, 1000, screenshotDir(t))
}

// TestSoftphoneCallFirefox is the same call in Firefox ESR, whose fake
// microphone plays 1 kHz; the caller sends 400 Hz.
func TestSoftphoneCallFirefox(t *testing.T) {
	requireEdge(t)
	softphoneCall(t, startFirefox(t, 1000), 1000, 400, "")
}

// softphoneCall takes one call with b, whose microphone plays agentHz,
// from a caller who plays callerHz; shots, if set, is where the ringing
// card and the call in progress are photographed.
func softphoneCall(t *testing.T, b *browser, agentHz, callerHz float64, shots string) {
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "30s", MaxWait: "60s", Agents: []string{"alice"}},
		Agents: []agentConfig{{ID: "alice", Name: "Alice", Token: aliceToken}},
		// A menu first, so the card has keys to show; recorded as with a
		// SIP agent.
		Flows: `  main:
    record: announce
    steps:
      - menu:
          prompt: prompts/goodbye.wav
          options:
            "1": {queue: main}`,
		Recording: recordingConfig,
	})
	alice := loginAgent(t, b, e, "alice", aliceToken)
	if got := alice.text("#agent-name"); !strings.Contains(got, "Alice") {
		t.Errorf("agent name shows %q", got)
	}
	if m := e.metrics(t); m[`callsign_softphone_agents{state="available"}`] != 1 {
		t.Errorf("/metrics does not count alice available: %v", m[`callsign_softphone_agents{state="available"}`])
	}

	carrierMedia := mediaPort(t)
	rtp := startCapture(t, carrierMedia)
	scenario := writeCarrierScenario(t, carrierScript{
		Payloads: "0 101",
		RTPMaps:  []string{"0 PCMU/8000", "101 telephone-event/8000"},
		Steps: []carrierStep{
			{Pause: 1500 * time.Millisecond, PCAP: dtmfPCAP("1")},
			{Pause: 500 * time.Millisecond, PCAP: writeSinePCAP(t, 0, callerHz, 20000)},
		},
	})
	c := carrierOn(t, e, "carrier", scenario, carrierMedia)

	alice.waitVisible("#incoming", 20*time.Second)
	for sel, want := range map[string]string{
		"#source": numberSource, "#medium": numberMedium, "#campaign": numberCampaign,
		"#caller-name": "Jane Caller", "#queue": queueName, "#ivr": "1",
	} {
		if got := alice.text(sel); !strings.Contains(got, want) {
			t.Errorf("ringing card %s shows %q, want %q", sel, got, want)
		}
	}
	if got := strings.NewReplacer(" ", "", "-", "", "(", "", ")", "").Replace(alice.text("#caller")); !strings.Contains(got, "5551234567") {
		t.Errorf("ringing card shows caller %q, want +1 555 123 4567", got)
	}
	// Headless Firefox has no audio output on a machine without a sound
	// card, so its audio clock never runs: the ring tone is heard in
	// Chromium only, whose headless mode plays to a fake output.
	var ringing bool
	if b.kind == "chromium" {
		alice.eval(`return window.softphone.ringing;`, &ringing)
		if !ringing {
			t.Error("the card shows but no ring tone sounds")
		}
	}
	var title string
	alice.eval(`return document.title;`, &title)
	if !strings.Contains(title, "Incoming call") && !strings.Contains(title, "Jane Caller") {
		t.Errorf("the tab's title %q does not say a call is ringing", title)
	}
	if shots != "" {
		alice.screenshot(filepath.Join(shots, "softphone-ringing.png"))
	}

	alice.click("#answer")
	alice.waitVisible("#in-call", 15*time.Second)
	if alice.eval(`return window.softphone.ringing;`, &ringing); ringing {
		t.Error("the ring tone goes on after the answer")
	}
	answered := e.events.wait(t, "call.answered", bySIPCallID(c.callID), eventDeadline)
	wantFields(t, answered, map[string]string{"agent": "alice", "source": numberSource, "campaign": numberCampaign})

	// Audio from the caller reaches the browser, and is not silence.
	var st rtcStats
	deadline := time.Now().Add(10 * time.Second)
	for {
		st = pageStats(t, alice)
		if st.InPackets >= minRTP && st.InLevel > 0 && st.OutPackets >= minRTP {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page's getStats after 10 s: %+v; want ≥ %d packets each way and a non-zero audio level", st, minRTP)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("page stats: %+v", st)
	if !strings.EqualFold(st.Codec, "audio/PCMU") {
		t.Errorf("the browser decodes %q, want audio/PCMU: the caller's codec, without transcoding", st.Codec)
	}

	// Mute stops the microphone's track, and unmute brings it back.
	var enabled []bool
	alice.click("#mute")
	alice.eval(`return window.softphone.pc.getSenders().filter((s) => s.track).map((s) => s.track.enabled);`, &enabled)
	if len(enabled) != 1 || enabled[0] {
		t.Errorf("after Mute the microphone tracks are enabled: %v", enabled)
	}
	var pressed string
	alice.eval(`return document.querySelector('#mute').getAttribute('aria-pressed');`, &pressed)
	if pressed != "true" {
		t.Errorf("the mute button's aria-pressed is %q while muted", pressed)
	}
	alice.click("#mute")
	alice.eval(`return window.softphone.pc.getSenders().filter((s) => s.track).map((s) => s.track.enabled);`, &enabled)
	if len(enabled) != 1 || !enabled[0] {
		t.Errorf("after Unmute the microphone tracks are %v", enabled)
	}

	alice.click(`.key[data-digit="5"]`)
	waitText(t, alice, "#digits-sent", "5", 5*time.Second)
	time.Sleep(time.Second)
	if shots != "" {
		alice.screenshot(filepath.Join(shots, "softphone-call.png"))
	}
	alice.click("#hangup")
	c.succeed(t, 20*time.Second)
	alice.waitHidden("#in-call", 10*time.Second)

	evs := e.events.callEvents(t, c.callID, eventDeadline)
	completed := one(t, evs, "call.completed")
	wantFields(t, completed, map[string]string{"agent": "alice", "outcome": "answered", "hangup_by": "agent"})
	wantMs(t, completed, "talk_ms", 1000, 60000)

	// The recording has the caller on the left, the browser on the right.
	rec := recordingOf(t, completed)
	if rec["consent"] != "announced" {
		t.Errorf("recording consent %v, want announced", rec["consent"])
	}
	path, _ := rec["path"].(string)
	if path == "" {
		t.Fatalf("call.completed has no recording path: %s", completed)
	}
	wav := readStereoWAV(t, path)
	t.Logf("recording %s: %.1f s", path, wav.seconds())
	wantVoices(t, "caller (left)", wav.left, callerHz, agentHz)
	wantVoices(t, "agent (right)", wav.right, agentHz, callerHz)
	if sc := readSidecar(t, path); sc.Agent != "alice" {
		t.Errorf("recording sidecar agent %q, want alice", sc.Agent)
	}

	// What the caller received came from the browser's microphone: the
	// tone of the fake device, through the edge's port, PCMU, with the
	// keypad's 5 as RFC 4733 on the caller's telephone-event type.
	pkts := fromEdgeTo(t, e, rtp.datagrams(t), "carrier", carrierMedia, 0)
	// Before the answer the caller heard the prompts.
	answeredAt, err := time.Parse(time.RFC3339Nano, answered.str("answered_at"))
	if err != nil {
		t.Fatalf("call.answered answered_at: %v", err)
	}
	var audio, events []packet
	for _, p := range pkts {
		if p.At.Before(answeredAt.Add(200 * time.Millisecond)) {
			continue
		}
		r, ok := parseRTP(p.Payload)
		switch {
		case !ok:
			t.Errorf("carrier received a packet that is not RTP from %s: % x", p.Src, p.Payload[:min(len(p.Payload), 24)])
		case r.PT == 0:
			audio = append(audio, p)
		case r.PT == 101:
			events = append(events, p)
		default:
			t.Errorf("carrier received payload type %d", r.PT)
		}
	}
	if len(audio) < minRTP {
		t.Fatalf("carrier received %d PCMU packets from the edge, want ≥ %d", len(audio), minRTP)
	}
	pcm := decodeG711(t, rtpStream(t, audio))
	wantVoices(t, "what the caller heard", pcm, agentHz, callerHz)
	var evPkts []rtpPacket
	for _, p := range events {
		r, _ := parseRTP(p.Payload)
		evPkts = append(evPkts, r)
	}
	if got := endedDigits(evPkts); len(got) != 1 || got[0] != 5 {
		t.Errorf("the keypad's 5 reached the caller as events %v (%d packets), want [5]", got, len(evPkts))
	}
	wantNoError(t, e)
}

// TestSoftphoneRefusesBadToken: a wrong token gets a clear message and no
// session.
func TestSoftphoneRefusesBadToken(t *testing.T) {
	requireEdge(t)
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "10s", Agents: []string{"alice"}},
		Agents: []agentConfig{{ID: "alice", Name: "Alice", Token: aliceToken}},
	})
	b := startBrowser(t, "")
	p := b.open("alice", fmt.Sprintf("http://127.0.0.1:%d/softphone/?agent=alice", e.httpPort))
	p.fill("#token", "not-the-token")
	p.click("#login-button")
	p.waitVisible("#login-error", 10*time.Second)
	if got := p.text("#login-error"); !strings.Contains(got, "wrong token") {
		t.Errorf("login error says %q", got)
	}
	var hidden bool
	p.eval(`return document.querySelector('#app').hidden;`, &hidden)
	if !hidden {
		t.Error("the softphone opened after a refused login")
	}
	// The edge holds no session: the agent is not offered a call, which
	// is missed with no_agent.
	c := carrier(t, e, "carrier", "carrier-expect-480.xml")
	c.succeed(t, 20*time.Second)
	evs := e.events.callEvents(t, c.callID, eventDeadline)
	wantFields(t, one(t, evs, "call.missed"), map[string]string{"missed_reason": "no_agent"})
}

// TestSoftphoneDeclineAndClose: a declined call goes to the next agent at
// once; so does one whose page is closed while it rings.
func TestSoftphoneDeclineAndClose(t *testing.T) {
	requireEdge(t)
	for _, how := range []string{"decline", "close"} {
		t.Run(how, func(t *testing.T) {
			carol := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 60 * time.Second})
			e := startEdge(t, edgeConfig{
				Queue: queueConfig{RingTimeout: "20s", MaxWait: "50s", Agents: []string{"alice", "carol"}},
				Agents: []agentConfig{
					{ID: "alice", Name: "Alice", Token: aliceToken},
					fixedAgent("carol", "Carol", carol),
				},
			})
			b := startBrowser(t, "")
			alice := loginAgent(t, b, e, "alice", aliceToken)
			c := carrier(t, e, "carrier", "carrier-answered.xml")
			alice.waitVisible("#incoming", 20*time.Second)
			if how == "decline" {
				alice.click("#decline")
			} else {
				alice.close()
			}
			c.succeed(t, 45*time.Second)
			carol.succeed(t, 10*time.Second)
			evs := e.events.callEvents(t, c.callID, eventDeadline)
			completed := one(t, evs, "call.completed")
			wantFields(t, completed, map[string]string{"agent": "carol", "outcome": "answered"})
			atts := attemptsOf(t, completed)
			if len(atts) != 2 || atts[0].Agent != "alice" || atts[1].Agent != "carol" {
				t.Fatalf("attempts %+v, want alice then carol", atts)
			}
			want := map[string]string{"decline": "declined", "close": "unreachable"}[how]
			if atts[0].Result != want {
				t.Errorf("alice's attempt: %q, want %q", atts[0].Result, want)
			}
			// At once: long before the 20 s ring timeout.
			if atts[0].RingMs > 10000 {
				t.Errorf("alice rang %d ms: the call waited for the ring timeout instead of moving on", atts[0].RingMs)
			}
			if how == "decline" {
				alice.waitHidden("#incoming", 5*time.Second)
			}
		})
	}
}

// wantNoError fails on an error line of the edge's log.
func wantNoError(t *testing.T, e *edge) {
	t.Helper()
	for _, line := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(line, `"level":"error"`) {
			t.Errorf("edge logged an error: %s", line)
		}
	}
}

// TestSoftphoneInARingAllQueue: the browser agent and a SIP phone ring at
// once, with hold music for the caller; the browser answers and the phone
// is cancelled.
func TestSoftphoneInARingAllQueue(t *testing.T) {
	requireEdge(t)
	carol := startSipp(t, "carol", sippOpts{Scenario: "agent-noanswer.xml", Calls: 1, Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue: queueConfig{Strategy: "ring-all", RingTimeout: "20s", Agents: []string{"alice", "carol"},
			Extra: "    hold_music: prompts/hold-music.wav"},
		Agents: []agentConfig{{ID: "alice", Name: "Alice", Token: aliceToken}, fixedAgent("carol", "Carol", carol)},
	})
	b := startBrowser(t, "")
	alice := loginAgent(t, b, e, "alice", aliceToken)
	payloads, maps := offerPCMA()
	c := carrierOn(t, e, "carrier", writeCarrierScenario(t, carrierScript{
		Payloads: payloads, RTPMaps: maps, Steps: []carrierStep{{Pause: 100 * time.Millisecond}}, ByeAfter: 8 * time.Second,
	}), 0)
	alice.waitVisible("#incoming", 20*time.Second)
	alice.click("#answer")
	alice.waitVisible("#in-call", 15*time.Second)
	c.succeed(t, 30*time.Second)
	carol.succeed(t, 10*time.Second) // her phone got its CANCEL
	alice.waitHidden("#in-call", 10*time.Second)

	completed := one(t, e.events.callEvents(t, c.callID, eventDeadline), "call.completed")
	wantFields(t, completed, map[string]string{"agent": "alice", "outcome": "answered", "hangup_by": "caller"})
	results := map[string]string{}
	for _, a := range attemptsOf(t, completed) {
		results[a.Agent] = a.Result
	}
	if results["alice"] != "answered" || results["carol"] != "cancelled" {
		t.Errorf("attempts %v, want alice answered and carol cancelled", results)
	}
	if a := apiAgents(t, e)["alice"]; a["answered_today"] != 1.0 {
		t.Errorf("GET /api/agents alice: %v", a)
	}
}
