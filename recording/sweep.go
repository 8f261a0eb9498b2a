package recording

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Sweep deletes the recordings (.wav and sidecar) that started more than
// retention ago, by the sidecar's started_at, or by the file's mtime when
// the sidecar is unreadable; 0 keeps everything. Date directories left
// empty are removed. Files of recordings in progress, and .part files
// waiting for Recover, are not touched. An error on one recording does not
// stop the others.
func (s *Store) Sweep(retention time.Duration) ([]Deleted, error) {
	if retention <= 0 {
		return nil, nil
	}
	cutoff := s.now().Add(-retention)
	var (
		stems []string
		seen  = make(map[string]bool)
		dirs  []string
		errs  []error
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
			if path != s.dir {
				dirs = append(dirs, path)
			}
			return nil
		}
		stem, ok := strings.CutSuffix(path, wavExt)
		if !ok {
			stem, ok = strings.CutSuffix(path, jsonExt)
		}
		if ok && !seen[stem] {
			seen[stem] = true
			stems = append(stems, stem)
		}
		return nil
	})
	if walkErr != nil {
		errs = append(errs, walkErr)
	}

	var deleted []Deleted
	for _, stem := range stems {
		callID, started, ok := s.startedAt(stem)
		if !ok || !started.Before(cutoff) {
			continue
		}
		// The audio goes first: a sidecar left by a failure here is
		// swept the next time; audio left without its sidecar would be
		// kept by its mtime, the time of the crash.
		if err := removeIfThere(stem + wavExt); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := removeIfThere(stem + jsonExt); err != nil {
			errs = append(errs, err)
		}
		deleted = append(deleted, Deleted{CallID: callID, Path: stem + wavExt, StartedAt: started})
		s.log.Info().Str("call_id", callID).Str("file", stem+wavExt).Time("started_at", started).Msg("recording deleted: past retention")
	}
	if err := s.removeEmptyDirs(dirs); err != nil {
		errs = append(errs, err)
	}
	return deleted, errors.Join(errs...)
}

// startedAt is when the recording at stem started, by its sidecar or else
// its files' mtime; ok is false when neither can be read.
func (s *Store) startedAt(stem string) (callID string, started time.Time, ok bool) {
	if sc, err := readSidecar(stem + jsonExt); err == nil {
		if m, _, err := sc.meta(); err == nil {
			return m.CallID, m.StartedAt, true
		}
	}
	callID = callIDFromName(filepath.Base(stem))
	for _, p := range []string{stem + wavExt, stem + jsonExt} {
		if st, err := os.Stat(p); err == nil {
			return callID, st.ModTime(), true
		}
	}
	return "", time.Time{}, false
}

// removeEmptyDirs removes the date directories (all digits) that are
// empty, the deepest first so that a month emptied of its days goes too.
func (s *Store) removeEmptyDirs(dirs []string) error {
	// Start takes the read side between creating a day directory and
	// putting its files there.
	s.dirs.Lock()
	defer s.dirs.Unlock()
	var errs []error
	for _, d := range slices.Backward(dirs) {
		if !allDigits(filepath.Base(d)) {
			continue
		}
		err := os.Remove(d)
		if err != nil && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fileError("removing", d, err))
		}
	}
	return errors.Join(errs...)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
