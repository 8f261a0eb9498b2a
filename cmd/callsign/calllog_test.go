package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/calllog"
	"github.com/callsign/callsign/ops"
	"github.com/rs/zerolog"
)

// TestRecordingOf: the admin API serves a stored call's recording only
// from inside the recordings directory, whatever path the database holds.
func TestRecordingOf(t *testing.T) {
	dir := t.TempDir()
	store, err := calllog.Open(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	recs := filepath.Join(dir, "recordings")
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	add := func(id, path string) {
		rec := call.Record{ID: id, Caller: "+15551230000", StartedAt: at, EndedAt: at.Add(time.Minute), Outcome: call.OutcomeAnswered}
		if path != "" {
			rec.Recording = &call.RecordingResult{Path: path, Duration: time.Minute}
		}
		store.Add(calllog.EntryOf(&rec))
	}
	inside := filepath.Join(recs, "2026", "11", "23", "c1.wav")
	add("c1", inside)
	add("c2", filepath.Join(dir, "calls.db"))
	add("c3", recs+"/../../etc/passwd")
	add("c4", "")
	if err := store.Flush(); err != nil {
		t.Fatal(err)
	}
	get := recordingOf(store, recs)
	if p, err := get("c1"); err != nil || p != inside {
		t.Errorf("c1: %q, %v; want %q", p, err, inside)
	}
	for _, id := range []string{"c2", "c3", "c4", "unknown"} {
		if p, err := get(id); !errors.Is(err, ops.ErrNotFound) {
			t.Errorf("%s: %q, %v; want ErrNotFound", id, p, err)
		}
	}

	// A relative storage directory gives relative paths, from the same
	// working directory.
	t.Chdir(dir)
	if err := os.MkdirAll("recordings", 0o750); err != nil {
		t.Fatal(err)
	}
	add("c5", filepath.Join("recordings", "c5.wav"))
	if err := store.Flush(); err != nil {
		t.Fatal(err)
	}
	if p, err := recordingOf(store, "recordings")("c5"); err != nil || p != filepath.Join(dir, "recordings", "c5.wav") {
		t.Errorf("c5: %q, %v", p, err)
	}
}
