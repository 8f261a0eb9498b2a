package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeLateAgent is agent-answer.xml ringing for ring before it answers.
func writeLateAgent(t *testing.T, ring time.Duration) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sippDir, "agent-answer.xml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `<pause milliseconds="500"/>`, fmt.Sprintf(`<pause milliseconds="%d"/>`, ring.Milliseconds()), 1)
	if s == string(b) {
		t.Fatal("agent-answer.xml no longer rings for 500 ms")
	}
	path := filepath.Join(t.TempDir(), "agent-late.xml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// apiAgents reads GET /api/agents.
func apiAgents(t *testing.T, e *edge) map[string]map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/api/agents", e.httpPort), nil)
	req.Header.Set("Authorization", "Bearer e2e-admin-token")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/agents: %d", res.StatusCode)
	}
	var body struct {
		Agents []map[string]any `json:"agents"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, a := range body.Agents {
		id, _ := a["id"].(string)
		out[id] = a
	}
	return out
}

// TestRingAllCancelsTheLosers: a ring-all queue rings every agent at once;
// the first to answer gets the call and the others are cancelled.
func TestRingAllCancelsTheLosers(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	carol := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 40 * time.Second})
	dave := startSipp(t, "dave", sippOpts{Scenario: "agent-noanswer.xml", Calls: 1, Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{Strategy: "ring-all", RingTimeout: "10s", Agents: []string{"dave", "carol"}, Extra: "    wrap_up: 1s"},
		Agents: []agentConfig{fixedAgent("carol", "Carol", carol), fixedAgent("dave", "Dave", dave)},
	})
	c := carrier(t, e, "carrier", "carrier-answered.xml")
	c.succeed(t, 45*time.Second)
	carol.succeed(t, 10*time.Second)
	// dave's scenario passes only with a CANCEL, answered 487.
	dave.succeed(t, 10*time.Second)

	evs := e.events.callEvents(t, c.callID, eventDeadline)
	completed := one(t, evs, "call.completed")
	wantFields(t, completed, map[string]string{"agent": "carol", "outcome": "answered"})
	atts := attemptsOf(t, completed)
	if len(atts) != 2 {
		t.Fatalf("attempts %+v, want dave and carol", atts)
	}
	byAgent := map[string]attempt{}
	for _, a := range atts {
		byAgent[a.Agent] = a
	}
	if byAgent["carol"].Result != "answered" || byAgent["dave"].Result != "cancelled" {
		t.Errorf("attempts %+v, want carol answered and dave cancelled", atts)
	}
	d, _ := time.Parse(time.RFC3339Nano, byAgent["dave"].StartedAt)
	cr, _ := time.Parse(time.RFC3339Nano, byAgent["carol"].StartedAt)
	if gap := cr.Sub(d).Abs(); gap > 500*time.Millisecond {
		t.Errorf("carol was rung %s after dave: ring-all rings everyone at once", gap)
	}
	got := between(t, dave, "180", isResponse(180, "INVITE"), "CANCEL", isRequest("CANCEL"))
	t.Logf("rung %s apart; dave rang %s before his CANCEL (carol answers after 500 ms of ringing)", cr.Sub(d).Abs(), got)
	if got > 1500*time.Millisecond {
		t.Errorf("dave rang %s before his CANCEL: the losers are cancelled at once when carol answers", got)
	}

	agents := apiAgents(t, e)
	if a := agents["carol"]; a["answered_today"] != 1.0 || a["offered_today"] != 1.0 || a["talk_ms_today"].(float64) <= 0 || a["name"] != "Carol" {
		t.Errorf("GET /api/agents carol: %v", a)
	}
	// Dave was rung, but carol answered first: he did not miss the call.
	if a := agents["dave"]; a["offered_today"] != 1.0 || a["missed_today"] != 0.0 || a["answered_today"] != 0.0 || a["state"] != "available" {
		t.Errorf("GET /api/agents dave: %v", a)
	}
}

// TestHoldMusicWhileAgentsRing: the caller hears the queue's hold music
// while the agent rings, then the agent.
func TestHoldMusicWhileAgentsRing(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: writeLateAgent(t, 5*time.Second), Calls: 1, Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "15s", Agents: []string{"carol"}, Extra: "    hold_music: prompts/hold-music.wav"},
		Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	carrierMedia := mediaPort(t)
	rtp := startCapture(t, carrierMedia)
	payloads, maps := offerPCMA()
	c := carrierOn(t, e, "carrier", writeCarrierScenario(t, carrierScript{
		Payloads: payloads, RTPMaps: maps, Steps: []carrierStep{{Pause: 100 * time.Millisecond}}, ByeAfter: 9 * time.Second,
	}), carrierMedia)
	c.succeed(t, 30*time.Second)
	agent.succeed(t, 10*time.Second)

	evs := e.events.callEvents(t, c.callID, eventDeadline)
	completed := one(t, evs, "call.completed")
	wantFields(t, completed, map[string]string{"agent": "carol", "outcome": "answered"})
	wantMs(t, completed, "wait_ms", 4500, 8000)
	pkts := fromEdgeTo(t, e, rtp.datagrams(t), "carrier", carrierMedia, agent.mediaPort)
	audio := decodeG711(t, rtpStream(t, pkts))
	// The first 4 s, while carol rang, are the hold music.
	wantHeard(t, "while the agent rang", audio, 0, "hold-music.wav", "welcome.wav", 4)
}

// TestAfterHoursVoicemail: outside the queue's hours the caller hears the
// announcement and leaves a message, which is stored and announced.
func TestAfterHoursVoicemail(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	now := time.Now().UTC()
	var days []string
	for _, d := range []int{-1, 0, 1} {
		days = append(days, `"`+now.AddDate(0, 0, d).Format("2006-01-02")+`"`)
	}
	e := startEdge(t, edgeConfig{
		Queue: queueConfig{RingTimeout: "10s", Agents: []string{"carol"}, Extra: strings.Join([]string{
			"    hours: 24/7 UTC",
			"    closed: [" + strings.Join(days, ", ") + "]",
			"    after_hours: voicemail",
			"    after_hours_prompt: prompts/goodbye.wav",
			"    voicemail: {greeting: prompts/goodbye.wav, max_length: 20s}",
		}, "\n")},
		Agents: []agentConfig{{ID: "carol", Name: "Carol", Contact: "sip:carol@127.0.0.1:9"}},
	})
	payloads, maps := offerPCMA()
	c := carrierOn(t, e, "carrier", writeCarrierScenario(t, carrierScript{
		Payloads: payloads, RTPMaps: maps,
		// Both prompts are goodbye.wav, 1.5 s each; the message is 3 s of 400 Hz.
		Steps:    []carrierStep{{Pause: 3500 * time.Millisecond, PCAP: writeSinePCAP(t, 8, 400, 3000)}},
		ByeAfter: 3500 * time.Millisecond,
	}), 0)
	c.succeed(t, 30*time.Second)

	vm := e.events.wait(t, "voicemail.completed", bySIPCallID(c.callID), eventDeadline)
	evs := e.events.callEvents(t, c.callID, eventDeadline)
	missed := one(t, evs, "call.missed")
	wantFields(t, missed, map[string]string{"missed_reason": "after_hours", "hangup_by": "caller", "queue": queueName})
	if attemptsPresent := missed.has("attempts"); attemptsPresent {
		t.Errorf("after hours an agent was rung: %s", missed)
	}
	obj, ok := vm.Fields["voicemail"].(map[string]any)
	if !ok {
		t.Fatalf("voicemail.completed without a voicemail object: %s", vm)
	}
	path, _ := obj["path"].(string)
	if !strings.HasPrefix(path, filepath.Join(e.storageDir(), "voicemail")+"/") || !strings.HasSuffix(path, ".wav") {
		t.Errorf("voicemail at %q, want under %s/voicemail", path, e.storageDir())
	}
	if sum, _ := obj["sha256"].(string); sum != fileSHA256(t, path) {
		t.Errorf("voicemail sha256 %q does not match the file", sum)
	}
	pcm := readMonoWAV(t, path)
	secs := float64(len(pcm)) / 8000
	t.Logf("voicemail %s: %.1f s", path, secs)
	if secs < 2.5 || secs > 6 {
		t.Errorf("the message is %.1f s, want about the 3 s the caller spoke", secs)
	}
	wantVoices(t, "voicemail", pcm, 400, 1000)
	if _, ok := one(t, evs, "call.completed").Fields["voicemail"].(map[string]any); !ok {
		t.Error("call.completed does not point to the voicemail")
	}
}

// readMonoWAV checks the file is an 8 kHz 16-bit mono PCM WAV and decodes it.
func readMonoWAV(t *testing.T, path string) []float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 44 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s is not a WAV file", path)
	}
	le := binary.LittleEndian
	fmtOK := false
	for off := 12; off+8 <= len(b); {
		id, n := string(b[off:off+4]), int(le.Uint32(b[off+4:]))
		if off+8+n > len(b) {
			t.Fatalf("%s: chunk %q runs past the end", path, id)
		}
		body := b[off+8 : off+8+n]
		switch id {
		case "fmt ":
			fmtOK = le.Uint16(body[0:]) == 1 && le.Uint16(body[2:]) == 1 && le.Uint32(body[4:]) == 8000 && le.Uint16(body[14:]) == 16
			if !fmtOK {
				t.Fatalf("%s: format % x, want PCM, 1 channel, 8000 Hz, 16 bits", path, body)
			}
		case "data":
			if !fmtOK {
				t.Fatalf("%s: data before fmt", path)
			}
			pcm := make([]float64, 0, n/2)
			for i := 0; i+2 <= n; i += 2 {
				pcm = append(pcm, float64(int16(le.Uint16(body[i:]))))
			}
			return pcm
		}
		off += 8 + n + n%2
	}
	t.Fatalf("%s has no data chunk", path)
	return nil
}
