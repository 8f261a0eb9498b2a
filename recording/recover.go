package recording

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Recover finalizes the recordings a killed edge left in progress and
// returns them, Partial. Call it at start, before recording: it leaves
// alone the files of recordings in progress, but a recording it finalizes
// cannot be started again.
//
// A .wav.part keeps every whole frame it holds: it is cut to whole
// frames, given its header, renamed, and described by a sidecar made from
// its .json.part (or, if that is lost, from its name), ended_at being the
// .part's last write. A crash during Finish, after the rename, leaves a
// .json.part next to the .wav, which gets its sidecar the same way.
// Temporary files are removed. An error on one recording does not stop the
// others; its files stay for the next try.
func (s *Store) Recover() ([]Result, error) {
	return recoverDir(s.dir, s.log, recoverKind[Result]{
		what:     "recording",
		channels: channels,
		active:   s.activeFiles,
		finish:   s.finishRecovered,
		callID:   func(r Result) string { return r.CallID },
	})
}

// recoverKind is what recovering recordings and voicemail differ in.
type recoverKind[R any] struct {
	what     string // for the logs
	channels int    // of the .wav
	// active are the files of those in progress, which are left alone.
	active func() map[string]bool
	// finish describes recovered audio by its .json.part and writes its
	// sidecar (writeRecovered).
	finish func(leftover) (R, error)
	callID func(R) string
}

// leftover is recovered audio: its .wav is sealed, and its sidecar is
// still to be written.
type leftover struct {
	stem     string // the path less .wav
	ended    time.Time
	duration time.Duration
	sha256   string
}

// recoverDir finalizes what killed writers left in dir, as Recover
// describes.
func recoverDir[R any](dir string, log zerolog.Logger, k recoverKind[R]) ([]R, error) {
	var (
		wavParts, jsonParts, tmps []string
		errs                      []error
	)
	walkErr := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, fileError("reading", path, err))
			if d != nil && d.IsDir() && path != dir {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		switch name := d.Name(); {
		case strings.HasSuffix(name, wavExt+partExt):
			wavParts = append(wavParts, path)
		case strings.HasSuffix(name, jsonExt+partExt):
			jsonParts = append(jsonParts, path)
		case strings.HasSuffix(name, tmpExt):
			tmps = append(tmps, path)
		}
		return nil
	})
	if walkErr != nil {
		errs = append(errs, walkErr)
	}
	// Taken after the walk: a recording starts being known before its
	// files are created, so any file the walk saw of one is in here.
	active := k.active()

	for _, p := range tmps {
		if active[p] {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fileError("removing", p, err))
		}
	}
	var out []R
	recovered := make(map[string]bool)
	for _, p := range wavParts {
		if active[p] {
			continue
		}
		stem := strings.TrimSuffix(p, wavExt+partExt)
		recovered[stem] = true
		var res R
		lo, err := recoverWAV(stem, k.channels)
		if err == nil {
			res, err = k.finish(lo)
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Finished or recovered since the walk.
		case err != nil:
			errs = append(errs, err)
			log.Error().Err(err).Str("file", p).Msgf("%s: cannot recover; its files are left as they are", k.what)
		default:
			out = append(out, res)
			log.Warn().Str("call_id", k.callID(res)).Str("file", lo.stem+wavExt).Dur("duration", lo.duration).
				Msgf("%s recovered after a crash; the last moments before it are lost", k.what)
		}
	}
	for _, p := range jsonParts {
		stem := strings.TrimSuffix(p, jsonExt+partExt)
		if active[p] || recovered[stem] {
			continue
		}
		var res R
		lo, ok, err := recoverSidecar(stem, k.channels, log, k.what)
		if ok {
			res, err = k.finish(lo)
		}
		switch {
		case err != nil:
			errs = append(errs, err)
			log.Error().Err(err).Str("file", p).Msgf("%s: cannot recover; its files are left as they are", k.what)
		case ok:
			out = append(out, res)
			log.Warn().Str("call_id", k.callID(res)).Str("file", lo.stem+wavExt).Msgf("%s's sidecar recovered after a crash", k.what)
		}
	}
	return out, errors.Join(errs...)
}

func (s *Store) activeFiles() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]bool, 4*len(s.active))
	for _, r := range s.active {
		m[r.wavPart], m[r.jsonPart], m[r.jsonPart+tmpExt], m[r.jsonPath+tmpExt] = true, true, true, true
	}
	return m
}

// recoverWAV finalizes stem.wav.part, of nch channels.
func recoverWAV(stem string, nch int) (leftover, error) {
	part, wavPath := stem+wavExt+partExt, stem+wavExt
	if _, err := os.Lstat(wavPath); err == nil {
		return leftover{}, fmt.Errorf("recording: %s and %s both exist", part, wavPath)
	}
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return leftover{}, err
		}
		return leftover{}, fileError("opening", part, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return leftover{}, fileError("reading", part, err)
	}
	// Read before the file is touched: it is when the recording stopped.
	ended := st.ModTime()
	fb := int64(2 * nch)
	frames := min(max(st.Size()-headerSize, 0)/fb, pcmMaxFrames(nch))
	if err := f.Truncate(headerSize + frames*fb); err != nil {
		return leftover{}, fileError("truncating", part, err)
	}
	sum, err := sealPCM(f, part, nch, frames)
	if err != nil {
		return leftover{}, err
	}
	if err := f.Close(); err != nil {
		return leftover{}, fileError("closing", part, err)
	}
	if err := os.Rename(part, wavPath); err != nil {
		return leftover{}, fileError("renaming", part, err)
	}
	return leftover{stem: stem, ended: ended, duration: time.Duration(frames) * framePeriod, sha256: sum}, nil
}

// recoverSidecar handles a stem.json.part with no .wav.part: Finish was
// cut between renaming the .wav and removing the .json.part. ok is false
// when there was nothing to recover.
func recoverSidecar(stem string, nch int, log zerolog.Logger, what string) (lo leftover, ok bool, err error) {
	jsonPart, wavPath, jsonPath := stem+jsonExt+partExt, stem+wavExt, stem+jsonExt
	if _, err := os.Lstat(jsonPath); err == nil {
		return leftover{}, false, removeIfThere(jsonPart)
	}
	f, err := os.Open(wavPath)
	if errors.Is(err, fs.ErrNotExist) {
		// Created at Start before the .wav.part, or the .wav was deleted
		// by hand: no audio to describe.
		log.Warn().Str("file", jsonPart).Msgf("%s: metadata without audio; removed", what)
		return leftover{}, false, removeIfThere(jsonPart)
	}
	if err != nil {
		return leftover{}, false, fileError("opening", wavPath, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return leftover{}, false, fileError("reading", wavPath, err)
	}
	frames := max(st.Size()-headerSize, 0) / int64(2*nch)
	// The .wav was sealed before it was renamed; hashing it as it is
	// describes it as it is.
	sum, err := hashFile(f, wavPath)
	if err != nil {
		return leftover{}, false, err
	}
	return leftover{stem: stem, ended: st.ModTime(), duration: time.Duration(frames) * framePeriod, sha256: sum}, true, nil
}

// finishRecovered is a recording's recoverKind.finish.
func (s *Store) finishRecovered(lo leftover) (Result, error) {
	res := s.recoveredResult(lo.stem, lo.ended, lo.duration)
	res.SHA256 = lo.sha256
	return res, writeRecovered(lo.stem, resultSidecar(res))
}

// recoveredResult describes a recovered recording from its .json.part, or
// from its name when that is unreadable.
func (s *Store) recoveredResult(stem string, ended time.Time, dur time.Duration) Result {
	res := Result{
		Path: stem + wavExt, Sidecar: stem + jsonExt, EndedAt: ended, Duration: dur, Partial: true,
	}
	jsonPart := stem + jsonExt + partExt
	sc, err := readSidecar(jsonPart)
	var spans []Span
	if err == nil {
		res.Meta, spans, err = sc.meta()
		if err != nil {
			err = fmt.Errorf("recording: %s: %w", jsonPart, err)
		}
	}
	if err != nil {
		s.log.Warn().Err(err).Str("file", res.Path).Msg("recording: metadata lost; the sidecar has only what the file name says")
		res.Meta = Meta{CallID: callIDFromName(filepath.Base(stem)), StartedAt: ended.Add(-dur)}
		spans = nil
	}
	res.Paused = closeSpans(spans, dur)
	return res
}

// writeRecovered writes the sidecar of recovered audio and removes its
// .json.part.
func writeRecovered(stem string, sc namedSidecar) error {
	if err := writeJSON(stem+jsonExt, sc); err != nil {
		return err
	}
	if err := removeIfThere(stem + jsonExt + partExt); err != nil {
		return err
	}
	dir := filepath.Dir(stem)
	if err := syncDir(dir); err != nil {
		return fileError("syncing", dir, err)
	}
	return nil
}

func removeIfThere(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fileError("removing", path, err)
	}
	return nil
}
