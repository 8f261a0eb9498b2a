package media

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// BridgeOptions configure a Bridge. The zero value relays everything
// unchanged with no timeout and no meter.
type BridgeOptions struct {
	// PTMapAtoB rewrites the RTP payload type of packets going from a to
	// b, e.g. {101: 96} when the legs negotiated different
	// telephone-event types. Missing entries pass unchanged, so G.711
	// (0, 8) needs no entry. Keys and values must be below 128.
	PTMapAtoB map[uint8]uint8
	// PTMapBtoA is the same for packets going from b to a.
	PTMapBtoA map[uint8]uint8

	// Timeout, if positive, calls OnTimeout once when no valid RTP has
	// arrived in either direction for that long (counted from Start).
	Timeout time.Duration
	// OnTimeout runs on a timer goroutine; it may call Stop. It can race
	// with a concurrent Stop, so it must tolerate a call that is already
	// being torn down.
	OnTimeout func()

	// Meter, if set, includes this bridge in process-wide totals.
	Meter *Meter
}

// BridgeStats are a bridge's packet counters.
type BridgeStats struct {
	AtoB    uint64 // packets relayed from a to b
	BtoA    uint64 // packets relayed from b to a
	Dropped uint64 // malformed, foreign-source, no destination or failed write
}

// Bridge relays RTP between two endpoints. Each direction runs on the
// receiving endpoint's reader goroutine: a's reader writes through b's socket
// to b's remote, and b's reader the other way round.
type Bridge struct {
	a, b   *Endpoint
	ab, ba *relay
	opt    BridgeOptions
	t0     time.Time // monotonic origin of relay.lastRx

	mu    sync.Mutex
	state int
	timer *time.Timer
	fired bool
}

const (
	bridgeNew = iota
	bridgeRunning
	bridgeStopped
)

// relay is one direction of a bridge. Its fields written per packet are
// touched only by the source endpoint's reader goroutine.
type relay struct {
	dst     *Endpoint
	t0      time.Time
	pt      [128]uint8
	packets atomic.Uint64
	dropped atomic.Uint64
	lastRx  atomic.Int64 // nanoseconds since t0
}

// NewBridge prepares a bridge between a and b; nothing is relayed before
// Start. It panics on programming errors (nil or identical endpoints,
// payload types above 127). The bridge never closes the endpoints.
func NewBridge(a, b *Endpoint, opt BridgeOptions) *Bridge {
	if a == nil || b == nil || a == b {
		panic("media: NewBridge needs two distinct endpoints")
	}
	t0 := time.Now()
	br := &Bridge{a: a, b: b, opt: opt, t0: t0}
	br.ab = newRelay(b, t0, opt.PTMapAtoB)
	br.ba = newRelay(a, t0, opt.PTMapBtoA)
	return br
}

func newRelay(dst *Endpoint, t0 time.Time, m map[uint8]uint8) *relay {
	r := &relay{dst: dst, t0: t0}
	for i := range r.pt {
		r.pt[i] = uint8(i)
	}
	for from, to := range m {
		if from > 127 || to > 127 {
			panic(fmt.Sprintf("media: payload type mapping %d->%d out of range", from, to))
		}
		r.pt[from] = to
	}
	return r
}

// forward sends one validated RTP packet on. It must not allocate: it runs
// for every packet of every call.
func (r *relay) forward(p []byte) {
	r.lastRx.Store(int64(time.Since(r.t0)))
	dst := r.dst.remote.Load()
	if dst == nil {
		r.dropped.Add(1)
		return
	}
	p[1] = p[1]&0x80 | r.pt[p[1]&0x7f]
	if _, err := r.dst.conn.WriteToUDPAddrPort(p, *dst); err != nil {
		r.dropped.Add(1)
		return
	}
	r.packets.Add(1)
}

// Start begins relaying in both directions and arms the timeout. Calling it
// again, or after Stop, does nothing.
func (b *Bridge) Start() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != bridgeNew {
		return
	}
	b.state = bridgeRunning
	now := int64(time.Since(b.t0))
	b.ab.lastRx.Store(now)
	b.ba.lastRx.Store(now)
	if b.opt.Meter != nil {
		b.opt.Meter.register(b)
	}
	b.a.attach(b.ab)
	b.b.attach(b.ba)
	if b.opt.Timeout > 0 && b.opt.OnTimeout != nil {
		b.timer = time.AfterFunc(b.opt.Timeout, b.checkTimeout)
	}
}

// checkTimeout re-arms itself at lastRx+Timeout instead of resetting a timer
// per packet, which would cost a timer operation on the hot path.
func (b *Bridge) checkTimeout() {
	b.mu.Lock()
	if b.state != bridgeRunning || b.fired {
		b.mu.Unlock()
		return
	}
	last := max(b.ab.lastRx.Load(), b.ba.lastRx.Load())
	deadline := time.Duration(last) + b.opt.Timeout
	if left := deadline - time.Since(b.t0); left > 0 {
		b.timer.Reset(left)
		b.mu.Unlock()
		return
	}
	b.fired = true
	b.mu.Unlock()
	// Outside the lock: the callback typically hangs up and calls Stop.
	b.opt.OnTimeout()
}

// Stop ends relaying. When it returns, no packet is being or will be
// forwarded by this bridge and Stats are final; the endpoints keep reading
// (and latching) until their owner closes them. Stop is idempotent and safe
// to call concurrently and from OnTimeout.
func (b *Bridge) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == bridgeStopped {
		return
	}
	wasRunning := b.state == bridgeRunning
	b.state = bridgeStopped
	if !wasRunning {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	b.a.detach(b.ab)
	b.b.detach(b.ba)
	if b.opt.Meter != nil {
		b.opt.Meter.unregister(b)
	}
}

// Stats returns the bridge's counters; cheap enough to call at any time.
func (b *Bridge) Stats() BridgeStats {
	return BridgeStats{
		AtoB:    b.ab.packets.Load(),
		BtoA:    b.ba.packets.Load(),
		Dropped: b.ab.dropped.Load() + b.ba.dropped.Load(),
	}
}
