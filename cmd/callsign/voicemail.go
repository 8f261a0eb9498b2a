package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/recording"
	"github.com/callsign/callsign/routing"
	"github.com/rs/zerolog"
)

// voicemails lets calls take messages through the voicemail store.
type voicemails struct{ store *recording.VoicemailStore }

func (v voicemails) StartVoicemail(s call.VoicemailStart) (call.Voicemail, error) {
	msg, err := v.store.Start(recording.VoicemailMeta{
		CallID: s.CallID, Caller: s.Caller, TrackingNumber: s.TrackingNumber, Source: s.Source,
		Queue: s.Queue, StartedAt: s.StartedAt,
	})
	if err != nil {
		return nil, err
	}
	return message{msg}, nil
}

// message is a voicemail being left as a call sees it: the caller's side
// of its tap is the message.
type message struct{ *recording.Voicemail }

func (m message) Packet(fromCaller bool, pkt []byte) {
	if fromCaller {
		m.Voicemail.Packet(pkt)
	}
}

func (m message) Finish() (call.RecordingResult, error) {
	res, err := m.Voicemail.Finish()
	if err != nil {
		return call.RecordingResult{}, err
	}
	return voicemailResult(res), nil
}

func voicemailResult(res recording.VoicemailResult) call.RecordingResult {
	return call.RecordingResult{Path: res.Path, Duration: res.Duration, SHA256: res.SHA256, Partial: res.Partial}
}

// openVoicemail opens storage.dir/voicemail, finalizes what a killed edge
// left in progress and publishes each as voicemail.completed.
func openVoicemail(storageDir string, pub call.Publisher, log zerolog.Logger) (*recording.VoicemailStore, error) {
	store, err := recording.OpenVoicemail(filepath.Join(storageDir, "voicemail"), log.With().Str("component", "voicemail").Logger(), time.Now)
	if err != nil {
		return nil, err
	}
	recovered, err := store.Recover()
	for _, res := range recovered {
		log.Warn().Str("call_id", res.CallID).Str("path", res.Path).Dur("duration", res.Duration).
			Msg("voicemail cut short by a stop finalized with what was captured")
		v := voicemailResult(res)
		pub.Publish(call.EventVoicemailCompleted, res.EndedAt, call.Record{
			ID: res.CallID, Caller: res.Caller, TrackingNumber: res.TrackingNumber, Source: res.Source,
			Queue: res.Queue, Voicemail: &v,
		})
	}
	if err != nil {
		log.Error().Err(err).Msg("some voicemail left in progress could not be finalized; its files stay for the next start")
	}
	return store, nil
}

// sweepVoicemail deletes messages past recording.retention, now and every
// sweepEvery, until ctx ends: a message is a recording of the caller.
func sweepVoicemail(ctx context.Context, store *recording.VoicemailStore, router *routing.Router, log zerolog.Logger) {
	sweep := func() {
		retention := router.Recording().Retention
		if retention <= 0 {
			return
		}
		deleted, err := store.Sweep(retention)
		for _, d := range deleted {
			log.Info().Str("call_id", d.CallID).Str("path", d.Path).Msg("voicemail deleted: older than recording.retention")
		}
		if err != nil {
			log.Error().Err(err).Msg("deleting old voicemail")
		}
	}
	periodically(ctx, sweep)
}
