package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/events"
)

type sent struct {
	event string
	rec   call.Record
}

// twoCalls is an answered and a missed call, every event of each.
func twoCalls() []sent {
	as, aa, ac := answeredCall()
	ms, mm, mc := missedCall()
	return []sent{
		{call.EventStarted, as},
		{call.EventStarted, ms},
		{call.EventAnswered, aa},
		{call.EventMissed, mm},
		{call.EventCompleted, mc},
		{call.EventCompleted, ac},
	}
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

func closePublisher(t *testing.T, p *events.Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
}

func waitPublished(t *testing.T, p *events.Publisher, n uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		published, failed, dropped, queued := p.Stats()
		if published >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: published %d failed %d dropped %d queued %d; want %d published",
				within, published, failed, dropped, queued, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readStream reads n messages of the CALLSIGN stream from its start.
func readStream(t *testing.T, url string, n int) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for len(msgs) < n && ctx.Err() == nil {
		batch, err := cons.Fetch(n-len(msgs), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) != n {
		t.Fatalf("read %d messages, want %d", len(msgs), n)
	}
	// Nothing more than what was sent.
	if extra, err := cons.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond)); err == nil {
		for m := range extra.Messages() {
			t.Errorf("unexpected message %s: %s", m.Subject(), m.Data())
		}
	}
	return msgs
}

// checkMessages asserts that msgs are want, in order, with the id in the
// header and the body.
func checkMessages(t *testing.T, msgs []jetstream.Msg, want []sent) []string {
	t.Helper()
	var ids []string
	seen := map[string]bool{}
	for i, m := range msgs {
		w := want[i]
		if m.Subject() != "callsign."+w.event {
			t.Errorf("message %d subject %q, want %q", i, m.Subject(), "callsign."+w.event)
		}
		var body map[string]any
		if err := json.Unmarshal(m.Data(), &body); err != nil {
			t.Fatalf("message %d: %v: %s", i, err, m.Data())
		}
		id, _ := body["id"].(string)
		if len(id) != 26 || seen[id] {
			t.Errorf("message %d: bad or repeated id %q", i, id)
		}
		seen[id] = true
		if h := m.Headers().Get(jetstream.MsgIDHeader); h != id {
			t.Errorf("message %d: Nats-Msg-Id %q, id field %q", i, h, id)
		}
		if body["event"] != w.event || body["call_id"] != w.rec.ID {
			t.Errorf("message %d: event %v call_id %v, want %s %s", i, body["event"], body["call_id"], w.event, w.rec.ID)
		}
		if body["at"] != "2026-11-23T09:00:00.123Z" {
			t.Errorf("message %d: at %v", i, body["at"])
		}
		_, hasTalk := body["talk_ms"]
		if hasTalk != (w.event == call.EventMissed || w.event == call.EventCompleted) {
			t.Errorf("message %d (%s): talk_ms present %v", i, w.event, hasTalk)
		}
		ids = append(ids, id)
	}
	return ids
}

func TestEmbeddedPublishAndDedupe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := events.Start(ctx, events.Config{
		Embedded:       true,
		EmbeddedListen: "127.0.0.1:0",
		StorageDir:     t.TempDir(),
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)
	if u := p.ClientURL(); u == "" || u == "nats://127.0.0.1:0" || u == "nats://127.0.0.1:4222" {
		t.Fatalf("ClientURL %q", u)
	}

	want := twoCalls()
	for _, s := range want {
		p.Publish(s.event, t0, s.rec)
	}
	waitPublished(t, p, uint64(len(want)), 10*time.Second)
	if published, failed, dropped, queued := p.Stats(); published != 6 || failed != 0 || dropped != 0 || queued != 0 {
		t.Errorf("stats %d %d %d %d", published, failed, dropped, queued)
	}
	ids := checkMessages(t, readStream(t, p.ClientURL(), len(want)), want)

	nc, err := nats.Connect(p.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info := stream.CachedInfo()
	if len(info.Config.Subjects) != 1 || info.Config.Subjects[0] != "callsign.>" || info.Config.Duplicates <= 0 {
		t.Errorf("stream config %+v", info.Config)
	}

	// A retry of an event already stored (its ack lost) is dropped by id.
	ack, err := js.Publish(ctx, "callsign.call.started", []byte(`{}`), jetstream.WithMsgID(ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Duplicate {
		t.Errorf("republish of %s not seen as duplicate", ids[0])
	}
	for i := range 2 {
		ack, err := js.Publish(ctx, "callsign.test.dup", []byte(`{"n":1}`), jetstream.WithMsgID("dup-1"))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Duplicate != (i == 1) {
			t.Errorf("publish %d: duplicate %v", i, ack.Duplicate)
		}
	}
	info, err = stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(want))+1 {
		t.Errorf("stream has %d messages, want %d", info.State.Msgs, len(want)+1)
	}
}

func TestStreamSubjectsUpdated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	p, err := events.Start(ctx, events.Config{Embedded: true, EmbeddedListen: "127.0.0.1:0", StorageDir: dir, SubjectPrefix: "old"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	closePublisher(t, p)

	// The same store under another prefix: the stream follows it.
	p, err = events.Start(ctx, events.Config{Embedded: true, EmbeddedListen: "127.0.0.1:0", StorageDir: dir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)
	p.Publish(call.EventStarted, t0, call.Record{ID: "c1"})
	waitPublished(t, p, 1, 10*time.Second)
	msgs := readStream(t, p.ClientURL(), 1)
	if msgs[0].Subject() != "callsign.call.started" {
		t.Errorf("subject %q", msgs[0].Subject())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestPublishQueuesWhileNATSDown(t *testing.T) {
	port := freePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	begin := time.Now()
	p, err := events.Start(ctx, events.Config{Servers: []string{url}}, testLogger(t))
	if err != nil {
		t.Fatalf("start with NATS down: %v", err)
	}
	defer closePublisher(t, p)
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("start took %s with NATS down", d)
	}
	if p.ClientURL() != url {
		t.Errorf("ClientURL %q", p.ClientURL())
	}

	want := twoCalls()
	begin = time.Now()
	for _, s := range want {
		p.Publish(s.event, t0, s.rec)
	}
	if d := time.Since(begin); d > 500*time.Millisecond {
		t.Errorf("publishing %d events took %s with NATS down", len(want), d)
	}
	time.Sleep(300 * time.Millisecond)
	if published, failed, dropped, queued := p.Stats(); published != 0 || failed != 0 || dropped != 0 || queued != len(want) {
		t.Errorf("while down: published %d failed %d dropped %d queued %d", published, failed, dropped, queued)
	}

	// NATS appears on that port, with an empty store: the publisher
	// reconnects, creates the stream and sends what waited, in order.
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	waitPublished(t, p, uint64(len(want)), 15*time.Second)
	checkMessages(t, readStream(t, url, len(want)), want)
	if _, failed, dropped, queued := p.Stats(); failed != 0 || dropped != 0 || queued != 0 {
		t.Errorf("after: failed %d dropped %d queued %d", failed, dropped, queued)
	}
}

// Without a storage dir events wait in memory only, bounded.
func TestFullQueueDropsAndCloseIsBounded(t *testing.T) {
	url := "nats://127.0.0.1:" + strconv.Itoa(freePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := events.Start(ctx, events.Config{Servers: []string{url}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	const extra = 10
	_, _, rec := answeredCall()
	begin := time.Now()
	var total int
	var held uint64
	for {
		p.Publish(call.EventCompleted, t0, rec)
		total++
		// The writer drops a whole batch at once when memory is full.
		if _, _, dropped, _ := p.Stats(); dropped >= extra {
			held = uint64(total) - dropped
			break
		}
		if total > 1<<20 {
			t.Fatal("queue never filled")
		}
	}
	t.Logf("%d events in %s, memory holds %d", total, time.Since(begin), held)

	closeCtx, closeCancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer closeCancel()
	begin = time.Now()
	if err := p.Close(closeCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close with NATS down: %v, want deadline exceeded", err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("close took %s", d)
	}
	published, failed, dropped, queued := p.Stats()
	// Every event is accounted for: held in memory (lost at close) or dropped.
	if published != 0 || failed < held-uint64(extra) || failed+dropped != uint64(total) || queued != 0 {
		t.Errorf("stats: published %d failed %d dropped %d queued %d (total %d)", published, failed, dropped, queued, total)
	}
	p.Publish(call.EventStarted, t0, rec) // after close: dropped, no panic
	if _, _, d, _ := p.Stats(); d != dropped+1 {
		t.Errorf("publish after close: dropped %d, want %d", d, dropped+1)
	}
}
