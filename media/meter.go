package media

import "sync"

// Meter sums bridge counters for /metrics. Bridges keep their own counters;
// the Meter only reads them when scraped, so no atomic shared between calls is
// written per packet. Its mutex is taken on bridge Start/Stop and on scrape.
type Meter struct {
	mu      sync.Mutex
	live    map[*Bridge]struct{}
	relayed uint64 // totals of stopped bridges
	dropped uint64
}

// NewMeter returns an empty Meter.
func NewMeter() *Meter {
	return &Meter{live: make(map[*Bridge]struct{})}
}

func (m *Meter) register(b *Bridge) {
	m.mu.Lock()
	m.live[b] = struct{}{}
	m.mu.Unlock()
}

// unregister folds the bridge's final counters into the totals; the bridge
// has already detached, so they no longer change.
func (m *Meter) unregister(b *Bridge) {
	s := b.Stats()
	m.mu.Lock()
	if _, ok := m.live[b]; ok {
		delete(m.live, b)
		m.relayed += s.AtoB + s.BtoA
		m.dropped += s.Dropped
	}
	m.mu.Unlock()
}

// RelayedPackets is the number of packets relayed by all bridges, live and
// stopped, in both directions.
func (m *Meter) RelayedPackets() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.relayed
	for b := range m.live {
		n += b.ab.packets.Load() + b.ba.packets.Load()
	}
	return n
}

// DroppedPackets is the number of packets dropped by all bridges.
func (m *Meter) DroppedPackets() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.dropped
	for b := range m.live {
		n += b.ab.dropped.Load() + b.ba.dropped.Load()
	}
	return n
}

// ActiveBridges is the number of started, not yet stopped bridges.
func (m *Meter) ActiveBridges() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.live)
}
