// Package recording writes the bridged conversation of a call, caller on
// the left channel and agent on the right, to a stereo WAV file (8 kHz,
// 16-bit PCM) with a JSON sidecar, under <storage dir>/recordings:
//
//	YYYY/MM/DD/<call id>.wav         the audio, once finished
//	YYYY/MM/DD/<call id>.json        the sidecar: meta, times, sha256, pauses
//	YYYY/MM/DD/<call id>.wav.part    while recording: header with placeholder sizes, then samples
//	YYYY/MM/DD/<call id>.json.part   while recording: the meta (and pauses so far)
//
// The date is StartedAt's, in UTC. A call id with characters that do not
// belong in a file name is percent-escaped (see fileName).
//
// A finished .wav is never torn: it is written under .part, its header
// patched and fsynced, and only then renamed. The .part files of a killed
// edge are finalized by Recover at the next start with what they hold,
// which is all but the last fraction of a second: the writer goes to the
// page cache every flushEvery, which survives kill -9, and fsyncs every
// syncEvery for the machine crashes.
//
// # Alignment
//
// Each side is placed by its RTP timestamps, not by when its packets
// arrived, so that lost packets and silence suppression become silence of
// the right length and the two channels stay in step however the network
// bunches the packets. The first packet of a stream (a side's SSRC) is
// anchored at its arrival time; the rest follow from the timestamp
// difference. A stream is anchored again at a packet that lands more than
// reanchorAhead after its arrival (the sender jumped its timestamps
// forward), or when its packets have landed more than reanchorBehind
// before their arrival for reanchorAfter (it jumped them back; a burst
// after a network stall is late only for a moment, and lands rightly).
// Smaller jumps, and the drift of a sender's clock until it reaches those
// bounds, shift that side by as much.
//
// Samples stay in memory for the mixing window, so that packets arriving
// out of order still land in their place; what lands before the window is
// dropped and counted. The window's samples are written to the .part
// provisionally, and rewritten where late packets change them, so a crash
// loses what the last flush did not see, not the whole window.
//
// Only payload types 0 (PCMU) and 8 (PCMA) are audio; telephone-events,
// comfort noise and anything else are silence. Anchoring at arrival puts
// the audio a packet time (plus the network's delay) after it was spoken:
// both sides by about the same, so they stay in step.
//
// The file runs from StartedAt to the later of the last sample of either
// side and Finish: a call that ends in silence keeps its length.
//
// # Pauses
//
// From Pause to Resume, by the clock, both channels are silence whatever
// the packets carry, and the paused audio never reaches the disk, not even
// the provisional part of the window. The spans are kept in the .json.part
// as they happen, so a recovered recording lists them too.
package recording

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// ErrNotRecording is what Pause and Resume by call id return when the call
// has no recording in progress.
var ErrNotRecording = errors.New("recording: the call has no recording in progress")

// Meta is what the sidecar says of a recording.
type Meta struct {
	CallID, TrackingNumber, Source, Agent, Consent string
	StartedAt                                      time.Time // the agent's answer: the recording's time zero
}

// Span is a stretch of a recording, as offsets from StartedAt.
type Span struct{ From, To time.Duration }

// Result is a finished recording.
type Result struct {
	Meta
	Path     string        // the .wav, absolute
	Sidecar  string        // the .json
	EndedAt  time.Time     // Finish; for a recovered recording, the .part's last write
	Duration time.Duration // of the audio in the file
	SHA256   string        // hex, of the whole .wav file as written
	Partial  bool          // finalized by Recover after a crash: only what was captured
	Paused   []Span
}

// Deleted is a recording Sweep removed.
type Deleted struct {
	CallID    string
	Path      string // the .wav (it may have been missing)
	StartedAt time.Time
}

// Stats are the store's counters, for /metrics.
type Stats struct {
	Active int // recordings in progress
	// BufferedBytes is what the recordings hold that is not on disk yet:
	// packets waiting for their writer and audio being written. It grows
	// when the disk is slow; nothing is dropped for it.
	BufferedBytes int64
	// BehindTotal counts the times a writer found more than behindAfter of
	// audio waiting for it.
	BehindTotal uint64
	Completed   uint64
	Failed      uint64
	// LateSamples counts samples dropped because they would have landed
	// before what was already written (or before StartedAt).
	LateSamples uint64
}

// Store is the recordings directory.
type Store struct {
	dir string
	log zerolog.Logger
	now func() time.Time

	// dirs keeps Sweep from removing a day directory that Start has just
	// created and not yet put its files in.
	dirs sync.RWMutex

	mu sync.Mutex
	// active holds the recordings in progress by call id; nil while
	// Start is still creating the files, so that a second Start of the
	// same call fails rather than races it.
	active map[string]*Recording

	behind    atomic.Uint64
	completed atomic.Uint64
	failed    atomic.Uint64
	late      atomic.Uint64
}

// Open prepares dir (storage.dir/recordings), creating it. now is the
// clock every recording time comes from; nil means time.Now.
func Open(dir string, log zerolog.Logger, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	// Sidecars name the .wav by its absolute path, so that a consumer
	// does not need to know where the edge ran from.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("recording: directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fileError("creating", abs, err)
	}
	return &Store{dir: abs, log: log, now: now, active: make(map[string]*Recording)}, nil
}

// Dir is the directory the store keeps its recordings in, absolute.
func (s *Store) Dir() string { return s.dir }

// Start begins recording a call; nothing is on disk before it. A zero
// StartedAt means now; one before now starts the file with silence up to
// now, and packets that arrive before StartedAt are dropped. A call can be
// recorded once: Start fails while its recording is in progress, after it
// was finished, or while its .part files wait for Recover.
func (s *Store) Start(meta Meta) (*Recording, error) {
	if meta.CallID == "" {
		return nil, errors.New("recording: a recording needs a call id")
	}
	t0 := s.now()
	if meta.StartedAt.IsZero() {
		meta.StartedAt = t0
	}
	utc := meta.StartedAt.UTC()
	rel := []string{utc.Format("2006"), utc.Format("01"), utc.Format("02")}
	r := newRecording(s, meta, t0, filepath.Join(s.dir, filepath.Join(rel...)))
	// The recording is known before its files exist, so that Recover
	// does not take them for the leftovers of a crash.
	s.mu.Lock()
	if _, busy := s.active[meta.CallID]; busy {
		s.mu.Unlock()
		return nil, fmt.Errorf("recording: call %s is already being recorded", meta.CallID)
	}
	s.active[meta.CallID] = r
	s.mu.Unlock()
	if err := s.create(r, rel); err != nil {
		s.forget(r)
		return nil, err
	}
	go r.run()
	s.log.Debug().Str("call_id", meta.CallID).Str("file", r.wavPart).Msg("recording started")
	return r, nil
}

// create makes the .part files; the writer makes them durable (settle).
func (s *Store) create(r *Recording, rel []string) error {
	meta := r.meta
	s.dirs.RLock()
	defer s.dirs.RUnlock()
	if err := s.mkdirs(rel); err != nil {
		return err
	}
	if _, err := os.Lstat(r.wavPath); err == nil {
		return fmt.Errorf("recording: %s already exists; call %s was recorded before", r.wavPath, meta.CallID)
	}
	f, err := os.OpenFile(r.wavPart, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("recording: %s exists: call %s was being recorded when the edge stopped; Recover finalizes it", r.wavPart, meta.CallID)
		}
		return fileError("creating", r.wavPart, err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(r.wavPart)
		os.Remove(r.jsonPart)
		return err
	}
	if _, err := f.WriteAt(wavHeader(streamedSize), 0); err != nil {
		return fail(fileError("writing", r.wavPart, err))
	}
	r.f = f
	return nil
}

// mkdirs creates the day directory's missing levels and syncs the parent
// of each one it creates, so that the directory outlives a power cut as
// the files in it do.
func (s *Store) mkdirs(rel []string) error {
	p := s.dir
	for _, part := range rel {
		parent := p
		p = filepath.Join(p, part)
		err := os.Mkdir(p, 0o750)
		switch {
		case err == nil:
			if err := syncDir(parent); err != nil {
				return fileError("syncing", parent, err)
			}
		case errors.Is(err, fs.ErrExist):
		default:
			return fileError("creating", p, err)
		}
	}
	return nil
}

// Pause makes the call's recording silent from now until Resume, for the
// HTTP API.
func (s *Store) Pause(callID string) error {
	r := s.lookup(callID)
	if r == nil {
		return ErrNotRecording
	}
	r.Pause()
	return nil
}

// Resume ends the call's pause.
func (s *Store) Resume(callID string) error {
	r := s.lookup(callID)
	if r == nil {
		return ErrNotRecording
	}
	r.Resume()
	return nil
}

func (s *Store) lookup(callID string) *Recording {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[callID]
}

// forget takes a finishing recording out of the active set.
func (s *Store) forget(r *Recording) {
	s.mu.Lock()
	if s.active[r.meta.CallID] == r {
		delete(s.active, r.meta.CallID)
	}
	s.mu.Unlock()
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{
		BehindTotal: s.behind.Load(),
		Completed:   s.completed.Load(),
		Failed:      s.failed.Load(),
		LateSamples: s.late.Load(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.active {
		if r == nil {
			continue
		}
		st.Active++
		st.BufferedBytes += r.buffered()
	}
	return st
}

// Recording is a recording in progress, fed by the bridge's tap.
type Recording struct {
	capture
	meta     Meta
	finished outcome[Result]
}

func newRecording(s *Store, meta Meta, t0 time.Time, day string) *Recording {
	r := &Recording{meta: meta}
	r.init(r, s, meta.CallID, channels, meta.StartedAt, t0, day)
	return r
}

// Path is where the recording will be once finished.
func (r *Recording) Path() string { return r.wavPath }

// Packet is the tap: the relay's reader goroutines (one per direction,
// concurrently) call it for every packet relayed. It only copies the
// packet under a short lock; the writer does the rest.
func (r *Recording) Packet(fromCaller bool, pkt []byte) { r.tap(fromCaller, pkt) }

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

// Finish stops taking packets, writes what is left, and makes the file and
// its sidecar durable. Calling it again returns the same.
func (r *Recording) Finish() (Result, error) {
	return r.finished.once(func() (Result, error) {
		r.end(func() { r.s.forget(r) })
		res, err := r.finalize()
		log := r.s.log
		if err != nil {
			r.s.failed.Add(1)
			log.Error().Err(err).Str("call_id", r.meta.CallID).Str("file", r.wavPart).
				Msg("recording failed; its .part files are left for Recover")
		} else {
			r.s.completed.Add(1)
			log.Info().Str("call_id", r.meta.CallID).Str("file", res.Path).
				Dur("duration", res.Duration).Int("pauses", len(res.Paused)).Msg("recording finished")
		}
		return res, err
	})
}

func (r *Recording) finalize() (Result, error) {
	frames := r.w.diskEnd
	res := Result{
		Meta: r.meta, Path: r.wavPath, Sidecar: r.jsonPath, EndedAt: r.endAt,
		Duration: time.Duration(frames) * framePeriod,
		Paused:   closeSpans(r.w.spans, time.Duration(frames)*framePeriod),
	}
	sum, err := r.seal()
	res.SHA256 = sum
	if err != nil {
		return res, err
	}
	return res, r.publish(resultSidecar(res))
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

func (r *Recording) partJSON(paused []Span) any { return partSidecar(r.meta, r.wavPath, paused) }

func (r *Recording) diskFailed(err error) {
	r.s.log.Error().Err(err).Str("call_id", r.meta.CallID).Msg("recording: disk error; the rest of the call is not recorded")
}
