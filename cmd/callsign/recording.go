package main

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/ops"
	"github.com/callsign/callsign/recording"
	"github.com/callsign/callsign/routing"
	"github.com/rs/zerolog"
)

// sweepEvery is how often retention runs after the sweep at start.
const sweepEvery = time.Hour

// recorder lets calls record through the recordings store.
type recorder struct{ store *recording.Store }

func (r recorder) Start(s call.RecordingStart) (call.Recording, error) {
	rec, err := r.store.Start(recording.Meta{
		CallID: s.CallID, TrackingNumber: s.TrackingNumber, Source: s.Source,
		Agent: s.Agent, Consent: s.Consent, StartedAt: s.StartedAt,
	})
	if err != nil {
		return nil, err
	}
	return callRecording{rec}, nil
}

// callRecording is a recording in progress as a call sees it; its tap is
// the recording's own Packet.
type callRecording struct{ *recording.Recording }

func (c callRecording) Finish() (call.RecordingResult, error) {
	res, err := c.Recording.Finish()
	if err != nil {
		return call.RecordingResult{}, err
	}
	return resultOf(res), nil
}

func resultOf(res recording.Result) call.RecordingResult {
	return call.RecordingResult{Path: res.Path, Duration: res.Duration, SHA256: res.SHA256, Partial: res.Partial}
}

// openRecordings opens storage.dir/recordings, finalizes what a killed
// edge left in progress and publishes each as recording.completed.
func openRecordings(storageDir string, pub call.Publisher, log zerolog.Logger) (*recording.Store, error) {
	store, err := recording.Open(filepath.Join(storageDir, "recordings"), log.With().Str("component", "recording").Logger(), time.Now)
	if err != nil {
		return nil, err
	}
	recovered, err := store.Recover()
	for _, res := range recovered {
		log.Warn().Str("call_id", res.CallID).Str("path", res.Path).Dur("duration", res.Duration).
			Msg("recording of a call cut short by a stop finalized with what was captured")
		r := resultOf(res)
		pub.Publish(call.EventRecordingCompleted, res.EndedAt, call.Record{
			ID: res.CallID, TrackingNumber: res.TrackingNumber, Source: res.Source, Agent: res.Agent,
			Consent: res.Consent, Recording: &r,
		})
	}
	if err != nil {
		log.Error().Err(err).Msg("some recordings left in progress could not be finalized; their files stay for the next start")
	}
	return store, nil
}

// sweepRecordings deletes recordings past the retention in force, now and
// every sweepEvery, until ctx ends.
func sweepRecordings(ctx context.Context, store *recording.Store, router *routing.Router, pub call.Publisher, log zerolog.Logger) {
	sweep := func() {
		retention := router.Recording().Retention
		if retention <= 0 {
			return
		}
		deleted, err := store.Sweep(retention)
		for _, d := range deleted {
			log.Info().Str("call_id", d.CallID).Str("path", d.Path).Msg("recording deleted: older than recording.retention")
			pub.Publish(call.EventRecordingDeleted, time.Now(), call.Record{
				ID: d.CallID, Recording: &call.RecordingResult{Path: d.Path},
			})
		}
		if err != nil {
			log.Error().Err(err).Msg("deleting old recordings")
		}
	}
	periodically(ctx, sweep)
}

// periodically runs f now and every sweepEvery, until ctx ends.
func periodically(ctx context.Context, f func()) {
	f()
	go func() {
		t := time.NewTicker(sweepEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	}()
}

// pauseRecording is the admin API's pause and resume.
func pauseRecording(store *recording.Store) func(callID string, pause bool) error {
	return func(callID string, pause bool) error {
		var err error
		if pause {
			err = store.Pause(callID)
		} else {
			err = store.Resume(callID)
		}
		if errors.Is(err, recording.ErrNotRecording) {
			return ops.ErrNotFound
		}
		return err
	}
}

// recordingStats feeds /metrics.
func recordingStats(store *recording.Store) func() ops.RecordingStats {
	return func() ops.RecordingStats {
		st := store.Stats()
		return ops.RecordingStats{
			Active: st.Active, BufferedBytes: st.BufferedBytes, Behind: st.BehindTotal,
			Completed: st.Completed, Failed: st.Failed, LateSamples: st.LateSamples,
		}
	}
}
