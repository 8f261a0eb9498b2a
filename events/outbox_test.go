package events_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/events"
)

// natsServer runs nats-server with JetStream on 127.0.0.1:port, its store
// in storeDir; stop shuts it down (idempotent).
func natsServer(t *testing.T, port int, storeDir string) (stop func()) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: storeDir, NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatal("nats-server not ready")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		})
	}
	t.Cleanup(stop)
	return stop
}

// logBuffer keeps the publisher's log lines for the test to look at, and
// passes them to t.Log too.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	t   *testing.T
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func bufferLogger(t *testing.T) (zerolog.Logger, *logBuffer) {
	lb := &logBuffer{t: t}
	return zerolog.New(lb).Level(zerolog.InfoLevel), lb
}

// renamed returns s with every record's call id suffixed, to tell apart
// the events of one run from another's.
func renamed(s []sent, suffix string) []sent {
	out := slices.Clone(s)
	for i := range out {
		out[i].rec.ID += suffix
	}
	return out
}

func publishAll(t *testing.T, p *events.Publisher, want []sent) {
	t.Helper()
	begin := time.Now()
	for _, s := range want {
		p.Publish(s.event, t0, s.rec)
	}
	if d := time.Since(begin); d > 500*time.Millisecond {
		t.Errorf("publishing %d events took %s", len(want), d)
	}
}

func waitQueued(t *testing.T, p *events.Publisher, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		published, failed, dropped, queued := p.Stats()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: published %d failed %d dropped %d queued %d; want %d queued",
				within, published, failed, dropped, queued, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closeDown closes a publisher whose NATS is down: it gives up quickly and
// what it holds stays in the outbox.
func closeDown(t *testing.T, p *events.Publisher, inOutbox int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close with NATS down: %v, want deadline exceeded", err)
	}
	if published, failed, dropped, queued := p.Stats(); published != 0 || failed != 0 || dropped != 0 || queued != inOutbox {
		t.Errorf("after close: published %d failed %d dropped %d queued %d; want %d queued", published, failed, dropped, queued, inOutbox)
	}
}

func segments(t *testing.T, storage string) []string {
	t.Helper()
	s, err := filepath.Glob(filepath.Join(storage, "outbox", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// NATS goes away and comes back (same port, same store): what was
// published meanwhile reaches the stream after what came before, in
// order, each event once.
func TestOutboxAcrossNATSRestart(t *testing.T) {
	port := freePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	store := t.TempDir()
	stop := natsServer(t, port, store)

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
	time.Sleep(300 * time.Millisecond)
	if published, failed, dropped, queued := p.Stats(); published != uint64(len(before)) || failed != 0 || dropped != 0 || queued != len(during) {
		t.Errorf("while down: published %d failed %d dropped %d queued %d", published, failed, dropped, queued)
	}

	natsServer(t, port, store)
	all := append(slices.Clone(before), during...)
	waitPublished(t, p, uint64(len(all)), 20*time.Second)
	checkMessages(t, readStream(t, url, len(all)), all)
	if _, failed, dropped, queued := p.Stats(); failed != 0 || dropped != 0 || queued != 0 {
		t.Errorf("after: failed %d dropped %d queued %d", failed, dropped, queued)
	}
}

// The edge restarts while NATS is down: the events of the first run go out
// at the next start, before the new ones.
func TestOutboxAcrossPublisherRestart(t *testing.T) {
	port := freePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	storage := t.TempDir()
	cfg := events.Config{Servers: []string{url}, StorageDir: storage}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first, second := renamed(twoCalls(), "-first"), renamed(twoCalls(), "-second")
	p, err := events.Start(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	publishAll(t, p, first)
	waitQueued(t, p, len(first), 5*time.Second)
	closeDown(t, p, len(first))
	if len(segments(t, storage)) == 0 {
		t.Fatal("no outbox segment left")
	}

	natsServer(t, port, t.TempDir())
	log, logs := bufferLogger(t)
	p, err = events.Start(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	publishAll(t, p, second)
	all := append(slices.Clone(first), second...)
	waitPublished(t, p, uint64(len(all)), 20*time.Second)
	checkMessages(t, readStream(t, url, len(all)), all)
	closePublisher(t, p)
	if !strings.Contains(logs.String(), "events of a previous run wait in the outbox") {
		t.Error("the replay was not logged")
	}
	if s := segments(t, storage); len(s) != 0 {
		t.Errorf("segments left after everything was acked: %v", s)
	}
}

// A crash tore the last record: the start drops it with a warning and the
// records before it go out.
func TestOutboxTornRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(t *testing.T, path string)
	}{
		{"truncated", func(t *testing.T, path string) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, st.Size()-7); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage appended", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write([]byte("\x20\x00\x00\x00garbage that fails the crc......")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			url := "nats://127.0.0.1:" + strconv.Itoa(port)
			storage := t.TempDir()
			cfg := events.Config{Servers: []string{url}, StorageDir: storage}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			want := twoCalls()
			p, err := events.Start(ctx, cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			publishAll(t, p, want)
			waitQueued(t, p, len(want), 5*time.Second)
			closeDown(t, p, len(want))
			segs := segments(t, storage)
			if len(segs) != 1 {
				t.Fatalf("segments %v", segs)
			}
			tc.tear(t, segs[0])

			keep := want
			if tc.name == "truncated" {
				keep = want[:len(want)-1]
			}
			natsServer(t, port, t.TempDir())
			log, logs := bufferLogger(t)
			p, err = events.Start(ctx, cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			defer closePublisher(t, p)
			waitPublished(t, p, uint64(len(keep)), 20*time.Second)
			checkMessages(t, readStream(t, url, len(keep)), keep)
			if !strings.Contains(logs.String(), "torn or corrupt record") {
				t.Error("no warning about the torn record")
			}
		})
	}
}

// Garbage in the acked offset file: the start says so and replays every
// segment; nothing is lost, JetStream drops what it already had.
func TestOutboxGarbageAckedFile(t *testing.T) {
	port := freePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	storage := t.TempDir()
	cfg := events.Config{Servers: []string{url}, StorageDir: storage}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := t.TempDir()
	stop := natsServer(t, port, store)

	// Three events acked, then NATS goes and three more wait.
	want := twoCalls()
	p, err := events.Start(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	publishAll(t, p, want[:3])
	waitPublished(t, p, 3, 10*time.Second)
	stop()
	publishAll(t, p, want[3:])
	waitQueued(t, p, 3, 5*time.Second)
	cctx, ccancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer ccancel()
	if err := p.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close: %v", err)
	}

	for _, garbage := range []string{"not an offset", "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13"} {
		if err := os.WriteFile(filepath.Join(storage, "outbox", "acked"), []byte(garbage), 0o640); err != nil {
			t.Fatal(err)
		}
		log, logs := bufferLogger(t)
		p, err = events.Start(ctx, cfg, log)
		if err != nil {
			t.Fatalf("start with garbage in acked: %v", err)
		}
		// Everything the segment holds is queued again, acked or not.
		if _, _, _, queued := p.Stats(); queued != len(want) {
			t.Errorf("queued %d after garbage, want %d", queued, len(want))
		}
		if !strings.Contains(logs.String(), "acked offset unreadable") {
			t.Error("no error about the acked offset file")
		}
		closeDown(t, p, len(want))
	}

	// NATS is back, with the three it had: the replay adds only the rest.
	natsServer(t, port, store)
	p, err = events.Start(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)
	waitPublished(t, p, uint64(len(want)), 20*time.Second)
	checkMessages(t, readStream(t, url, len(want)), want)
}

// The storage dir cannot hold the outbox (here: it is a file): events wait
// in memory, the errors are counted, and once the dir is usable the events
// move to disk, in order, and survive a restart.
func TestOutboxDiskFailing(t *testing.T) {
	port := freePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	storage := filepath.Join(t.TempDir(), "storage")
	if err := os.WriteFile(storage, []byte("not a dir"), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg := events.Config{Servers: []string{url}, StorageDir: storage}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	want := twoCalls()
	log, logs := bufferLogger(t)
	p, err := events.Start(ctx, cfg, log)
	if err != nil {
		t.Fatalf("start with a broken storage dir: %v", err)
	}
	publishAll(t, p, want[:3])
	waitQueued(t, p, 3, 5*time.Second)
	if p.OutboxErrors() == 0 {
		t.Error("no outbox error counted")
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "cannot write the events outbox") {
		t.Error("the disk failure was not logged as an error")
	}

	// The disk comes back: what memory holds moves there (within the
	// retry backoff), then the rest follows it.
	if err := os.Remove(storage); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(storage, 0o750); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "outbox writable again") {
		if time.Now().After(deadline) {
			t.Fatal("events never moved to disk")
		}
		time.Sleep(20 * time.Millisecond)
	}
	publishAll(t, p, want[3:])
	waitQueued(t, p, len(want), 5*time.Second)
	closeDown(t, p, len(want))

	natsServer(t, port, t.TempDir())
	p, err = events.Start(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)
	waitPublished(t, p, uint64(len(want)), 20*time.Second)
	checkMessages(t, readStream(t, url, len(want)), want)
}

// BenchmarkPublish measures events/s from Publish to JetStream's ack, with
// a nats-server on loopback, with the outbox and with memory only.
func BenchmarkPublish(b *testing.B) {
	for _, mode := range []string{"outbox", "memory"} {
		b.Run(mode, func(b *testing.B) {
			port := freePortB(b)
			srv, err := server.NewServer(&server.Options{
				Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: b.TempDir(), NoSigs: true, NoLog: true,
			})
			if err != nil {
				b.Fatal(err)
			}
			go srv.Start()
			defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
			if !srv.ReadyForConnections(10 * time.Second) {
				b.Fatal("nats-server not ready")
			}
			cfg := events.Config{Servers: []string{"nats://127.0.0.1:" + strconv.Itoa(port)}}
			if mode == "outbox" {
				cfg.StorageDir = b.TempDir()
			}
			p, err := events.Start(context.Background(), cfg, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			_, _, rec := answeredCall()
			b.ResetTimer()
			for i := range b.N {
				p.Publish(call.EventCompleted, t0, rec)
				if i%50000 == 49999 {
					// Stay under the queue's bound.
					for {
						if _, _, _, q := p.Stats(); q < 10000 {
							break
						}
						time.Sleep(time.Millisecond)
					}
				}
			}
			for {
				published, failed, dropped, _ := p.Stats()
				if failed+dropped > 0 {
					b.Fatalf("failed %d dropped %d", failed, dropped)
				}
				if published == uint64(b.N) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func freePortB(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
