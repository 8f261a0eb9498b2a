package call

import (
	"time"

	"github.com/callsign/callsign/config"
)

// consent asks or tells the caller about recording before the call waits
// in a queue, as the number's own record mode says, or else the mode of the
// flow that led to the queue. It runs once per call.
func (c *Call) consent() ringResult {
	if c.rec.Consent != "" {
		return ringNext
	}
	settings := c.deps.Router.Recording()
	mode := c.record
	if mode == "" {
		mode = c.current.Record
	}
	if (mode == config.RecordAnnounce || mode == config.RecordAsk) && consentPrompt(settings, mode) == nil {
		// A reload can leave no prompt for a mode a call in progress
		// still has; a caller who cannot be told is not recorded.
		c.log.Error().Str("record", mode).Msg("no consent prompt in the configuration in force; the call is not recorded")
		c.rec.Consent = ConsentDeclined
		return ringNext
	}
	switch mode {
	case config.RecordAnnounce:
		if res := c.startIVR(); res != ringNext {
			return res
		}
		if res := c.playPrompt(settings.AnnouncePrompt, false); res != ringNext {
			return res
		}
		c.rec.Consent = ConsentAnnounced
	case config.RecordAsk:
		if res := c.startIVR(); res != ringNext {
			return res
		}
		// Only a key pressed to this question counts as an answer to it.
		c.typeahead = c.typeahead[:0]
		d, res := c.ask(&config.Menu{Prompt: settings.AskPrompt, Timeout: settings.AskTimeout})
		if res != ringNext {
			return res
		}
		c.rec.Consent = ConsentDeclined
		if d != 0 && d == settings.AcceptDigit {
			c.rec.Consent = ConsentGranted
		}
	default:
		c.rec.Consent = ConsentNotAsked
	}
	c.log.Info().Str("consent", c.rec.Consent).Msg("recording consent")
	return ringNext
}

// consentPrompt is the prompt a record mode plays, nil for none.
func consentPrompt(settings *config.Recording, mode string) *config.Prompt {
	switch mode {
	case config.RecordAnnounce:
		return settings.AnnouncePrompt
	case config.RecordAsk:
		return settings.AskPrompt
	}
	return nil
}

// startRecording starts recording the conversation the agent just
// answered, if the caller was told or agreed; nil otherwise. A recording
// that cannot start costs the call nothing but the recording.
func (c *Call) startRecording(agent string, at time.Time) Recording {
	if c.deps.Recorder == nil || (c.rec.Consent != ConsentGranted && c.rec.Consent != ConsentAnnounced) {
		return nil
	}
	r, err := c.deps.Recorder.Start(RecordingStart{
		CallID: c.rec.ID, TrackingNumber: c.rec.TrackingNumber, Source: c.rec.Source,
		Agent: agent, Consent: c.rec.Consent, StartedAt: at,
	})
	if err != nil {
		c.log.Error().Err(err).Msg("recording could not start; the call goes on unrecorded")
		return nil
	}
	c.log.Info().Msg("recording started")
	return r
}

// finishRecording makes the recording durable and tells of it before the
// call's final record, which then carries it too.
func (c *Call) finishRecording(r Recording) {
	if r == nil {
		return
	}
	res, err := r.Finish()
	if err != nil {
		c.log.Error().Err(err).Msg("recording failed")
		return
	}
	c.rec.Recording = &res
	c.log.Info().Str("path", res.Path).Dur("duration", res.Duration).Msg("recording completed")
	c.publish(EventRecordingCompleted, c.deps.Clock.Now())
}
