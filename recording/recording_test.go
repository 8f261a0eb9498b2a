package recording

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	ptime     = 20 * time.Millisecond
	perPacket = 160 // samples in ptime
)

// leg makes the packets of one side: packet j carries samples
// [j*160, j*160+160) of signal, at timestamp ts0+j*160.
type leg struct {
	g      *g711
	pt     uint8
	ssrc   uint32
	ts0    uint32
	signal func(n int64) int16
}

func (l leg) packet(j int) []byte {
	return rtpPacket(l.pt, uint16(1000+j), l.ts0+uint32(j*perPacket), l.ssrc, l.g.payload(l.signal, int64(j*perPacket), perPacket))
}

// event is a packet arriving, or something done, at an offset from the
// start.
type event struct {
	at     time.Duration
	caller bool
	pkt    []byte
	do     func()
}

// play sets the clock to each event's time, in time order, and makes it
// happen.
func play(c *clock, start time.Time, r *Recording, evs []event) {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	for _, e := range evs {
		c.Set(start.Add(e.at))
		if e.do != nil {
			e.do()
		} else {
			r.Packet(e.caller, e.pkt)
		}
	}
}

func testMeta(id string, start time.Time) Meta {
	return Meta{CallID: id, TrackingNumber: "+15550100", Source: "google-ads", Agent: "alice", Consent: "granted", StartedAt: start}
}

func TestTwoTones(t *testing.T) {
	c := newClock()
	s := openStore(t, t.TempDir(), c)
	start := c.Now()
	r := mustStart(t, s, testMeta("01JTWOTONES", start))
	if st := s.Stats(); st.Active != 1 {
		t.Errorf("Stats while recording: %+v, want Active 1", st)
	}
	caller := leg{g: newG711(t, "PCMU"), pt: 0, ssrc: 0x1111, ts0: 1000, signal: tone(400, 8000)}
	// The agent's phone talks A-law: the two sides need not agree.
	agent := leg{g: newG711(t, "PCMA"), pt: 8, ssrc: 0x2222, ts0: 0xFFFFF000, signal: tone(1000, 8000)}
	var evs []event
	for j := range 150 {
		at := time.Duration(j) * ptime
		evs = append(evs, event{at: at, caller: true, pkt: caller.packet(j)}, event{at: at, pkt: agent.packet(j)})
	}
	play(c, start, r, evs)
	c.Set(start.Add(3 * time.Second))
	res, err := r.Finish()
	if err != nil {
		t.Fatal(err)
	}

	wantPath := filepath.Join(s.Dir(), "2026", "03", "14", "01JTWOTONES.wav")
	if res.Path != wantPath || res.Sidecar != strings.TrimSuffix(wantPath, ".wav")+".json" {
		t.Errorf("Path %s, Sidecar %s; want %s and its .json", res.Path, res.Sidecar, wantPath)
	}
	w := readWAV(t, res.Path)
	if d := time.Duration(w.frames()) * time.Second / 8000; d < 2900*time.Millisecond || d > 3100*time.Millisecond {
		t.Errorf("length %v, want 3s", d)
	}
	if res.Duration != time.Duration(w.frames())*time.Second/8000 {
		t.Errorf("Result.Duration %v for %d frames", res.Duration, w.frames())
	}
	l400, l1000 := goertzel(w.left, 400), goertzel(w.left, 1000)
	r400, r1000 := goertzel(w.right, 400), goertzel(w.right, 1000)
	if l400 < 100*l1000 {
		t.Errorf("left channel: power at 400 Hz %.3g, at 1000 Hz %.3g: the caller's tone is not there", l400, l1000)
	}
	if r1000 < 100*r400 {
		t.Errorf("right channel: power at 1000 Hz %.3g, at 400 Hz %.3g: the agent's tone is not there", r1000, r400)
	}

	if res.SHA256 != fileSHA(t, res.Path) {
		t.Errorf("Result.SHA256 %s is not the file's", res.SHA256)
	}
	m := readJSON(t, res.Sidecar)
	want := map[string]any{
		"call_id": "01JTWOTONES", "tracking_number": "+15550100", "source": "google-ads", "agent": "alice", "consent": "granted",
		"started_at": "2026-03-14T15:09:26.000Z", "ended_at": "2026-03-14T15:09:29.000Z", "duration_ms": float64(3000),
		"sha256": res.SHA256, "path": res.Path, "partial": false,
	}
	wantSidecar(t, m, want)
	if p, ok := m["paused"].([]any); !ok || len(p) != 0 {
		t.Errorf("sidecar paused = %#v, want []", m["paused"])
	}
	if names := files(t, s.Dir()); hasPart(names) || len(names) != 5 {
		t.Errorf("files left: %v, want the day's directories, the .wav and the .json", names)
	}
	st := s.Stats()
	if st.Active != 0 || st.Completed != 1 || st.Failed != 0 || st.LateSamples != 0 || st.BufferedBytes != 0 {
		t.Errorf("Stats after Finish: %+v", st)
	}
}

// TestLossAndAlignment: the agent starts 500 ms after the caller and loses
// ten packets; a click at 2 s on both sides must land on the same frame,
// and the missing audio be silence of the right length.
func TestLossAndAlignment(t *testing.T) {
	c := newClock()
	s := openStore(t, t.TempDir(), c)
	start := c.Now()
	r := mustStart(t, s, testMeta("01JLOSS", start))
	const click, lateStart = 16000, 4000 // frames: 2 s and 500 ms
	withClick := func(sig func(int64) int16, offset int64) func(int64) int16 {
		return func(n int64) int16 {
			if f := n + offset; f >= click && f < click+perPacket {
				return 20000
			}
			return sig(n)
		}
	}
	mu := newG711(t, "PCMU")
	caller := leg{g: mu, ssrc: 0xCA11, ts0: 5, signal: withClick(tone(400, 1000), 0)}
	agent := leg{g: mu, ssrc: 0xA6E7, ts0: 0xFFFFFF00, signal: withClick(tone(700, 1000), lateStart)} // wraps at once
	var evs []event
	for j := range 150 {
		evs = append(evs, event{at: time.Duration(j) * ptime, caller: true, pkt: caller.packet(j)})
	}
	for j := range 125 {
		if j >= 40 && j < 50 {
			continue // lost
		}
		// The agent's network adds up to 14 ms of jitter.
		jitter := time.Duration(j%3) * 7 * time.Millisecond
		if j == 0 {
			jitter = 0
		}
		evs = append(evs, event{at: 500*time.Millisecond + time.Duration(j)*ptime + jitter, pkt: agent.packet(j)})
	}
	// What carries no audio: a telephone-event, comfort noise, garbage.
	evs = append(evs,
		event{at: time.Second, caller: true, pkt: rtpPacket(101, 1, 5+8000, 0xCA11, []byte{1, 0x80, 0, 160})},
		event{at: time.Second, pkt: rtpPacket(13, 1, 0, 0xA6E7, []byte{40})},
		event{at: time.Second, caller: true, pkt: []byte{0x80, 0}},
		event{at: time.Second, caller: true, pkt: append([]byte{0x40}, caller.packet(60)[1:]...)},   // version 1
		event{at: time.Second, caller: true, pkt: append([]byte{0x8F}, caller.packet(60)[1:20]...)}, // 15 CSRC past the end
	)
	play(c, start, r, evs)
	c.Set(start.Add(3 * time.Second))
	res, err := r.Finish()
	if err != nil {
		t.Fatal(err)
	}
	w := readWAV(t, res.Path)
	if w.frames() != 24000 {
		t.Errorf("%d frames, want 24000 (3 s)", w.frames())
	}
	lc, rc := firstAbove(w.left, 0, 10000), firstAbove(w.right, 0, 10000)
	if lc < click-perPacket || lc > click+perPacket || rc < lc-perPacket || rc > lc+perPacket {
		t.Errorf("click at frame %d on the left, %d on the right; want both at %d ± one packet", lc, rc, click)
	}
	if !allZero(w.right[:lateStart]) {
		t.Errorf("right channel before the agent's first packet is not silent")
	}
	lost := w.right[lateStart+40*perPacket : lateStart+50*perPacket]
	if !allZero(lost) {
		t.Errorf("right channel where packets were lost is not silent")
	}
	if allZero(w.right[lateStart+40*perPacket-perPacket:lateStart+40*perPacket]) || allZero(w.right[lateStart+50*perPacket:lateStart+51*perPacket]) {
		t.Errorf("the silence of the lost packets is longer than they were")
	}
	for f := 0; f+perPacket <= w.frames(); f += perPacket {
		if allZero(w.left[f : f+perPacket]) {
			t.Errorf("left channel silent at frames %d..%d", f, f+perPacket)
		}
	}
	if st := s.Stats(); st.LateSamples != 0 {
		t.Errorf("LateSamples %d, want 0", st.LateSamples)
	}
}

// TestReorderAndReanchor: packets out of order, a burst after a stall, an
// SSRC change with a straggler of the old stream, and timestamp jumps all
// land every sample where it belongs.
func TestReorderAndReanchor(t *testing.T) {
	c := newClock()
	s := openStore(t, t.TempDir(), c)
	start := c.Now()
	r := mustStart(t, s, testMeta("01JREORDER", start))
	mu := newG711(t, "PCMU")
	sigL, sigR := tone(440, 6000), tone(1250, 6000)
	caller := leg{g: mu, ssrc: 1, ts0: 77, signal: sigL}
	agent := leg{g: mu, ssrc: 2, ts0: 123456, signal: sigR}
	agentNew := leg{g: mu, ssrc: 3, ts0: 999, signal: func(n int64) int16 { return sigR(n + 75*perPacket) }}
	var evs []event
	for j := range 150 {
		at := time.Duration(j) * ptime
		switch j {
		case 20, 60: // swapped with the next
			at += ptime + time.Millisecond
		case 30: // 200 ms late
			at += 200 * time.Millisecond
		}
		if j >= 80 && j < 100 {
			at = 100 * ptime // a 400 ms stall, then a burst
		}
		evs = append(evs, event{at: at, caller: true, pkt: caller.packet(j)})
	}
	for j := range 150 {
		at := time.Duration(j) * ptime
		pkt := agent.packet(j)
		switch {
		case j == 74:
			at = 76*ptime + time.Millisecond // a straggler of the old stream
		case j >= 75:
			// The phone restarts its stream (a re-INVITE, a transfer):
			// new SSRC, timestamps and sequence numbers.
			pkt = agentNew.packet(j - 75)
			switch {
			case j >= 125:
				// It jumps its timestamps back (15 s, from where
				// they had jumped to): its packets are late, and
				// dropped until the lateness has lasted.
				pkt = rtpPacket(0, uint16(1000+j-75), agentNew.ts0+uint32((j-75)*perPacket)-40000, 3, agentNew.g.payload(agentNew.signal, int64((j-75)*perPacket), perPacket))
			case j >= 100:
				// It jumps its timestamps 10 s ahead.
				pkt = rtpPacket(0, uint16(1000+j-75), agentNew.ts0+uint32((j-75)*perPacket)+80000, 3, agentNew.g.payload(agentNew.signal, int64((j-75)*perPacket), perPacket))
			}
		}
		evs = append(evs, event{at: at, pkt: pkt})
	}
	play(c, start, r, evs)
	c.Set(start.Add(3 * time.Second))
	res, err := r.Finish()
	if err != nil {
		t.Fatal(err)
	}
	w := readWAV(t, res.Path)
	if w.frames() != 24000 {
		t.Fatalf("%d frames, want 24000", w.frames())
	}
	for n := range 24000 {
		if want := mu.decoded(sigL(int64(n))); w.left[n] != want {
			t.Fatalf("left frame %d (packet %d) = %d, want %d", n, n/perPacket, w.left[n], want)
		}
	}
	// From the backward jump at 2.5 s the agent's packets are dropped
	// until reanchorAfter has passed; then they are in place again.
	lost := 125*perPacket + int(posOf(reanchorAfter))
	for n := range 24000 {
		want := mu.decoded(sigR(int64(n)))
		if n >= 125*perPacket && n < lost {
			continue
		}
		if w.right[n] != want {
			t.Fatalf("right frame %d (packet %d) = %d, want %d", n, n/perPacket, w.right[n], want)
		}
	}
	if !allZero(w.right[125*perPacket : lost-perPacket]) {
		t.Errorf("right channel after the backward jump: not silent while it was dropped")
	}
	if st := s.Stats(); st.LateSamples == 0 {
		t.Errorf("LateSamples 0, want the packets after the backward jump counted")
	}
}

func TestPauseResume(t *testing.T) {
	c := newClock()
	s := openStore(t, t.TempDir(), c)
	start := c.Now()
	r1 := mustStart(t, s, testMeta("01JPAUSE", start))
	r2 := mustStart(t, s, testMeta("01JPAUSE2", start))
	if err := s.Pause("01JNOSUCHCALL"); !errors.Is(err, ErrNotRecording) {
		t.Errorf("Pause of an unknown call: %v, want ErrNotRecording", err)
	}
	if err := s.Resume("01JNOSUCHCALL"); !errors.Is(err, ErrNotRecording) {
		t.Errorf("Resume of an unknown call: %v, want ErrNotRecording", err)
	}
	mu := newG711(t, "PCMU")
	caller := leg{g: mu, ssrc: 1, ts0: 0, signal: tone(400, 8000)}
	agent := leg{g: mu, ssrc: 2, ts0: 0, signal: tone(1000, 8000)}
	must := func(err error) {
		if err != nil {
			t.Error(err)
		}
	}
	for j := range 150 {
		at := time.Duration(j) * ptime
		c.Set(start.Add(at))
		switch at {
		case time.Second:
			must(s.Pause("01JPAUSE"))
			must(s.Pause("01JPAUSE")) // twice is once
		case 2 * time.Second:
			must(s.Resume("01JPAUSE"))
		case 2500 * time.Millisecond:
			r2.Pause() // and finished while paused
		}
		for _, r := range []*Recording{r1, r2} {
			r.Packet(true, caller.packet(j))
			r.Packet(false, agent.packet(j))
		}
		if j%10 == 0 {
			// Written provisionally as it goes, as at the real pace.
			must(r1.flush())
		}
	}
	c.Set(start.Add(3 * time.Second))
	res1, err := r1.Finish()
	if err != nil {
		t.Fatal(err)
	}
	res2, err := r2.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pause("01JPAUSE"); !errors.Is(err, ErrNotRecording) {
		t.Errorf("Pause after Finish: %v, want ErrNotRecording", err)
	}

	w := readWAV(t, res1.Path)
	if !allZero(w.left[8000:16000]) || !allZero(w.right[8000:16000]) {
		t.Errorf("paused span 1 s..2 s is not silent")
	}
	for _, x := range [][]int16{w.left[8000-perPacket : 8000], w.right[8000-perPacket : 8000], w.left[16000 : 16000+perPacket], w.right[16000 : 16000+perPacket]} {
		if allZero(x) {
			t.Errorf("silent around the paused span: the pause is longer than asked")
		}
	}
	if want := []Span{{time.Second, 2 * time.Second}}; !slices.Equal(res1.Paused, want) {
		t.Errorf("Result.Paused %v, want %v", res1.Paused, want)
	}
	if got := pausedJSON(readJSON(t, res1.Sidecar)); !slices.Equal(got, [][2]float64{{1000, 2000}}) {
		t.Errorf("sidecar paused %v, want [{1000 2000}]", got)
	}

	w2 := readWAV(t, res2.Path)
	if !allZero(w2.left[20000:]) || !allZero(w2.right[20000:]) || allZero(w2.left[19840:20000]) {
		t.Errorf("recording finished while paused: not silent from 2.5 s to the end")
	}
	if got := pausedJSON(readJSON(t, res2.Sidecar)); !slices.Equal(got, [][2]float64{{2500, 3000}}) {
		t.Errorf("sidecar paused %v, want [{2500 3000}]", got)
	}
}

// TestCrash: a recording abandoned as by kill -9 is finalized by Recover
// with what was flushed and the meta of its .json.part.
func TestCrash(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := openStore(t, dir, c)
	start := c.Now()
	r := mustStart(t, s, testMeta("01JCRASH", start))
	mu := newG711(t, "PCMU")
	caller := leg{g: mu, ssrc: 1, signal: tone(400, 8000)}
	agent := leg{g: mu, ssrc: 2, signal: tone(1000, 8000)}
	for j := range 100 {
		c.Set(start.Add(time.Duration(j) * ptime))
		if j == 75 {
			r.Pause() // still paused when it dies
		}
		r.Packet(true, caller.packet(j))
		r.Packet(false, agent.packet(j))
	}
	c.Set(start.Add(2 * time.Second))
	if err := r.flush(); err != nil {
		t.Fatal(err)
	}
	r.kill()
	day := filepath.Join(dir, "2026", "03", "14")
	if got := files(t, day); !slices.Equal(got, []string{"01JCRASH.json.part", "01JCRASH.wav.part"}) {
		t.Fatalf("files of the killed recording: %v", got)
	}

	// A .part torn mid-frame, with its meta.
	torn := testMeta("01JTORN", start)
	writeFile(t, filepath.Join(day, "01JTORN.wav.part"), append(wavHeader(streamedSize), make([]byte, 1001)...))
	if err := writeJSON(filepath.Join(day, "01JTORN.json.part"), partSidecar(torn, filepath.Join(day, "01JTORN.wav"), nil)); err != nil {
		t.Fatal(err)
	}
	// One shorter than its header, with no meta and an escaped name.
	writeFile(t, filepath.Join(day, "sip%2Fcall.wav.part"), []byte("RIFF\xff\xff"))
	// Finish cut after the rename, and a stray temporary file.
	writeFile(t, filepath.Join(day, "01JCUT.wav"), wavHeader(0))
	if err := writeJSON(filepath.Join(day, "01JCUT.json.part"), partSidecar(testMeta("01JCUT", start), filepath.Join(day, "01JCUT.wav"), nil)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(day, "01JCUT.json.tmp"), []byte("{\"call_"))

	s2 := openStore(t, dir, c)
	results, err := s2.Recover()
	if err != nil {
		t.Fatal(err)
	}
	byID := make(map[string]Result)
	for _, res := range results {
		byID[res.CallID] = res
		if !res.Partial {
			t.Errorf("%s: Partial false after Recover", res.CallID)
		}
		m := readJSON(t, res.Sidecar)
		if m["partial"] != true || m["sha256"] != fileSHA(t, res.Path) || m["path"] != res.Path || m["call_id"] != res.CallID {
			t.Errorf("%s: sidecar %v", res.Path, m)
		}
	}
	if len(byID) != 4 {
		t.Fatalf("Recover returned %d recordings, want 4: %+v", len(results), results)
	}

	res := byID["01JCRASH"]
	w := readWAV(t, res.Path)
	if w.frames() < 15000 || w.frames() > 16000 || res.Duration != time.Duration(w.frames())*time.Second/8000 {
		t.Errorf("recovered %d frames (Duration %v), want about 2 s", w.frames(), res.Duration)
	}
	if goertzel(w.left[:8000], 400) < 100*goertzel(w.left[:8000], 1000) || goertzel(w.right[:8000], 1000) < 100*goertzel(w.right[:8000], 400) {
		t.Errorf("recovered audio is not the two tones")
	}
	if !allZero(w.left[12000:]) || !allZero(w.right[12000:]) {
		t.Errorf("recovered audio is not silent after the pause")
	}
	m := readJSON(t, res.Sidecar)
	if m["tracking_number"] != "+15550100" || m["agent"] != "alice" || m["started_at"] != "2026-03-14T15:09:26.000Z" || m["ended_at"] == "" {
		t.Errorf("recovered sidecar lost the meta: %v", m)
	}
	if got := pausedJSON(m); len(got) != 1 || got[0][0] != 1500 || got[0][1] != float64(res.Duration.Milliseconds()) {
		t.Errorf("recovered sidecar paused %v, want [1500, end]", got)
	}

	if w := readWAV(t, byID["01JTORN"].Path); w.frames() != 250 {
		t.Errorf("torn .part: %d frames, want 250 (1001 bytes cut to whole frames)", w.frames())
	}
	if byID["01JTORN"].Source != "google-ads" {
		t.Errorf("torn .part lost its meta: %+v", byID["01JTORN"].Meta)
	}
	short, ok := byID["sip/call"]
	if !ok {
		t.Fatalf("a .part shorter than its header: not recovered under its unescaped call id; got %v", slices.Collect(mapKeys(byID)))
	}
	if w := readWAV(t, short.Path); w.frames() != 0 {
		t.Errorf("short .part: %d frames, want 0", w.frames())
	}
	if byID["01JCUT"].Agent != "alice" {
		t.Errorf("cut Finish: sidecar lost the meta: %+v", byID["01JCUT"])
	}
	names := files(t, dir)
	if hasPart(names) {
		t.Errorf("left after Recover: %v", names)
	}

	// Recovered twice is recovered once; a recovered call is not recorded again.
	if again, err := s2.Recover(); err != nil || len(again) != 0 {
		t.Errorf("second Recover: %v, %v", again, err)
	}
	if _, err := s2.Start(testMeta("01JCRASH", start)); err == nil {
		t.Errorf("Start of a recovered call: no error")
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestSweep(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := openStore(t, dir, c)
	now := c.Now()
	record := func(id string, at time.Time) Result {
		t.Helper()
		return secondLong(t, c, at, func() *Recording { return mustStart(t, s, testMeta(id, at)) })
	}
	old := record("01JOLD", now.Add(-100*24*time.Hour))
	mid := record("01JMID", now.Add(-50*24*time.Hour))
	fresh := record("01JNEW", now.Add(-time.Hour))
	// A sidecar that cannot be read: its mtime decides.
	bad := record("01JBAD", now.Add(-2*time.Hour))
	writeFile(t, bad.Sidecar, []byte("not json"))
	for _, p := range []string{bad.Path, bad.Sidecar} {
		if err := os.Chtimes(p, now.Add(-200*24*time.Hour), now.Add(-200*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	c.Set(now)

	if del, err := s.Sweep(0); err != nil || len(del) != 0 {
		t.Errorf("Sweep(0) = %v, %v; want nothing deleted", del, err)
	}
	del, err := s.Sweep(90 * 24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(del, func(a, b Deleted) int { return strings.Compare(a.CallID, b.CallID) })
	want := []Deleted{
		{CallID: "01JBAD", Path: bad.Path, StartedAt: now.Add(-200 * 24 * time.Hour)},
		{CallID: "01JOLD", Path: old.Path, StartedAt: old.StartedAt},
	}
	if len(del) != len(want) {
		t.Fatalf("Sweep deleted %v, want %v", del, want)
	}
	for i := range want {
		if del[i].CallID != want[i].CallID || del[i].Path != want[i].Path || !del[i].StartedAt.Equal(want[i].StartedAt) {
			t.Errorf("deleted %+v, want %+v", del[i], want[i])
		}
	}
	for _, p := range []string{old.Path, old.Sidecar, bad.Path, bad.Sidecar} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: still there (%v)", p, err)
		}
	}
	for _, p := range []string{mid.Path, mid.Sidecar, fresh.Path, fresh.Sidecar} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("kept recording: %v", err)
		}
	}
	// The old recording's year, month and day directories held nothing else.
	if _, err := os.Stat(filepath.Join(dir, old.StartedAt.UTC().Format("2006"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old recording's year directory was not removed: %v; left: %v", err, files(t, dir))
	}
	if _, err := os.Stat(filepath.Dir(bad.Path)); err != nil {
		t.Errorf("the day directory of a kept recording was removed: %v", err)
	}
	if del, err := s.Sweep(40 * 24 * time.Hour); err != nil || len(del) != 1 || del[0].CallID != "01JMID" {
		t.Errorf("Sweep(40 days) = %v, %v; want 01JMID", del, err)
	}
}

func TestFinishTwiceAndAfter(t *testing.T) {
	c := newClock()
	s := openStore(t, t.TempDir(), c)
	start := c.Now()
	r := mustStart(t, s, testMeta("01JTWICE", start))
	if _, err := s.Start(testMeta("01JTWICE", start)); err == nil {
		t.Errorf("a second Start of a call being recorded: no error")
	}
	if _, err := s.Start(Meta{}); err == nil {
		t.Errorf("Start with no call id: no error")
	}
	mu := newG711(t, "PCMU")
	caller := leg{g: mu, ssrc: 1, signal: tone(400, 8000)}
	for j := range 50 {
		c.Set(start.Add(time.Duration(j) * ptime))
		r.Packet(true, caller.packet(j))
	}

	// A writer held up, as by a slow disk: what waits is counted.
	held := startHeld(t, s, testMeta("01JHELD", start))
	var sent int64
	for j := range 50 {
		pkt := caller.packet(j)
		held.Packet(true, pkt)
		sent += int64(len(pkt))
	}
	if st := s.Stats(); st.Active != 2 || st.BufferedBytes < sent || held.buffered() != sent {
		t.Errorf("Stats with packets waiting: %+v, and %d held; want Active 2 and %d bytes held", st, held.buffered(), sent)
	}
	go held.run()
	if _, err := held.Finish(); err != nil {
		t.Fatal(err)
	}
	c.Set(start.Add(time.Second))
	res, err := r.Finish()
	if err != nil {
		t.Fatal(err)
	}
	sum := fileSHA(t, res.Path)
	r.Packet(true, caller.packet(50))
	r.Pause()
	if len(r.in.pkts) != 0 {
		t.Errorf("a packet after Finish was taken")
	}
	res2, err := r.Finish()
	if err != nil || !slices.Equal(res2.Paused, res.Paused) || res2.SHA256 != res.SHA256 || res2.Path != res.Path {
		t.Errorf("second Finish = %+v, %v; want %+v", res2, err, res)
	}
	if fileSHA(t, res.Path) != sum {
		t.Errorf("the file changed after Finish")
	}
	if st := s.Stats(); st.Active != 0 || st.Completed != 2 || st.BufferedBytes != 0 {
		t.Errorf("Stats after Finish: %+v", st)
	}
	if _, err := s.Start(testMeta("01JTWICE", start)); err == nil {
		t.Errorf("Start of a call already recorded: no error")
	}
}

// TestDiskError: a write that fails makes Finish fail, counted, and leaves
// the .part files for Recover.
func TestDiskError(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := openStore(t, dir, c)
	start := c.Now()
	r := mustStart(t, s, testMeta("01JDISK", start))
	mu := newG711(t, "PCMU")
	caller := leg{g: mu, ssrc: 1, signal: tone(400, 8000)}
	for j := range 50 {
		c.Set(start.Add(time.Duration(j) * ptime))
		r.Packet(true, caller.packet(j))
	}
	if err := r.flush(); err != nil {
		t.Fatal(err)
	}
	r.f.Close() // the disk goes away under the writer
	for j := 50; j < 100; j++ {
		c.Set(start.Add(time.Duration(j) * ptime))
		r.Packet(true, caller.packet(j))
	}
	if err := r.flush(); err == nil {
		t.Errorf("flush after the file broke: no error")
	}
	r.Packet(true, caller.packet(100)) // taken and thrown away
	_, err := r.Finish()
	if err == nil || !strings.Contains(err.Error(), "01JDISK.wav.part") {
		t.Errorf("Finish = %v, want an error naming the file", err)
	}
	if _, err2 := r.Finish(); err2 != err {
		t.Errorf("second Finish: %v, want the same error", err2)
	}
	if st := s.Stats(); st.Failed != 1 || st.Completed != 0 || st.Active != 0 || st.BufferedBytes != 0 {
		t.Errorf("Stats: %+v, want Failed 1", st)
	}
	results, err := openStore(t, dir, c).Recover()
	if err != nil || len(results) != 1 {
		t.Fatalf("Recover = %v, %v", results, err)
	}
	if w := readWAV(t, results[0].Path); w.frames() < 7000 || w.frames() > 8000 {
		t.Errorf("recovered %d frames, want the second written before the failure", w.frames())
	}
}

func TestFileName(t *testing.T) {
	for id, want := range map[string]string{
		"01JABCDEF":                       "01JABCDEF",
		"a84b4c76e66710@pc33.atlanta.com": "a84b4c76e66710@pc33.atlanta.com",
		"../etc/passwd":                   "%2E.%2Fetc%2Fpasswd",
		"x y%":                            "x%20y%25",
	} {
		if got := fileName(id); got != want {
			t.Errorf("fileName(%q) = %q, want %q", id, got, want)
		}
		if back := callIDFromName(fileName(id)); back != id {
			t.Errorf("callIDFromName(fileName(%q)) = %q", id, back)
		}
	}
	long := strings.Repeat("/", 300)
	if n := fileName(long); len(n) > maxNameLen || n == fileName(long+"x") {
		t.Errorf("fileName of a long id: %d bytes, or not unique", len(n))
	}
}

// startHeld is Start with the writer not running yet: go r.run() starts it.
func startHeld(t testing.TB, s *Store, meta Meta) *Recording {
	t.Helper()
	utc := meta.StartedAt.UTC()
	rel := []string{utc.Format("2006"), utc.Format("01"), utc.Format("02")}
	r := newRecording(s, meta, s.now(), filepath.Join(s.Dir(), filepath.Join(rel...)))
	s.mu.Lock()
	s.active[meta.CallID] = r
	s.mu.Unlock()
	if err := s.create(r, rel); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStartedBefore: a StartedAt well before Start is silence up to Start.
func TestStartedBefore(t *testing.T) {
	c := newClock()
	s := openStore(t, t.TempDir(), c)
	start := c.Now()
	answered := start.Add(-25 * time.Second)
	r := mustStart(t, s, testMeta("01JEARLY", answered))
	mu := newG711(t, "PCMU")
	caller := leg{g: mu, ssrc: 1, signal: tone(400, 8000)}
	for j := range 50 {
		c.Set(start.Add(time.Duration(j) * ptime))
		r.Packet(true, caller.packet(j))
		if j == 10 {
			if err := r.flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Set(start.Add(time.Second))
	res, err := r.Finish()
	if err != nil {
		t.Fatal(err)
	}
	w := readWAV(t, res.Path)
	if w.frames() != 26*8000 || res.Duration != 26*time.Second {
		t.Errorf("%d frames (%v), want 26 s", w.frames(), res.Duration)
	}
	if !allZero(w.left[:25*8000]) || firstAbove(w.left, 0, 1000) > 25*8000+perPacket {
		t.Errorf("the caller's audio is not at 25 s")
	}
}

// TestRecoverLeavesActive: Recover while recording touches nothing of the
// recordings in progress.
func TestRecoverLeavesActive(t *testing.T) {
	c := newClock()
	s := openStore(t, t.TempDir(), c)
	start := c.Now()
	r := mustStart(t, s, testMeta("01JBUSY", start))
	mu := newG711(t, "PCMU")
	caller := leg{g: mu, ssrc: 1, signal: tone(400, 8000)}
	for j := range 50 {
		c.Set(start.Add(time.Duration(j) * ptime))
		r.Packet(true, caller.packet(j))
	}
	r.Pause() // so that the .json.part is being rewritten too
	if err := r.flush(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Recover(); err != nil || len(got) != 0 {
		t.Fatalf("Recover while recording = %v, %v; want nothing", got, err)
	}
	c.Set(start.Add(time.Second))
	res, err := r.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if w := readWAV(t, res.Path); w.frames() != 8000 || res.Partial {
		t.Errorf("%d frames, Partial %v; want 8000, false", w.frames(), res.Partial)
	}
}
