// Package sip is the edge's SIP side, on sipgo: trunk admission, the
// carrier's leg (UAS), the legs to agents' phones (UAC) and the registrar.
// It turns SIP into call events and call decisions into SIP; what a call
// does is the call package's business.
package sip

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/routing"
	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// Options are what an Edge needs from its owner.
type Options struct {
	Config    *config.Config
	Router    *routing.Router
	Ports     *media.Ports
	Meter     *media.Meter
	Publisher call.Publisher
	Clock     call.Clock
	Log       zerolog.Logger
	// NewID makes the edge's id of a new call.
	NewID func() string
	// OnEnd, if set, is told the final record of every call.
	OnEnd func(*call.Record)
	// FirstCall, if set, says whether caller made no call in the 30 days
	// before at, or nil when it cannot tell; call.started carries the
	// answer. It runs on the INVITE's own goroutine once the 100 Trying is
	// out, so it may take a moment, but the call waits for it: it must
	// bound its own wait.
	FirstCall func(caller string, at time.Time) *bool
	// Recorder, if set, records the calls whose caller consented.
	Recorder call.Recorder
	// Voicemail, if set, takes the messages of queues that offer it.
	Voicemail call.VoicemailRecorder
	// Softphone, if set, rings the agents who answer in the browser. Its
	// legs are bridged when they offer a media.Peer (MediaPeer), and
	// closed with the call when they have a Close method.
	Softphone call.Dialer
	// TLS serves the tls:// listeners; it must be set when one is
	// configured.
	TLS *tls.Config
	// Guard tunes the defences against floods, scanners and password
	// guessing; its zero value is DefaultGuard.
	Guard GuardOptions
}

// Edge answers carriers and rings agents.
type Edge struct {
	log       zerolog.Logger
	opts      Options
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	client    *sipgo.Client
	deps      call.Deps
	registrar *Registrar
	guard     *guard
	stats     Stats
	malformed *malformedLog
	// strangers limits the lines about INVITEs from outside the trunks,
	// which a flood from many addresses would otherwise write by the
	// thousand.
	strangers *malformedLog
	// parser checks datagrams before sipgo gets them; it keeps no state
	// between messages.
	parser *sipmsg.Parser

	settings atomic.Pointer[settings]

	dialogs sync.Map // SIP Call-ID → *inbound or *outbound
	// recovered are the carrier legs of calls ended by the edge's last
	// stop, answered for a while after the start (recovered.go).
	recovered atomic.Pointer[recoveredCalls]

	// trunk load, by trunk name; entries live as long as the edge.
	trunkMu   sync.Mutex
	trunkLoad map[string]*trunkLoad

	draining atomic.Bool
	calls    sync.WaitGroup
	active   atomic.Int64

	// where the edge listens, once Start has bound: by transport
	listenMu sync.Mutex
	listen   map[string]netip.AddrPort
	udpConns []net.PacketConn
	tcpLns   []net.Listener
}

// settings are the parts of the configuration a reload may change.
type settings struct {
	cfg    *config.Config
	trunks []*config.Trunk
}

// New prepares an edge; Start binds its listeners.
func New(opts Options) (*Edge, error) {
	e := &Edge{
		log:       opts.Log,
		opts:      opts,
		trunkLoad: map[string]*trunkLoad{},
		listen:    map[string]netip.AddrPort{},
		malformed: newMalformedLog(opts.Clock.Now),
		strangers: newMalformedLog(opts.Clock.Now),
		guard:     newGuard(opts.Guard, opts.Clock.Now),
		parser:    sipmsg.NewParser(),
	}
	e.apply(opts.Config)
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	e.registrar = newRegistrar(secret, opts.Clock, opts.Log)

	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("callsign"),
		sipgo.WithUserAgentHostname(opts.Config.SIP.Advertise),
		sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerReadFilter(e.guardedReadFilter)),
	)
	if err != nil {
		return nil, fmt.Errorf("sip user agent: %w", err)
	}
	e.ua = ua
	if e.srv, err = sipgo.NewServer(ua); err != nil {
		return nil, err
	}
	if e.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname(opts.Config.SIP.Advertise)); err != nil {
		return nil, err
	}
	e.deps = call.Deps{
		Clock:     opts.Clock,
		Publisher: opts.Publisher,
		Dialer:    e,
		Bridger:   e,
		Router:    opts.Router,
		Recorder:  opts.Recorder,
		Voicemail: opts.Voicemail,
		Log:       opts.Log,
		OnEnd:     opts.OnEnd,
	}
	byMethod, other := e.handlers()
	for m, h := range byMethod {
		e.srv.OnRequest(m, h)
	}
	e.srv.OnNoRoute(other)
	return e, nil
}

// handlers are the edge's request handlers by method, and the one for
// every other method; the fuzz test drives them as sipgo does.
func (e *Edge) handlers() (map[sipmsg.RequestMethod]sipgo.RequestHandler, sipgo.RequestHandler) {
	return map[sipmsg.RequestMethod]sipgo.RequestHandler{
		sipmsg.INVITE:   e.sane(e.afterRestart(e.onInvite)),
		sipmsg.ACK:      e.sane(e.afterRestart(e.onAck)),
		sipmsg.BYE:      e.sane(e.afterRestart(e.onBye)),
		sipmsg.CANCEL:   e.sane(e.afterRestart(e.onCancel)),
		sipmsg.OPTIONS:  e.sane(e.onOptions),
		sipmsg.REGISTER: e.sane(e.onRegister),
	}, e.sane(e.afterRestart(e.onOther))
}

// apply puts a configuration in force for new calls.
func (e *Edge) apply(cfg *config.Config) {
	s := &settings{cfg: cfg}
	// In name order, so that where trunks' allow lists overlap the same
	// trunk takes the call every time.
	for _, name := range slices.Sorted(maps.Keys(cfg.Trunks)) {
		s.trunks = append(s.trunks, cfg.Trunks[name])
	}
	e.settings.Store(s)
}

// Reload puts a new configuration in force: new calls use it, calls in
// progress keep what they started with. Listeners and ports do not change.
func (e *Edge) Reload(cfg *config.Config) {
	e.apply(cfg)
}

// Start binds every listener of the configuration and serves them until
// ctx ends or Close is called.
func (e *Edge) Start(ctx context.Context) error {
	for _, l := range e.opts.Config.SIP.Listen {
		switch l.Transport {
		case "udp":
			lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error { return growReadBuffer(c) }}
			pc, err := lc.ListenPacket(ctx, "udp", l.Addr.String())
			if err != nil {
				return fmt.Errorf("sip: listen udp %s: %w", l.Addr, err)
			}
			e.udpConns = append(e.udpConns, pc)
			e.setListen("udp", pc.LocalAddr())
			go func() { _ = e.srv.ServeUDP(pc) }()
		case "tcp":
			ln, err := net.Listen("tcp", l.Addr.String())
			if err != nil {
				return fmt.Errorf("sip: listen tcp %s: %w", l.Addr, err)
			}
			e.tcpLns = append(e.tcpLns, ln)
			e.setListen("tcp", ln.Addr())
			go func() { _ = e.srv.ServeTCP(checkedListener{Listener: ln, e: e}) }()
		case "tls":
			if e.opts.TLS == nil {
				return fmt.Errorf("sip: listen tls %s: no certificate (sip tls)", l.Addr)
			}
			ln, err := net.Listen("tcp", l.Addr.String())
			if err != nil {
				return fmt.Errorf("sip: listen tls %s: %w", l.Addr, err)
			}
			e.tcpLns = append(e.tcpLns, ln)
			e.setListen("tls", ln.Addr())
			tln := tls.NewListener(ln, e.opts.TLS)
			go func() { _ = e.srv.ServeTLS(checkedListener{Listener: tln, e: e}) }()
		default:
			return fmt.Errorf("sip: transport %q is not supported", l.Transport)
		}
	}
	go func() {
		<-ctx.Done()
		_ = e.Close()
	}()
	go e.endRecoveredLegs()
	return nil
}

func (e *Edge) setListen(transport string, a net.Addr) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return
	}
	e.listenMu.Lock()
	if _, ok := e.listen[transport]; !ok {
		e.listen[transport] = ap
	}
	e.listenMu.Unlock()
}

// ListenAddr is where the edge listens on transport ("udp", "tcp", "tls"), once
// started.
func (e *Edge) ListenAddr(transport string) (netip.AddrPort, bool) {
	e.listenMu.Lock()
	defer e.listenMu.Unlock()
	ap, ok := e.listen[transport]
	return ap, ok
}

// Drain stops accepting calls: new INVITEs get 503 from now on.
func (e *Edge) Drain() { e.draining.Store(true) }

// Draining reports whether the edge refuses new calls.
func (e *Edge) Draining() bool { return e.draining.Load() }

// Active is the number of calls in progress.
func (e *Edge) Active() int64 { return e.active.Load() }

// Wait returns when every call has ended, or ctx is done.
func (e *Edge) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { e.calls.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HangupAll ends every call in progress (after a drain ran out of time).
func (e *Edge) HangupAll() {
	e.dialogs.Range(func(_, v any) bool {
		if in, ok := v.(*inbound); ok {
			in.call.Post(call.Event{Kind: call.Shutdown})
		}
		return true
	})
}

// Close stops the listeners.
func (e *Edge) Close() error {
	var errs []error
	for _, pc := range e.udpConns {
		errs = append(errs, pc.Close())
	}
	for _, ln := range e.tcpLns {
		errs = append(errs, ln.Close())
	}
	errs = append(errs, e.ua.Close())
	return errors.Join(errs...)
}

// Stats are the edge's SIP counters for /metrics.
type Stats struct {
	responses     [700]atomic.Uint64
	promptPackets atomic.Uint64
	keys          [keyWays]atomic.Uint64
}

// The ways a caller's key reaches the edge, as counted.
const (
	keyRFC4733 = iota
	keyInfo
	keyInband
	keyWays
)

func keyVia(i int) string {
	switch i {
	case keyRFC4733:
		return media.DTMFViaRFC4733
	case keyInfo:
		return "info"
	}
	return media.DTMFViaInband
}

// Keys calls f for each way keys reach the edge, with how many did.
func (e *Edge) Keys(f func(via string, n uint64)) {
	for i := range keyWays {
		f(keyVia(i), e.stats.keys[i].Load())
	}
}

func (e *Edge) countKey(via string) {
	for i := range keyWays {
		if keyVia(i) == via {
			e.stats.keys[i].Add(1)
		}
	}
}

// PromptPackets is how many RTP packets of prompts the edge has sent.
func (e *Edge) PromptPackets() uint64 { return e.stats.promptPackets.Load() }

// Responses calls f for every response code the edge sent, with its count.
func (e *Edge) Responses(f func(code int, n uint64)) {
	for code := range e.stats.responses {
		if n := e.stats.responses[code].Load(); n > 0 {
			f(code, n)
		}
	}
}

func (e *Edge) countResponse(code int) {
	if code >= 0 && code < len(e.stats.responses) {
		e.stats.responses[code].Add(1)
	}
}

// respond answers req statelessly-built within its transaction.
func (e *Edge) respond(tx sipmsg.ServerTransaction, req *sipmsg.Request, code int, reason string, hdrs ...sipmsg.Header) {
	res := sipmsg.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	e.send(tx, res)
}

func (e *Edge) send(tx sipmsg.ServerTransaction, res *sipmsg.Response) {
	if err := tx.Respond(res); err != nil {
		e.log.Debug().Err(err).Int("code", res.StatusCode).Msg("sending response failed")
		return
	}
	e.countResponse(res.StatusCode)
}

// contact is the edge's Contact for a transport.
func (e *Edge) contact(transport string) *sipmsg.ContactHeader {
	port := 5060
	if ap, ok := e.ListenAddr(sipmsg.NetworkToLower(transport)); ok {
		port = int(ap.Port())
	}
	c := &sipmsg.ContactHeader{Address: sipmsg.Uri{
		Scheme: "sip", User: "callsign", Host: e.settings.Load().cfg.SIP.Advertise, Port: port,
	}}
	if t := sipmsg.NetworkToLower(transport); t == "tcp" || t == "tls" {
		c.Address.UriParams = sipmsg.HeaderParams{{K: "transport", V: t}}
	}
	return c
}

func retryAfter(seconds int) sipmsg.Header {
	return sipmsg.NewHeader("Retry-After", strconv.Itoa(seconds))
}
