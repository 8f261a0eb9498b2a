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

// capture is what a recording and a voicemail have in common: the tap,
// which takes packets into an inbox under a short lock, and the writer
// goroutine, which places them in the .wav.part and keeps the .json.part.
type capture struct {
	s   *Store // the log, the clock, the counters
	o   owner
	now func() time.Time
	// Times are taken as t0Off plus the monotonic time since t0 (Start),
	// so that a step of the wall clock does not move the audio.
	t0    time.Time
	t0Off time.Duration

	day, wavPart, jsonPart, wavPath, jsonPath string
	f                                         *os.File

	mu     sync.Mutex
	closed bool // Finish has begun: packets are ignored
	in     inbox
	// Only recordings pause; a voicemail's gen stays 0, its spans empty.
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
}

// owner is the recording or voicemail a capture writes, for what the two
// do not share: their sidecars and their words in the log.
type owner interface {
	// partJSON is the .json.part: the meta, and the pauses so far.
	partJSON(paused []Span) any
	// diskFailed logs the error that stopped the writing.
	diskFailed(err error)
}

// outcome is what Finish returns, kept to be returned again.
type outcome[R any] struct {
	mu   sync.Mutex
	done bool
	res  R
	err  error
}

// once returns what finish returns, calling it only the first time; the
// calls after it wait for it.
func (o *outcome[R]) once(finish func() (R, error)) (R, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.done {
		o.done = true
		o.res, o.err = finish()
	}
	return o.res, o.err
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

// writer is the state of a writer goroutine.
type writer struct {
	nch       int   // channels: 2 for a recording, 1 for a voicemail
	maxFrames int64 // what keeps the file's RIFF sizes within 32 bits
	batch     inbox
	sides     [2]side // caller, agent: the channels; a voicemail has the caller's
	// win holds frames [base, base+len(win)/nch), their samples
	// interleaved, left first. Frames before base are final on disk.
	win     []int16
	base    int64
	diskEnd int64 // frames [0, diskEnd) are in the file, those ≥ base provisionally
	dirty   int64 // the lowest frame changed since it was written; ≥ diskEnd: none
	late    int64 // samples dropped for landing before base
	spans   []Span
	gen     uint64
	pcm     []int16
	out     []byte
	synced  time.Time
	err     error
}

// init prepares the capture of o, a call's audio of nch channels, whose
// files go in day and whose time zero is startedAt; t0 is now.
func (c *capture) init(o owner, s *Store, callID string, nch int, startedAt, t0 time.Time, day string) {
	name := fileName(callID)
	c.s, c.o, c.now = s, o, s.now
	c.t0, c.t0Off = t0, t0.Sub(startedAt)
	c.day = day
	c.wavPath = filepath.Join(day, name+wavExt)
	c.jsonPath = filepath.Join(day, name+jsonExt)
	c.wavPart = c.wavPath + partExt
	c.jsonPart = c.jsonPath + partExt
	c.kick = make(chan struct{}, 1)
	c.flushReq = make(chan chan error)
	c.stop = make(chan struct{})
	c.halt = make(chan struct{})
	c.done = make(chan struct{})
	c.w = writer{nch: nch, maxFrames: pcmMaxFrames(nch), dirty: math.MaxInt64, synced: time.Now()}
}

// since is t as an offset from StartedAt.
func (c *capture) since(t time.Time) time.Duration { return t.Sub(c.t0) + c.t0Off }

// tap takes a packet for the writer. It only copies the packet under a
// short lock, for it runs on the relay's reader goroutines.
func (c *capture) tap(fromCaller bool, pkt []byte) {
	// Only G.711 becomes audio; anything else (telephone-event, comfort
	// noise) is silence, and not worth a copy.
	if len(pkt) < rtpHeader || pkt[0]>>6 != 2 {
		return
	}
	if pt := pkt[1] & 0x7f; pt != ptPCMU && pt != ptPCMA {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	// The clock is read under the lock: the writer reads it there too
	// when it takes the inbox, so every packet it has not taken yet
	// arrived after that, and the window it keeps open is enough.
	at := c.since(c.now())
	off := len(c.in.buf)
	c.in.buf = append(c.in.buf, pkt...)
	c.in.pkts = append(c.in.pkts, inPkt{at: at, off: uint32(off), n: uint32(len(pkt)), caller: fromCaller})
	backlog := len(c.in.buf) >= kickBytes
	c.mu.Unlock()
	if backlog {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

func (c *capture) buffered() int64 {
	c.mu.Lock()
	n := int64(len(c.in.buf))
	c.mu.Unlock()
	return n + c.unsaved.Load()
}

// end stops taking packets and pauses, and then the writer, once it has
// written what it took. forget, which takes the recording or voicemail
// out of its store, runs in between.
func (c *capture) end(forget func()) {
	c.mu.Lock()
	c.closed = true
	c.endAt = c.now()
	c.mu.Unlock()
	forget()
	close(c.stop)
	<-c.done
}

// seal gives the .wav.part the header of what the writer wrote, makes it
// durable and renames it; it returns the hex sha256 of the file once it
// is sealed, even if the rename then fails.
func (c *capture) seal() (string, error) {
	w := &c.w
	if w.err != nil {
		c.f.Close()
		return "", w.err
	}
	sum, err := sealPCM(c.f, c.wavPart, w.nch, w.diskEnd)
	if cerr := c.f.Close(); err == nil && cerr != nil {
		err = fileError("closing", c.wavPart, cerr)
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(c.wavPart, c.wavPath); err != nil {
		return sum, fileError("renaming", c.wavPart, err)
	}
	return sum, nil
}

// publish puts the finished sidecar sc in place of the .json.part, once
// the .wav is sealed.
func (c *capture) publish(sc any) error {
	if err := writeJSON(c.jsonPath, sc); err != nil {
		return err
	}
	if err := os.Remove(c.jsonPart); err != nil {
		return fileError("removing", c.jsonPart, err)
	}
	if err := syncDir(c.day); err != nil {
		return fileError("syncing", c.day, err)
	}
	return nil
}

// settle makes the new .part files durable, with the metadata Recover
// needs. It runs first thing on the writer's goroutine rather than in
// Start, so that a slow disk never holds the call up (between the agent's
// answer and the bridge, or at the beep); until it is done, a crash leaves
// a .wav.part that Recover finalizes knowing only the call id of its name.
func (c *capture) settle() error {
	if err := writeJSON(c.jsonPart, c.o.partJSON(nil)); err != nil {
		return err
	}
	if err := c.f.Sync(); err != nil {
		return fileError("syncing", c.wavPart, err)
	}
	if err := syncDir(c.day); err != nil {
		return fileError("syncing", c.day, err)
	}
	return nil
}

// run is the writer goroutine.
func (c *capture) run() {
	defer close(c.done)
	if err := c.settle(); err != nil {
		c.fail(err)
	}
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.step(false, false)
		case <-c.kick:
			c.step(false, false)
		case reply := <-c.flushReq:
			reply <- c.step(true, false)
		case <-c.halt:
			c.w.err = errHalted
			c.f.Close()
			return
		case <-c.stop:
			c.step(false, true)
			return
		}
	}
}

// flush makes the writer take and write everything now, and fsync; for
// tests, which cannot wait for the tick.
func (c *capture) flush() error {
	reply := make(chan error)
	select {
	case c.flushReq <- reply:
		return <-reply
	case <-c.done:
		return errors.New("recording: finished")
	}
}

// kill stops the writer where it is without finalizing anything, as kill -9
// would; for tests.
func (c *capture) kill() {
	close(c.halt)
	<-c.done
}

// step takes the waiting packets, places them and writes what changed.
// final writes everything up to Finish.
func (c *capture) step(forceSync, final bool) error {
	w := &c.w
	c.mu.Lock()
	c.in, w.batch = inbox{buf: w.batch.buf[:0], pkts: w.batch.pkts[:0]}, c.in
	now := c.since(c.now())
	end := now
	if final {
		end = c.since(c.endAt)
	}
	spansChanged := c.gen != w.gen
	if spansChanged {
		w.gen = c.gen
		w.spans = append(w.spans[:0], c.spans...)
		if c.paused {
			w.spans = append(w.spans, Span{From: c.pausedAt, To: openSpan})
		}
	}
	c.unsaved.Store(int64(len(w.batch.buf)))
	c.mu.Unlock()
	defer c.unsaved.Store(0)
	defer w.trim()

	if w.err != nil {
		return w.err
	}
	if len(w.batch.pkts) > 0 && now-w.batch.pkts[0].at > behindAfter {
		c.s.behind.Add(1)
	}
	lateBefore := w.late
	for _, p := range w.batch.pkts {
		w.take(p.caller, w.batch.buf[p.off:p.off+p.n], p.at)
	}
	if late := w.late - lateBefore; late > 0 {
		c.s.late.Add(uint64(late))
	}
	// Silence a long way ahead (a StartedAt long before Start, a writer
	// held up for minutes) goes to disk in pieces, not into memory whole.
	for target := posOf(end); w.end() < target; {
		w.extend(min(target, w.end()+posOf(maxSilence)))
		if w.end() == target {
			break
		}
		if err := w.write(c.f); err != nil {
			return c.fail(fileError("writing", c.wavPart, err))
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
			if err := writeJSON(c.jsonPart, c.o.partJSON(w.spans)); err != nil {
				return c.fail(err)
			}
		}
	}
	if err := w.write(c.f); err != nil {
		return c.fail(fileError("writing", c.wavPart, err))
	}
	if final {
		return nil
	}
	w.commit(posOf(now - window))
	if forceSync || time.Since(w.synced) >= syncEvery {
		if err := c.f.Sync(); err != nil {
			return c.fail(fileError("syncing", c.wavPart, err))
		}
		w.synced = time.Now()
	}
	return nil
}

// fail stops the writing for good: after a failed write or fsync nothing
// said of the file can be trusted. The packets keep being taken and thrown
// away, so memory does not grow for audio that cannot be saved.
func (c *capture) fail(err error) error {
	c.w.err = err
	c.o.diskFailed(err)
	return err
}

// posOf is the frame at offset d from StartedAt.
func posOf(d time.Duration) int64 { return int64(d / framePeriod) }

func (w *writer) end() int64 { return w.base + int64(len(w.win)/w.nch) }

// take decodes one packet into the window.
func (w *writer) take(caller bool, pkt []byte, at time.Duration) {
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
	ch := 1
	if caller {
		ch = 0
	}
	w.place(ch, w.sides[ch].position(ssrc, ts, posOf(at)), pcm)
}

// place puts samples on channel ch from frame p.
func (w *writer) place(ch int, p int64, pcm []int16) {
	if p < w.base {
		skip := w.base - p
		if skip >= int64(len(pcm)) {
			w.late += int64(len(pcm))
			return
		}
		pcm, p = pcm[skip:], w.base
		w.late += skip
	}
	if p >= w.maxFrames {
		return
	}
	if n := w.maxFrames - p; int64(len(pcm)) > n {
		pcm = pcm[:n]
	}
	w.extend(p + int64(len(pcm)))
	i := int(p-w.base)*w.nch + ch
	if w.nch == 1 {
		// One channel's samples are contiguous, and copy is several
		// times faster than the loop.
		copy(w.win[i:], pcm)
	} else {
		// In locals, or the compiler loads them again for every sample,
		// as the stores to win might change w.
		win, nch := w.win, w.nch
		for _, v := range pcm {
			win[i] = v
			i += nch
		}
	}
	w.dirty = min(w.dirty, p)
}

// extend grows the window with silence up to frame end.
func (w *writer) extend(end int64) {
	end = min(end, w.maxFrames)
	n := int(end-w.base) * w.nch
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
	if _, err := f.WriteAt(w.out, headerSize+from*int64(2*w.nch)); err != nil {
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
		k := int(q-p) * 2 * w.nch
		b = slices.Grow(b, k)
		if paused {
			b = b[:len(b)+k]
			clear(b[len(b)-k:])
		} else {
			for _, v := range w.win[int(p-w.base)*w.nch : int(q-w.base)*w.nch] {
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
	n := int(cutoff-w.base) * w.nch
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
