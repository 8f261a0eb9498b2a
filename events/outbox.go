package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// The outbox is where events wait between Publish and JetStream's ack, on
// disk under <storage dir>/outbox/:
//
//	00000000000000000001.seg   segments: append-only records, oldest first
//	acked                      how far JetStream has acked: segment, offset, CRC
//
// A record is the payload's length (uint32 LE), the payload's CRC-32C
// (uint32 LE), then the payload: uvarint len(subject), subject, uvarint
// len(id), id, data. A crash mid-write leaves at most a torn last record,
// which the length or the CRC gives away at the next start.
//
// Every event goes through the disk, NATS up or not. Writing only when a
// publish fails would need two paths and a hand-over between them that
// keeps the order, and would lose whatever was in memory at a crash; one
// path is simpler to get right, and group commit (one fsync for whatever
// queued while the previous fsync ran) keeps the cost to a few fsyncs a
// second at the edge's rates (see BenchmarkOutbox).
//
// When the disk fails (full, read-only, gone) events wait in memory,
// bounded, after what the disk already holds; the writer tries the disk
// again with a backoff and then moves them there, so the order holds.
const (
	segmentSize  = 4 << 20
	maxRecord    = 64 << 20 // NATS's own payload ceiling; beyond is garbage
	recordHeader = 8
	readChunk    = 256 << 10
	// maxBatch bounds one group commit, so that a long backlog does not
	// become one huge write that delays the publisher seeing any of it.
	maxBatch = 4096
	// memLimit bounds what a failing disk can hold in memory, as queueSize
	// bounds the queue in front of it.
	memLimit     = queueSize
	minDiskRetry = time.Second
	maxDiskRetry = 30 * time.Second
	segSuffix    = ".seg"
	ackedName    = "acked"
	ackedSize    = 20
)

type segment struct {
	num    uint64
	start  int64 // where unacked records begin (only the first can be > 0)
	size   int64 // bytes durably written: the publisher reads no further
	sealed bool  // the writer has moved on; once read and acked, delete it
}

type outbox struct {
	log zerolog.Logger
	dir string // "" keeps events in memory only

	// The writer goroutine's own.
	w         *os.File
	wNum      uint64
	wSize     int64
	nextNum   uint64
	opened    []uint64 // segments opened since the shared state last saw them
	loaded    bool     // the directory was read; until then, do not write
	broken    bool
	failedAt  time.Time
	retryWait time.Duration
	buf       []byte

	// The publisher goroutine's own.
	rd         segReader
	ackBuf     [ackedSize]byte
	ackFailing bool

	mu        sync.Mutex
	segs      []segment
	mem       []*message // events the disk could not take, after everything in segs
	migrating bool       // the writer is copying mem to disk
	kick      chan struct{}
	// acked is set by whichever goroutine loads the directory (the writer,
	// when the first try failed) and written by the publisher.
	acked atomic.Pointer[os.File]

	diskQueued atomic.Int64
	memQueued  atomic.Int64
	errors     atomic.Uint64 // failed disk operations
	dropped    atomic.Uint64 // events memory had no room for
	failed     atomic.Uint64 // records found corrupt after they were written
	fsyncs     atomic.Uint64 // group commits, for benchmarks and debugging
}

// openOutbox never fails: a directory it cannot use is logged and counted,
// events wait in memory, and the writer tries again later.
func openOutbox(dir string, log zerolog.Logger) *outbox {
	o := &outbox{log: log, dir: dir, nextNum: 1, retryWait: minDiskRetry, kick: make(chan struct{}, 1)}
	if dir == "" {
		return o
	}
	if err := o.load(); err != nil {
		o.diskFailed(err)
	}
	return o
}

func (o *outbox) segPath(num uint64) string {
	return filepath.Join(o.dir, fmt.Sprintf("%020d%s", num, segSuffix))
}

// load reads what a previous run left: it drops fully acked segments,
// truncates a torn tail, and queues the rest ahead of anything new.
func (o *outbox) load() error {
	if err := os.MkdirAll(o.dir, 0o750); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	acked, err := os.OpenFile(filepath.Join(o.dir, ackedName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	ackSeg, ackOff, err := readAcked(acked)
	if err != nil {
		// Replaying from the start can only repeat events, which JetStream
		// drops by Nats-Msg-Id within its duplicate window; trusting a bad
		// offset could skip events for good.
		o.log.Error().Err(err).Str("file", acked.Name()).Msg("outbox acked offset unreadable; replaying every segment left")
		ackSeg, ackOff = 0, 0
	}
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		acked.Close()
		return fmt.Errorf("outbox: %w", err)
	}
	var nums []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil || n == 0 {
			o.log.Warn().Str("file", name).Msg("outbox: not a segment name; ignored")
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)

	var segs []segment
	var queued int64
	next := ackSeg + 1
	for _, num := range nums {
		next = max(next, num+1)
		path := o.segPath(num)
		if num < ackSeg {
			// Fully acked; a crash came before its removal.
			if err := os.Remove(path); err != nil {
				o.log.Warn().Err(err).Msg("outbox: removing an acked segment")
			}
			continue
		}
		from := int64(0)
		if num == ackSeg {
			from = ackOff
		}
		end, n, err := o.scan(path, from)
		if err != nil {
			acked.Close()
			return err
		}
		segs = append(segs, segment{num: num, start: min(from, end), size: end, sealed: true})
		queued += int64(n)
	}

	o.mu.Lock()
	// Whatever a failed load let into memory meanwhile is newer, so the
	// old segments go first in the shared list; the publisher reads the
	// disk before memory.
	o.segs = append(segs, o.segs...)
	o.mu.Unlock()
	o.diskQueued.Add(queued)
	o.acked.Store(acked)
	o.nextNum = max(o.nextNum, next)
	o.loaded = true
	return nil
}

// scan validates a leftover segment from offset from, truncating it at the
// first record that does not decode: the tail a crash tore.
func (o *outbox) scan(path string, from int64) (end int64, n int, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: %w", err)
	}
	size := st.Size()
	if from > size {
		o.log.Warn().Str("file", path).Int64("acked", from).Int64("size", size).Msg("outbox: acked offset past the segment's end; treating it as done")
		return size, 0, nil
	}
	r := segReader{f: f, off: from}
	for {
		_, state, err := r.next(size)
		if err != nil {
			return 0, 0, fmt.Errorf("outbox: %s: %w", path, err)
		}
		switch state {
		case recordOK:
			n++
			continue
		case recordEnd:
			return r.off, n, nil
		}
		o.log.Warn().Str("file", path).Int64("offset", r.off).Int64("dropped_bytes", size-r.off).Int("records_kept", n).
			Msg("outbox: torn or corrupt record (a crash mid-write?); truncating the segment there")
		if err := f.Truncate(r.off); err != nil {
			// Reading stops at r.off anyway; the next start warns again.
			o.log.Warn().Err(err).Str("file", path).Msg("outbox: truncating")
		}
		return r.off, n, nil
	}
}

// readAcked returns the acked position; an empty file means nothing was
// acked yet.
func readAcked(f *os.File) (seg uint64, off int64, err error) {
	var b [ackedSize + 1]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, err
	}
	switch {
	case n == 0:
		return 0, 0, nil
	case n != ackedSize:
		return 0, 0, fmt.Errorf("acked offset file has %d bytes, want %d", n, ackedSize)
	case crc(b[:16]) != binary.LittleEndian.Uint32(b[16:]):
		return 0, 0, errors.New("acked offset file fails its CRC")
	}
	seg = binary.LittleEndian.Uint64(b[0:])
	off = int64(binary.LittleEndian.Uint64(b[8:]))
	if off < 0 {
		return 0, 0, errors.New("acked offset file has a negative offset")
	}
	return seg, off, nil
}

func crc(b []byte) uint32 {
	return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
}

func appendRecord(b []byte, m *message) []byte {
	start := len(b)
	b = append(b, make([]byte, recordHeader)...)
	b = binary.AppendUvarint(b, uint64(len(m.subject)))
	b = append(b, m.subject...)
	b = binary.AppendUvarint(b, uint64(len(m.id)))
	b = append(b, m.id...)
	b = append(b, m.data...)
	payload := b[start+recordHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc(payload))
	return b
}

type recordState int

const (
	recordOK    recordState = iota
	recordEnd               // nothing more before the limit
	recordShort             // a record runs past the limit: torn
	recordBad               // length or CRC wrong
)

// decodeRecord decodes the record b starts with; when b is too short it
// returns recordShort and how many bytes the record needs.
func decodeRecord(b []byte) (m *message, n int, state recordState) {
	if len(b) < recordHeader {
		return nil, recordHeader, recordShort
	}
	size := binary.LittleEndian.Uint32(b)
	if size == 0 || size > maxRecord {
		return nil, 0, recordBad
	}
	n = recordHeader + int(size)
	if len(b) < n {
		return nil, n, recordShort
	}
	payload := b[recordHeader:n]
	if crc(payload) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, recordBad
	}
	subject, rest, ok := cutField(payload)
	if !ok {
		return nil, 0, recordBad
	}
	id, data, ok := cutField(rest)
	if !ok {
		return nil, 0, recordBad
	}
	return &message{subject: string(subject), id: string(id), data: slices.Clone(data)}, n, recordOK
}

func cutField(b []byte) (field, rest []byte, ok bool) {
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(l)], b[k+int(l):], true
}

// segReader reads records in order, never past a limit: the bytes beyond
// what the writer has fsynced may be half written.
type segReader struct {
	f   *os.File
	num uint64
	off int64  // file offset of the next record, buf's first byte
	buf []byte // read from f, not yet decoded
	mem []byte // buf's backing store, reused
}

func (r *segReader) next(limit int64) (*message, recordState, error) {
	need := 0
	for {
		if len(r.buf) > 0 {
			m, n, state := decodeRecord(r.buf)
			switch state {
			case recordOK:
				r.buf = r.buf[n:]
				r.off += int64(n)
				m.seg, m.end = r.num, r.off
				return m, recordOK, nil
			case recordBad:
				return nil, recordBad, nil
			}
			need = n
		}
		have := r.off + int64(len(r.buf))
		if have >= limit {
			if len(r.buf) == 0 {
				return nil, recordEnd, nil
			}
			return nil, recordShort, nil
		}
		want := int(min(limit-have, int64(max(readChunk, need-len(r.buf)))))
		if cap(r.mem) < len(r.buf)+want {
			r.mem = make([]byte, 0, len(r.buf)+want)
		}
		r.mem = append(r.mem[:0], r.buf...)
		k, err := r.f.ReadAt(r.mem[len(r.buf):len(r.buf)+want], have)
		r.buf = r.mem[:len(r.buf)+k]
		if k < want {
			if errors.Is(err, io.EOF) {
				// Shorter than what was durably written: someone cut it.
				return nil, recordBad, nil
			}
			return nil, recordBad, err
		}
	}
}

func (r *segReader) close() {
	if r.f != nil {
		r.f.Close()
	}
	*r = segReader{mem: r.mem[:0]}
}

// put is the writer goroutine's: it appends batch (and whatever waits in
// memory, when the disk is worth a try again) and fsyncs once.
func (o *outbox) put(batch []*message, force bool) {
	if o.dir == "" || (o.broken && !force && time.Since(o.failedAt) < o.retryWait) {
		if len(batch) > 0 {
			o.mu.Lock()
			o.toMem(batch)
			o.mu.Unlock()
			o.notify()
		}
		return
	}
	// All of memory moves, even the event the publisher may be sending
	// now: if that one is acked too, its copy on disk goes again with the
	// same Nats-Msg-Id and JetStream drops it. Leaving it in memory would
	// lose it if the publisher closes before NATS takes it.
	o.mu.Lock()
	moved := len(o.mem)
	msgs := batch
	if moved > 0 {
		msgs = append(slices.Clone(o.mem), batch...)
		o.migrating = true
	}
	o.mu.Unlock()
	if len(msgs) == 0 {
		return
	}

	err := o.write(msgs)

	o.mu.Lock()
	o.migrating = false
	o.applyWriter()
	if err == nil {
		// Only the writer adds to mem, so it holds nothing newer than what
		// moved (the publisher may have acked mem[0] meanwhile).
		o.memQueued.Add(-int64(len(o.mem)))
		o.mem = nil
		o.diskQueued.Add(int64(len(msgs)))
	} else {
		o.toMem(batch)
	}
	o.mu.Unlock()
	o.notify()

	if err != nil {
		o.diskFailed(err)
		return
	}
	if o.broken {
		o.broken = false
		o.retryWait = minDiskRetry
		o.log.Info().Int("moved_from_memory", moved).Msg("outbox writable again")
	}
}

func (o *outbox) diskFailed(err error) {
	o.errors.Add(1)
	if o.broken {
		o.retryWait = min(o.retryWait*2, maxDiskRetry)
	}
	o.broken = true
	o.failedAt = time.Now()
	o.log.Error().Err(err).Dur("retry_in", o.retryWait).Int("limit", memLimit).
		Msg("cannot write the events outbox; events wait in memory meanwhile")
}

// toMem keeps batch in memory, dropping what does not fit; o.mu held.
func (o *outbox) toMem(batch []*message) {
	room := max(memLimit-len(o.mem), 0)
	keep := min(room, len(batch))
	for _, m := range batch[:keep] {
		m.fromMem = true
	}
	o.mem = append(o.mem, batch[:keep]...)
	o.memQueued.Add(int64(keep))
	if lost := len(batch) - keep; lost > 0 {
		o.dropped.Add(uint64(lost))
		o.log.Error().Int("dropped", lost).Int("limit", memLimit).Msg("events waiting in memory at their limit; events dropped")
	}
}

func (o *outbox) notify() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// retryIn says when the writer should try the disk again for events
// waiting in memory even if no new event comes.
func (o *outbox) retryIn() (time.Duration, bool) {
	if !o.broken || o.dir == "" {
		return 0, false
	}
	o.mu.Lock()
	waiting := len(o.mem) > 0
	o.mu.Unlock()
	return max(time.Until(o.failedAt.Add(o.retryWait)), 0), waiting
}

func (o *outbox) write(msgs []*message) error {
	if !o.loaded {
		if err := o.load(); err != nil {
			return err
		}
	}
	if o.w != nil && o.wSize >= segmentSize {
		if err := o.w.Close(); err != nil {
			o.log.Warn().Err(err).Msg("outbox: closing a full segment")
		}
		o.w = nil
	}
	if o.w == nil {
		if err := o.openSegment(); err != nil {
			return err
		}
	}
	o.buf = o.buf[:0]
	for _, m := range msgs {
		o.buf = appendRecord(o.buf, m)
	}
	if _, err := o.w.Write(o.buf); err != nil {
		o.abandon()
		return fmt.Errorf("outbox: write: %w", err)
	}
	if err := o.w.Sync(); err != nil {
		// After a failed fsync the kernel may have dropped the pages:
		// nothing past wSize in this file can be trusted.
		o.abandon()
		return fmt.Errorf("outbox: fsync: %w", err)
	}
	o.wSize += int64(len(o.buf))
	o.fsyncs.Add(1)
	if cap(o.buf) > 4*segmentSize {
		o.buf = nil
	}
	return nil
}

func (o *outbox) openSegment() error {
	if err := os.MkdirAll(o.dir, 0o750); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	num := o.nextNum
	o.nextNum++
	path := o.segPath(num)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	// The new name must survive a crash as surely as the records in it.
	if err := syncDir(o.dir); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("outbox: %w", err)
	}
	o.w, o.wNum, o.wSize = f, num, 0
	o.opened = append(o.opened, num)
	return nil
}

// abandon gives up the current segment after a failed write: the next
// write starts a new one, so a half-written batch is never followed by
// good records in the same file.
func (o *outbox) abandon() {
	if err := o.w.Truncate(o.wSize); err != nil {
		o.log.Warn().Err(err).Msg("outbox: cutting a failed write (the next start drops it)")
	}
	o.w.Close()
	o.w = nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// applyWriter shows the publisher what the writer did; o.mu held.
func (o *outbox) applyWriter() {
	for _, num := range o.opened {
		for i := range o.segs {
			o.segs[i].sealed = true
		}
		o.segs = append(o.segs, segment{num: num})
	}
	o.opened = o.opened[:0]
	if n := len(o.segs); n > 0 {
		last := &o.segs[n-1]
		if o.w != nil && last.num == o.wNum {
			last.size = o.wSize
		} else {
			last.sealed = true
		}
	}
}

// closeWriter is the writer goroutine's last act.
func (o *outbox) closeWriter() {
	if o.w != nil {
		o.w.Close()
		o.w = nil
	}
	o.mu.Lock()
	o.applyWriter()
	o.mu.Unlock()
}

// next is the publisher's: the oldest event not yet acked, nil when there
// is none for now. The disk comes first: memory only ever holds events
// newer than everything in the segments.
func (o *outbox) next() (*message, error) {
	o.mu.Lock()
	for len(o.segs) > 0 {
		s := o.segs[0]
		if o.rd.f == nil || o.rd.num != s.num {
			o.rd.close()
			f, err := os.Open(o.segPath(s.num))
			if errors.Is(err, fs.ErrNotExist) {
				o.failed.Add(1)
				o.log.Error().Uint64("segment", s.num).Msg("outbox segment vanished; its events are lost")
				o.segs = o.segs[1:]
				continue
			}
			if err != nil {
				o.mu.Unlock()
				o.errors.Add(1)
				return nil, fmt.Errorf("outbox: %w", err)
			}
			o.rd.f, o.rd.num, o.rd.off = f, s.num, s.start
		}
		if o.rd.off < s.size {
			o.mu.Unlock()
			m, state, err := o.rd.next(s.size)
			if err != nil {
				o.errors.Add(1)
				return nil, fmt.Errorf("outbox: read %s: %w", o.rd.f.Name(), err)
			}
			if state == recordOK {
				return m, nil
			}
			// Bytes that were fsynced do not read back: the disk lies.
			o.failed.Add(1)
			o.log.Error().Str("file", o.rd.f.Name()).Int64("offset", o.rd.off).Int64("size", s.size).
				Msg("outbox segment corrupt; skipping the rest of it")
			o.rd.off, o.rd.buf = s.size, nil
			o.writeAcked(s.num, s.size)
			o.mu.Lock()
			continue
		}
		if !s.sealed {
			break
		}
		name := o.rd.f.Name()
		o.rd.close()
		if err := os.Remove(name); err != nil {
			// The acked offset is past it; the next start removes it.
			o.log.Warn().Err(err).Msg("outbox: removing an acked segment")
		}
		o.segs = o.segs[1:]
	}
	if len(o.mem) > 0 && !o.migrating {
		m := o.mem[0]
		o.mu.Unlock()
		return m, nil
	}
	o.mu.Unlock()
	return nil, nil
}

// done is the publisher's: JetStream has m (or refused it for good).
func (o *outbox) done(m *message) {
	if m.fromMem {
		o.mu.Lock()
		defer o.mu.Unlock()
		// Unless the writer has moved it to disk meanwhile.
		if len(o.mem) > 0 && o.mem[0] == m {
			o.mem[0] = nil
			o.mem = o.mem[1:]
			if len(o.mem) == 0 {
				o.mem = nil
			}
			o.memQueued.Add(-1)
		}
		return
	}
	o.diskQueued.Add(-1)
	o.writeAcked(m.seg, m.end)
}

// writeAcked records the acked position without fsync: a process crash
// keeps it (the page cache survives), and after a machine crash the few
// events replayed are dropped by JetStream as duplicates.
func (o *outbox) writeAcked(seg uint64, off int64) {
	acked := o.acked.Load()
	if acked == nil {
		return
	}
	binary.LittleEndian.PutUint64(o.ackBuf[0:], seg)
	binary.LittleEndian.PutUint64(o.ackBuf[8:], uint64(off))
	binary.LittleEndian.PutUint32(o.ackBuf[16:], crc(o.ackBuf[:16]))
	_, err := acked.WriteAt(o.ackBuf[:], 0)
	if err != nil {
		o.errors.Add(1)
		if !o.ackFailing {
			o.log.Error().Err(err).Msg("cannot record acked events in the outbox; a restart may send some again")
		}
	}
	o.ackFailing = err != nil
}

func (o *outbox) queued() int {
	return int(o.diskQueued.Load() + o.memQueued.Load())
}

// dropMem gives up on what waits in memory, at close: it never reached the
// disk, so there is nothing to keep it for the next start.
func (o *outbox) dropMem() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(o.mem)
	clear(o.mem)
	o.mem = nil
	o.memQueued.Add(-int64(n))
	return n
}

// close is the publisher's last act. Segments with nothing unacked go;
// the rest wait for the next start.
func (o *outbox) close(writerDone bool) {
	o.rd.close()
	if acked := o.acked.Load(); acked != nil {
		acked.Close()
	}
	if !writerDone || o.diskQueued.Load() != 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.segs {
		if err := os.Remove(o.segPath(s.num)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			o.log.Warn().Err(err).Msg("outbox: removing an acked segment")
		}
	}
	o.segs = nil
}

// runWriter is the one goroutine that writes the outbox: whatever queued
// while the previous fsync ran becomes the next batch, so fsyncs per
// second fall as events per second rise.
func runWriter(queue chan *message, stop <-chan struct{}, o *outbox) {
	batch := make([]*message, 0, maxBatch)
	fill := func() {
		for len(batch) < maxBatch {
			select {
			case m := <-queue:
				batch = append(batch, m)
				continue
			default:
			}
			break
		}
	}
	defer o.closeWriter()
	for {
		var retry <-chan time.Time
		var timer *time.Timer
		if d, ok := o.retryIn(); ok {
			timer = time.NewTimer(d)
			retry = timer.C
		}
		select {
		case m := <-queue:
			batch = append(batch, m)
			fill()
			o.putSynced(batch)
		case <-retry:
			o.put(nil, false)
		case <-stop:
			// Publish takes no more (closed under its lock): drain it all.
			for {
				fill()
				if len(batch) == 0 {
					break
				}
				o.putSynced(batch)
				clear(batch)
				batch = batch[:0]
			}
			// One last try, so that what memory holds survives the exit.
			o.put(nil, true)
			return
		}
		if timer != nil {
			timer.Stop()
		}
		clear(batch)
		batch = batch[:0]
	}
}

// putSynced puts batch's events and then answers its Flush markers, each
// of which follows the events queued before it.
func (o *outbox) putSynced(batch []*message) {
	var flushes []chan error
	msgs := batch[:0]
	for _, m := range batch {
		if m.synced != nil {
			flushes = append(flushes, m.synced)
		} else {
			msgs = append(msgs, m)
		}
	}
	o.put(msgs, false)
	if len(flushes) == 0 {
		return
	}
	var err error
	switch {
	case o.dir == "":
		err = errors.New("events: no outbox on disk; events wait in memory")
	case o.broken:
		err = errors.New("events: the outbox is failing; events wait in memory")
	}
	for _, c := range flushes {
		c <- err
	}
}
