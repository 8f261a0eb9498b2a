package recording

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

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
// It is taken and written as a recording is, by the same tap and writer
// with one channel instead of two, and shares the rest: the file names,
// the header, sealing and hashing, the sidecar writing, Recover's code and
// Sweep.
type VoicemailStore struct {
	// s is a Store of the directory, for what does not depend on the
	// kind of audio: its path, log and clock, its day directories and
	// their lock, and Sweep. It records nothing itself, and nothing reads
	// the counters that the voicemails' writers add to.
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
	capture
	vs       *VoicemailStore
	meta     VoicemailMeta
	finished outcome[VoicemailResult]
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
	v := &Voicemail{vs: vs, meta: meta}
	v.init(v, vs.s, meta.CallID, voicemailChannels, meta.StartedAt, t0, day)
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
	s := v.s
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

// Path is where the voicemail will be once finished.
func (v *Voicemail) Path() string { return v.wavPath }

// Packet takes one of the caller's RTP packets. It only copies the packet
// under a short lock; the writer does the rest.
func (v *Voicemail) Packet(pkt []byte) { v.tap(true, pkt) }

// Finish stops taking packets, writes what is left, and makes the file and
// its sidecar durable. Calling it again returns the same.
func (v *Voicemail) Finish() (VoicemailResult, error) {
	return v.finished.once(func() (VoicemailResult, error) {
		v.end(func() { v.vs.forget(v) })
		res, err := v.finalize()
		log := v.s.log
		if err != nil {
			log.Error().Err(err).Str("call_id", v.meta.CallID).Str("file", v.wavPart).
				Msg("voicemail failed; its .part files are left for Recover")
		} else {
			log.Info().Str("call_id", v.meta.CallID).Str("file", res.Path).
				Dur("duration", res.Duration).Int64("late_samples", v.w.late).Msg("voicemail finished")
		}
		return res, err
	})
}

func (v *Voicemail) finalize() (VoicemailResult, error) {
	res := VoicemailResult{
		VoicemailMeta: v.meta, Path: v.wavPath, Sidecar: v.jsonPath, EndedAt: v.endAt,
		Duration: time.Duration(v.w.diskEnd) * framePeriod,
	}
	sum, err := v.seal()
	res.SHA256 = sum
	if err != nil {
		return res, err
	}
	return res, v.publish(voicemailSidecarOf(res))
}

// partJSON has no pauses to say: a voicemail has none.
func (v *Voicemail) partJSON([]Span) any { return voicemailPartSidecar(v.meta, v.wavPath) }

func (v *Voicemail) diskFailed(err error) {
	v.s.log.Error().Err(err).Str("call_id", v.meta.CallID).Msg("voicemail: disk error; the rest of it is not recorded")
}
