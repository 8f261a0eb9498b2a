package events_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/events"
)

// An event published again with the id it had (as when a restart ends a
// call a crash left up a second time) is one message in the stream, and
// Flush says when what was published is on disk.
func TestPublishWithIDDedupesAndFlush(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := events.Start(ctx, events.Config{Embedded: true, EmbeddedListen: "127.0.0.1:0", StorageDir: t.TempDir()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)
	_, _, rec := answeredCall()
	const id = "01JD0000000000000000000001"
	p.PublishWithID(id, call.EventCompleted, t0, rec)
	if err := p.Flush(ctx); err != nil {
		t.Errorf("flush with the outbox on disk: %v", err)
	}
	p.PublishWithID(id, call.EventCompleted, t0, rec)
	waitPublished(t, p, 2, 10*time.Second)
	msgs := readStream(t, p.ClientURL(), 1)
	if got := msgs[0].Headers().Get("Nats-Msg-Id"); got != id {
		t.Errorf("Nats-Msg-Id %q, want %q", got, id)
	}
}

// Without an outbox on disk, Flush cannot promise anything.
func TestFlushWithoutOutbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := events.Start(ctx, events.Config{Servers: []string{"nats://127.0.0.1:" + strconv.Itoa(freePort(t))}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	p.Publish(call.EventStarted, t0, call.Record{ID: "c1"})
	if err := p.Flush(ctx); err == nil {
		t.Error("flush succeeded with events in memory only")
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer ccancel()
	_ = p.Close(cctx)
	if err := p.Flush(ctx); err == nil {
		t.Error("flush succeeded after close")
	}
}
