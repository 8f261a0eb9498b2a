package events_test

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/events"
)

// reconnectClock is a log writer that notes when the publisher logs its
// reconnection.
type reconnectClock struct {
	t  *testing.T
	mu sync.Mutex
	at time.Time
}

func (c *reconnectClock) Write(p []byte) (int, error) {
	c.t.Logf("%s", bytes.TrimRight(p, "\n"))
	if bytes.Contains(p, []byte("reconnected to NATS")) {
		c.mu.Lock()
		c.at = time.Now()
		c.mu.Unlock()
	}
	return len(p), nil
}

func (c *reconnectClock) reconnectedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

// After an outage long enough for the retries to back off to their
// longest wait, what waited goes as soon as the connection is back, not
// when that wait ends: consumers have waited long enough already.
func TestPublishResumesOnReconnect(t *testing.T) {
	port := freePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	store := t.TempDir()
	stop := natsServer(t, port, store)

	clock := &reconnectClock{t: t}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := events.Start(ctx, events.Config{Servers: []string{url}, StorageDir: t.TempDir()}, zerolog.New(clock).Level(zerolog.InfoLevel))
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)

	before, during := renamed(twoCalls(), "-1"), renamed(twoCalls(), "-2")
	publishAll(t, p, before)
	waitPublished(t, p, uint64(len(before)), 10*time.Second)

	stop()
	// Let the connection see the server gone, so that the first try fails
	// at once instead of waiting for an ack.
	time.Sleep(200 * time.Millisecond)
	publishAll(t, p, during)
	// The tries back off 50 ms, 100 ms, ... up to 2 s: after 3.3 s the
	// publisher is in a 2 s wait that ends about 5.2 s in, while the
	// connection (1 s between attempts) is back by 4.4 s.
	time.Sleep(3300 * time.Millisecond)
	natsServer(t, port, store)

	all := append(slices.Clone(before), during...)
	waitPublished(t, p, uint64(len(all)), 10*time.Second)
	publishedAt := time.Now()
	reconnected := clock.reconnectedAt()
	if reconnected.IsZero() {
		t.Fatal("the reconnection was not logged")
	}
	if d := publishedAt.Sub(reconnected); d > 500*time.Millisecond {
		t.Errorf("events published %s after the reconnection, want at once", d.Round(time.Millisecond))
	} else {
		t.Logf("events published %s after the reconnection", d.Round(time.Millisecond))
	}
	checkMessages(t, readStream(t, url, len(all)), all)
}

// NATS goes away in the middle of a backlog's drain, with a publish
// likely in flight: when it is back, the rest follows, each event once
// and in order, the one whose ack was lost included.
func TestNATSGoesMidDrain(t *testing.T) {
	port := freePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	store := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := events.Start(ctx, events.Config{Servers: []string{url}, StorageDir: t.TempDir()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)

	var want []sent
	for i := range 1000 {
		rec, _, _ := answeredCall()
		rec.ID += "-" + strconv.Itoa(i)
		want = append(want, sent{call.EventStarted, rec})
	}
	publishAll(t, p, want)
	waitQueued(t, p, len(want), 5*time.Second)

	stop := natsServer(t, port, store)
	deadline := time.Now().Add(10 * time.Second)
	for {
		published, _, _, _ := p.Stats()
		if published >= 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d events published within 10s of NATS coming up", published)
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if published, _, _, _ := p.Stats(); published >= uint64(len(want)) {
		t.Fatalf("the backlog drained (%d events) before NATS went: nothing was in flight", published)
	}

	natsServer(t, port, store)
	waitQueued(t, p, 0, 15*time.Second)
	checkMessages(t, readStream(t, url, len(want)), want)
	if _, failed, dropped, _ := p.Stats(); failed != 0 || dropped != 0 {
		t.Errorf("failed %d dropped %d", failed, dropped)
	}
}

// NATS comes back with an empty store (its disk was lost, or it runs on
// memory) after the publisher had ensured the stream: the stream is made
// again and what waited goes there.
func TestNATSBackEmpty(t *testing.T) {
	port := freePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	stop := natsServer(t, port, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := events.Start(ctx, events.Config{Servers: []string{url}, StorageDir: t.TempDir()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)

	before, during := renamed(twoCalls(), "-1"), renamed(twoCalls(), "-2")
	publishAll(t, p, before)
	waitPublished(t, p, uint64(len(before)), 10*time.Second)
	stop()
	publishAll(t, p, during)
	waitQueued(t, p, len(during), 5*time.Second)

	natsServer(t, port, t.TempDir())
	waitPublished(t, p, uint64(len(before)+len(during)), 15*time.Second)
	checkMessages(t, readStream(t, url, len(during)), during)
}
