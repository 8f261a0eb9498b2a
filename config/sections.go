package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults an operator can rely on when a key is left out: everything binds
// to loopback, so an unconfigured edge is never exposed by accident.
const (
	DefaultSIPListenUDP   = "udp://127.0.0.1:5060"
	DefaultSIPListenTCP   = "tcp://127.0.0.1:5060"
	DefaultMediaAddress   = "127.0.0.1"
	DefaultRTPPortMin     = 20000
	DefaultRTPPortMax     = 20999
	DefaultMediaTimeout   = 30 * time.Second
	DefaultHTTPListen     = "127.0.0.1:8080"
	DefaultSubjectPrefix  = "callsign"
	DefaultEmbeddedListen = "127.0.0.1:4222"
	DefaultStorageDir     = "./data"
	DefaultStrategy       = StrategyRoundRobin
	DefaultRingTimeout    = 20 * time.Second
	DefaultMenuTimeout    = 5 * time.Second
	DefaultMenuRetries    = 2
	// No retention: deleting recordings is the operator's decision.
	DefaultRetention      = time.Duration(0)
	DefaultAnnouncePrompt = "prompts/recording-notice.wav"
	DefaultAskPrompt      = "prompts/recording-consent.wav"
	DefaultAcceptDigit    = byte('1')
	DefaultAskTimeout     = 5 * time.Second
)

// Queue strategies.
const (
	StrategyRoundRobin  = "round-robin"
	StrategyLongestIdle = "longest-idle"
	StrategyFewestCalls = "fewest-calls"
	StrategyRingAll     = "ring-all"
)

const supportedStrategies = "round-robin, longest-idle, fewest-calls, ring-all"

// What a queue does with a call nobody answered, or outside its hours.
const (
	ActionHangup    = "hangup"
	ActionVoicemail = "voicemail"
)

// Defaults of the queue keys that need a prompt or a bound.
const (
	DefaultClosedPrompt       = "prompts/closed.wav"
	DefaultVoicemailGreeting  = "prompts/voicemail-greeting.wav"
	DefaultVoicemailMaxLength = 2 * time.Minute
	maxPriority               = 100
)

func validStrategy(s string) bool {
	switch s {
	case StrategyRoundRobin, StrategyLongestIdle, StrategyFewestCalls, StrategyRingAll:
		return true
	}
	return false
}

func (l *loader) config(root *yaml.Node) *Config {
	c := &Config{
		Path:    l.file,
		Trunks:  map[string]*Trunk{},
		Numbers: map[string]*Number{},
		Pools:   map[string]*Pool{},
		Flows:   map[string]*Flow{},
		Queues:  map[string]*Queue{},
		Agents:  map[string]*Agent{},
	}
	media, _ := netip.ParseAddr(DefaultMediaAddress)
	c.Media = Media{Address: media, PortMin: DefaultRTPPortMin, PortMax: DefaultRTPPortMax, Timeout: DefaultMediaTimeout}
	c.HTTP.Listen = DefaultHTTPListen
	c.Events = Events{Embedded: true, EmbeddedListen: DefaultEmbeddedListen, SubjectPrefix: DefaultSubjectPrefix}
	storage := DefaultStorageDir
	c.Recording = Recording{Retention: DefaultRetention, AcceptDigit: DefaultAcceptDigit, AskTimeout: DefaultAskTimeout}
	var consentGiven consentKeys

	var sipNode, trunksNode *yaml.Node
	trunksOK := true
	if !l.fields(root, "", []key{
		{name: "sip", parse: func(_, v *yaml.Node) { sipNode = v }},
		{name: "media", parse: func(_, v *yaml.Node) { l.media(v, &c.Media) }},
		{name: "http", parse: func(_, v *yaml.Node) { l.http(v, &c.HTTP) }},
		{name: "events", parse: func(_, v *yaml.Node) { l.events(v, &c.Events) }},
		{name: "storage", parse: func(_, v *yaml.Node) { l.storage(v, &storage) }},
		{name: "trunks", parse: func(k, v *yaml.Node) { trunksNode = k; trunksOK = l.trunks(v, c) }},
		{name: "numbers", parse: func(_, v *yaml.Node) { l.numbers(v, c) }},
		{name: "pools", parse: func(_, v *yaml.Node) { l.pools(v, c) }},
		{name: "attribution", parse: func(_, v *yaml.Node) { c.Attribution = l.attribution(v) }},
		{name: "flows", parse: func(_, v *yaml.Node) { l.flows(v, c) }},
		{name: "queues", parse: func(_, v *yaml.Node) { l.queues(v, c) }},
		{name: "agents", parse: func(_, v *yaml.Node) { l.agents(v, c) }},
		{name: "recording", parse: func(_, v *yaml.Node) { consentGiven = l.recording(v, &c.Recording) }},
	}) {
		return c
	}
	// sip is read even when absent, because its defaults need checking.
	l.sip(sipNode, &c.SIP)
	c.Storage.Dir = resolvePath(l.file, storage)
	l.defaultConsent(&c.Recording, consentGiven)
	if len(c.Trunks) == 0 && trunksOK {
		at := trunksNode
		if at == nil {
			at = root
		}
		l.problem(at, "no trunks: at least one trunk must say which carrier addresses may place calls (trunks: {NAME: {allow: [CIDR]}})")
	}
	for _, check := range l.checks {
		check()
	}
	return c
}

// resolvePath makes a path relative to the config file's directory, so the
// edge finds the same files whatever directory it is started from.
func resolvePath(file, p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(file), p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}

func (l *loader) sip(n *yaml.Node, s *SIP) {
	var listenNode, advertiseNode, tlsKey *yaml.Node
	var listens []Listen
	var tlsListen []*yaml.Node
	listenSet := false
	l.fields(n, "sip", []key{
		{name: "listen", parse: func(_, v *yaml.Node) {
			if isNull(resolve(v)) {
				return
			}
			items, ok := l.list(v, "sip listen")
			if !ok {
				listenSet = true
				return
			}
			listenSet = true
			if len(items) == 0 {
				l.problem(v, "sip listen is empty: give at least one of udp://host:port, tcp://host:port (or leave it out for %s and %s)", DefaultSIPListenUDP, DefaultSIPListenTCP)
				return
			}
			listenNode = items[0]
			seen := map[Listen]bool{}
			for _, it := range items {
				txt, present, ok := l.str(it, "sip listen")
				if !present || !ok {
					if !present {
						l.problem(it, "sip listen has an empty entry")
					}
					continue
				}
				ln, err := parseListen(txt)
				if err != "" {
					l.problem(it, "sip listen %q: %s", txt, err)
					continue
				}
				if seen[ln] {
					l.problem(it, "sip listen %q is listed twice", txt)
					continue
				}
				seen[ln] = true
				listens = append(listens, ln)
				if ln.Transport == "tls" {
					tlsListen = append(tlsListen, it)
				}
			}
		}},
		{name: "advertise", parse: func(_, v *yaml.Node) {
			txt, present, ok := l.str(v, "sip advertise")
			if !present {
				return
			}
			advertiseNode = v
			if !ok {
				return
			}
			if !validHost(txt) {
				l.problem(v, "sip advertise %q must be an IP address or host name (no scheme or port)", txt)
				return
			}
			if a, err := netip.ParseAddr(txt); err == nil && a.IsUnspecified() {
				l.problem(v, "sip advertise %q is not an address peers can reach", txt)
				return
			}
			s.Advertise = txt
		}},
		{name: "tls", parse: func(k, v *yaml.Node) {
			tlsKey = k
			s.TLS = l.tlsFiles("sip tls", k, v)
		}},
		{name: "digest_algorithms", parse: func(_, v *yaml.Node) {
			items, ok := l.list(v, "sip digest_algorithms")
			if !ok {
				return
			}
			if len(items) == 0 {
				l.problem(v, "sip digest_algorithms is empty: give MD5, SHA-256 or both, the preferred first")
				return
			}
			var algs []string
			for _, it := range items {
				txt, present, ok := l.str(it, "sip digest_algorithms")
				if !present || !ok {
					continue
				}
				var alg string
				switch strings.ToUpper(txt) {
				case "MD5":
					alg = "MD5"
				case "SHA-256":
					alg = "SHA-256"
				default:
					l.problem(it, "sip digest_algorithms: %q is not supported (MD5 or SHA-256)", txt)
					continue
				}
				if slices.Contains(algs, alg) {
					l.problem(it, "sip digest_algorithms lists %s twice", alg)
					continue
				}
				algs = append(algs, alg)
			}
			s.DigestAlgorithms = algs
		}},
	})
	switch {
	case tlsKey == nil && len(tlsListen) > 0:
		for _, n := range tlsListen {
			l.problem(n, "a tls:// listener needs sip tls: {cert, key}, the certificate it presents")
		}
	case tlsKey != nil && len(tlsListen) == 0 && listenSet:
		l.problem(tlsKey, "sip tls is set but no sip listen entry is tls://host:port")
	}
	if !listenSet {
		for _, d := range []string{DefaultSIPListenUDP, DefaultSIPListenTCP} {
			ln, _ := parseListen(d)
			listens = append(listens, ln)
		}
	}
	s.Listen = listens
	if advertiseNode == nil && len(listens) > 0 {
		host := listens[0].Addr.Addr()
		if host.IsUnspecified() {
			l.problem(listenNode, "sip advertise is required when sip listen binds %s: it is the address written into Via, Contact and SDP", host)
			return
		}
		s.Advertise = host.String()
	}
}

// parseListen reads "udp://host:port" (or tcp://, tls://); the host must be an IP literal
// because the SIP side binds exactly that address.
func parseListen(s string) (Listen, string) {
	const form = "must be udp://host:port, tcp://host:port or tls://host:port"
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Listen{}, form
	}
	scheme = strings.ToLower(scheme)
	if scheme != "udp" && scheme != "tcp" && scheme != "tls" {
		return Listen{}, fmt.Sprintf("transport %q is not supported (use udp, tcp or tls)", scheme)
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return Listen{}, form
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || addr.Zone() != "" {
		return Listen{}, fmt.Sprintf("host %q must be an IP address", host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return Listen{}, fmt.Sprintf("port %q must be 1-65535", port)
	}
	return Listen{Transport: scheme, Addr: netip.AddrPortFrom(addr, uint16(p))}, ""
}

func validHost(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// validHostPort checks a listen address for net.Listen: an empty host
// means every interface, a host name is resolved by the listener.
func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || (host != "" && !validHost(host)) {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p >= 0 && p <= 65535
}

func (l *loader) duration(v *yaml.Node, label string) (time.Duration, bool) {
	txt, present, ok := l.str(v, label)
	if !present || !ok {
		return 0, false
	}
	d, err := parseDuration(txt)
	switch {
	case err != nil && !negativeDays(txt):
		l.problem(v, "%s %q is not a duration (like 30s, 2m, 1h30m, 90d)", label, txt)
		return 0, false
	case err != nil || d < 0:
		l.problem(v, "%s %q must not be negative", label, txt)
		return 0, false
	}
	return d, true
}

// negativeDays tells "-90d" apart from nonsense: days take no sign, yet to
// whoever wrote it, it is a negative duration.
func negativeDays(s string) bool {
	rest, neg := strings.CutPrefix(strings.TrimSpace(s), "-")
	if !neg {
		return false
	}
	_, err := parseDuration(rest)
	return err == nil
}

func (l *loader) media(n *yaml.Node, m *Media) {
	l.fields(n, "media", []key{
		{name: "address", parse: func(_, v *yaml.Node) {
			txt, present, ok := l.str(v, "media address")
			if !present || !ok {
				return
			}
			a, err := netip.ParseAddr(txt)
			if err != nil {
				l.problem(v, "media address %q must be an IP address", txt)
				return
			}
			m.Address = a
		}},
		{name: "rtp_ports", parse: func(_, v *yaml.Node) {
			txt, present, ok := l.str(v, "media rtp_ports")
			if !present || !ok {
				return
			}
			lo, hi, err := parsePortRange(txt)
			if err != "" {
				l.problem(v, "media rtp_ports %q: %s", txt, err)
				return
			}
			m.PortMin, m.PortMax = lo, hi
		}},
		{name: "timeout", parse: func(_, v *yaml.Node) {
			if d, ok := l.duration(v, "media timeout"); ok {
				if d == 0 {
					l.problem(v, "media timeout must be more than 0")
					return
				}
				m.Timeout = d
			}
		}},
	})
}

func parsePortRange(s string) (lo, hi int, problem string) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	switch {
	case !ok || err1 != nil || err2 != nil:
		return 0, 0, "must be LO-HI, like 20000-20999"
	case lo < 1024 || hi > 65535:
		return 0, 0, "ports must be within 1024-65535"
	case lo >= hi:
		return 0, 0, "LO must be less than HI"
	case lo%2 != 0:
		return 0, 0, "LO must be even (RTP takes the even port, RTCP the odd one above it)"
	}
	return lo, hi, ""
}

func (l *loader) http(n *yaml.Node, h *HTTP) {
	l.fields(n, "http", []key{
		{name: "listen", parse: func(_, v *yaml.Node) {
			txt, present, ok := l.str(v, "http listen")
			if !present || !ok {
				return
			}
			if !validHostPort(txt) {
				l.problem(v, "http listen %q must be host:port, like 127.0.0.1:8080", txt)
				return
			}
			h.Listen = txt
		}},
		{name: "admin_token", parse: func(_, v *yaml.Node) {
			if txt, _, ok := l.str(v, "http admin_token"); ok {
				h.AdminToken = txt
			}
		}},
		// Browsers give the softphone a microphone only on https (or on
		// localhost), so agents on other machines need it.
		{name: "tls", parse: func(k, v *yaml.Node) { h.TLS = l.tlsFiles("http tls", k, v) }},
	})
}

// tlsFiles reads a {cert, key} pair (http.tls, sip.tls). The pair is
// loaded here so a bad file fails `check`, not the first agent or carrier
// that connects.
func (l *loader) tlsFiles(section string, k, v *yaml.Node) *TLSFiles {
	t := &TLSFiles{}
	var certNode, keyNode *yaml.Node
	written := map[string]string{}
	path := func(dst *string, node **yaml.Node, name string) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			if txt, present, ok := l.str(v, section+" "+name); present && ok && txt != "" {
				*dst, *node = resolvePath(l.file, txt), v
				written[name] = txt
			}
		}
	}
	l.fields(v, section, []key{
		{name: "cert", parse: path(&t.Cert, &certNode, "cert")},
		{name: "key", parse: path(&t.Key, &keyNode, "key")},
	})
	if certNode == nil || keyNode == nil {
		l.problem(k, "%s needs both cert and key, PEM files like tls: {cert: edge.crt, key: edge.key}", section)
		return nil
	}
	if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%s: %w", filepath.Base(pe.Path), pe.Err)
		}
		l.problem(certNode, "%s: cannot use cert %q with key %q: %v", section, written["cert"], written["key"], err)
		return nil
	}
	return t
}

func (l *loader) events(n *yaml.Node, e *Events) {
	l.fields(n, "events", []key{
		{name: "nats", parse: func(_, v *yaml.Node) {
			txt, present, ok := l.str(v, "events nats")
			if !present || !ok {
				return
			}
			if strings.TrimSpace(txt) == "embedded" {
				e.Embedded, e.Servers = true, nil
				return
			}
			var servers []string
			for _, s := range strings.Split(txt, ",") {
				s = strings.TrimSpace(s)
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
					l.problem(v, "events nats: %q is not a nats:// URL (give \"embedded\" or a comma-separated list like nats://10.0.0.5:4222,nats://10.0.0.6:4222)", s)
					return
				}
				servers = append(servers, s)
			}
			e.Embedded, e.Servers = false, servers
		}},
		{name: "subject_prefix", parse: func(_, v *yaml.Node) {
			txt, present, ok := l.str(v, "events subject_prefix")
			if !present || !ok {
				return
			}
			if !validSubject(txt) {
				l.problem(v, "events subject_prefix %q must be a NATS subject: dot-separated tokens without spaces, * or >", txt)
				return
			}
			e.SubjectPrefix = txt
		}},
		{name: "embedded_listen", parse: func(_, v *yaml.Node) {
			txt, present, ok := l.str(v, "events embedded_listen")
			if !present || !ok {
				return
			}
			if !validHostPort(txt) {
				l.problem(v, "events embedded_listen %q must be host:port, like 127.0.0.1:4222", txt)
				return
			}
			e.EmbeddedListen = txt
		}},
	})
}

func validSubject(s string) bool {
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			return false
		}
	}
	return true
}

func (l *loader) storage(n *yaml.Node, dir *string) {
	l.fields(n, "storage", []key{
		{name: "dir", parse: func(_, v *yaml.Node) {
			txt, present, ok := l.str(v, "storage dir")
			if !present || !ok {
				return
			}
			if txt == "" {
				l.problem(v, "storage dir must not be empty")
				return
			}
			*dir = txt
		}},
	})
}

// entries reads a section whose keys are names (trunks, flows, ...). Names
// are registered even when their body has problems, so references to them
// do not pile up misleading "not defined" problems.
func (l *loader) entries(n *yaml.Node, section string, each func(name string, k, v *yaml.Node)) bool {
	ps, ok := l.pairs(n, section)
	for _, p := range ps {
		if strings.TrimSpace(p.k.Value) == "" {
			l.problem(p.k, "empty name in %s", section)
			continue
		}
		each(p.k.Value, p.k, p.v)
	}
	return ok
}

func (l *loader) trunks(n *yaml.Node, c *Config) bool {
	return l.entries(n, "trunks", func(name string, k, v *yaml.Node) {
		t := &Trunk{Name: name}
		c.Trunks[name] = t
		where := fmt.Sprintf("trunk %q", name)
		hasAllow := false
		l.fields(v, where, []key{
			{name: "allow", parse: func(_, v *yaml.Node) {
				hasAllow = true
				items, ok := l.list(v, where+" allow")
				if !ok {
					return
				}
				if len(items) == 0 {
					l.problem(v, "%s allow is empty: list the carrier's addresses (CIDR or IP)", where)
				}
				for _, it := range items {
					txt, present, ok := l.str(it, where+" allow")
					if !ok {
						continue
					}
					p, err := parsePrefix(txt)
					if !present || err != nil {
						l.problem(it, "bad CIDR %q in %s allow", txt, where)
						continue
					}
					t.Allow = append(t.Allow, p)
				}
			}},
			{name: "max_calls", parse: func(_, v *yaml.Node) { t.MaxCalls, _ = l.nonNegInt(v, where+" max_calls") }},
			{name: "cps", parse: func(_, v *yaml.Node) { t.CPS, _ = l.nonNegInt(v, where+" cps") }},
		})
		if !hasAllow {
			l.problem(k, "%s has no allow: list the carrier's addresses (CIDR or IP) that may place calls", where)
		}
	})
}

// parsePrefix accepts a CIDR or a bare IP (one host). Host bits are masked
// off so "10.0.0.7/8" means the 10.0.0.0/8 network as operators intend.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

func (l *loader) numbers(n *yaml.Node, c *Config) {
	first := map[string]*yaml.Node{}
	l.entries(n, "numbers", func(raw string, k, v *yaml.Node) {
		e164, err := NormalizeNumber(raw)
		if err != nil {
			l.problem(k, "number %q: %v", raw, err)
			return
		}
		if prev, dup := first[e164]; dup {
			l.problem(k, "number %q is a duplicate of %q (line %d): both are %s", raw, prev.Value, prev.Line, e164)
			return
		}
		first[e164] = k
		num := &Number{E164: e164}
		c.Numbers[e164] = num
		where := fmt.Sprintf("number %q", raw)
		str := func(dst *string, name string) func(_, v *yaml.Node) {
			return func(_, v *yaml.Node) {
				if s, _, ok := l.str(v, where+" "+name); ok {
					*dst = s
				}
			}
		}
		var flowNode *yaml.Node
		flowOK := true
		l.fields(v, where, []key{
			{name: "source", parse: str(&num.Source, "source")},
			{name: "medium", parse: str(&num.Medium, "medium")},
			{name: "campaign", parse: str(&num.Campaign, "campaign")},
			{name: "keyword", parse: str(&num.Keyword, "keyword")},
			{name: "flow", parse: func(_, v *yaml.Node) {
				flowNode = v
				num.Flow, _, flowOK = l.str(v, where+" flow")
			}},
			{name: "record", parse: func(_, v *yaml.Node) { num.Record = l.record(v, where) }},
		})
		if !flowOK {
			return
		}
		if num.Flow == "" {
			at := k
			if flowNode != nil {
				at = flowNode
			}
			l.problem(at, "%s has no flow: say which flow its calls run", where)
			return
		}
		l.checks = append(l.checks, func() {
			if _, ok := c.Flows[num.Flow]; !ok {
				l.problem(flowNode, "%s names flow %q, which is not defined", where, num.Flow)
			}
		})
	})
}

func (l *loader) queues(n *yaml.Node, c *Config) {
	l.entries(n, "queues", func(name string, k, v *yaml.Node) {
		q := &Queue{Name: name, Strategy: DefaultStrategy, RingTimeout: DefaultRingTimeout}
		c.Queues[name] = q
		where := fmt.Sprintf("queue %q", name)
		agentsGiven := 0 // -1: the list itself was wrong, already reported
		var agentsNode, noAnswerNode, voicemailNode, hoursNode, closedNode, afterHoursNode *yaml.Node
		var closed []string
		l.fields(v, where, []key{
			{name: "strategy", parse: func(_, v *yaml.Node) {
				s, present, ok := l.str(v, where+" strategy")
				if !present || !ok {
					return
				}
				if !validStrategy(s) {
					l.problem(v, "%s: unknown strategy %q (supported: %s)", where, s, supportedStrategies)
					return
				}
				q.Strategy = s
			}},
			{name: "ring_timeout", parse: func(_, v *yaml.Node) {
				if d, ok := l.duration(v, where+" ring_timeout"); ok {
					if d == 0 {
						l.problem(v, "%s ring_timeout must be more than 0", where)
						return
					}
					q.RingTimeout = d
				}
			}},
			{name: "max_wait", parse: func(_, v *yaml.Node) {
				q.MaxWait, _ = l.duration(v, where+" max_wait")
			}},
			{name: "wrap_up", parse: func(_, v *yaml.Node) {
				q.WrapUp, _ = l.duration(v, where+" wrap_up")
			}},
			{name: "hold_music", parse: func(_, v *yaml.Node) {
				q.HoldMusic = l.prompt(v, where+" hold_music")
			}},
			{name: "overflow", parse: func(_, v *yaml.Node) { q.Overflow = l.overflow(v, where, c, name) }},
			{name: "no_answer", parse: func(_, v *yaml.Node) {
				noAnswerNode = v
				q.NoAnswer = l.queueAction(v, where+" no_answer")
			}},
			{name: "voicemail", parse: func(k, v *yaml.Node) {
				voicemailNode = k
				q.Voicemail = l.voicemail(v, where)
			}},
			{name: "hours", parse: func(_, v *yaml.Node) {
				hoursNode = v
				txt, present, ok := l.str(v, where+" hours")
				if !present || !ok {
					return
				}
				h, err := ParseHours(txt)
				if err != nil {
					l.problem(v, "%s hours: %v", where, err)
					return
				}
				q.Hours = h
			}},
			{name: "closed", parse: func(_, v *yaml.Node) {
				closedNode = v
				items, ok := l.list(v, where+" closed")
				if !ok {
					return
				}
				for _, it := range items {
					if d, present, ok := l.str(it, where+" closed"); present && ok {
						closed = append(closed, d)
					}
				}
			}},
			{name: "after_hours", parse: func(_, v *yaml.Node) {
				afterHoursNode = v
				q.AfterHours = l.queueAction(v, where+" after_hours")
			}},
			{name: "after_hours_prompt", parse: func(_, v *yaml.Node) {
				afterHoursNode = v
				q.AfterHoursPrompt = l.prompt(v, where+" after_hours_prompt")
			}},
			{name: "agents", parse: func(_, v *yaml.Node) {
				agentsNode = v
				items, ok := l.list(v, where+" agents")
				if !ok {
					agentsGiven = -1
					return
				}
				agentsGiven = len(items)
				seen := map[string]bool{}
				for _, it := range items {
					id, priority, ok := l.queueAgent(it, where)
					if !ok {
						continue
					}
					if seen[id] {
						l.problem(it, "%s lists agent %q twice", where, id)
						continue
					}
					seen[id] = true
					q.Agents = append(q.Agents, id)
					if priority != 0 {
						if q.Priority == nil {
							q.Priority = map[string]int{}
						}
						q.Priority[id] = priority
					}
					l.checks = append(l.checks, func() {
						if _, ok := c.Agents[id]; !ok {
							l.problem(it, "%s names agent %q, which is not defined", where, id)
						}
					})
				}
			}},
		})
		if agentsGiven == 0 {
			at := k
			if agentsNode != nil {
				at = agentsNode
			}
			l.problem(at, "%s has no agents: its calls could never be answered", where)
		}
		if q.NoAnswer == "" {
			q.NoAnswer = ActionHangup
		}
		if q.NoAnswer == ActionVoicemail && q.Voicemail == nil && voicemailNode == nil {
			q.Voicemail = l.defaultVoicemail(noAnswerNode, where)
		}
		l.queueHours(q, where, hoursNode, closedNode, afterHoursNode, voicemailNode, closed)
	})
}

// queueHours completes a queue's hours: its closed dates, and what
// happens outside them.
func (l *loader) queueHours(q *Queue, where string, hoursNode, closedNode, afterHoursNode, voicemailNode *yaml.Node, closed []string) {
	if q.Hours == nil {
		switch {
		case hoursNode != nil:
			// Already reported.
		case closedNode != nil:
			l.problem(closedNode, "%s has closed dates but no hours: give hours too, like hours: Mon-Fri 09:00-18:00 Europe/Madrid", where)
		case afterHoursNode != nil:
			l.problem(afterHoursNode, "%s says what happens after hours but has no hours: give hours too, like hours: Mon-Fri 09:00-18:00 Europe/Madrid", where)
		}
		return
	}
	if len(closed) > 0 {
		h, err := q.Hours.WithClosed(closed)
		if err != nil {
			l.problem(closedNode, "%s %v", where, err)
			return
		}
		q.Hours = h
	}
	if q.AfterHours == "" {
		q.AfterHours = ActionHangup
	}
	if q.AfterHoursPrompt == nil {
		q.AfterHoursPrompt = l.promptAt(hoursNode, DefaultClosedPrompt, where+" after_hours_prompt")
	}
	if q.AfterHours == ActionVoicemail && q.Voicemail == nil && voicemailNode == nil {
		q.Voicemail = l.defaultVoicemail(hoursNode, where)
	}
}

// queueAgent reads one entry of a queue's agents: an id, or {id, priority}.
func (l *loader) queueAgent(it *yaml.Node, where string) (id string, priority int, ok bool) {
	if it.Kind != yaml.MappingNode {
		id, present, ok := l.str(it, where+" agents")
		if !ok {
			return "", 0, false
		}
		if !present || id == "" {
			l.problem(it, "%s agents has an empty entry", where)
			return "", 0, false
		}
		return id, 0, true
	}
	var idNode *yaml.Node
	valid := true
	l.fields(it, where+" agents entry", []key{
		{name: "id", parse: func(_, v *yaml.Node) {
			var present bool
			id, present, ok = l.str(v, where+" agents id")
			valid = valid && ok
			if present {
				idNode = v
			}
		}},
		{name: "priority", parse: func(_, v *yaml.Node) {
			n, ok := l.nonNegInt(v, where+" agents priority")
			switch {
			case !ok:
				valid = false
			case n < 1 || n > maxPriority:
				l.problem(v, "%s agents priority must be from 1 (rung first) to %d, got %d", where, maxPriority, n)
				valid = false
			default:
				priority = n
			}
		}},
	})
	if idNode == nil || id == "" {
		l.problem(it, "%s agents entry needs an id, like {id: alice, priority: 1}", where)
		return "", 0, false
	}
	return id, priority, valid
}

// queueAction reads hangup or voicemail.
func (l *loader) queueAction(v *yaml.Node, label string) string {
	s, present, ok := l.str(v, label)
	if !present || !ok {
		return ""
	}
	if s != ActionHangup && s != ActionVoicemail {
		l.problem(v, "%s must be %s or %s, got %q", label, ActionHangup, ActionVoicemail, s)
		return ""
	}
	return s
}

// overflow reads {after, queue}: a call still waiting after `after` moves
// to queue.
func (l *loader) overflow(v *yaml.Node, where string, c *Config, self string) *Overflow {
	o := &Overflow{}
	var afterNode, queueNode *yaml.Node
	l.fields(v, where+" overflow", []key{
		{name: "after", parse: func(_, v *yaml.Node) {
			afterNode = v
			o.After, _ = l.duration(v, where+" overflow after")
		}},
		{name: "queue", parse: func(_, v *yaml.Node) {
			queueNode = v
			o.Queue, _, _ = l.str(v, where+" overflow queue")
		}},
	})
	switch {
	case afterNode == nil || queueNode == nil:
		l.problem(v, "%s overflow needs after and queue, like overflow: {after: 60s, queue: support}", where)
		return nil
	case o.After <= 0:
		l.problem(afterNode, "%s overflow after must be more than 0", where)
		return nil
	case o.Queue == self:
		l.problem(queueNode, "%s overflows into itself", where)
		return nil
	}
	l.checks = append(l.checks, func() {
		if _, ok := c.Queues[o.Queue]; !ok {
			l.problem(queueNode, "%s overflows into queue %q, which is not defined", where, o.Queue)
		}
	})
	return o
}

// voicemail reads {greeting, max_length}.
func (l *loader) voicemail(v *yaml.Node, where string) *Voicemail {
	vm := &Voicemail{MaxLength: DefaultVoicemailMaxLength}
	var greetingNode *yaml.Node
	l.fields(v, where+" voicemail", []key{
		{name: "greeting", parse: func(_, v *yaml.Node) {
			greetingNode = v
			vm.Greeting = l.prompt(v, where+" voicemail greeting")
		}},
		{name: "max_length", parse: func(_, v *yaml.Node) {
			if d, ok := l.duration(v, where+" voicemail max_length"); ok {
				if d <= 0 {
					l.problem(v, "%s voicemail max_length must be more than 0", where)
					return
				}
				vm.MaxLength = d
			}
		}},
	})
	if greetingNode == nil {
		vm.Greeting = l.promptAt(v, DefaultVoicemailGreeting, where+" voicemail greeting")
	}
	return vm
}

func (l *loader) defaultVoicemail(at *yaml.Node, where string) *Voicemail {
	return &Voicemail{
		Greeting:  l.promptAt(at, DefaultVoicemailGreeting, where+" voicemail greeting"),
		MaxLength: DefaultVoicemailMaxLength,
	}
}

func (l *loader) agents(n *yaml.Node, c *Config) {
	l.entries(n, "agents", func(id string, k, v *yaml.Node) {
		a := &Agent{ID: id, Name: id}
		c.Agents[id] = a
		where := fmt.Sprintf("agent %q", id)
		reachable := false
		var sipNode, webNode *yaml.Node
		l.fields(v, where, []key{
			{name: "name", parse: func(_, v *yaml.Node) {
				if s, present, ok := l.str(v, where+" name"); present && ok && s != "" {
					a.Name = s
				}
			}},
			{name: "sip", parse: func(k, v *yaml.Node) {
				reachable = true
				sipNode = k
				a.SIP = l.agentSIP(k, v, where)
			}},
			{name: "webrtc", parse: func(k, v *yaml.Node) {
				reachable = true
				webNode = k
				a.WebRTC = l.agentWebRTC(k, v, where)
			}},
		})
		switch {
		case !reachable:
			l.problem(k, "%s has no phone: give webrtc: {token: SECRET} for the browser softphone, sip: {contact: URI} or sip: {username: NAME, password: SECRET}", where)
		case sipNode != nil && webNode != nil:
			l.problem(webNode, "%s has both sip and webrtc: an agent answers on one of them, so give one (or define two agents)", where)
		}
	})
}

// agentWebRTC reads webrtc: {token}, the secret the agent's browser
// softphone logs in with.
func (l *loader) agentWebRTC(k, v *yaml.Node, where string) *AgentWebRTC {
	where += " webrtc"
	w := &AgentWebRTC{}
	var tokenNode *yaml.Node
	valid := true
	if !l.fields(v, where, []key{
		{name: "token", parse: func(_, v *yaml.Node) {
			txt, present, ok := l.str(v, where+" token")
			if present {
				w.Token, tokenNode = txt, v
			}
			valid = valid && ok
		}},
	}) || !valid {
		return w
	}
	switch {
	case tokenNode == nil:
		l.problem(k, "%s needs a token, like webrtc: {token: \"${ALICE_TOKEN}\"}", where)
	case w.Token == "":
		l.problem(tokenNode, "%s token must not be empty", where)
	}
	return w
}

func (l *loader) agentSIP(k, v *yaml.Node, where string) *AgentSIP {
	where += " sip"
	s := &AgentSIP{}
	var contactNode, userNode, passNode *yaml.Node
	// valid stays true while every value expanded: a value that failed
	// (an unset ${VAR}) is already reported and must not also read as empty.
	valid := true
	str := func(dst *string, node **yaml.Node, name string) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			txt, present, ok := l.str(v, where+" "+name)
			if present {
				*dst, *node = txt, v
			}
			valid = valid && ok
		}
	}
	if !l.fields(v, where, []key{
		{name: "contact", parse: str(&s.Contact, &contactNode, "contact")},
		{name: "username", parse: str(&s.Username, &userNode, "username")},
		{name: "password", parse: str(&s.Password, &passNode, "password")},
	}) {
		return s
	}
	switch {
	case contactNode != nil && (userNode != nil || passNode != nil):
		at := userNode
		if at == nil {
			at = passNode
		}
		l.problem(at, "%s: give either contact or username+password, not both", where)
	case !valid:
	case contactNode != nil:
		if !validSIPURI(s.Contact) {
			l.problem(contactNode, "%s contact %q is not a sip: URI with a host, like sip:carol@192.0.2.10:5060", where, s.Contact)
		}
	case userNode != nil:
		if s.Username == "" {
			l.problem(userNode, "%s username must not be empty", where)
		}
		if passNode == nil || s.Password == "" {
			l.problem(userNode, "%s: username %q needs a password", where, s.Username)
		}
	case passNode != nil:
		l.problem(passNode, "%s: password needs a username", where)
	default:
		l.problem(k, "%s needs contact, or username and password", where)
	}
	return s
}

// validSIPURI checks "sip:[user@]host[:port][;params][?headers]", the
// shape the edge can dial without registration.
func validSIPURI(s string) bool {
	rest, ok := cutPrefixFold(s, "sip:")
	if !ok {
		return false
	}
	rest, _, _ = strings.Cut(rest, "?")
	rest, _, _ = strings.Cut(rest, ";")
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	host := rest
	if h, port, err := net.SplitHostPort(rest); err == nil {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return false
		}
		host = h
	} else if strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") {
		host = rest[1 : len(rest)-1]
	}
	return host != "" && validHost(host)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// Summary is the line `callsign check` prints for a valid file.
func (c *Config) Summary() string {
	numbers := plural(len(c.Numbers), "number")
	if len(c.Pools) > 0 {
		numbers += fmt.Sprintf(", %s (%s)", plural(len(c.Pools), "pool"), plural(c.poolNumberCount(), "number"))
	}
	s := fmt.Sprintf("%s: ok — %s, %s, %s, %s, %s", c.Path,
		numbers, plural(len(c.Flows), "flow"),
		plural(len(c.Queues), "queue"), plural(len(c.Agents), "agent"),
		plural(len(c.Trunks), "trunk"))
	if n := c.promptCount(); n > 0 {
		s += ", " + plural(n, "prompt")
	}
	if r := c.recordSummary(); r != "" {
		s += ", recording: " + r
	}
	return s
}

// recordSummary says how many flows, then numbers, ask for consent or
// announce the recording, like "1 flow asks, 2 announce, 1 number asks";
// empty when nothing is recorded.
func (c *Config) recordSummary() string {
	var parts []string
	group := func(noun string, modes []string) {
		count := map[string]int{}
		for _, m := range modes {
			count[m]++
		}
		first := true
		for _, m := range []struct{ mode, one, many string }{
			{RecordAsk, "asks", "ask"},
			{RecordAnnounce, "announces", "announce"},
		} {
			n := count[m.mode]
			if n == 0 {
				continue
			}
			verb := m.many
			if n == 1 {
				verb = m.one
			}
			what := strconv.Itoa(n)
			if first {
				what, first = plural(n, noun), false
			}
			parts = append(parts, what+" "+verb)
		}
	}
	var flows, numbers []string
	for _, f := range c.Flows {
		flows = append(flows, f.Record)
	}
	for _, n := range c.Numbers {
		numbers = append(numbers, n.Record)
	}
	group("flow", flows)
	group("number", numbers)
	return strings.Join(parts, ", ")
}

// promptCount is the number of distinct prompt files the flows play.
func (c *Config) promptCount() int {
	seen := map[*Prompt]bool{}
	for _, f := range c.Flows {
		for _, s := range f.Steps {
			seen[s.Play] = true
			if s.Menu != nil {
				seen[s.Menu.Prompt] = true
				seen[s.Menu.InvalidPrompt] = true
			}
		}
	}
	delete(seen, nil)
	return len(seen)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
