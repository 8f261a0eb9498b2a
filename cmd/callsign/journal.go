package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/rs/zerolog"
)

// recoverTimeout bounds how long the start waits for the events of the
// calls a killed edge left up to be safe in the outbox.
const recoverTimeout = 10 * time.Second

// openJournal opens storage.dir/journal and ends the calls an earlier run
// left up (see call.Journal), counting them like any other call. It runs
// before the SIP listeners take calls; the records it returns are the
// calls ended, whose carriers may still send requests.
func openJournal(storageDir string, pub call.Publisher, count func(*call.Record), log zerolog.Logger) (*call.Journal, []call.Record, error) {
	j, err := call.OpenJournal(call.JournalOptions{
		Dir:       filepath.Join(storageDir, "journal"),
		Publisher: pub,
		Clock:     call.SystemClock{},
		Log:       log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
	defer cancel()
	recovered := j.Recover(ctx)
	for i := range recovered {
		count(&recovered[i])
	}
	if len(recovered) > 0 {
		log.Warn().Int("calls", len(recovered)).Msg("calls left up by the edge's last stop ended: call.completed published with hangup_by edge")
	}
	return j, recovered, nil
}
