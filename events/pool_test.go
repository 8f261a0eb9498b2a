package events_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/events"
)

func TestMarshalPoolPressure(t *testing.T) {
	for _, tc := range []struct {
		name string
		pp   events.PoolPressure
		want string
	}{
		{
			"crossed",
			events.PoolPressure{Pool: "website", At: t0, Held: 16, Numbers: 20, Threshold: 0.75, Overflows: 3},
			`{"event":"pool.pressure","id":"01JID","at":"2026-11-23T09:00:00.123Z","pool":"website","held":16,"numbers":20,"used":0.8,"threshold":0.75,"overflow_total":3}`,
		},
		{
			// A share that does not end is rounded; zero overflows are a count, not unknown.
			"rounded",
			events.PoolPressure{Pool: `ads "q4"`, At: t0.In(time.FixedZone("X", 3600)), Held: 2, Numbers: 3, Threshold: 0.75},
			`{"event":"pool.pressure","id":"01JID","at":"2026-11-23T09:00:00.123Z","pool":"ads \"q4\"","held":2,"numbers":3,"used":0.6667,"threshold":0.75,"overflow_total":0}`,
		},
		{
			// What is not known is left out: no share without numbers, no threshold unset.
			"unknown",
			events.PoolPressure{Pool: "empty", At: t0},
			`{"event":"pool.pressure","id":"01JID","at":"2026-11-23T09:00:00.123Z","pool":"empty","held":0,"numbers":0,"overflow_total":0}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := events.MarshalPoolPressure("01JID", tc.pp)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
			decode(t, b)
		})
	}
}

// A pool.pressure event reaches its subject and the stream, with its id
// in the header.
func TestPublishPoolPressure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := events.Start(ctx, events.Config{
		Embedded: true, EmbeddedListen: "127.0.0.1:0", StorageDir: t.TempDir(), SubjectPrefix: "acme",
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)
	nc, err := nats.Connect(p.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("acme.pool.pressure")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	p.PublishPoolPressure(events.PoolPressure{Pool: "website", At: t0, Held: 15, Numbers: 20, Threshold: 0.75, Overflows: 7})
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(msg.Data, &body); err != nil {
		t.Fatalf("%v: %s", err, msg.Data)
	}
	id, _ := body["id"].(string)
	if len(id) != 26 || msg.Header.Get(jetstream.MsgIDHeader) != id {
		t.Errorf("id %q, Nats-Msg-Id %q", id, msg.Header.Get(jetstream.MsgIDHeader))
	}
	for k, want := range map[string]any{
		"event": "pool.pressure", "at": "2026-11-23T09:00:00.123Z", "pool": "website",
		"held": 15.0, "numbers": 20.0, "used": 0.75, "threshold": 0.75, "overflow_total": 7.0,
	} {
		if body[k] != want {
			t.Errorf("%s: %v, want %v", k, body[k], want)
		}
	}
	waitPublished(t, p, 1, 10*time.Second)
	if m := readStream(t, p.ClientURL(), 1)[0]; m.Subject() != "acme.pool.pressure" || string(m.Data()) != string(msg.Data) {
		t.Errorf("stream has %s %s", m.Subject(), m.Data())
	}
}

// While NATS is down a pool.pressure event waits in the outbox with the
// calls' events, and leaves in its place among them when NATS is back.
func TestPoolPressureWaitsForNATS(t *testing.T) {
	port := freePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := events.Start(ctx, events.Config{Servers: []string{url}, StorageDir: t.TempDir()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)
	started, _, completed := answeredCall()
	p.Publish(call.EventStarted, t0, started)
	p.PublishPoolPressure(events.PoolPressure{Pool: "website", Held: 3, Numbers: 4, Threshold: 0.75})
	p.Publish(call.EventCompleted, t0, completed)
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flush to the outbox: %v", err)
	}
	if published, _, dropped, queued := p.Stats(); published != 0 || dropped != 0 || queued != 3 {
		t.Errorf("while down: published %d dropped %d queued %d", published, dropped, queued)
	}

	natsServer(t, port, t.TempDir())
	waitPublished(t, p, 3, 15*time.Second)
	msgs := readStream(t, url, 3)
	for i, want := range []string{"callsign.call.started", "callsign.pool.pressure", "callsign.call.completed"} {
		if msgs[i].Subject() != want {
			t.Errorf("message %d: %s, want %s", i, msgs[i].Subject(), want)
		}
	}
	var body map[string]any
	if err := json.Unmarshal(msgs[1].Data(), &body); err != nil || body["pool"] != "website" || body["at"] == nil {
		t.Errorf("pool.pressure %s (%v)", msgs[1].Data(), err)
	}
}
