package recording

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/url"
	"os"
	"strings"
	"time"
)

const (
	sampleRate = 8000
	channels   = 2 // a recording's: the caller left, the agent right
	headerSize = 44
	// streamedSize is the data size of a .part: what writers that cannot
	// seek back leave, which tolerant readers (ffmpeg, sox, media's WAV
	// parser) take as "up to the end of the file", so a recording in
	// progress can be listened to.
	streamedSize = 0xFFFFFFFF

	wavExt     = ".wav"
	jsonExt    = ".json"
	partExt    = ".part"
	tmpExt     = ".tmp"
	maxNameLen = 200 // the longest suffix (.json.part.tmp) still fits in 255 bytes
)

// wavHeader is the canonical 44-byte header of a stereo 8 kHz 16-bit PCM
// file whose data chunk holds dataSize bytes (streamedSize: not known yet).
func wavHeader(dataSize uint32) []byte { return pcmHeader(channels, dataSize) }

// pcmHeader is wavHeader for nch channels: voicemail is mono.
func pcmHeader(nch int, dataSize uint32) []byte {
	h := make([]byte, headerSize)
	riffSize := uint32(streamedSize)
	if dataSize != streamedSize {
		riffSize = 36 + dataSize
	}
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], riffSize)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1) // PCM
	binary.LittleEndian.PutUint16(h[22:], uint16(nch))
	binary.LittleEndian.PutUint32(h[24:], sampleRate)
	binary.LittleEndian.PutUint32(h[28:], uint32(sampleRate*2*nch))
	binary.LittleEndian.PutUint16(h[32:], uint16(2*nch))
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], dataSize)
	return h
}

// pcmMaxFrames keeps the RIFF sizes of a file of nch channels within 32
// bits: about 37 hours of a recording, 74 of a voicemail.
func pcmMaxFrames(nch int) int64 { return (streamedSize - 36) / int64(2*nch) }

// sealPCM gives a .part of nch channels the header of its frames, makes it
// durable and returns the hex sha256 of the whole file. The file must hold
// exactly frames after the header.
func sealPCM(f *os.File, path string, nch int, frames int64) (string, error) {
	if _, err := f.WriteAt(pcmHeader(nch, uint32(frames*int64(2*nch))), 0); err != nil {
		return "", fileError("writing the header of", path, err)
	}
	if err := f.Sync(); err != nil {
		return "", fileError("syncing", path, err)
	}
	return hashFile(f, path)
}

// hashFile is the hex sha256 of the whole of f.
func hashFile(f *os.File, path string) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, math.MaxInt64)); err != nil {
		return "", fileError("hashing", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sidecar is the JSON of <call id>.json, and of the .json.part a recording
// in progress keeps, which has no ended_at, duration or sha256 yet, and
// to_ms -1 for a pause still open.
type sidecar struct {
	CallID         string     `json:"call_id"`
	TrackingNumber string     `json:"tracking_number"`
	Source         string     `json:"source"`
	Agent          string     `json:"agent"`
	Consent        string     `json:"consent"`
	StartedAt      string     `json:"started_at"`
	EndedAt        string     `json:"ended_at"`
	DurationMS     int64      `json:"duration_ms"`
	SHA256         string     `json:"sha256"`
	Path           string     `json:"path"`
	Partial        bool       `json:"partial"`
	Paused         []spanJSON `json:"paused"`
}

type spanJSON struct {
	FromMS int64 `json:"from_ms"`
	ToMS   int64 `json:"to_ms"`
}

const openSpanMS = -1

func jsonTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func spansJSON(spans []Span) []spanJSON {
	out := make([]spanJSON, 0, len(spans))
	for _, s := range spans {
		j := spanJSON{FromMS: s.From.Milliseconds(), ToMS: s.To.Milliseconds()}
		if s.To == openSpan {
			j.ToMS = openSpanMS
		}
		out = append(out, j)
	}
	return out
}

func partSidecar(m Meta, wavPath string, paused []Span) sidecar {
	return sidecar{
		CallID: m.CallID, TrackingNumber: m.TrackingNumber, Source: m.Source, Agent: m.Agent, Consent: m.Consent,
		StartedAt: jsonTime(m.StartedAt), Path: wavPath, Paused: spansJSON(paused),
	}
}

func resultSidecar(r Result) sidecar {
	sc := partSidecar(r.Meta, r.Path, r.Paused)
	sc.EndedAt = jsonTime(r.EndedAt)
	sc.DurationMS = r.Duration.Milliseconds()
	sc.SHA256 = r.SHA256
	sc.Partial = r.Partial
	return sc
}

// meta reads back what partSidecar wrote.
func (sc sidecar) meta() (Meta, []Span, error) {
	started, err := time.Parse(time.RFC3339Nano, sc.StartedAt)
	if err != nil {
		return Meta{}, nil, fmt.Errorf("started_at: %w", err)
	}
	m := Meta{CallID: sc.CallID, TrackingNumber: sc.TrackingNumber, Source: sc.Source, Agent: sc.Agent, Consent: sc.Consent, StartedAt: started}
	var spans []Span
	for _, p := range sc.Paused {
		s := Span{From: time.Duration(p.FromMS) * time.Millisecond, To: time.Duration(p.ToMS) * time.Millisecond}
		if p.ToMS == openSpanMS {
			s.To = openSpan
		}
		spans = append(spans, s)
	}
	return m, spans, nil
}

func readSidecar(path string) (sidecar, error) { return loadSidecar[sidecar](path) }

// namedSidecar is the sidecar of a recording or of a voicemail.
type namedSidecar interface{ callID() string }

func (sc sidecar) callID() string { return sc.CallID }

// loadSidecar reads a sidecar, or a .json.part, of either kind.
func loadSidecar[T namedSidecar](path string) (T, error) {
	var sc T
	b, err := os.ReadFile(path)
	if err != nil {
		return sc, fileError("reading", path, err)
	}
	if err := json.Unmarshal(b, &sc); err != nil {
		return sc, fmt.Errorf("recording: %s: %w", path, err)
	}
	if sc.callID() == "" {
		return sc, fmt.Errorf("recording: %s: no call_id", path)
	}
	return sc, nil
}

// writeJSON replaces path with v whole: written under a temporary name,
// fsynced, renamed. The directory is the caller's to sync.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("recording: encoding %s: %w", path, err)
	}
	b = append(b, '\n')
	tmp := path + tmpExt
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fileError("creating", tmp, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fileError("writing", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fileError("renaming", tmp, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fileError names the file once: a *PathError already carries it, and
// "recording: writing x: write x: no space left" says it twice.
func fileError(op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("recording: %s %s: %w", op, path, err)
}

// fileName is the base name of a call's files. Call ids are ULIDs today,
// but a SIP Call-ID may hold '/', and a name starting with '.' would hide
// the file or be "..": anything outside a safe set is percent-escaped,
// and a name too long for the file system is cut and given a hash so it
// stays unique.
func fileName(callID string) string {
	var b strings.Builder
	for i := 0; i < len(callID); i++ {
		c := callID[i]
		if safeNameByte(c) && (i > 0 || c != '.') {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	name := b.String()
	if len(name) > maxNameLen {
		sum := sha256.Sum256([]byte(callID))
		name = name[:maxNameLen-17] + "~" + hex.EncodeToString(sum[:8])
	}
	return name
}

func safeNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '@' || c == '+'
}

// callIDFromName undoes fileName as far as it can, for files whose sidecar
// is lost.
func callIDFromName(name string) string {
	if id, err := url.PathUnescape(name); err == nil {
		return id
	}
	return name
}
