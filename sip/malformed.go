package sip

import (
	"net/netip"
	"sync"
	"time"
)

const (
	// A source's malformed messages are logged at most this often.
	malformedEvery = time.Minute
	// Sources remembered at most; spoofed UDP can name any number of
	// them, and the log's memory must not grow with a flood.
	malformedSources = 4096
)

// malformedLog keeps the log readable when a peer sends junk: the first
// malformed message of a source in a minute is logged, the rest are only
// counted, and their count goes with the source's next line. Sources
// beyond the bound share one entry, the zero address.
type malformedLog struct {
	now func() time.Time

	mu        sync.Mutex
	sources   map[netip.Addr]*malformedSource
	lastPrune time.Time
}

type malformedSource struct {
	logged     time.Time
	suppressed int
}

func newMalformedLog(now func() time.Time) *malformedLog {
	return &malformedLog{now: now, sources: map[netip.Addr]*malformedSource{}}
}

// note counts a malformed message from src and says whether to log it,
// with how many from src went unlogged since its last line.
func (m *malformedLog) note(src netip.Addr) (log bool, suppressed int) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sources[src]
	if !ok && len(m.sources) >= malformedSources {
		m.prune(now)
		if len(m.sources) >= malformedSources {
			src = netip.Addr{}
			s, ok = m.sources[src]
		}
	}
	if !ok {
		m.sources[src] = &malformedSource{logged: now}
		return true, 0
	}
	if now.Sub(s.logged) < malformedEvery {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.logged, s.suppressed = now, 0
	return true, n
}

// prune forgets the sources whose minute is over, and with them the
// count of what they sent unlogged: it runs only when the map is full. A
// flood from ever new addresses would make every message scan the
// map, so it runs at most once a second.
func (m *malformedLog) prune(now time.Time) {
	if now.Sub(m.lastPrune) < time.Second {
		return
	}
	m.lastPrune = now
	for a, s := range m.sources {
		if now.Sub(s.logged) >= malformedEvery {
			delete(m.sources, a)
		}
	}
}

// logMalformed logs a malformed message from source (host:port), within
// the limits of malformedLog.
func (e *Edge) logMalformed(source, reason string) {
	ap, err := netip.ParseAddrPort(source)
	var ip netip.Addr
	if err == nil {
		ip = ap.Addr().Unmap()
	}
	log, suppressed := e.malformed.note(ip)
	if !log {
		return
	}
	ev := e.log.Info().Str("source", source).Str("reason", reason)
	if suppressed == 0 {
		ev.Msg("malformed request")
		return
	}
	ev.Int("suppressed", suppressed).
		Msgf("malformed request; %d more malformed messages from %s since the last line", suppressed, ip)
}
