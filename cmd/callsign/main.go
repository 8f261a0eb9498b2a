// Command callsign runs the call-tracking edge.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"github.com/callsign/callsign/calllog"
	"github.com/callsign/callsign/dni"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/events"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/ops"
	"github.com/callsign/callsign/routing"
	"github.com/callsign/callsign/sip"
	"github.com/callsign/callsign/softphone"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `callsign: a call-tracking telephony edge

Usage:
  callsign serve -c FILE     run the edge in the foreground
  callsign check -c FILE     validate a configuration without starting anything
  callsign version           print the version

Run 'callsign COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "version", "-v", "--version":
		fmt.Fprintln(stdout, "callsign", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "callsign: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func configFlag(name string, args []string, stderr io.Writer) (*flag.FlagSet, *string, *string, *time.Duration, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "callsign.yaml", "configuration `FILE`")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	drain := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long calls in progress may go on")
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, nil, err
	}
	return fs, path, level, drain, nil
}

func check(args []string, stdout, stderr io.Writer) int {
	_, path, _, _, err := configFlag("check", args, stderr)
	if err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, cfg.Summary())
	return 0
}

// newLogger logs JSON lines, or human-readable ones on a terminal.
func newLogger(w *os.File, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("unknown log level %q", level)
	}
	var out io.Writer = w
	if fi, err := w.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

func serve(args []string, stderr io.Writer) int {
	_, path, level, drainTimeout, err := configFlag("serve", args, stderr)
	if err != nil {
		return 2
	}
	log, err := newLogger(os.Stderr, *level)
	if err != nil {
		fmt.Fprintln(stderr, "callsign:", err)
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := serveConfig(cfg, *path, *drainTimeout, log); err != nil {
		log.Error().Err(err).Msg("callsign stopped")
		return 1
	}
	return 0
}

func serveConfig(cfg *config.Config, path string, drainTimeout time.Duration, log zerolog.Logger) error {
	// sipgo logs through log/slog; its lines join ours.
	sipmsg.SetDefaultLogger(slog.New(sip.NewSlogHandler(log.With().Str("component", "sipgo").Logger())))

	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	if err := os.MkdirAll(cfg.Storage.Dir, 0o750); err != nil {
		return fmt.Errorf("storage dir: %w", err)
	}
	startCtx, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	pub, err := events.Start(startCtx, events.Config{
		Embedded:       cfg.Events.Embedded,
		EmbeddedListen: cfg.Events.EmbeddedListen,
		Servers:        cfg.Events.Servers,
		SubjectPrefix:  cfg.Events.SubjectPrefix,
		StorageDir:     cfg.Storage.Dir,
	}, log)
	cancelStart()
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pub.Close(cctx); err != nil {
			log.Warn().Err(err).Msg("events not all published before exit")
		}
	}()

	ports, err := media.NewPorts(cfg.Media.Address, cfg.Media.PortMin, cfg.Media.PortMax)
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	meter := media.NewMeter()
	router := routing.NewRouter(routing.NewTable(cfg), call.SystemClock{})
	recordings, err := openRecordings(cfg.Storage.Dir, pub, log)
	if err != nil {
		return fmt.Errorf("recordings: %w", err)
	}
	sweepRecordings(ctx, recordings, router, pub, log)
	messages, err := openVoicemail(cfg.Storage.Dir, pub, log)
	if err != nil {
		return fmt.Errorf("voicemail: %w", err)
	}
	sweepVoicemail(ctx, messages, router, log)
	// The admin token may change on reload, like the rest of the config.
	var adminToken atomic.Pointer[string]
	adminToken.Store(&cfg.HTTP.AdminToken)
	outcomes := ops.NewOutcomes()
	callLog, err := calllog.Open(cfg.Storage.Dir, log.With().Str("component", "calllog").Logger())
	if err != nil {
		return err
	}
	defer callLog.Close()
	// The callback runs without the pools' lock, so it may read the
	// overflow count; it may run before NewPools returns, hence the check.
	var pools *routing.Pools
	pools = routing.NewPools(poolList(cfg), call.SystemClock{}, func(pool string, held, total int) {
		log.Warn().Str("pool", pool).Int("held", held).Int("numbers", total).
			Msg("pool pressure: over 75% of the pool's numbers are held; new visitors may soon get the overflow number")
		var overflows uint64
		if pools != nil {
			overflows = pools.Overflows(pool)
		}
		pub.PublishPoolPressure(events.PoolPressure{Pool: pool, Held: held, Numbers: total,
			Threshold: routing.PressureThreshold, Overflows: overflows})
	})
	restoreBindings(callLog, pools, log)
	router.SetPools(pools)
	go keepBindings(ctx, callLog, pools, router, log)
	defer func() { saveBindings(callLog, pools, router.Table().PoolNames(), log) }()
	// Every call's end is counted and logged, those a killed edge left
	// up included.
	feed := ops.NewFeed()
	// The HTTP server's shutdown would wait on open live streams.
	go func() { <-ctx.Done(); feed.Close() }()
	ended := func(rec *call.Record) {
		outcomes.Count(rec)
		callLog.Add(calllog.EntryOf(rec))
		feed.Publish(rec)
	}
	journal, recovered, err := openJournal(cfg.Storage.Dir, pub, ended, log)
	if err != nil {
		return err
	}
	// Closed once the drain is over: what it leaves is the calls the
	// drain ran out of time for, ended at the next start.
	defer journal.Close()
	phones := softphone.New(softphone.Options{
		Config: cfg, Ports: ports, Address: candidateAddr(cfg), Log: log,
	})
	defer phones.Close()
	router.SetPresence(phones.Available)
	sipCert := &certificate{name: "sip tls", files: func(c *config.Config) *config.TLSFiles { return c.SIP.TLS }}
	sipTLS, err := sipCert.config(cfg)
	if err != nil {
		return err
	}
	guard := sip.DefaultGuard()
	if len(cfg.SIP.DigestAlgorithms) > 0 {
		guard.DigestAlgorithms = cfg.SIP.DigestAlgorithms
	}
	edge, err := sip.New(sip.Options{
		TLS:       sipTLS,
		Guard:     guard,
		Config:    cfg,
		Router:    router,
		Ports:     ports,
		Meter:     meter,
		Publisher: journal,
		Clock:     call.SystemClock{},
		Log:       log,
		NewID:     func() string { return ulid.Make().String() },
		OnEnd:     ended,
		Recorder:  recorder{recordings},
		Voicemail: voicemails{messages},
		Softphone: phones,
		FirstCall: firstCall(callLog),
	})
	if err != nil {
		return err
	}
	edge.Recovered(recovered, sip.RecoveredKeep)
	if err := edge.Start(ctx); err != nil {
		return err
	}
	httpCert := &certificate{name: "http tls", files: func(c *config.Config) *config.TLSFiles { return c.HTTP.TLS }}
	tlsConf, err := httpCert.config(cfg)
	if err != nil {
		return err
	}
	httpAddr, err := ops.Serve(ctx, cfg.HTTP.Listen, tlsConf, withSoftphone(phones, dni.Handler(dniPools{pools: pools, router: router}, log.With().Str("component", "dni").Logger()), ops.Handler(ops.Sources{
		ActiveCalls:    edge.Active,
		SIPResponses:   edge.Responses,
		RelayedPackets: meter.RelayedPackets,
		DroppedPackets: meter.DroppedPackets,
		RTPPortsInUse:  ports.InUse,
		Events:         pub.Stats,
		OutboxErrors:   pub.OutboxErrors,
		Ready:          func() bool { return !edge.Draining() },
		PromptPackets:  edge.PromptPackets,
		Keys:           edge.Keys,
		Recordings:     recordingStats(recordings),
		Softphones: func() ops.SoftphoneStats {
			s := phones.Stats()
			return ops.SoftphoneStats{Connected: s.Connected, Available: s.Available, Busy: s.Busy}
		},
		SIPDropped:        edge.Dropped,
		SIPBlockedSources: edge.BlockedSources,
		RegisterLockouts:  edge.RegisterLockouts,
		Journal:           journal.Stats,
		Pools:             poolStats(pools, router),
	}, outcomes, ops.API{
		Token:          func() string { return *adminToken.Load() },
		PauseRecording: pauseRecording(recordings),
		Agents:         agentStatus(router),
		Calls:          callLog,
		Feed:           feed,
		Recording:      recordingOf(callLog, recordings.Dir()),
		AgentName:      func(id string) string { return router.Table().AgentName(id) },
	})), log)
	if err != nil {
		return err
	}
	ev := log.Info().Str("version", version).Str("config", path).Str("http", httpAddr.String()).
		Str("nats", pub.ClientURL()).Int("numbers", len(cfg.Numbers))
	for _, t := range []string{"udp", "tcp", "tls"} {
		if ap, ok := edge.ListenAddr(t); ok {
			ev = ev.Str("sip_"+t, ap.String())
		}
	}
	ev.Msg("callsign ready")

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			reload(path, router, pools, edge, phones, &adminToken, []*certificate{httpCert, sipCert}, log)
			continue
		}
		break
	}
	return drain(edge, drainTimeout, sigs, log)
}

// reload puts a new configuration in force for new calls, or keeps the
// old one when the new one has problems.
func reload(path string, router *routing.Router, pools *routing.Pools, edge *sip.Edge, phones *softphone.Hub, adminToken *atomic.Pointer[string], certs []*certificate, log zerolog.Logger) {
	cfg, err := config.Load(path)
	if err != nil {
		var problems config.Errors
		if errors.As(err, &problems) {
			for _, p := range problems {
				log.Error().Str("problem", p.String()).Msg("reload refused")
			}
		} else {
			log.Error().Err(err).Msg("reload refused")
		}
		return
	}
	router.Swap(routing.NewTable(cfg))
	pools.Apply(poolList(cfg))
	edge.Reload(cfg)
	phones.Reload(cfg)
	for _, c := range certs {
		if err := c.reload(cfg); err != nil {
			log.Warn().Err(err).Msg("certificate not reloaded")
		}
	}
	adminToken.Store(&cfg.HTTP.AdminToken)
	log.Info().Str("summary", cfg.Summary()).Msg("configuration reloaded; listeners, media ports and events settings apply at the next start")
}

// certificate is a listener's certificate (https or SIP over TLS), which
// a reload replaces so that a renewed certificate needs no restart.
type certificate struct {
	name  string // the config section, for errors
	files func(*config.Config) *config.TLSFiles
	cert  atomic.Pointer[tls.Certificate]
}

// strongSuites are the TLS 1.2 suites offered: forward secrecy and AEAD
// only. TLS 1.3 suites are not configurable and all qualify.
func strongSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// config is the listener's TLS configuration, nil when the section has
// no certificate.
func (c *certificate) config(cfg *config.Config) (*tls.Config, error) {
	if c.files(cfg) == nil {
		return nil, nil
	}
	if err := c.reload(cfg); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: strongSuites(),
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cert.Load(), nil
		},
	}, nil
}

func (c *certificate) reload(cfg *config.Config) error {
	f := c.files(cfg)
	if f == nil {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	c.cert.Store(&pair)
	return nil
}

// agentStatus lists the agents for GET /api/agents, with the names of the
// configuration in force.
func agentStatus(router *routing.Router) func() []ops.AgentStatus {
	return func() []ops.AgentStatus {
		stats := router.Agents()
		table := router.Table()
		out := make([]ops.AgentStatus, 0, len(stats))
		for _, a := range stats {
			st := ops.AgentStatus{
				ID: a.ID, State: a.State, Offered: a.Offered, Answered: a.Answered, Missed: a.Missed,
				TalkMS: a.TalkTime.Milliseconds(),
			}
			st.Name = table.AgentName(a.ID)
			if !a.LastCallEnded.IsZero() {
				st.LastCallEndedAt = a.LastCallEnded.UTC().Format("2006-01-02T15:04:05.000Z07:00")
			}
			out = append(out, st)
		}
		return out
	}
}

// withSoftphone serves the agents' softphone beside the operations
// endpoints.
func withSoftphone(phones *softphone.Hub, numbers, ops http.Handler) http.Handler {
	mux := http.NewServeMux()
	sp := phones.Handler()
	mux.Handle("/softphone/", sp)
	mux.Handle("/softphone", sp)
	mux.Handle("/dni.js", numbers)
	mux.Handle("/dni/", numbers)
	mux.Handle("/", ops)
	return mux
}

// candidateAddr is the address browsers reach the media ports at: the
// advertised one, as in the SDP given to SIP peers.
func candidateAddr(cfg *config.Config) netip.Addr {
	if ip, err := netip.ParseAddr(cfg.SIP.Advertise); err == nil {
		return ip
	}
	return cfg.Media.Address
}

// drain refuses new calls and lets those in progress end, for at most
// timeout (or until a second signal), then ends the rest.
func drain(edge *sip.Edge, timeout time.Duration, sigs <-chan os.Signal, log zerolog.Logger) error {
	edge.Drain()
	log.Info().Int64("active_calls", edge.Active()).Dur("timeout", timeout).Msg("draining: new calls get 503")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := edge.Wait(ctx); err != nil {
		log.Warn().Int64("active_calls", edge.Active()).Msg("drain time is up, hanging up the calls left")
		edge.HangupAll()
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer wcancel()
		_ = edge.Wait(wctx)
	}
	log.Info().Msg("callsign stopped")
	return edge.Close()
}
