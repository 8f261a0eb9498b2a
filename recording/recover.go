package recording

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
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
	var (
		wavParts, jsonParts, tmps []string
		errs                      []error
	)
	walkErr := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, fileError("reading", path, err))
			if d != nil && d.IsDir() && path != s.dir {
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
	active := s.activeFiles()

	for _, p := range tmps {
		if active[p] {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fileError("removing", p, err))
		}
	}
	var out []Result
	recovered := make(map[string]bool)
	for _, p := range wavParts {
		if active[p] {
			continue
		}
		stem := strings.TrimSuffix(p, wavExt+partExt)
		recovered[stem] = true
		res, err := s.recoverWAV(stem)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Finished or recovered since the walk.
		case err != nil:
			errs = append(errs, err)
			s.log.Error().Err(err).Str("file", p).Msg("recording: cannot recover; its files are left as they are")
		default:
			out = append(out, res)
			s.log.Warn().Str("call_id", res.CallID).Str("file", res.Path).Dur("duration", res.Duration).
				Msg("recording recovered after a crash; the last moments before it are lost")
		}
	}
	for _, p := range jsonParts {
		stem := strings.TrimSuffix(p, jsonExt+partExt)
		if active[p] || recovered[stem] {
			continue
		}
		res, ok, err := s.recoverSidecar(stem)
		switch {
		case err != nil:
			errs = append(errs, err)
			s.log.Error().Err(err).Str("file", p).Msg("recording: cannot recover; its files are left as they are")
		case ok:
			out = append(out, res)
			s.log.Warn().Str("call_id", res.CallID).Str("file", res.Path).Msg("recording's sidecar recovered after a crash")
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

// recoverWAV finalizes stem.wav.part.
func (s *Store) recoverWAV(stem string) (Result, error) {
	part, wavPath := stem+wavExt+partExt, stem+wavExt
	if _, err := os.Lstat(wavPath); err == nil {
		return Result{}, fmt.Errorf("recording: %s and %s both exist", part, wavPath)
	}
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Result{}, err
		}
		return Result{}, fileError("opening", part, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Result{}, fileError("reading", part, err)
	}
	// Read before the file is touched: it is when the recording stopped.
	ended := st.ModTime()
	frames := min(max(st.Size()-headerSize, 0)/frameBytes, maxFrames)
	if err := f.Truncate(headerSize + frames*frameBytes); err != nil {
		return Result{}, fileError("truncating", part, err)
	}
	sum, err := sealWAV(f, part, frames)
	if err != nil {
		return Result{}, err
	}
	if err := f.Close(); err != nil {
		return Result{}, fileError("closing", part, err)
	}
	res := s.recoveredResult(stem, ended, time.Duration(frames)*framePeriod)
	res.SHA256 = sum
	if err := os.Rename(part, wavPath); err != nil {
		return Result{}, fileError("renaming", part, err)
	}
	return res, s.writeRecovered(stem, res)
}

// recoverSidecar handles a stem.json.part with no .wav.part: Finish was
// cut between renaming the .wav and removing the .json.part. ok is false
// when there was nothing to recover.
func (s *Store) recoverSidecar(stem string) (Result, bool, error) {
	jsonPart, wavPath, jsonPath := stem+jsonExt+partExt, stem+wavExt, stem+jsonExt
	if _, err := os.Lstat(jsonPath); err == nil {
		return Result{}, false, removeIfThere(jsonPart)
	}
	f, err := os.Open(wavPath)
	if errors.Is(err, fs.ErrNotExist) {
		// Created at Start before the .wav.part, or the .wav was deleted
		// by hand: no audio to describe.
		s.log.Warn().Str("file", jsonPart).Msg("recording: metadata without audio; removed")
		return Result{}, false, removeIfThere(jsonPart)
	}
	if err != nil {
		return Result{}, false, fileError("opening", wavPath, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Result{}, false, fileError("reading", wavPath, err)
	}
	frames := max(st.Size()-headerSize, 0) / frameBytes
	// The .wav was sealed before it was renamed; hashing it as it is
	// describes it as it is.
	sum, err := hashFile(f, wavPath)
	if err != nil {
		return Result{}, false, err
	}
	res := s.recoveredResult(stem, st.ModTime(), time.Duration(frames)*framePeriod)
	res.SHA256 = sum
	return res, true, s.writeRecovered(stem, res)
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

func (s *Store) writeRecovered(stem string, res Result) error {
	if err := writeJSON(res.Sidecar, resultSidecar(res)); err != nil {
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
