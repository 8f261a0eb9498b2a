package recording

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/callsign/callsign/media"
	"github.com/rs/zerolog"
)

const voicemailChannels = 1

// VoicemailMeta is what the sidecar says of a voicemail.
type VoicemailMeta struct {
	CallID, Caller, TrackingNumber, Source, Queue string
	StartedAt                                     time.Time // the beep: the voicemail's time zero
}

// VoicemailResult is a finished voicemail.
type VoicemailResult struct {
	VoicemailMeta
	Path     string        // the .wav, absolute
	Sidecar  string        // the .json
	EndedAt  time.Time     // Finish; for a recovered voicemail, the .part's last write
	Duration time.Duration // of the audio in the file
	SHA256   string        // hex, of the whole .wav file as written
	Partial  bool          // finalized by Recover after a crash: only what was captured
}

// VoicemailStore is the voicemail directory. Voicemail is kept as
// recordings are, under <storage dir>/voicemail, with the same names, the
// same .part files while it is being left, the same durability and the
// same recovery after a crash, but mono: it is the caller alone.
//
//	YYYY/MM/DD/<call id>.wav         8 kHz 16-bit mono PCM, once finished
//	YYYY/MM/DD/<call id>.json        the sidecar: meta, times, sha256
//	YYYY/MM/DD/<call id>.wav.part    while it is being left
//	YYYY/MM/DD/<call id>.json.part   while it is being left: the meta
//
// The caller's packets are placed by their RTP timestamps, as a
// recording's side is (see Alignment in the package comment), and only
// PCMU and PCMA are audio. There are no pauses.
//
// The writer is its own, not the recordings': theirs lays out two
// channels in every frame it keeps, writes and seals. It shares the rest:
// the RTP parsing and anchoring, the file names, the header, sealing and
// hashing, the sidecar writing, Recover's code and Sweep.
type VoicemailStore struct {
	// s is a Store of the directory, for what does not depend on the
	// kind of audio: its path, log and clock, its day directories and
	// their lock, and Sweep. It records nothing itself.
	s *Store

	mu sync.Mutex
	// active holds the voicemails being left by call id, as a Store's
	// active does its recordings.
	active map[string]*Voicemail
}

// OpenVoicemail prepares dir (storage.dir/voicemail), creating it. now is
// the clock every voicemail time comes from; nil means time.Now.
func OpenVoicemail(dir string, log zerolog.Logger, now func() time.Time) (*VoicemailStore, error) {
	s, err := Open(dir, log, now)
	if err != nil {
		return nil, err
	}
	return &VoicemailStore{s: s, active: make(map[string]*Voicemail)}, nil
}

// Dir is the directory the store keeps its voicemail in, absolute.
func (vs *VoicemailStore) Dir() string { return vs.s.dir }

// Sweep deletes the voicemail that started more than retention ago, as
// Store.Sweep does recordings; 0 keeps everything.
func (vs *VoicemailStore) Sweep(retention time.Duration) ([]Deleted, error) {
	return vs.s.Sweep(retention)
}

// Recover finalizes the voicemail a killed edge left being recorded and
// returns it, Partial, as Store.Recover does recordings.
func (vs *VoicemailStore) Recover() ([]VoicemailResult, error) {
	return recoverDir(vs.s.dir, vs.s.log, recoverKind[VoicemailResult]{
		what:     "voicemail",
		channels: voicemailChannels,
		active:   vs.activeFiles,
		finish:   vs.finishRecovered,
		callID:   func(r VoicemailResult) string { return r.CallID },
	})
}

func (vs *VoicemailStore) activeFiles() map[string]bool {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	m := make(map[string]bool, 4*len(vs.active))
	for _, v := range vs.active {
		m[v.wavPart], m[v.jsonPart], m[v.jsonPart+tmpExt], m[v.jsonPath+tmpExt] = true, true, true, true
	}
	return m
}

// finishRecovered is voicemail's recoverKind.finish.
func (vs *VoicemailStore) finishRecovered(lo leftover) (VoicemailResult, error) {
	res := VoicemailResult{
		Path: lo.stem + wavExt, Sidecar: lo.stem + jsonExt, EndedAt: lo.ended, Duration: lo.duration,
		SHA256: lo.sha256, Partial: true,
	}
	jsonPart := lo.stem + jsonExt + partExt
	sc, err := loadSidecar[voicemailSidecar](jsonPart)
	if err == nil {
		res.VoicemailMeta, err = sc.meta()
		if err != nil {
			err = fmt.Errorf("recording: %s: %w", jsonPart, err)
		}
	}
	if err != nil {
		vs.s.log.Warn().Err(err).Str("file", res.Path).Msg("voicemail: metadata lost; the sidecar has only what the file name says")
		res.VoicemailMeta = VoicemailMeta{CallID: callIDFromName(filepath.Base(lo.stem)), StartedAt: lo.ended.Add(-lo.duration)}
	}
	return res, writeRecovered(lo.stem, voicemailSidecarOf(res))
}

// voicemailSidecar is the JSON of a voicemail's <call id>.json, and of its
// .json.part, which has no ended_at, duration or sha256 yet.
type voicemailSidecar struct {
	CallID         string `json:"call_id"`
	Caller         string `json:"caller"`
	TrackingNumber string `json:"tracking_number"`
	Source         string `json:"source"`
	Queue          string `json:"queue"`
	StartedAt      string `json:"started_at"`
	EndedAt        string `json:"ended_at"`
	DurationMS     int64  `json:"duration_ms"`
	SHA256         string `json:"sha256"`
	Path           string `json:"path"`
	Partial        bool   `json:"partial"`
}

func (sc voicemailSidecar) callID() string { return sc.CallID }

func voicemailPartSidecar(m VoicemailMeta, wavPath string) voicemailSidecar {
	return voicemailSidecar{
		CallID: m.CallID, Caller: m.Caller, TrackingNumber: m.TrackingNumber, Source: m.Source, Queue: m.Queue,
		StartedAt: jsonTime(m.StartedAt), Path: wavPath,
	}
}

func voicemailSidecarOf(r VoicemailResult) voicemailSidecar {
	sc := voicemailPartSidecar(r.VoicemailMeta, r.Path)
	sc.EndedAt = jsonTime(r.EndedAt)
	sc.DurationMS = r.Duration.Milliseconds()
	sc.SHA256 = r.SHA256
	sc.Partial = r.Partial
	return sc
}

// meta reads back what voicemailPartSidecar wrote.
func (sc voicemailSidecar) meta() (VoicemailMeta, error) {
	started, err := time.Parse(time.RFC3339Nano, sc.StartedAt)
	if err != nil {
		return VoicemailMeta{}, fmt.Errorf("started_at: %w", err)
	}
	return VoicemailMeta{
		CallID: sc.CallID, Caller: sc.Caller, TrackingNumber: sc.TrackingNumber, Source: sc.Source, Queue: sc.Queue,
		StartedAt: started,
	}, nil
}

// Voicemail is a voicemail being left, fed with the caller's packets.
type Voicemail struct {
	vs   *VoicemailStore
	meta VoicemailMeta
	now  func() time.Time
	// Times are taken as t0Off plus the monotonic time since t0 (Start),
	// so that a step of the wall clock does not move the audio.
	t0    time.Time
	t0Off time.Duration

	day, wavPart, jsonPart, wavPath, jsonPath string
	f                                         *os.File

	mu     sync.Mutex
	closed bool // Finish has begun: packets are ignored
	in     inbox
	endAt  time.Time

	kick     chan struct{}
	flushReq chan chan error
	stop     chan struct{}
	halt     chan struct{}
	done     chan struct{}

	w monoWriter // the writer goroutine's; Finish reads it once done is closed

	finishMu sync.Mutex
	finished bool
	result   VoicemailResult
	err      error
}

// monoWriter is the state of a voicemail's writer goroutine: a
// recording's writer (see writer) with one channel and no pauses.
type monoWriter struct {
	batch inbox
	side  side
	// win holds frames [base, base+len(win)). Frames before base are
	// final on disk.
	win     []int16
	base    int64
	diskEnd int64 // frames [0, diskEnd) are in the file, those ≥ base provisionally
	dirty   int64 // the lowest frame changed since it was written; ≥ diskEnd: none
	late    int64 // samples dropped for landing before base
	pcm     []int16
	out     []byte
	synced  time.Time
	err     error
}

// Start begins a voicemail; nothing is on disk before it. A zero StartedAt
// means now. A call leaves one voicemail: Start fails while it is being
// left, after it was finished, or while its .part files wait for Recover.
func (vs *VoicemailStore) Start(meta VoicemailMeta) (*Voicemail, error) {
	if meta.CallID == "" {
		return nil, errors.New("recording: a voicemail needs a call id")
	}
	t0 := vs.s.now()
	if meta.StartedAt.IsZero() {
		meta.StartedAt = t0
	}
	utc := meta.StartedAt.UTC()
	rel := []string{utc.Format("2006"), utc.Format("01"), utc.Format("02")}
	day := filepath.Join(vs.s.dir, filepath.Join(rel...))
	name := fileName(meta.CallID)
	v := &Voicemail{
		vs: vs, meta: meta, now: vs.s.now, t0: t0, t0Off: t0.Sub(meta.StartedAt),
		day:      day,
		wavPath:  filepath.Join(day, name+wavExt),
		jsonPath: filepath.Join(day, name+jsonExt),
		kick:     make(chan struct{}, 1),
		flushReq: make(chan chan error),
		stop:     make(chan struct{}),
		halt:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	v.wavPart = v.wavPath + partExt
	v.jsonPart = v.jsonPath + partExt
	v.w.dirty = math.MaxInt64
	v.w.synced = time.Now()
	// Known before its files exist, so that Recover does not take them
	// for the leftovers of a crash.
	vs.mu.Lock()
	if _, busy := vs.active[meta.CallID]; busy {
		vs.mu.Unlock()
		return nil, fmt.Errorf("recording: call %s is already leaving a voicemail", meta.CallID)
	}
	vs.active[meta.CallID] = v
	vs.mu.Unlock()
	if err := v.create(rel); err != nil {
		vs.forget(v)
		return nil, err
	}
	go v.run()
	vs.s.log.Debug().Str("call_id", meta.CallID).Str("file", v.wavPart).Msg("voicemail started")
	return v, nil
}

func (vs *VoicemailStore) forget(v *Voicemail) {
	vs.mu.Lock()
	if vs.active[v.meta.CallID] == v {
		delete(vs.active, v.meta.CallID)
	}
	vs.mu.Unlock()
}

// create makes the .wav.part; the writer makes it durable (settle).
func (v *Voicemail) create(rel []string) error {
	s := v.vs.s
	s.dirs.RLock()
	defer s.dirs.RUnlock()
	if err := s.mkdirs(rel); err != nil {
		return err
	}
	if _, err := os.Lstat(v.wavPath); err == nil {
		return fmt.Errorf("recording: %s already exists; call %s left a voicemail before", v.wavPath, v.meta.CallID)
	}
	f, err := os.OpenFile(v.wavPart, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("recording: %s exists: call %s was leaving a voicemail when the edge stopped; Recover finalizes it", v.wavPart, v.meta.CallID)
		}
		return fileError("creating", v.wavPart, err)
	}
	if _, err := f.WriteAt(pcmHeader(voicemailChannels, streamedSize), 0); err != nil {
		f.Close()
		os.Remove(v.wavPart)
		return fileError("writing", v.wavPart, err)
	}
	v.f = f
	return nil
}

// settle makes the new .part files durable, with the metadata Recover
// needs, on the writer's goroutine, as a recording's settle does.
func (v *Voicemail) settle() error {
	if err := writeJSON(v.jsonPart, voicemailPartSidecar(v.meta, v.wavPath)); err != nil {
		return err
	}
	if err := v.f.Sync(); err != nil {
		return fileError("syncing", v.wavPart, err)
	}
	if err := syncDir(v.day); err != nil {
		return fileError("syncing", v.day, err)
	}
	return nil
}

func (v *Voicemail) since(t time.Time) time.Duration { return t.Sub(v.t0) + v.t0Off }

// Path is where the voicemail will be once finished.
func (v *Voicemail) Path() string { return v.wavPath }

// Packet takes one of the caller's RTP packets. It only copies the packet
// under a short lock; the writer does the rest.
func (v *Voicemail) Packet(pkt []byte) {
	if len(pkt) < rtpHeader || pkt[0]>>6 != 2 {
		return
	}
	if pt := pkt[1] & 0x7f; pt != ptPCMU && pt != ptPCMA {
		return
	}
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return
	}
	// Under the lock, as for recordings: see Recording.Packet.
	at := v.since(v.now())
	off := len(v.in.buf)
	v.in.buf = append(v.in.buf, pkt...)
	v.in.pkts = append(v.in.pkts, inPkt{at: at, off: uint32(off), n: uint32(len(pkt)), caller: true})
	backlog := len(v.in.buf) >= kickBytes
	v.mu.Unlock()
	if backlog {
		select {
		case v.kick <- struct{}{}:
		default:
		}
	}
}

// Finish stops taking packets, writes what is left, and makes the file and
// its sidecar durable. Calling it again returns the same.
func (v *Voicemail) Finish() (VoicemailResult, error) {
	v.finishMu.Lock()
	defer v.finishMu.Unlock()
	if v.finished {
		return v.result, v.err
	}
	v.finished = true
	v.mu.Lock()
	v.closed = true
	v.endAt = v.now()
	v.mu.Unlock()
	v.vs.forget(v)
	close(v.stop)
	<-v.done

	v.result, v.err = v.finalize()
	log := v.vs.s.log
	if v.err != nil {
		log.Error().Err(v.err).Str("call_id", v.meta.CallID).Str("file", v.wavPart).
			Msg("voicemail failed; its .part files are left for Recover")
	} else {
		log.Info().Str("call_id", v.meta.CallID).Str("file", v.result.Path).
			Dur("duration", v.result.Duration).Int64("late_samples", v.w.late).Msg("voicemail finished")
	}
	return v.result, v.err
}

func (v *Voicemail) finalize() (VoicemailResult, error) {
	w := &v.w
	frames := w.diskEnd
	res := VoicemailResult{
		VoicemailMeta: v.meta, Path: v.wavPath, Sidecar: v.jsonPath, EndedAt: v.endAt,
		Duration: time.Duration(frames) * framePeriod,
	}
	if w.err != nil {
		v.f.Close()
		return res, w.err
	}
	sum, err := sealPCM(v.f, v.wavPart, voicemailChannels, frames)
	if cerr := v.f.Close(); err == nil && cerr != nil {
		err = fileError("closing", v.wavPart, cerr)
	}
	if err != nil {
		return res, err
	}
	res.SHA256 = sum
	if err := os.Rename(v.wavPart, v.wavPath); err != nil {
		return res, fileError("renaming", v.wavPart, err)
	}
	if err := writeJSON(v.jsonPath, voicemailSidecarOf(res)); err != nil {
		return res, err
	}
	if err := os.Remove(v.jsonPart); err != nil {
		return res, fileError("removing", v.jsonPart, err)
	}
	if err := syncDir(v.day); err != nil {
		return res, fileError("syncing", v.day, err)
	}
	return res, nil
}

// run is the writer goroutine, as a recording's.
func (v *Voicemail) run() {
	defer close(v.done)
	if err := v.settle(); err != nil {
		v.fail(err)
	}
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			v.step(false, false)
		case <-v.kick:
			v.step(false, false)
		case reply := <-v.flushReq:
			reply <- v.step(true, false)
		case <-v.halt:
			v.w.err = errHalted
			v.f.Close()
			return
		case <-v.stop:
			v.step(false, true)
			return
		}
	}
}

// flush makes the writer take and write everything now, and fsync; for
// tests.
func (v *Voicemail) flush() error {
	reply := make(chan error)
	select {
	case v.flushReq <- reply:
		return <-reply
	case <-v.done:
		return errors.New("recording: finished")
	}
}

// kill stops the writer where it is without finalizing anything, as kill -9
// would; for tests.
func (v *Voicemail) kill() {
	close(v.halt)
	<-v.done
}

// step takes the waiting packets, places them and writes what changed.
// final writes everything up to Finish.
func (v *Voicemail) step(forceSync, final bool) error {
	w := &v.w
	v.mu.Lock()
	v.in, w.batch = inbox{buf: w.batch.buf[:0], pkts: w.batch.pkts[:0]}, v.in
	now := v.since(v.now())
	end := now
	if final {
		end = v.since(v.endAt)
	}
	v.mu.Unlock()
	defer w.trim()

	if w.err != nil {
		return w.err
	}
	for _, p := range w.batch.pkts {
		w.take(w.batch.buf[p.off:p.off+p.n], p.at)
	}
	// Silence a long way ahead goes to disk in pieces, as for recordings.
	for target := posOf(end); w.end() < target; {
		w.extend(min(target, w.end()+posOf(maxSilence)))
		if w.end() == target {
			break
		}
		if err := w.write(v.f); err != nil {
			return v.fail(fileError("writing", v.wavPart, err))
		}
		w.commit(posOf(now - window))
	}
	if err := w.write(v.f); err != nil {
		return v.fail(fileError("writing", v.wavPart, err))
	}
	if final {
		return nil
	}
	w.commit(posOf(now - window))
	if forceSync || time.Since(w.synced) >= syncEvery {
		if err := v.f.Sync(); err != nil {
			return v.fail(fileError("syncing", v.wavPart, err))
		}
		w.synced = time.Now()
	}
	return nil
}

// fail stops the writing for good, as a recording's does.
func (v *Voicemail) fail(err error) error {
	v.w.err = err
	v.vs.s.log.Error().Err(err).Str("call_id", v.meta.CallID).Msg("voicemail: disk error; the rest of it is not recorded")
	return err
}

func (w *monoWriter) end() int64 { return w.base + int64(len(w.win)) }

// take decodes one packet into the window.
func (w *monoWriter) take(pkt []byte, at time.Duration) {
	payload, pt, ts, ssrc, ok := rtpPayload(pkt)
	if !ok || len(payload) == 0 {
		return
	}
	codec := "PCMU"
	if pt == ptPCMA {
		codec = "PCMA"
	}
	pcm, err := media.DecodeG711(codec, w.pcm[:0], payload)
	if err != nil {
		return
	}
	w.pcm = pcm
	w.place(w.side.position(ssrc, ts, posOf(at)), pcm)
}

// place puts samples in the window from frame p.
func (w *monoWriter) place(p int64, pcm []int16) {
	if p < w.base {
		skip := w.base - p
		if skip >= int64(len(pcm)) {
			w.late += int64(len(pcm))
			return
		}
		pcm, p = pcm[skip:], w.base
		w.late += skip
	}
	limit := pcmMaxFrames(voicemailChannels)
	if p >= limit {
		return
	}
	if n := limit - p; int64(len(pcm)) > n {
		pcm = pcm[:n]
	}
	w.extend(p + int64(len(pcm)))
	copy(w.win[p-w.base:], pcm)
	w.dirty = min(w.dirty, p)
}

// extend grows the window with silence up to frame end.
func (w *monoWriter) extend(end int64) {
	end = min(end, pcmMaxFrames(voicemailChannels))
	n := int(end - w.base)
	if n <= len(w.win) {
		return
	}
	old := len(w.win)
	w.win = slices.Grow(w.win, n-old)[:n]
	clear(w.win[old:])
}

// write puts the frames changed or added since the last write in the file.
func (w *monoWriter) write(f *os.File) error {
	from, end := min(w.dirty, w.diskEnd), w.end()
	if from >= end {
		return nil
	}
	w.out = slices.Grow(w.out[:0], int(end-from)*2)
	for _, s := range w.win[from-w.base : end-w.base] {
		w.out = append(w.out, byte(s), byte(uint16(s)>>8))
	}
	if _, err := f.WriteAt(w.out, headerSize+from*2); err != nil {
		return err
	}
	w.diskEnd, w.dirty = end, math.MaxInt64
	return nil
}

// commit makes the frames before cutoff final: they leave memory, and a
// packet that would land there is late.
func (w *monoWriter) commit(cutoff int64) {
	cutoff = min(cutoff, w.diskEnd)
	if cutoff <= w.base {
		return
	}
	w.win = w.win[:copy(w.win, w.win[cutoff-w.base:])]
	w.base = cutoff
}

// trim lets go of the buffers a backlog grew.
func (w *monoWriter) trim() {
	if cap(w.batch.buf) > keepBytes {
		w.batch = inbox{}
	}
	if cap(w.out) > keepBytes {
		w.out = nil
	}
	if cap(w.win)*2 > keepBytes && len(w.win) < cap(w.win)/4 {
		w.win = slices.Clone(w.win)
	}
}
