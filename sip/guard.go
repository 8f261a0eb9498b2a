package sip

import (
	"bytes"
	"hash/maphash"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// GuardOptions tune the edge's defences against request floods, SIP
// scanners and password guessing. The rate limit and the scanners' list
// do not apply to a trunk's addresses: carriers are held only to their
// max_calls and cps. The registration lockouts apply to every address, a
// carrier's included, as carriers do not register. A zero field takes
// its value from DefaultGuard.
type GuardOptions struct {
	// A source that sends more than MaxRequests requests within Window
	// is blocked for Block: everything it sends is dropped unanswered.
	// The defaults leave a registered phone (a REGISTER and its
	// challenge every few minutes, OPTIONS keepalives, its part of the
	// calls it answers) an order of magnitude below the limit; ten or so
	// phones behind one NAT address still fit when they all boot at once.
	Window      time.Duration
	MaxRequests int
	Block       time.Duration
	// MaxSources bounds the sources tracked at once. Spoofed UDP can
	// name any number of them; beyond the bound the least useful entry
	// (a quiet source, never a blocked one while others are not) goes.
	MaxSources int
	// Scanners are User-Agent substrings, in any case, of the tools that
	// sweep the Internet for SIP servers and guess their passwords. Their
	// requests are dropped unanswered, so that the edge does not show up
	// in the sweep's results.
	Scanners []string
	// RegisterFailures failed registrations within RegisterWindow from
	// one source, or for one username, refuse that source's, or that
	// username's, registrations for RegisterLockout.
	RegisterFailures int
	RegisterWindow   time.Duration
	RegisterLockout  time.Duration
	// MaxRegisterKeys bounds the sources, and separately the usernames,
	// whose failures are remembered.
	MaxRegisterKeys int
	// DigestAlgorithms are those the registrar challenges phones with,
	// one WWW-Authenticate header each, the preferred first; "MD5" and
	// "SHA-256" (RFC 8760). A phone's answer is checked with the
	// algorithm it names, either of them. The default is MD5 alone:
	// phones in use fail to register when offered SHA-256 besides (libre
	// 1.x, under baresip 1.x, gives up on any challenge it cannot
	// compute; sipp 3.6 reads the first challenge's algorithm only), so
	// offering {"SHA-256", "MD5"} is for fleets known to take it.
	DigestAlgorithms []string
}

// DefaultGuard is what the edge runs with unless told otherwise.
func DefaultGuard() GuardOptions {
	return GuardOptions{
		Window:      2 * time.Second,
		MaxRequests: 30,
		Block:       time.Minute,
		MaxSources:  16384,
		// The names the scanning tools put in User-Agent, as the lists
		// kept for Kamailio and OpenSIPS have them. Names of tools with
		// an honest use (sipsak, sipp: monitoring, testing) and of SDKs
		// real phones are built on are left out on purpose.
		Scanners: []string{
			"friendly-scanner", "friendly-request", "sipvicious", "sipcli", "sip-scan",
			"sundayddr", "iwar", "vaxsipuseragent", "vaxipuseragent", "siparmyknife",
			"sippts", "sivus", "pplsip", "voiphopper",
		},
		RegisterFailures: 5,
		RegisterWindow:   10 * time.Minute,
		RegisterLockout:  15 * time.Minute,
		MaxRegisterKeys:  4096,
		DigestAlgorithms: []string{"MD5"},
	}
}

func (o GuardOptions) withDefaults() GuardOptions {
	d := DefaultGuard()
	if o.Window <= 0 {
		o.Window = d.Window
	}
	if o.MaxRequests <= 0 {
		o.MaxRequests = d.MaxRequests
	}
	if o.Block <= 0 {
		o.Block = d.Block
	}
	if o.MaxSources <= 0 {
		o.MaxSources = d.MaxSources
	}
	if o.Scanners == nil {
		o.Scanners = d.Scanners
	}
	if o.RegisterFailures <= 0 {
		o.RegisterFailures = d.RegisterFailures
	}
	if o.RegisterWindow <= 0 {
		o.RegisterWindow = d.RegisterWindow
	}
	if o.RegisterLockout <= 0 {
		o.RegisterLockout = d.RegisterLockout
	}
	if o.MaxRegisterKeys <= 0 {
		o.MaxRegisterKeys = d.MaxRegisterKeys
	}
	var algs []string
	for _, a := range o.DigestAlgorithms {
		if digestHash(a) != nil && a != "" {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		algs = d.DigestAlgorithms
	}
	o.DigestAlgorithms = algs
	return o
}

// guard holds the state of the defences. Times are kept as durations
// since epoch, read through the edge's clock: monotonic with the real
// one, so that a step of the wall clock neither lifts nor stretches a
// block.
type guard struct {
	opts  GuardOptions
	now   func() time.Time
	epoch time.Time
	// scanners are the Scanners in lower case, by their first byte: a
	// User-Agent is read once, not once per name.
	scanners   [256][][]byte
	anyScanner bool

	pike     pike
	bySource lockout[netip.Addr]
	byUser   lockout[uint64]
	// usernames are keyed by a keyed hash: an attacker's usernames can
	// be long, and the table must not hold them.
	userSeed maphash.Seed

	rateLimited atomic.Uint64
	scanned     atomic.Uint64
	lockouts    [2]atomic.Uint64 // lockedSource, lockedUsername
}

const (
	lockedSource = iota
	lockedUsername
)

func newGuard(o GuardOptions, now func() time.Time) *guard {
	o = o.withDefaults()
	g := &guard{opts: o, now: now, epoch: now(), userSeed: maphash.MakeSeed()}
	for _, s := range o.Scanners {
		if s != "" {
			low := []byte(strings.ToLower(s))
			g.scanners[low[0]] = append(g.scanners[low[0]], low)
			g.anyScanner = true
		}
	}
	g.pike = pike{
		window:  o.Window,
		max:     o.MaxRequests,
		block:   o.Block,
		cap:     o.MaxSources,
		sources: map[netip.Addr]*pikeSource{},
	}
	g.bySource = newLockout[netip.Addr](o)
	g.byUser = newLockout[uint64](o)
	return g
}

func (g *guard) clock() time.Duration { return g.now().Sub(g.epoch) }

// guardedReadFilter puts the guard in front of readFilter for datagrams;
// over streams checkedConn asks it, message by message.
func (e *Edge) guardedReadFilter(p sipmsg.TransportReadProps, data []byte) ([]byte, error) {
	if strings.EqualFold(p.Transport, "udp") && !e.admit(p.RemoteAddr, data) {
		return nil, nil
	}
	return e.readFilter(p, data)
}

// admit is the guard's word on one message, before anything parses it:
// false drops it without an answer. It runs for every message the edge
// receives, so what it does for a trunk's is one look at the trunks.
func (e *Edge) admit(remote net.Addr, msg []byte) bool {
	ip, ok := addrOf(remote)
	if !ok {
		return true
	}
	if e.settings.Load().trunkFor(ip) != nil {
		return true
	}
	return e.guard.admit(ip, msg, &e.log)
}

// addrOf is the IP address of a peer without the allocation of String.
func addrOf(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap(), a != nil
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap(), a != nil
	case nil:
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap(), err == nil
}

// sourceKey is what the rate is counted by: the address, or for IPv6 its
// /64, which a single host is commonly given whole.
func sourceKey(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// admit is the guard's word on a message from ip, a source no trunk's:
// its request rate first, as that is the cheaper look, then its
// User-Agent.
func (g *guard) admit(ip netip.Addr, msg []byte, log *zerolog.Logger) bool {
	request := isRequest(msg)
	key := sourceKey(ip)
	now := g.clock()
	v, n := g.pike.note(key, now, request)
	switch v {
	case pikeBlocked:
		g.rateLimited.Add(1)
		return false
	case pikeBlocks:
		g.rateLimited.Add(1)
		log.Warn().Str("source", ip.String()).Int("requests", n).
			Str("window", g.opts.Window.String()).Str("blocked_for", g.opts.Block.String()).
			Msg("source over the request rate: what it sends is dropped unanswered")
		return false
	}
	if !request || !g.anyScanner {
		return true
	}
	ua := userAgent(msg)
	if ua == nil || !g.isScanner(ua) {
		return true
	}
	g.scanned.Add(1)
	if g.pike.scannerLog(key, now, g.opts.Block) {
		log.Warn().Str("source", ip.String()).Str("user_agent", string(ua[:min(len(ua), 100)])).
			Msg("request from a SIP scanner dropped unanswered; more from this source are only counted")
	}
	return false
}

// userAgent is the value of a message's User-Agent header, nil when it
// has none. It reads the raw header lines: the message has not been
// parsed, and for a scanner never will be.
func userAgent(msg []byte) []byte {
	// The request line is no header.
	if i := bytes.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	} else {
		return nil
	}
	for len(msg) > 0 {
		var line []byte
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			line, msg = msg, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			return nil // the end of the header
		}
		if line[0]|0x20 != 'u' {
			continue
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if ok && bytes.EqualFold(bytes.TrimRight(name, " \t"), []byte("user-agent")) {
			return bytes.TrimSpace(value)
		}
	}
	return nil
}

// isScanner: does ua name one of the scanners? The names sit at the
// start of what the tools send, so a long value is looked at only so far.
func (g *guard) isScanner(ua []byte) bool {
	var buf [128]byte
	n := copy(buf[:], ua)
	low := buf[:n]
	for i, c := range low {
		if c >= 'A' && c <= 'Z' {
			low[i] = c | 0x20
		}
	}
	for i, c := range low {
		for _, s := range g.scanners[c] {
			if bytes.HasPrefix(low[i:], s) {
				return true
			}
		}
	}
	return false
}

// isRequest: a message that is neither a response nor a keepalive (CRLFs
// alone, RFC 5626).
func isRequest(msg []byte) bool {
	for len(msg) > 0 && (msg[0] == '\r' || msg[0] == '\n') {
		msg = msg[1:]
	}
	return len(msg) > 0 && !isResponse(msg)
}

// pike counts each source's requests in a sliding window (estimated
// from the count of the current fixed window and the one before it,
// weighted by how much of it the sliding window still covers) and blocks
// the sources that go over.
type pike struct {
	window, block time.Duration
	max, cap      int

	mu      sync.Mutex
	sources map[netip.Addr]*pikeSource
	room    roomKeeper
}

type pikeSource struct {
	start     time.Duration // of the current fixed window
	prev, cur int32         // requests in the window before, and in this one
	until     time.Duration // blocked until then; 0 when not blocked
	seen      time.Duration
	// scanLog is when its scanner requests were last logged, if
	// scanLogged.
	scanLog    time.Duration
	scanLogged bool
}

type pikeVerdict int

const (
	pikePass    pikeVerdict = iota
	pikeBlocked             // dropped: the source is blocked
	pikeBlocks              // dropped: this request blocked it
)

// note counts a message from key and says what becomes of it, with the
// estimated count of requests in the window when it blocks the source.
// Responses and keepalives are not counted (they answer the edge, or keep
// a NAT binding open) but are dropped with the rest of a blocked source's.
func (p *pike) note(key netip.Addr, now time.Duration, request bool) (pikeVerdict, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sources[key]
	if s == nil {
		if !request {
			return pikePass, 0
		}
		if len(p.sources) >= p.cap {
			p.makeRoom(now)
		}
		s = &pikeSource{start: now}
		p.sources[key] = s
	}
	s.seen = now
	if s.until != 0 {
		if now < s.until {
			return pikeBlocked, 0
		}
		s.until, s.prev, s.cur, s.start = 0, 0, 0, now
	}
	if !request {
		return pikePass, 0
	}
	switch d := now - s.start; {
	case d < 0 || d >= 2*p.window:
		s.prev, s.cur, s.start = 0, 0, now
	case d >= p.window:
		s.prev, s.cur, s.start = s.cur, 0, s.start+p.window
	}
	s.cur++
	est := int64(s.cur) + int64(s.prev)*int64(p.window-(now-s.start))/int64(p.window)
	if est > int64(p.max) {
		s.until = now + p.block
		return pikeBlocks, int(est)
	}
	return pikePass, 0
}

// scannerLog says whether to log a scanner's request from key: once a
// period per source, the rest are only counted.
func (p *pike) scannerLog(key netip.Addr, now, every time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sources[key]
	if s == nil || s.scanLogged && now-s.scanLog < every {
		return false
	}
	s.scanLog, s.scanLogged = now, true
	return true
}

// makeRoom frees an entry of a full table of sources: those not blocked
// and quiet for two windows have nothing worth keeping.
func (p *pike) makeRoom(now time.Duration) {
	makeRoom(&p.room, p.sources, p.cap, now,
		func(s *pikeSource) bool { return s.until <= now && now-s.seen >= 2*p.window },
		func(s *pikeSource) (bool, time.Duration) {
			if s.until > now {
				return true, s.until
			}
			return false, s.seen
		})
}

// roomKeeper remembers when a bounded table was last pruned.
type roomKeeper struct {
	pruned    bool // lastPrune is set
	lastPrune time.Duration
}

// makeRoom frees an entry of a full table m. It first forgets the stale
// entries, at most once a second, as a flood from ever new addresses
// would otherwise scan the table for every packet; then, if the table is
// still full, it evicts one (evictOne, by rank).
func makeRoom[K comparable, V any](r *roomKeeper, m map[K]V, capacity int, now time.Duration,
	stale func(V) bool, rank func(V) (held bool, at time.Duration)) {
	if !r.pruned || now-r.lastPrune >= time.Second {
		r.pruned, r.lastPrune = true, now
		for k, v := range m {
			if stale(v) {
				delete(m, k)
			}
		}
	}
	if len(m) < capacity {
		return
	}
	evictOne(m, rank)
}

// blocked is how many sources are blocked now.
func (p *pike) blocked(now time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.sources {
		if s.until > now {
			n++
		}
	}
	return n
}

// evictSample is how many entries evictOne looks at.
const evictSample = 8

// evictOne removes from m the entry least worth keeping among a few
// picked at random (Go starts every walk of a map at a random place):
// one that is not held if there is one, else the one whose time is
// earliest. Looking at a few keeps it cheap under a flood; the flooder
// cannot choose what goes, as it cannot choose where a walk starts.
func evictOne[K comparable, V any](m map[K]V, rank func(V) (held bool, at time.Duration)) {
	var victim K
	found, victimHeld, victimAt := false, false, time.Duration(0)
	i := 0
	for k, v := range m {
		held, at := rank(v)
		if !found || !held && victimHeld || held == victimHeld && at < victimAt {
			victim, victimHeld, victimAt, found = k, held, at, true
		}
		if i++; i == evictSample {
			break
		}
	}
	if found {
		delete(m, victim)
	}
}

// lockout counts the failed registrations of a key (a source, a
// username) within a window, and locks the key out once they reach the
// limit.
type lockout[K comparable] struct {
	failures       int
	window, period time.Duration
	cap            int

	mu   sync.Mutex
	keys map[K]*lockEntry
	room roomKeeper
}

type lockEntry struct {
	first time.Duration // the first failure of the window
	n     int
	until time.Duration // locked out until then; 0 when not
}

func newLockout[K comparable](o GuardOptions) lockout[K] {
	return lockout[K]{
		failures: o.RegisterFailures,
		window:   o.RegisterWindow,
		period:   o.RegisterLockout,
		cap:      o.MaxRegisterKeys,
		keys:     map[K]*lockEntry{},
	}
}

func (l *lockout[K]) locked(k K, now time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[k]
	return e != nil && now < e.until
}

// fail counts a failure of k and says whether it locked k out.
func (l *lockout[K]) fail(k K, now time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[k]
	if e == nil {
		if len(l.keys) >= l.cap {
			l.makeRoom(now)
		}
		e = &lockEntry{first: now}
		l.keys[k] = e
	}
	if now < e.until {
		return false // locked already: nothing more to count
	}
	if e.until != 0 || now-e.first >= l.window {
		e.first, e.n, e.until = now, 0, 0
	}
	e.n++
	if e.n >= l.failures {
		e.until = now + l.period
		return true
	}
	return false
}

// succeed forgets k's failures, unless it is locked out.
func (l *lockout[K]) succeed(k K, now time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.keys[k]; e != nil && now >= e.until {
		delete(l.keys, k)
	}
}

// makeRoom frees an entry of a full table: keys not locked out whose
// window is over have nothing worth keeping.
func (l *lockout[K]) makeRoom(now time.Duration) {
	makeRoom(&l.room, l.keys, l.cap, now,
		func(e *lockEntry) bool { return e.until <= now && now-e.first >= l.window },
		func(e *lockEntry) (bool, time.Duration) {
			if e.until > now {
				return true, e.until
			}
			return false, e.first
		})
}

// registerLocked says whether a registration of username from src is
// refused without looking at its credentials. A username's lockout does
// not hold against the address it is registered from (exempt), so that
// guessing its password from elsewhere cannot keep a working phone from
// renewing its registration; the lockout of that address still does.
func (g *guard) registerLocked(src netip.Addr, username string, exempt bool) bool {
	now := g.clock()
	if g.bySource.locked(src, now) {
		return true
	}
	return !exempt && g.byUser.locked(maphash.String(g.userSeed, username), now)
}

// registerFailed counts a failed registration; it says which lockouts it
// started.
func (g *guard) registerFailed(src netip.Addr, username string) (source, user bool) {
	now := g.clock()
	source = g.bySource.fail(src, now)
	user = g.byUser.fail(maphash.String(g.userSeed, username), now)
	if source {
		g.lockouts[lockedSource].Add(1)
	}
	if user {
		g.lockouts[lockedUsername].Add(1)
	}
	return source, user
}

func (g *guard) registerSucceeded(src netip.Addr, username string) {
	now := g.clock()
	g.bySource.succeed(src, now)
	g.byUser.succeed(maphash.String(g.userSeed, username), now)
}

// Dropped calls f for each reason the guard drops requests unanswered
// ("rate_limit", "scanner"), with how many it dropped.
func (e *Edge) Dropped(f func(reason string, n uint64)) {
	f("rate_limit", e.guard.rateLimited.Load())
	f("scanner", e.guard.scanned.Load())
}

// BlockedSources is how many sources are blocked for their request rate.
func (e *Edge) BlockedSources() int { return e.guard.pike.blocked(e.guard.clock()) }

// RegisterLockouts calls f for what registrations were locked out by
// ("source", "username"), with how many lockouts began.
func (e *Edge) RegisterLockouts(f func(by string, n uint64)) {
	f("source", e.guard.lockouts[lockedSource].Load())
	f("username", e.guard.lockouts[lockedUsername].Load())
}
