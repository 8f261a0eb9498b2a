// Package events publishes the events of calls and of DNI pools to NATS
// JetStream, as the contract's "Events on NATS" describes: one JSON
// object per event on <prefix>.<event>, kept in the CALLSIGN stream,
// deduplicated by the Nats-Msg-Id header.
package events

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/callsign/callsign/call"
)

// StreamName is the JetStream stream that keeps every event.
const StreamName = "CALLSIGN"

const (
	// queueSize bounds what a NATS outage can hold in memory: 64k events
	// is hours of a busy edge's calls at a few hundred bytes each.
	queueSize = 1 << 16
	// duplicateWindow is how long JetStream remembers a Nats-Msg-Id; a
	// retry after a lost ack lands well within it.
	duplicateWindow = 2 * time.Minute
	defaultPrefix   = "callsign"
	defaultListen   = "127.0.0.1:4222"
	publishTimeout  = 5 * time.Second
	minBackoff      = 50 * time.Millisecond
	maxBackoff      = 2 * time.Second
)

// Config says where events go.
type Config struct {
	// Embedded runs a NATS server with JetStream inside the edge.
	Embedded bool
	// EmbeddedListen is host:port for the embedded server; port 0 picks a
	// free one (see ClientURL).
	EmbeddedListen string
	// Servers are the NATS URLs to use when not Embedded.
	Servers []string
	// SubjectPrefix is prepended to event names; "callsign" when empty.
	SubjectPrefix string
	// StorageDir holds the embedded server's JetStream store, in nats/,
	// and the outbox of events not yet acked, in outbox/. Without it
	// (external Servers only) events wait in memory and a restart loses
	// them.
	StorageDir string
}

// Publisher is a call.Publisher that sends events to JetStream. Publish
// never blocks: events go through a bounded in-memory queue to one
// goroutine that appends them to the outbox on disk, and another publishes
// the outbox, in order, retrying while NATS is unreachable. What is not
// acked at Close stays in the outbox for the next Start.
type Publisher struct {
	log    zerolog.Logger
	prefix string
	url    string
	srv    *server.Server // nil unless embedded
	nc     *nats.Conn
	js     jetstream.JetStream

	// mu orders Publish against Close: after Close has taken it, nothing
	// more enters the queue, so the worker's drain sees every event.
	mu     sync.RWMutex
	closed bool
	queue  chan *message
	outbox *outbox

	stop    chan struct{}      // closed by Close: drain the queue and exit
	abort   context.CancelFunc // cancels workCtx: give up on the rest
	workCtx context.Context
	wdone   chan struct{} // closed when the writer has exited
	done    chan struct{} // closed when the publishing goroutine has exited
	// connected cuts short the backoff between tries to publish when the
	// connection comes up: what waited through an outage goes at once,
	// not up to maxBackoff after NATS is back.
	connected chan struct{}

	published atomic.Uint64
	failed    atomic.Uint64
	dropped   atomic.Uint64
}

type message struct {
	subject string
	id      string
	data    []byte

	// Where the outbox has it: a segment and the offset just past the
	// record, or memory when the disk could not take it.
	seg     uint64
	end     int64
	fromMem bool

	// synced, if set, makes this no event but a Flush waiting for what
	// was queued before it to reach the disk.
	synced chan error
}

var _ call.Publisher = (*Publisher)(nil)

// Start connects the publisher, starting the embedded server first when
// cfg.Embedded. ctx bounds only the start, not the publisher's life: that
// ends with Close.
//
// With an embedded server, any failure (server, connection, stream) is
// returned. With external Servers, NATS being down does not fail Start:
// the connection keeps retrying in the background forever, the CALLSIGN
// stream is ensured once it is up, and events queue meanwhile. Only an
// invalid configuration is an error then.
func Start(ctx context.Context, cfg Config, log zerolog.Logger) (*Publisher, error) {
	prefix := cfg.SubjectPrefix
	if prefix == "" {
		prefix = defaultPrefix
	}
	if strings.ContainsAny(prefix, " \t\r\n*>") || strings.HasPrefix(prefix, ".") || strings.HasSuffix(prefix, ".") {
		return nil, fmt.Errorf("events: invalid subject prefix %q", prefix)
	}
	p := &Publisher{
		log:    log.With().Str("component", "events").Logger(),
		prefix: prefix,
		queue:  make(chan *message, queueSize),
		stop:   make(chan struct{}),
		wdone:  make(chan struct{}),
		done:   make(chan struct{}),

		connected: make(chan struct{}, 1),
	}

	outboxDir := ""
	if cfg.StorageDir != "" {
		outboxDir = filepath.Join(cfg.StorageDir, "outbox")
	} else if !cfg.Embedded {
		p.log.Warn().Msg("no storage dir: events wait in memory only, and a restart loses those not yet published")
	}
	p.outbox = openOutbox(outboxDir, p.log)
	if n := p.outbox.queued(); n > 0 {
		p.log.Info().Int("events", n).Str("dir", outboxDir).Msg("events of a previous run wait in the outbox; they go first")
	}

	var urls string
	if cfg.Embedded {
		srv, err := startServer(ctx, cfg, p.log)
		if err != nil {
			p.outbox.close(true)
			return nil, err
		}
		p.srv = srv
		p.url = srv.ClientURL()
		urls = p.url
	} else {
		if len(cfg.Servers) == 0 {
			return nil, errors.New("events: no NATS servers and not embedded")
		}
		p.url = cfg.Servers[0]
		urls = strings.Join(cfg.Servers, ",")
	}

	plog := p.log
	nc, err := nats.Connect(urls,
		nats.Name("callsign"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// The queue is our buffer; nats.go's reconnect buffer would only
		// hold copies of requests whose acks we have already given up on.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				plog.Warn().Err(err).Msg("disconnected from NATS")
			}
		}),
		nats.ConnectHandler(func(c *nats.Conn) {
			plog.Info().Str("url", c.ConnectedUrlRedacted()).Msg("connected to NATS")
			p.signalConnected()
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			plog.Info().Str("url", c.ConnectedUrlRedacted()).Msg("reconnected to NATS")
			p.signalConnected()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			plog.Error().Err(err).Msg("NATS error")
		}),
	)
	if err != nil {
		p.shutdownServer()
		p.outbox.close(true)
		return nil, fmt.Errorf("events: connect to NATS: %w", err)
	}
	p.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		p.shutdownServer()
		p.outbox.close(true)
		return nil, fmt.Errorf("events: jetstream: %w", err)
	}
	p.js = js

	if cfg.Embedded && !nc.IsConnected() {
		nc.Close()
		p.shutdownServer()
		p.outbox.close(true)
		return nil, fmt.Errorf("events: cannot connect to the embedded NATS at %s", p.url)
	}
	streamReady := false
	if nc.IsConnected() {
		if err := p.ensureStream(ctx); err != nil {
			if cfg.Embedded {
				nc.Close()
				p.shutdownServer()
				p.outbox.close(true)
				return nil, err
			}
			p.log.Error().Err(err).Msg("ensuring the events stream; retrying in the background")
		} else {
			streamReady = true
		}
	} else {
		p.log.Warn().Str("servers", urls).Msg("NATS unreachable; events queue until it is up")
	}

	p.workCtx, p.abort = context.WithCancel(context.Background())
	go func() {
		defer close(p.wdone)
		runWriter(p.queue, p.stop, p.outbox)
	}()
	go p.run(streamReady)
	return p, nil
}

func startServer(ctx context.Context, cfg Config, log zerolog.Logger) (*server.Server, error) {
	listen := cfg.EmbeddedListen
	if listen == "" {
		listen = defaultListen
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("events: embedded listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("events: embedded listen %q: bad port", listen)
	}
	if port == 0 {
		// For nats-server 0 means its default 4222; -1 means any free port.
		port = server.RANDOM_PORT
	}
	if cfg.StorageDir == "" {
		return nil, errors.New("events: embedded NATS needs a storage dir")
	}
	opts := &server.Options{
		ServerName: "callsign",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.StorageDir, "nats"),
		// The edge owns the process's signals.
		NoSigs: true,
		NoLog:  true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("events: embedded NATS: %w", err)
	}
	srv.SetLoggerV2(serverLogger{log.With().Str("component", "nats-server").Logger()}, false, false, false)
	go srv.Start()

	wait := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("events: embedded NATS not ready on %s within %s", listen, wait)
	}
	return srv, nil
}

// ensureStream creates the CALLSIGN stream, or points an existing one at
// our subjects. Settings an operator gave an existing stream (limits,
// replicas) are kept.
func (p *Publisher) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	subjects := []string{p.prefix + ".>"}
	s, err := p.js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = p.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:       StreamName,
			Subjects:   subjects,
			Storage:    jetstream.FileStorage,
			Retention:  jetstream.LimitsPolicy,
			Duplicates: duplicateWindow,
		})
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			if err != nil {
				return fmt.Errorf("events: create stream %s: %w", StreamName, err)
			}
			return nil
		}
		// Another edge created it meanwhile; check it as an existing one.
		s, err = p.js.Stream(ctx, StreamName)
	}
	if err != nil {
		return fmt.Errorf("events: stream %s: %w", StreamName, err)
	}
	sc := s.CachedInfo().Config
	if slices.Equal(sc.Subjects, subjects) && sc.Duplicates > 0 {
		return nil
	}
	sc.Subjects = subjects
	if sc.Duplicates == 0 {
		sc.Duplicates = duplicateWindow
	}
	if _, err := p.js.UpdateStream(ctx, sc); err != nil {
		return fmt.Errorf("events: update stream %s: %w", StreamName, err)
	}
	p.log.Info().Strs("subjects", subjects).Msg("updated the events stream's subjects")
	return nil
}

// Publish queues an event; it never blocks. A full queue drops the event,
// counted and logged.
func (p *Publisher) Publish(event string, at time.Time, rec call.Record) {
	if at.IsZero() {
		at = time.Now()
	}
	p.PublishWithID(newID(at), event, at, rec)
}

// newID is a ULID of at, so ids sort as the events happened.
func newID(at time.Time) string {
	id, err := ulid.New(ulid.Timestamp(at), rand.Reader)
	if err != nil {
		// Only a time beyond year 10889 gets here.
		id, _ = ulid.New(ulid.Now(), rand.Reader)
	}
	return id.String()
}

// PublishWithID is Publish with the event's id chosen by the caller: an
// event published again with the same id (after a crash) is dropped by
// the stream as a duplicate within its window.
func (p *Publisher) PublishWithID(ids, event string, at time.Time, rec call.Record) {
	if at.IsZero() {
		at = time.Now()
	}
	data, err := MarshalEvent(event, ids, at, rec)
	if err != nil {
		p.dropped.Add(1)
		p.log.Error().Err(err).Str("event", event).Str("call_id", rec.ID).Msg("event not encodable; dropped")
		return
	}
	if why := p.enqueue(&message{subject: p.prefix + "." + event, id: ids, data: data}); why != "" {
		p.log.Error().Str("event", event).Str("call_id", rec.ID).Str("id", ids).Msg(why)
	}
}

// enqueue hands m to the writer without blocking. When it cannot, m is
// dropped and counted, and the reason comes back for the caller to log
// with what it knows of the event.
func (p *Publisher) enqueue(m *message) (dropped string) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.dropped.Add(1)
		return "event after close; dropped"
	}
	select {
	case p.queue <- m:
		return ""
	default:
		p.dropped.Add(1)
		return "events queue full; event dropped"
	}
}

// Flush returns once every event published before it is in the outbox
// on disk, or with an error when the outbox holds them in memory only (no
// storage dir, a failing disk), the publisher is closed, or ctx ends.
func (p *Publisher) Flush(ctx context.Context) error {
	m := &message{synced: make(chan error, 1)}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return errors.New("events: publisher closed")
	}
	select {
	case p.queue <- m:
	case <-ctx.Done():
		p.mu.RUnlock()
		return ctx.Err()
	}
	p.mu.RUnlock()
	select {
	case err := <-m.synced:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the one goroutine that publishes, reading the outbox in order,
// so events leave in the order they were queued. It exits when the writer
// has put everything of a closed Publisher into the outbox and all of it
// is acked, or when Close gives up.
func (p *Publisher) run(streamReady bool) {
	defer close(p.done)
	backoff := minBackoff
	for {
		m, err := p.outbox.next()
		if err != nil {
			p.log.Error().Err(err).Msg("reading the events outbox; retrying")
			if !p.sleep(backoff) {
				return
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = minBackoff
		if m == nil {
			select {
			case <-p.wdone:
				// The writer has exited: a last look for what it wrote.
				if m, err = p.outbox.next(); m == nil && err == nil {
					return
				}
				if err != nil {
					continue
				}
			case <-p.outbox.kick:
				continue
			case <-p.workCtx.Done():
				return
			}
		}
		ok, rejected := p.send(m, &streamReady)
		if !ok {
			// m stays where it is: on disk for the next start, or in
			// memory for Close to count as lost.
			return
		}
		p.outbox.done(m)
		if rejected {
			p.failed.Add(1)
		} else {
			p.published.Add(1)
		}
	}
}

func (p *Publisher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.workCtx.Done():
		return false
	}
}

// send publishes m until JetStream acks it, backing off while it cannot;
// false means the publisher was closed with m still unsent. It counts
// nothing: m leaves the outbox first, so that Stats never shows an event
// both published and queued.
func (p *Publisher) send(m *message, streamReady *bool) (ok, rejected bool) {
	backoff := minBackoff
	logged := false
	for {
		err := p.workCtx.Err()
		if err != nil {
			return false, false
		}
		if !*streamReady {
			err = p.ensureStream(p.workCtx)
			*streamReady = err == nil
		}
		if err == nil {
			err = p.publish(m)
			if err == nil {
				if logged {
					p.log.Info().Str("id", m.id).Msg("publishing events again")
				}
				return true, false
			}
			if errors.Is(err, nats.ErrMaxPayload) {
				// Retrying cannot help, and would hold up every later event.
				p.log.Error().Err(err).Str("subject", m.subject).Str("id", m.id).Msg("event rejected by NATS; dropped")
				return true, true
			}
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				// Someone deleted the stream, or the server came back empty.
				*streamReady = false
			}
		}
		if !logged {
			p.log.Warn().Err(err).Str("id", m.id).Int("queued", p.queued()).Msg("cannot publish events; retrying")
			logged = true
		}
		connected, ok := p.waitRetry(backoff)
		if !ok {
			return false, false
		}
		if connected {
			backoff = minBackoff
		} else {
			backoff = min(backoff*2, maxBackoff)
		}
	}
}

func (p *Publisher) signalConnected() {
	select {
	case p.connected <- struct{}{}:
	default:
	}
}

// waitRetry waits d, or less if the connection comes up meanwhile
// (connected); ok is false when the publisher is closed.
func (p *Publisher) waitRetry(d time.Duration) (connected, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false, true
	case <-p.connected:
		return true, true
	case <-p.workCtx.Done():
		return false, false
	}
}

func (p *Publisher) publish(m *message) error {
	ctx, cancel := context.WithTimeout(p.workCtx, publishTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: m.subject, Data: m.data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, m.id)
	_, err := p.js.PublishMsg(ctx, msg)
	return err
}

// ClientURL is the URL of the embedded server, or the first of Servers.
func (p *Publisher) ClientURL() string { return p.url }

// Stats are the counters for /metrics: events acked by JetStream, events
// given up on (rejected by NATS, found corrupt in the outbox, or held in
// memory, the disk failing, when Close ran out of time), events dropped
// because the queue (or memory, the disk failing) was full or the
// publisher closed, and events waiting now, in the queue or the outbox.
func (p *Publisher) Stats() (published, failed, dropped uint64, queued int) {
	return p.published.Load(), p.failed.Load() + p.outbox.failed.Load(), p.dropped.Load() + p.outbox.dropped.Load(), p.queued()
}

// OutboxErrors counts the outbox's failed disk operations (full, failing
// or missing storage); while they fail, events wait in memory.
func (p *Publisher) OutboxErrors() uint64 { return p.outbox.errors.Load() }

func (p *Publisher) queued() int { return len(p.queue) + p.outbox.queued() }

// Close publishes what is queued, for as long as ctx allows, then closes
// the connection and shuts the embedded server down. It returns ctx's
// error if events were left unpublished: those in the outbox go at the
// next Start on the same StorageDir.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	close(p.stop)
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		err = ctx.Err()
		p.abort()
		<-p.done
	}
	p.abort()
	writerDone := true
	select {
	case <-p.wdone:
	default:
		// Still putting the queue on disk: worth a moment, as what it
		// writes survives; a hung disk is not worth hanging the exit.
		t := time.NewTimer(publishTimeout)
		select {
		case <-p.wdone:
		case <-t.C:
			writerDone = false
			p.log.Error().Msg("the events outbox writer is stuck; leaving it")
		}
		t.Stop()
	}
	lost := p.outbox.dropMem()
	if !writerDone {
		lost += len(p.queue)
	}
	if lost > 0 {
		p.failed.Add(uint64(lost))
		p.log.Error().Int("lost", lost).Msg("closed before NATS took every event held in memory; they are lost")
	}
	if n := p.outbox.diskQueued.Load(); n > 0 {
		p.log.Warn().Int64("events", n).Str("dir", p.outbox.dir).Msg("events not yet published stay in the outbox for the next start")
	}
	p.outbox.close(writerDone)
	p.nc.Close()
	p.shutdownServer()
	return err
}

func (p *Publisher) shutdownServer() {
	if p.srv != nil {
		p.srv.Shutdown()
		p.srv.WaitForShutdown()
	}
}

// serverLogger passes the embedded server's warnings and errors to
// zerolog; its notices are start-up chatter the edge does not need.
type serverLogger struct{ log zerolog.Logger }

func (l serverLogger) Noticef(string, ...any) {}
func (l serverLogger) Debugf(string, ...any)  {}
func (l serverLogger) Tracef(string, ...any)  {}
func (l serverLogger) Warnf(format string, v ...any) {
	l.log.Warn().Msgf(format, v...)
}
func (l serverLogger) Errorf(format string, v ...any) {
	l.log.Error().Msgf(format, v...)
}
func (l serverLogger) Fatalf(format string, v ...any) {
	l.log.Error().Msgf(format, v...)
}
