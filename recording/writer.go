package recording

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callsign/callsign/media"
)

const (
	// window is how long samples stay in memory, open to packets that
	// arrive out of order, before they are final on disk.
	window = time.Second
	// A stream is anchored again when a packet lands this far after its
	// arrival: no network makes packets early, so the sender jumped its
	// timestamps forward (or the anchor packet itself came late).
	reanchorAhead = 300 * time.Millisecond
	// ... or this far before it, for reanchorAfter of arrivals. Lateness
	// is mostly the network, and the burst after a stall is late by less
	// and less: it lands rightly in the past, within the window. Only a
	// lateness that lasts is a sender that jumped its timestamps back.
	reanchorBehind = 300 * time.Millisecond
	reanchorAfter  = 200 * time.Millisecond
	// flushEvery is how often the writer takes the packets and writes:
	// what a kill -9 can lose.
	flushEvery = 200 * time.Millisecond
	// syncEvery is how often it fsyncs: what a machine crash can lose.
	syncEvery = 2 * time.Second
	// behindAfter is how much waiting audio counts as the writer being
	// behind.
	behindAfter = time.Second
	// kickBytes wakes the writer before its tick when this much waits.
	// Waking it for every packet would be a goroutine switch per packet,
	// 100 a second per call, for nothing the tick does not do.
	kickBytes = 32 << 10
	// maxSilence is the most silence the writer adds to memory at once.
	maxSilence = 10 * time.Second
	// keepBytes bounds the buffers an inbox keeps after a backlog, so a
	// slow disk once does not hold memory for the rest of the call.
	keepBytes = 1 << 20

	rtpHeader = 12
	ptPCMU    = 0
	ptPCMA    = 8

	framePeriod = time.Second / sampleRate // 125 µs
)

// openSpan is the To of a pause not yet resumed.
const openSpan = time.Duration(math.MaxInt64)

var errHalted = errors.New("recording: writer halted")

// Recording is a recording in progress, fed by the bridge's tap.
type Recording struct {
	s    *Store
	meta Meta
	now  func() time.Time
	// Times are taken as t0Off plus the monotonic time since t0 (Start),
	// so that a step of the wall clock does not move the audio.
	t0    time.Time
	t0Off time.Duration

	day, wavPart, jsonPart, wavPath, jsonPath string
	f                                         *os.File

	mu       sync.Mutex
	closed   bool // Finish has begun: packets are ignored
	in       inbox
	paused   bool
	pausedAt time.Duration
	spans    []Span // pauses resumed
	gen      uint64 // changes with the pauses
	endAt    time.Time

	unsaved atomic.Int64 // bytes the writer has taken and not yet written

	kick     chan struct{}
	flushReq chan chan error
	stop     chan struct{}
	halt     chan struct{}
	done     chan struct{}

	w writer // the writer goroutine's; Finish reads it once done is closed

	finishMu sync.Mutex
	finished bool
	result   Result
	err      error
}

// inbox is packets waiting for the writer: their bytes one after the
// other in buf, so that taking a packet is an append, which allocates
// only while the buffers grow to a flush's worth.
type inbox struct {
	buf  []byte
	pkts []inPkt
}

type inPkt struct {
	at     time.Duration // arrival, since StartedAt
	off, n uint32        // in buf
	caller bool
}

// writer is the state of a recording's writer goroutine.
type writer struct {
	batch inbox
	sides [2]side // caller, agent: the channels
	// win holds frames [base, base+len(win)/2), interleaved left and
	// right. Frames before base are final on disk.
	win     []int16
	base    int64
	diskEnd int64 // frames [0, diskEnd) are in the file, those ≥ base provisionally
	dirty   int64 // the lowest frame changed since it was written; ≥ diskEnd: none
	spans   []Span
	gen     uint64
	pcm     []int16
	out     []byte
	synced  time.Time
	err     error
}

func newRecording(s *Store, meta Meta, t0 time.Time, day string) *Recording {
	name := fileName(meta.CallID)
	r := &Recording{
		s: s, meta: meta, now: s.now, t0: t0, t0Off: t0.Sub(meta.StartedAt),
		day:      day,
		wavPath:  filepath.Join(day, name+wavExt),
		jsonPath: filepath.Join(day, name+jsonExt),
		kick:     make(chan struct{}, 1),
		flushReq: make(chan chan error),
		stop:     make(chan struct{}),
		halt:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.wavPart = r.wavPath + partExt
	r.jsonPart = r.jsonPath + partExt
	r.w.dirty = math.MaxInt64
	r.w.synced = time.Now()
	return r
}

// since is t as an offset from StartedAt.
func (r *Recording) since(t time.Time) time.Duration { return t.Sub(r.t0) + r.t0Off }

// Path is where the recording will be once finished.
func (r *Recording) Path() string { return r.wavPath }

// Packet is the tap: the relay's reader goroutines (one per direction,
// concurrently) call it for every packet relayed. It only copies the
// packet under a short lock; the writer does the rest.
func (r *Recording) Packet(fromCaller bool, pkt []byte) {
	// Only G.711 becomes audio; anything else (telephone-event, comfort
	// noise) is silence, and not worth a copy.
	if len(pkt) < rtpHeader || pkt[0]>>6 != 2 {
		return
	}
	if pt := pkt[1] & 0x7f; pt != ptPCMU && pt != ptPCMA {
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	// The clock is read under the lock: the writer reads it there too
	// when it takes the inbox, so every packet it has not taken yet
	// arrived after that, and the window it keeps open is enough.
	at := r.since(r.now())
	off := len(r.in.buf)
	r.in.buf = append(r.in.buf, pkt...)
	r.in.pkts = append(r.in.pkts, inPkt{at: at, off: uint32(off), n: uint32(len(pkt)), caller: fromCaller})
	backlog := len(r.in.buf) >= kickBytes
	r.mu.Unlock()
	if backlog {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// Pause silences the recording, both channels, from now until Resume.
func (r *Recording) Pause() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.paused {
		return
	}
	r.paused = true
	r.pausedAt = max(r.since(r.now()), 0)
	r.gen++
}

// Resume ends a pause.
func (r *Recording) Resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || !r.paused {
		return
	}
	r.paused = false
	if to := r.since(r.now()); to > r.pausedAt {
		r.spans = append(r.spans, Span{From: r.pausedAt, To: to})
	}
	r.gen++
}

func (r *Recording) buffered() int64 {
	r.mu.Lock()
	n := int64(len(r.in.buf))
	r.mu.Unlock()
	return n + r.unsaved.Load()
}

// Finish stops taking packets, writes what is left, and makes the file and
// its sidecar durable. Calling it again returns the same.
func (r *Recording) Finish() (Result, error) {
	r.finishMu.Lock()
	defer r.finishMu.Unlock()
	if r.finished {
		return r.result, r.err
	}
	r.finished = true
	r.mu.Lock()
	r.closed = true
	r.endAt = r.now()
	r.mu.Unlock()
	r.s.forget(r)
	close(r.stop)
	<-r.done

	r.result, r.err = r.finalize()
	log := r.s.log
	if r.err != nil {
		r.s.failed.Add(1)
		log.Error().Err(r.err).Str("call_id", r.meta.CallID).Str("file", r.wavPart).
			Msg("recording failed; its .part files are left for Recover")
	} else {
		r.s.completed.Add(1)
		log.Info().Str("call_id", r.meta.CallID).Str("file", r.result.Path).
			Dur("duration", r.result.Duration).Int("pauses", len(r.result.Paused)).Msg("recording finished")
	}
	return r.result, r.err
}

func (r *Recording) finalize() (Result, error) {
	w := &r.w
	frames := w.diskEnd
	res := Result{
		Meta: r.meta, Path: r.wavPath, Sidecar: r.jsonPath, EndedAt: r.endAt,
		Duration: time.Duration(frames) * framePeriod,
		Paused:   closeSpans(w.spans, time.Duration(frames)*framePeriod),
	}
	if w.err != nil {
		r.f.Close()
		return res, w.err
	}
	sum, err := sealWAV(r.f, r.wavPart, frames)
	if cerr := r.f.Close(); err == nil && cerr != nil {
		err = fileError("closing", r.wavPart, cerr)
	}
	if err != nil {
		return res, err
	}
	res.SHA256 = sum
	if err := os.Rename(r.wavPart, r.wavPath); err != nil {
		return res, fileError("renaming", r.wavPart, err)
	}
	if err := writeJSON(r.jsonPath, resultSidecar(res)); err != nil {
		return res, err
	}
	if err := os.Remove(r.jsonPart); err != nil {
		return res, fileError("removing", r.jsonPart, err)
	}
	if err := syncDir(r.day); err != nil {
		return res, fileError("syncing", r.day, err)
	}
	return res, nil
}

// closeSpans ends an open pause at end, the end of the file, and drops
// what is empty.
func closeSpans(spans []Span, end time.Duration) []Span {
	out := make([]Span, 0, len(spans))
	for _, s := range spans {
		s.To = min(s.To, end)
		if s.To > s.From {
			out = append(out, s)
		}
	}
	return out
}

// run is the writer goroutine.
func (r *Recording) run() {
	defer close(r.done)
	if err := r.settle(); err != nil {
		r.fail(err)
	}
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.step(false, false)
		case <-r.kick:
			r.step(false, false)
		case reply := <-r.flushReq:
			reply <- r.step(true, false)
		case <-r.halt:
			r.w.err = errHalted
			r.f.Close()
			return
		case <-r.stop:
			r.step(false, true)
			return
		}
	}
}

// flush makes the writer take and write everything now, and fsync; for
// tests, which cannot wait for the tick.
func (r *Recording) flush() error {
	reply := make(chan error)
	select {
	case r.flushReq <- reply:
		return <-reply
	case <-r.done:
		return errors.New("recording: finished")
	}
}

// kill stops the writer where it is without finalizing anything, as kill -9
// would; for tests.
func (r *Recording) kill() {
	close(r.halt)
	<-r.done
}

// step takes the waiting packets, places them and writes what changed.
// final writes everything up to Finish.
func (r *Recording) step(forceSync, final bool) error {
	w := &r.w
	r.mu.Lock()
	r.in, w.batch = inbox{buf: w.batch.buf[:0], pkts: w.batch.pkts[:0]}, r.in
	now := r.since(r.now())
	end := now
	if final {
		end = r.since(r.endAt)
	}
	spansChanged := r.gen != w.gen
	if spansChanged {
		w.gen = r.gen
		w.spans = append(w.spans[:0], r.spans...)
		if r.paused {
			w.spans = append(w.spans, Span{From: r.pausedAt, To: openSpan})
		}
	}
	r.unsaved.Store(int64(len(w.batch.buf)))
	r.mu.Unlock()
	defer r.unsaved.Store(0)
	defer w.trim()

	if w.err != nil {
		return w.err
	}
	if len(w.batch.pkts) > 0 && now-w.batch.pkts[0].at > behindAfter {
		r.s.behind.Add(1)
	}
	var late int64
	for _, p := range w.batch.pkts {
		late += w.take(p.caller, w.batch.buf[p.off:p.off+p.n], p.at)
	}
	if late > 0 {
		r.s.late.Add(uint64(late))
	}
	// Silence a long way ahead (a StartedAt long before Start, a writer
	// held up for minutes) goes to disk in pieces, not into memory whole.
	for target := posOf(end); w.end() < target; {
		w.extend(min(target, w.end()+posOf(maxSilence)))
		if w.end() == target {
			break
		}
		if err := w.write(r.f); err != nil {
			return r.fail(fileError("writing", r.wavPart, err))
		}
		w.commit(posOf(now - window))
	}
	if spansChanged {
		// What was written provisionally of a pause that began within
		// the window (packets ahead of their time) is written again.
		for _, s := range w.spans {
			if s.To == openSpan || posOf(s.To) > w.base {
				w.dirty = min(w.dirty, max(posOf(s.From), w.base))
			}
		}
		if !final {
			if err := writeJSON(r.jsonPart, partSidecar(r.meta, r.wavPath, w.spans)); err != nil {
				return r.fail(err)
			}
		}
	}
	if err := w.write(r.f); err != nil {
		return r.fail(fileError("writing", r.wavPart, err))
	}
	if final {
		return nil
	}
	w.commit(posOf(now - window))
	if forceSync || time.Since(w.synced) >= syncEvery {
		if err := r.f.Sync(); err != nil {
			return r.fail(fileError("syncing", r.wavPart, err))
		}
		w.synced = time.Now()
	}
	return nil
}

// fail stops the writing for good: after a failed write or fsync nothing
// said of the file can be trusted. The packets keep being taken and thrown
// away, so memory does not grow for a recording that cannot be saved.
func (r *Recording) fail(err error) error {
	r.w.err = err
	r.s.log.Error().Err(err).Str("call_id", r.meta.CallID).Msg("recording: disk error; the rest of the call is not recorded")
	return err
}

// posOf is the frame at offset d from StartedAt.
func posOf(d time.Duration) int64 { return int64(d / framePeriod) }

func (w *writer) end() int64 { return w.base + int64(len(w.win)/channels) }

// take decodes one packet into the window and returns how many samples
// came too late to be kept.
func (w *writer) take(caller bool, pkt []byte, at time.Duration) int64 {
	payload, pt, ts, ssrc, ok := rtpPayload(pkt)
	if !ok || len(payload) == 0 {
		return 0
	}
	codec := "PCMU"
	if pt == ptPCMA {
		codec = "PCMA"
	}
	pcm, err := media.DecodeG711(codec, w.pcm[:0], payload)
	if err != nil {
		return 0
	}
	w.pcm = pcm
	ch := 1
	if caller {
		ch = 0
	}
	return w.place(ch, w.sides[ch].position(ssrc, ts, posOf(at)), pcm)
}

// place puts samples on channel ch from frame p.
func (w *writer) place(ch int, p int64, pcm []int16) (late int64) {
	if p < w.base {
		skip := w.base - p
		if skip >= int64(len(pcm)) {
			return int64(len(pcm))
		}
		pcm, p, late = pcm[skip:], w.base, skip
	}
	if p >= maxFrames {
		return late
	}
	if n := maxFrames - p; int64(len(pcm)) > n {
		pcm = pcm[:n]
	}
	w.extend(p + int64(len(pcm)))
	i := int(p-w.base)*channels + ch
	for _, v := range pcm {
		w.win[i] = v
		i += channels
	}
	w.dirty = min(w.dirty, p)
	return late
}

// extend grows the window with silence up to frame end.
func (w *writer) extend(end int64) {
	end = min(end, maxFrames)
	n := int(end-w.base) * channels
	if n <= len(w.win) {
		return
	}
	old := len(w.win)
	w.win = slices.Grow(w.win, n-old)[:n]
	clear(w.win[old:])
}

// write puts the frames changed or added since the last write in the file.
func (w *writer) write(f *os.File) error {
	from, end := min(w.dirty, w.diskEnd), w.end()
	if from >= end {
		return nil
	}
	w.out = w.encode(w.out[:0], from, end)
	if _, err := f.WriteAt(w.out, headerSize+from*frameBytes); err != nil {
		return err
	}
	w.diskEnd, w.dirty = end, math.MaxInt64
	return nil
}

// encode appends frames [from, end) as little-endian PCM, silent where
// paused: paused audio never reaches the disk, not even provisionally.
func (w *writer) encode(b []byte, from, end int64) []byte {
	for p := from; p < end; {
		q, paused := w.stretch(p, end)
		k := int(q-p) * frameBytes
		b = slices.Grow(b, k)
		if paused {
			b = b[:len(b)+k]
			clear(b[len(b)-k:])
		} else {
			for _, v := range w.win[int(p-w.base)*channels : int(q-w.base)*channels] {
				b = append(b, byte(v), byte(uint16(v)>>8))
			}
		}
		p = q
	}
	return b
}

// stretch returns where the stretch of frames from p, paused or not, ends
// (before end).
func (w *writer) stretch(p, end int64) (int64, bool) {
	next := end
	for _, s := range w.spans {
		from, to := posOf(s.From), int64(math.MaxInt64)
		if s.To != openSpan {
			to = posOf(s.To)
		}
		if from <= p && p < to {
			return min(to, end), true
		}
		if from > p {
			next = min(next, from)
		}
	}
	return next, false
}

// commit makes the frames before cutoff final: they leave memory, and a
// packet that would land there is late.
func (w *writer) commit(cutoff int64) {
	cutoff = min(cutoff, w.diskEnd)
	if cutoff <= w.base {
		return
	}
	n := int(cutoff-w.base) * channels
	w.win = w.win[:copy(w.win, w.win[n:])]
	w.base = cutoff
}

// trim lets go of the buffers a backlog grew.
func (w *writer) trim() {
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

// side follows the RTP streams of one channel: the current one, and the
// one before, so that a packet of the old stream arriving after the new
// one began does not anchor the old stream again.
type side struct{ cur, prev stream }

type stream struct {
	ok        bool
	ssrc      uint32
	lastTS    uint32
	ext       int64 // lastTS, unwrapped
	anchorPos int64 // the frame ext == anchorExt lands on
	anchorExt int64
	lateSince int64 // arrival frame since which the packets are too late; -1: they are not
}

// position is the frame where a packet of stream ssrc with timestamp ts,
// arrived at frame arrival, begins.
func (sd *side) position(ssrc, ts uint32, arrival int64) int64 {
	st := &sd.cur
	switch {
	case sd.cur.ok && sd.cur.ssrc == ssrc:
	case sd.prev.ok && sd.prev.ssrc == ssrc:
		st = &sd.prev
	default:
		sd.prev = sd.cur
		sd.cur = stream{ok: true, ssrc: ssrc, lastTS: ts, anchorPos: arrival, lateSince: -1}
		return arrival
	}
	// Unwrapping from the previous packet, not the first, keeps a call
	// longer than the 32-bit timestamp's 3 days right, and a reordered
	// packet moves ext back and forth by the same amount.
	st.ext += int64(int32(ts - st.lastTS))
	st.lastTS = ts
	p := st.anchorPos + st.ext - st.anchorExt
	switch {
	case p-arrival > posOf(reanchorAhead):
	case arrival-p > posOf(reanchorBehind):
		if st.lateSince < 0 {
			st.lateSince = arrival
		}
		if arrival-st.lateSince < posOf(reanchorAfter) {
			return p
		}
	default:
		st.lateSince = -1
		return p
	}
	st.anchorPos, st.anchorExt, st.lateSince = arrival, st.ext, -1
	return arrival
}

// rtpPayload splits an RTP packet. It accepts CSRC lists, header
// extensions and padding, and rejects anything whose lengths do not add
// up rather than guessing.
func rtpPayload(pkt []byte) (payload []byte, pt uint8, ts, ssrc uint32, ok bool) {
	if len(pkt) < rtpHeader || pkt[0]>>6 != 2 {
		return nil, 0, 0, 0, false
	}
	off := rtpHeader + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 {
		if len(pkt) < off+4 {
			return nil, 0, 0, 0, false
		}
		off += 4 + 4*(int(pkt[off+2])<<8|int(pkt[off+3]))
	}
	end := len(pkt)
	if pkt[0]&0x20 != 0 {
		pad := int(pkt[end-1])
		if pad == 0 {
			return nil, 0, 0, 0, false
		}
		end -= pad
	}
	if off > end {
		return nil, 0, 0, 0, false
	}
	ts = uint32(pkt[4])<<24 | uint32(pkt[5])<<16 | uint32(pkt[6])<<8 | uint32(pkt[7])
	ssrc = uint32(pkt[8])<<24 | uint32(pkt[9])<<16 | uint32(pkt[10])<<8 | uint32(pkt[11])
	return pkt[off:end], pkt[1] & 0x7f, ts, ssrc, true
}
