package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"time"

	"github.com/callsign/callsign/calllog"
	"github.com/callsign/callsign/ops"
)

// firstCallWait bounds the call log lookup on each new call: a busy or
// slow disk leaves first_call unknown rather than delaying the call.
const firstCallWait = 200 * time.Millisecond

// firstCall tells admission whether a caller is new in 30 days, or nil
// when the call log cannot say in time.
func firstCall(store *calllog.Store) func(caller string, at time.Time) *bool {
	return func(caller string, at time.Time) *bool {
		ctx, cancel := context.WithTimeout(context.Background(), firstCallWait)
		defer cancel()
		first, err := store.FirstCallContext(ctx, caller, at)
		if err != nil {
			return nil
		}
		return &first
	}
}

// recordingOf is the recording file of a stored call, for the admin
// API. Only a file inside the recordings directory is served: the path
// comes from the database, which a restore or a hand edit may have
// pointed anywhere.
func recordingOf(store *calllog.Store, dir string) func(callID string) (string, error) {
	return func(callID string) (string, error) {
		e, err := store.Get(callID)
		if errors.Is(err, calllog.ErrNotFound) {
			return "", ops.ErrNotFound
		}
		if err != nil {
			return "", err
		}
		if e.Recording == nil || e.Recording.Path == "" {
			return "", ops.ErrNotFound
		}
		// Both as the process sees them: a relative storage.dir gives
		// relative paths, from the same working directory.
		path, err := filepath.Abs(e.Recording.Path)
		if err != nil {
			return "", err
		}
		root, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			return "", ops.ErrNotFound
		}
		return path, nil
	}
}
