package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Tones told apart in the recording: the caller says callerHz, the agent
// agentHz.
const (
	callerHz = 400.0
	agentHz  = 1000.0
)

// recordingConfig makes the consent prompts short, so the tests do not
// wait through the full notices.
const recordingConfig = `  consent:
    announce_prompt: prompts/goodbye.wav
    ask_prompt: prompts/goodbye.wav
    accept_digit: "1"
    timeout: 1s`

// writeAgentScenario is agent-answer.xml playing pcap instead of
// g711a.pcap once the call is answered.
func writeAgentScenario(t *testing.T, pcap string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sippDir, "agent-answer.xml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "/usr/share/sip-tester/g711a.pcap", pcap, 1)
	if s == string(b) {
		t.Fatal("agent-answer.xml no longer plays g711a.pcap")
	}
	path := filepath.Join(t.TempDir(), "agent-tone.xml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// recordedCall is a call to queue main, whose agent plays agentHz, by a
// caller following script; the edge records as record says.
type recordedCall struct {
	e     *edge
	c     *sippProc
	agent *sippProc
}

func startRecordedCall(t *testing.T, record string, script carrierScript, cfg edgeConfig) *recordedCall {
	t.Helper()
	rc := &recordedCall{}
	rc.agent = startSipp(t, "agent", sippOpts{
		Scenario: writeAgentScenario(t, writeSinePCAP(t, 8, agentHz, 8000)),
		Calls:    1, Timeout: 60 * time.Second,
	})
	cfg.Queue = queueConfig{RingTimeout: "10s", Agents: []string{"agent"}}
	cfg.Agents = []agentConfig{fixedAgent("agent", "Agent", rc.agent)}
	cfg.Record = record
	cfg.Recording = recordingConfig + cfg.Recording
	rc.e = startEdge(t, cfg)
	if script.Payloads == "" {
		script.Payloads, script.RTPMaps = offerPCMA()
	}
	rc.c = startSipp(t, "carrier", sippOpts{
		Scenario: writeCarrierScenario(t, script),
		Remote:   rc.e.sipTarget(), Service: dialedUser, Calls: 1, Timeout: 60 * time.Second,
	})
	return rc
}

// callerTone is the caller playing callerHz for ms after pause.
func callerTone(t *testing.T, pause time.Duration, ms int) carrierStep {
	return carrierStep{Pause: pause, PCAP: writeSinePCAP(t, 8, callerHz, ms)}
}

// recordingFiles lists every file under storage.dir/recordings.
func recordingFiles(t *testing.T, e *edge) []string {
	t.Helper()
	var out []string
	root := filepath.Join(e.storageDir(), "recordings")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stereo is a decoded recording.
type stereo struct {
	left, right []float64
}

func (s stereo) seconds() float64 { return float64(len(s.left)) / 8000 }

// readStereoWAV checks the file is a complete 8 kHz 16-bit stereo PCM WAV
// and decodes it.
func readStereoWAV(t *testing.T, path string) stereo {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 44 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s is not a WAV file", path)
	}
	if got := int(binary.LittleEndian.Uint32(b[4:])); got != len(b)-8 {
		t.Errorf("%s: RIFF size %d, file has %d after it", path, got, len(b)-8)
	}
	var st stereo
	fmtOK := false
	for off := 12; off+8 <= len(b); {
		id, n := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		if off+8+n > len(b) {
			t.Fatalf("%s: chunk %q of %d bytes runs past the end", path, id, n)
		}
		body := b[off+8 : off+8+n]
		switch id {
		case "fmt ":
			f := binary.LittleEndian
			fmtOK = f.Uint16(body[0:]) == 1 && f.Uint16(body[2:]) == 2 && f.Uint32(body[4:]) == 8000 &&
				f.Uint32(body[8:]) == 32000 && f.Uint16(body[12:]) == 4 && f.Uint16(body[14:]) == 16
			if !fmtOK {
				t.Fatalf("%s: format % x, want PCM, 2 channels, 8000 Hz, 16 bits", path, body)
			}
		case "data":
			if !fmtOK {
				t.Fatalf("%s: data before fmt", path)
			}
			if n%4 != 0 {
				t.Errorf("%s: data of %d bytes is not whole stereo frames", path, n)
			}
			for i := 0; i+4 <= n; i += 4 {
				st.left = append(st.left, float64(int16(binary.LittleEndian.Uint16(body[i:]))))
				st.right = append(st.right, float64(int16(binary.LittleEndian.Uint16(body[i+2:]))))
			}
			return st
		}
		off += 8 + n + n&1
	}
	t.Fatalf("%s has no data chunk", path)
	return st
}

// power is the Goertzel power of x at hz, per sample.
func power(x []float64, hz float64) float64 {
	if len(x) == 0 {
		return 0
	}
	k := 2 * math.Cos(2*math.Pi*hz/8000)
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = v+k*s1-s2, s1
	}
	return (s1*s1 + s2*s2 - k*s1*s2) / float64(len(x))
}

// wantVoices checks, by spectrum, that a channel carries hz and not other.
func wantVoices(t *testing.T, side string, x []float64, hz, other float64) {
	t.Helper()
	p, q := power(x, hz), power(x, other)
	t.Logf("%s channel: power at %.0f Hz %.3g, at %.0f Hz %.3g", side, hz, p, other, q)
	if p < 100*q || p == 0 {
		t.Errorf("%s channel: %.0f Hz is not what it carries (power %.3g vs %.3g at %.0f Hz)", side, hz, p, q, other)
	}
}

// sidecar is the JSON written beside a recording.
type sidecar struct {
	CallID         string `json:"call_id"`
	TrackingNumber string `json:"tracking_number"`
	Source         string `json:"source"`
	Agent          string `json:"agent"`
	Consent        string `json:"consent"`
	StartedAt      string `json:"started_at"`
	EndedAt        string `json:"ended_at"`
	DurationMs     int64  `json:"duration_ms"`
	SHA256         string `json:"sha256"`
	Path           string `json:"path"`
	Partial        bool   `json:"partial"`
	Paused         []struct {
		FromMs int64 `json:"from_ms"`
		ToMs   int64 `json:"to_ms"`
	} `json:"paused"`
}

func readSidecar(t *testing.T, wav string) sidecar {
	t.Helper()
	path := strings.TrimSuffix(wav, ".wav") + ".json"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("sidecar: %v", err)
	}
	var sc sidecar
	if err := json.Unmarshal(b, &sc); err != nil {
		t.Fatalf("sidecar %s: %v\n%s", path, err, b)
	}
	return sc
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// recordingOf returns the recording object of an event.
func recordingOf(t *testing.T, ev event) map[string]any {
	t.Helper()
	r, ok := ev.Fields["recording"].(map[string]any)
	if !ok {
		t.Fatalf("%s has no recording object", ev)
	}
	return r
}

// wantRecordingLayout checks where the edge put a call's recording.
func wantRecordingLayout(t *testing.T, e *edge, path, callID string, day time.Time) {
	t.Helper()
	want := filepath.Join(e.storageDir(), "recordings", day.UTC().Format("2006/01/02"), callID+".wav")
	if path != want {
		t.Errorf("recording at %s, want %s", path, want)
	}
}

// TestRecordingStereo: with the recording announced, the conversation is
// recorded: the caller's tone on the left channel, the agent's on the
// right, the file as long as the talk, its hash and sidecar right, and
// the events pointing to it.
func TestRecordingStereo(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	rc := startRecordedCall(t, "announce", carrierScript{
		// The notice (1.5 s) and the agent's 0.5 s of ringing first.
		Steps:    []carrierStep{callerTone(t, 2500*time.Millisecond, 6000)},
		ByeAfter: 4 * time.Second,
	}, edgeConfig{})
	rc.c.succeed(t, 30*time.Second)
	rc.agent.succeed(t, 10*time.Second)
	evs := rc.e.events.callEvents(t, rc.c.callID, eventDeadline)
	done := one(t, evs, "call.completed")
	wantFields(t, done, map[string]string{"outcome": "answered", "agent": "agent"})
	r := recordingOf(t, done)
	path, _ := r["path"].(string)
	if r["consent"] != "announced" || path == "" {
		t.Fatalf("call.completed recording %v, want consent announced and a path", r)
	}
	recEv := one(t, evs, "recording.completed")
	if got := recordingOf(t, recEv); got["path"] != path || got["sha256"] != r["sha256"] {
		t.Errorf("recording.completed %v, call.completed %v", got, r)
	}
	answeredAt, _ := time.Parse(time.RFC3339Nano, done.str("answered_at"))
	wantRecordingLayout(t, rc.e, path, done.str("call_id"), answeredAt)

	st := readStereoWAV(t, path)
	talk, _ := done.num("talk_ms")
	t.Logf("recording %.3f s, talk %d ms", st.seconds(), talk)
	if d := st.seconds()*1000 - float64(talk); math.Abs(d) > 100 {
		t.Errorf("recording is %.0f ms, talk %d ms: off by %.0f ms, want within 100", st.seconds()*1000, talk, d)
	}
	if dur, _ := r["duration_ms"].(float64); math.Abs(dur-st.seconds()*1000) > 20 {
		t.Errorf("duration_ms %v, the file has %.0f ms", dur, st.seconds()*1000)
	}
	wantVoices(t, "left (caller)", st.left, callerHz, agentHz)
	wantVoices(t, "right (agent)", st.right, agentHz, callerHz)
	if sum := fileSHA256(t, path); sum != r["sha256"] {
		t.Errorf("sha256 of the file %s, the event says %v", sum, r["sha256"])
	}
	sc := readSidecar(t, path)
	if sc.CallID != done.str("call_id") || sc.TrackingNumber != trackingNumber || sc.Source != numberSource ||
		sc.Agent != "agent" || sc.Consent != "announced" || sc.SHA256 != r["sha256"] || sc.Partial ||
		sc.StartedAt == "" || sc.EndedAt == "" {
		t.Errorf("sidecar %+v", sc)
	}
	if files := recordingFiles(t, rc.e); len(files) != 2 {
		t.Errorf("recordings dir holds %v, want the WAV and its sidecar", files)
	}
}

// TestRecordingConsent: what each consent mode writes.
func TestRecordingConsent(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	for _, tc := range []struct {
		name, record string
		key          string // pressed to the question; "" lets it time out
		consent      string
		recorded     bool
	}{
		{"ask, 1 accepts", "ask", "1", "granted", true},
		{"ask, 2 declines", "ask", "2", "declined", false},
		{"ask, no key declines", "ask", "", "declined", false},
		{"announce", "announce", "", "announced", true},
		{"off", "off", "", "not_asked", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var steps []carrierStep
			if tc.key != "" {
				steps = append(steps, carrierStep{Pause: 500 * time.Millisecond, PCAP: dtmfPCAP(tc.key)})
			}
			steps = append(steps, callerTone(t, 500*time.Millisecond, 4000))
			rc := startRecordedCall(t, tc.record, carrierScript{Steps: steps, ByeAfter: 5 * time.Second}, edgeConfig{})
			rc.c.succeed(t, 30*time.Second)
			rc.agent.succeed(t, 10*time.Second)
			evs := rc.e.events.callEvents(t, rc.c.callID, eventDeadline)
			done := one(t, evs, "call.completed")
			wantFields(t, done, map[string]string{"outcome": "answered"})
			r := recordingOf(t, done)
			if r["consent"] != tc.consent {
				t.Errorf("consent %v, want %s", r["consent"], tc.consent)
			}
			files := recordingFiles(t, rc.e)
			if !tc.recorded {
				if len(files) != 0 || r["path"] != nil || len(evs["recording.completed"]) != 0 {
					t.Errorf("consent %s, yet recordings dir holds %v, event %v", tc.consent, files, r)
				}
				return
			}
			path, _ := r["path"].(string)
			if st := readStereoWAV(t, path); st.seconds() < 2 {
				t.Errorf("recording of %.1f s, want the conversation", st.seconds())
			}
		})
	}
}

// TestRecordingSurvivesKill: the edge is killed (SIGKILL) mid-call; at its
// next start the part captured is a complete WAV whose sidecar says it is
// partial, and recording.completed tells of it.
func TestRecordingSurvivesKill(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	rc := startRecordedCall(t, "announce", carrierScript{
		Steps:    []carrierStep{callerTone(t, 2500*time.Millisecond, 8000)},
		ByeAfter: 20 * time.Second,
	}, edgeConfig{})
	answered := rc.e.events.wait(t, "call.answered", bySIPCallID(rc.c.callID), eventDeadline)
	time.Sleep(3 * time.Second)
	rc.e.kill9(t)
	killedAt := time.Now()
	rc.c.kill()
	rc.agent.kill()

	parts := recordingFiles(t, rc.e)
	t.Logf("after the kill: %v", parts)
	rc.e.restart(t)
	files := recordingFiles(t, rc.e)
	callID := answered.str("call_id")
	var wav string
	for _, f := range files {
		if strings.HasSuffix(f, ".part") {
			t.Errorf("%s left after the restart", f)
		}
		if filepath.Base(f) == callID+".wav" {
			wav = filepath.Join(rc.e.storageDir(), "recordings", f)
		}
	}
	if wav == "" {
		t.Fatalf("no %s.wav after the restart; recordings dir: %v", callID, files)
	}
	st := readStereoWAV(t, wav)
	answeredAt, _ := time.Parse(time.RFC3339Nano, answered.str("answered_at"))
	captured := killedAt.Sub(answeredAt).Seconds()
	t.Logf("recovered %.2f s of a call killed %.2f s after the answer", st.seconds(), captured)
	if st.seconds() < captured-1 || st.seconds() > captured+0.5 {
		t.Errorf("recovered %.2f s, want about the %.2f s captured", st.seconds(), captured)
	}
	wantVoices(t, "left (caller)", st.left[8000:], callerHz, agentHz)
	sc := readSidecar(t, wav)
	if !sc.Partial || sc.CallID != callID || sc.Consent != "announced" || sc.SHA256 != fileSHA256(t, wav) {
		t.Errorf("sidecar %+v, want partial with the call's meta and the file's hash", sc)
	}
	ev := lastStreamEvent(t, rc.e, "recording.completed")
	if r := recordingOf(t, ev); ev.str("call_id") != callID || r["partial"] != true || r["path"] != wav {
		t.Errorf("recording.completed after the restart: %s", ev)
	}
}

// lastStreamEvent reads the last event of a kind from the edge's
// JetStream stream, for events published before a subscriber could be.
func lastStreamEvent(t *testing.T, e *edge, name string) event {
	t.Helper()
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", e.natsPort), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	var m *nats.RawStreamMsg
	deadline := time.Now().Add(eventDeadline)
	for {
		m, err = js.GetLastMsg("CALLSIGN", "callsign."+name)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no %s in the stream: %v", name, err)
	}
	ev := event{Subject: m.Subject, Raw: string(m.Data)}
	if err := json.Unmarshal(m.Data, &ev.Fields); err != nil {
		t.Fatal(err)
	}
	return ev
}

// post sends an admin API request.
func (e *edge) post(t *testing.T, path, token string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", e.httpPort, path), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRecordingPauseResume: pausing through the API (while a card number
// is read out) makes that span silence on both channels, listed in the
// sidecar; the voices go on around it.
func TestRecordingPauseResume(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	rc := startRecordedCall(t, "announce", carrierScript{
		Steps:    []carrierStep{callerTone(t, 2500*time.Millisecond, 8000)},
		ByeAfter: 6 * time.Second,
	}, edgeConfig{})
	answered := rc.e.events.wait(t, "call.answered", bySIPCallID(rc.c.callID), eventDeadline)
	id := answered.str("call_id")
	base := "/api/calls/" + id + "/recording/"
	if code, _ := rc.e.post(t, base+"pause", ""); code != http.StatusUnauthorized {
		t.Errorf("pause without the token: %d, want 401", code)
	}
	if code, _ := rc.e.post(t, "/api/calls/nope/recording/pause", "e2e-admin-token"); code != http.StatusNotFound {
		t.Errorf("pause of an unknown call: %d, want 404", code)
	}
	time.Sleep(2 * time.Second)
	if code, body := rc.e.post(t, base+"pause", "e2e-admin-token"); code != http.StatusOK {
		t.Fatalf("pause: %d %s", code, body)
	}
	pausedAt := time.Now()
	time.Sleep(1500 * time.Millisecond)
	if code, body := rc.e.post(t, base+"resume", "e2e-admin-token"); code != http.StatusOK {
		t.Fatalf("resume: %d %s", code, body)
	}
	resumedAt := time.Now()
	rc.c.succeed(t, 30*time.Second)
	done := rc.e.events.wait(t, "call.completed", bySIPCallID(rc.c.callID), eventDeadline)
	path, _ := recordingOf(t, done)["path"].(string)
	st := readStereoWAV(t, path)

	// The longest run where both channels are silent.
	best, run, bestEnd := 0, 0, 0
	for i := range st.left {
		if st.left[i] == 0 && st.right[i] == 0 {
			run++
			if run > best {
				best, bestEnd = run, i+1
			}
		} else {
			run = 0
		}
	}
	want := resumedAt.Sub(pausedAt).Seconds()
	t.Logf("silent span %.3f s ending at %.3f s; paused for %.3f s", float64(best)/8000, float64(bestEnd)/8000, want)
	if got := float64(best) / 8000; math.Abs(got-want) > 0.15 {
		t.Errorf("silent span of %.3f s, paused for %.3f s", got, want)
	}
	// Both voices are there before and after the pause.
	from := bestEnd - best
	wantVoices(t, "left before the pause", st.left[max(from-8000, 0):from], callerHz, agentHz)
	wantVoices(t, "right after the pause", st.right[bestEnd:min(bestEnd+8000, len(st.right))], agentHz, callerHz)
	sc := readSidecar(t, path)
	if len(sc.Paused) != 1 {
		t.Fatalf("sidecar paused %+v, want one span", sc.Paused)
	}
	if p := sc.Paused[0]; math.Abs(float64(p.FromMs)-float64(from)/8) > 60 || math.Abs(float64(p.ToMs)-float64(bestEnd)/8) > 60 {
		t.Errorf("sidecar paused %+v, the silence is %d-%d ms", p, from/8, bestEnd/8)
	}
}

// TestRecordingRetention: at start the edge deletes recordings older than
// recording.retention, with a recording.deleted event, and keeps the rest.
func TestRecordingRetention(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	now := time.Now().UTC()
	old, recent := now.Add(-100*24*time.Hour), now.Add(-24*time.Hour)
	place := func(dir, id string, at time.Time) string {
		d := filepath.Join(dir, "recordings", at.Format("2006/01/02"))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		wav := filepath.Join(d, id+".wav")
		hdr := make([]byte, 44)
		copy(hdr, "RIFF")
		binary.LittleEndian.PutUint32(hdr[4:], 36)
		copy(hdr[8:], "WAVEfmt ")
		binary.LittleEndian.PutUint32(hdr[16:], 16)
		binary.LittleEndian.PutUint16(hdr[20:], 1)
		binary.LittleEndian.PutUint16(hdr[22:], 2)
		binary.LittleEndian.PutUint32(hdr[24:], 8000)
		binary.LittleEndian.PutUint32(hdr[28:], 32000)
		binary.LittleEndian.PutUint16(hdr[32:], 4)
		binary.LittleEndian.PutUint16(hdr[34:], 16)
		copy(hdr[36:], "data")
		if err := os.WriteFile(wav, hdr, 0o644); err != nil {
			t.Fatal(err)
		}
		side, _ := json.Marshal(map[string]any{
			"call_id": id, "started_at": at.Format(time.RFC3339Nano), "ended_at": at.Add(time.Minute).Format(time.RFC3339Nano),
			"consent": "granted", "path": wav, "duration_ms": 0,
		})
		if err := os.WriteFile(filepath.Join(d, id+".json"), side, 0o644); err != nil {
			t.Fatal(err)
		}
		return wav
	}
	var oldWAV, recentWAV string
	e := startEdge(t, edgeConfig{
		Queue:     queueConfig{Agents: []string{"nobody"}},
		Agents:    []agentConfig{{ID: "nobody", Name: "Nobody", Contact: "sip:nobody@127.0.0.1:9"}},
		Recording: "  retention: 30d",
		BeforeStart: func(dir string) {
			oldWAV = place(dir, "01OLDCALL", old)
			recentWAV = place(dir, "01RECENTCALL", recent)
		},
	})
	ev := lastStreamEvent(t, e, "recording.deleted")
	if ev.str("call_id") != "01OLDCALL" {
		t.Errorf("recording.deleted %s, want the old call", ev)
	}
	for _, p := range []string{oldWAV, strings.TrimSuffix(oldWAV, ".wav") + ".json"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there (%v)", p, err)
		}
	}
	for _, p := range []string{recentWAV, strings.TrimSuffix(recentWAV, ".wav") + ".json"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the recent recording went: %v", err)
		}
	}
}
