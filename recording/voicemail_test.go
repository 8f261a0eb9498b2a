package recording

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func openVoicemail(t testing.TB, dir string, c *clock) *VoicemailStore {
	t.Helper()
	vs, err := OpenVoicemail(dir, zerolog.Nop(), c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func voicemailMeta(id string, start time.Time) VoicemailMeta {
	return VoicemailMeta{CallID: id, Caller: "+34910000001", TrackingNumber: "+15550100", Source: "google-ads", Queue: "sales", StartedAt: start}
}

func mustStartVoicemail(t *testing.T, vs *VoicemailStore, meta VoicemailMeta) *Voicemail {
	t.Helper()
	v, err := vs.Start(meta)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// readMonoWAV checks a finished voicemail is the canonical mono 8 kHz
// 16-bit PCM WAV with consistent sizes, and returns its samples.
func readMonoWAV(t *testing.T, path string) []int16 {
	t.Helper()
	return readPCM(t, path, 1)
}

// readVoicemailJSON reads a voicemail's sidecar as a generic map, checking
// it has exactly its fields.
func readVoicemailJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	return readFields(t, path, "call_id", "caller", "tracking_number", "source", "queue", "started_at", "ended_at", "duration_ms", "sha256", "path", "partial")
}

// TestVoicemailTone: three seconds of a tone, in PCMU or PCMA, with a
// lost stretch, reordered packets and packets that are not audio, become a
// mono file of the tone, sample for sample, with silence where the packets
// were lost.
func TestVoicemailTone(t *testing.T) {
	for _, tc := range []struct {
		codec string
		pt    uint8
		freq  float64
	}{
		{"PCMU", ptPCMU, 400},
		{"PCMA", ptPCMA, 1000},
	} {
		t.Run(tc.codec, func(t *testing.T) {
			c := newClock()
			vs := openVoicemail(t, t.TempDir(), c)
			start := c.Now()
			v := mustStartVoicemail(t, vs, voicemailMeta("01JVOICE", start))
			caller := leg{g: newG711(t, tc.codec), pt: tc.pt, ssrc: 0x1111, ts0: 0xFFFFF000, signal: tone(tc.freq, 8000)}
			const lostFrom, lostTo = 50, 60
			for j := range 150 {
				c.Set(start.Add(time.Duration(j) * ptime))
				switch {
				case j >= lostFrom && j < lostTo:
					continue
				case j == 20:
					continue // arrives after 21
				case j == 21:
					v.Packet(caller.packet(21))
					v.Packet(caller.packet(20))
				default:
					v.Packet(caller.packet(j))
				}
				// Not audio: telephone-event, comfort noise, not RTP.
				v.Packet(rtpPacket(101, 0, caller.ts0+uint32(j*perPacket), 0x1111, []byte{1, 0x0a, 0, 160}))
				v.Packet(rtpPacket(13, 0, caller.ts0+uint32(j*perPacket), 0x1111, []byte{40}))
				v.Packet([]byte{0x00, 0x01, 0x02})
				if j == 100 {
					if err := v.flush(); err != nil {
						t.Fatal(err)
					}
					if names := files(t, filepath.Dir(v.Path())); !slices.Equal(names, []string{"01JVOICE.json.part", "01JVOICE.wav.part"}) {
						t.Errorf("files while it is being left: %v, want only the .part files", names)
					}
				}
			}
			c.Set(start.Add(3 * time.Second))
			res, err := v.Finish()
			if err != nil {
				t.Fatal(err)
			}

			wantPath := filepath.Join(vs.Dir(), "2026", "03", "14", "01JVOICE.wav")
			if res.Path != wantPath || res.Sidecar != filepath.Join(vs.Dir(), "2026", "03", "14", "01JVOICE.json") || v.Path() != wantPath {
				t.Errorf("Path %s, Sidecar %s; want %s and its .json", res.Path, res.Sidecar, wantPath)
			}
			x := readMonoWAV(t, res.Path)
			if len(x) != 3*8000 || res.Duration != 3*time.Second {
				t.Errorf("%d samples, Duration %v; want 3 s", len(x), res.Duration)
			}
			g := caller.g
			for i := range 150 * perPacket {
				want := g.decoded(caller.signal(int64(i)))
				if i >= lostFrom*perPacket && i < lostTo*perPacket {
					want = 0
				}
				if x[i] != want {
					t.Fatalf("sample %d = %d, want %d", i, x[i], want)
				}
			}
			if !allZero(x[150*perPacket:]) {
				t.Errorf("not silent after the last packet")
			}
			if p, q := goertzel(x, tc.freq), goertzel(x, 2*tc.freq+150); p < 1000*q {
				t.Errorf("power at %g Hz %.3g, elsewhere %.3g: the tone is not there", tc.freq, p, q)
			}

			if res.SHA256 != fileSHA(t, res.Path) {
				t.Errorf("Result.SHA256 %s is not the file's", res.SHA256)
			}
			m := readVoicemailJSON(t, res.Sidecar)
			want := map[string]any{
				"call_id": "01JVOICE", "caller": "+34910000001", "tracking_number": "+15550100", "source": "google-ads", "queue": "sales",
				"started_at": "2026-03-14T15:09:26.000Z", "ended_at": "2026-03-14T15:09:29.000Z", "duration_ms": float64(3000),
				"sha256": res.SHA256, "path": res.Path, "partial": false,
			}
			wantSidecar(t, m, want)
			if res.Partial || res.Caller != "+34910000001" || res.Queue != "sales" || !res.EndedAt.Equal(start.Add(3*time.Second)) {
				t.Errorf("Result %+v", res)
			}
			if names := files(t, vs.Dir()); hasPart(names) || len(names) != 5 {
				t.Errorf("files left: %v, want the day's directories, the .wav and the .json", names)
			}

			again, err := v.Finish()
			if err != nil || again != res {
				t.Errorf("second Finish = %+v, %v; want the first's", again, err)
			}
			v.Packet(caller.packet(0)) // after Finish: ignored
			if _, err := vs.Start(voicemailMeta("01JVOICE", start)); err == nil {
				t.Errorf("a second voicemail of the call: no error")
			}
		})
	}
}

// TestVoicemailStart: a call leaves one voicemail at a time, and needs an
// id; a zero StartedAt is now.
func TestVoicemailStart(t *testing.T) {
	c := newClock()
	vs := openVoicemail(t, t.TempDir(), c)
	if _, err := vs.Start(VoicemailMeta{}); err == nil {
		t.Errorf("Start without a call id: no error")
	}
	v := mustStartVoicemail(t, vs, VoicemailMeta{CallID: "sip/call.1"})
	if _, err := vs.Start(VoicemailMeta{CallID: "sip/call.1"}); err == nil {
		t.Errorf("Start while the call is leaving one: no error")
	}
	c.Advance(time.Second)
	res, err := v.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if !res.StartedAt.Equal(newClock().Now()) || res.Duration != time.Second || filepath.Base(res.Path) != "sip%2Fcall.1.wav" {
		t.Errorf("Result %+v: want StartedAt now, 1 s of silence, an escaped name", res)
	}
	if x := readMonoWAV(t, res.Path); len(x) != 8000 || !allZero(x) {
		t.Errorf("%d samples, want 8000 of silence", len(x))
	}
}

// TestVoicemailCrash: the .part files of a killed writer become a partial
// voicemail, mono, with its meta, by Recover; a torn .part is cut to whole
// samples.
func TestVoicemailCrash(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	vs := openVoicemail(t, dir, c)
	start := c.Now()
	v := mustStartVoicemail(t, vs, voicemailMeta("01JVCRASH", start))
	caller := leg{g: newG711(t, "PCMU"), pt: ptPCMU, ssrc: 1, signal: tone(400, 8000)}
	for j := range 100 {
		c.Set(start.Add(time.Duration(j) * ptime))
		v.Packet(caller.packet(j))
	}
	c.Set(start.Add(2 * time.Second))
	if err := v.flush(); err != nil {
		t.Fatal(err)
	}
	// Recover leaves a voicemail being left alone.
	if got, err := vs.Recover(); err != nil || len(got) != 0 {
		t.Fatalf("Recover while it is being left = %v, %v; want nothing", got, err)
	}
	v.kill()
	day := filepath.Join(dir, "2026", "03", "14")
	if got := files(t, day); !slices.Equal(got, []string{"01JVCRASH.json.part", "01JVCRASH.wav.part"}) {
		t.Fatalf("files of the killed voicemail: %v", got)
	}
	// Torn mid-sample, with its meta.
	writeFile(t, filepath.Join(day, "01JVTORN.wav.part"), append(pcmHeader(1, streamedSize), make([]byte, 1001)...))
	if err := writeJSON(filepath.Join(day, "01JVTORN.json.part"), voicemailPartSidecar(voicemailMeta("01JVTORN", start), filepath.Join(day, "01JVTORN.wav"))); err != nil {
		t.Fatal(err)
	}
	// Without its meta.
	writeFile(t, filepath.Join(day, "01JVLOST.wav.part"), append(pcmHeader(1, streamedSize), make([]byte, 16000)...))
	// Finish cut after the rename.
	writeFile(t, filepath.Join(day, "01JVCUT.wav"), append(pcmHeader(1, 8000), make([]byte, 8000)...))
	if err := writeJSON(filepath.Join(day, "01JVCUT.json.part"), voicemailPartSidecar(voicemailMeta("01JVCUT", start), filepath.Join(day, "01JVCUT.wav"))); err != nil {
		t.Fatal(err)
	}

	vs2 := openVoicemail(t, dir, c)
	results, err := vs2.Recover()
	if err != nil {
		t.Fatal(err)
	}
	byID := make(map[string]VoicemailResult)
	for _, res := range results {
		byID[res.CallID] = res
		m := readVoicemailJSON(t, res.Sidecar)
		if !res.Partial || m["partial"] != true || m["sha256"] != fileSHA(t, res.Path) || res.SHA256 != m["sha256"] || m["path"] != res.Path || m["call_id"] != res.CallID {
			t.Errorf("%s: Result %+v, sidecar %v", res.Path, res, m)
		}
	}
	if len(byID) != 4 {
		t.Fatalf("Recover returned %d voicemails, want 4: %+v", len(results), results)
	}

	res := byID["01JVCRASH"]
	x := readMonoWAV(t, res.Path)
	if len(x) < 15000 || len(x) > 16000 || res.Duration != time.Duration(len(x))*time.Second/8000 {
		t.Errorf("recovered %d samples (Duration %v), want about 2 s", len(x), res.Duration)
	}
	if goertzel(x, 400) < 1000*goertzel(x, 950) {
		t.Errorf("recovered audio is not the tone")
	}
	m := readVoicemailJSON(t, res.Sidecar)
	if m["caller"] != "+34910000001" || m["queue"] != "sales" || m["started_at"] != "2026-03-14T15:09:26.000Z" || m["ended_at"] == "" {
		t.Errorf("recovered sidecar lost the meta: %v", m)
	}
	if x := readMonoWAV(t, byID["01JVTORN"].Path); len(x) != 500 || byID["01JVTORN"].Queue != "sales" {
		t.Errorf("torn .part: %d samples, meta %+v; want 500 (1001 bytes cut to whole samples), queue sales", len(x), byID["01JVTORN"].VoicemailMeta)
	}
	if lost := byID["01JVLOST"]; lost.Duration != time.Second || lost.Caller != "" {
		t.Errorf("without its meta: %+v; want 1 s, no caller", lost)
	}
	if cut := byID["01JVCUT"]; cut.Duration != 500*time.Millisecond || cut.Caller != "+34910000001" {
		t.Errorf("cut Finish: %+v; want 0.5 s with its meta", cut)
	}
	if names := files(t, dir); hasPart(names) {
		t.Errorf("left after Recover: %v", names)
	}
	if again, err := vs2.Recover(); err != nil || len(again) != 0 {
		t.Errorf("second Recover: %v, %v", again, err)
	}
	if _, err := vs2.Start(voicemailMeta("01JVCRASH", start)); err == nil {
		t.Errorf("Start of a recovered voicemail: no error")
	}
}

// TestVoicemailSweep: voicemail goes by retention as recordings do.
func TestVoicemailSweep(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	vs := openVoicemail(t, dir, c)
	now := c.Now()
	leave := func(id string, at time.Time) VoicemailResult {
		t.Helper()
		return secondLong(t, c, at, func() *Voicemail { return mustStartVoicemail(t, vs, voicemailMeta(id, at)) })
	}
	old := leave("01JVOLD", now.Add(-100*24*time.Hour))
	recent := leave("01JVNEW", now.Add(-10*24*time.Hour))
	c.Set(now)
	deleted, err := vs.Sweep(90 * 24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0].CallID != "01JVOLD" || deleted[0].Path != old.Path || !deleted[0].StartedAt.Equal(old.StartedAt) {
		t.Errorf("Sweep deleted %+v, want the old one", deleted)
	}
	for _, p := range []string{old.Path, old.Sidecar} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: still there (%v)", p, err)
		}
	}
	for _, p := range []string{recent.Path, recent.Sidecar} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Dir(old.Path)); !os.IsNotExist(err) {
		t.Errorf("the old day's directory is still there (%v)", err)
	}
}
