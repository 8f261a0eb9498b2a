package media

import (
	"encoding/binary"
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

	// Timeout, if positive, calls OnTimeout once when either leg has sent
	// no valid RTP for that long (counted from Start): a phone that
	// vanished without a BYE is found even while the other side talks.
	Timeout time.Duration
	// OnTimeout runs on a timer goroutine; it may call Stop. It can race
	// with a concurrent Stop, so it must tolerate a call that is already
	// being torn down.
	OnTimeout func()

	// Meter, if set, includes this bridge in process-wide totals.
	Meter *Meter

	// ContinueA, if set, is the stream leg a has been receiving
	// from the edge, e.g. the prompts of an IVR: the packets relayed from
	// b to a are rewritten to continue it, so that a's phone sees one
	// stream rather than an unannounced jump of SSRC, sequence number and
	// timestamp, which some jitter buffers answer with silence or a
	// garbled second. See RTPStream for how.
	//
	// The bridge owns the stream from Start until Stop has returned:
	// nothing may be played on it meanwhile. Start reads it once; Stop
	// writes back where the relayed packets left it, so a prompt played
	// afterwards (a goodbye when b hangs up) continues it too. The times
	// the stream keeps are compared with the real clock, so it must have
	// been played with SystemClock.
	ContinueA *RTPStream
	// ContinueB is the same for the packets relayed from a to b.
	ContinueB *RTPStream

	// Tap, if set, is shown every packet the bridge relays, as it came
	// from its sender, e.g. to record the call.
	Tap Tap
}

// Tap sees the packets a bridge relays. Packet runs on the reader goroutine
// of the sending leg, once per packet, so it must not block (a recorder
// copies and hands the packet to a writer) and must not keep pkt. The two
// directions call it concurrently.
type Tap interface {
	Packet(aToB bool, pkt []byte)
}

// BridgeStats are a bridge's packet counters.
type BridgeStats struct {
	AtoB    uint64 // packets relayed from a to b
	BtoA    uint64 // packets relayed from b to a
	Dropped uint64 // malformed, foreign-source, no destination or failed write
}

// Port is one leg a Bridge can relay: an *Endpoint (plain RTP) or a *Peer
// (a browser over WebRTC). The set is closed because a leg's packets are
// handed to the bridge on the leg's own reader goroutine, a contract only
// this package's legs keep.
type Port interface {
	// attach makes r the receiver of the leg's valid packets; it panics if
	// another bridge is attached.
	attach(r *relay)
	// detach returns only after a forward in progress on this leg has
	// finished.
	detach(r *relay)
	// send delivers one packet, already rewritten for this leg, to the far
	// end, and reports whether it went out. It must not block for long or
	// keep p: it runs on the other leg's reader goroutine, which reuses p.
	send(p []byte) bool
}

// Bridge relays RTP between two legs. Each direction runs on the receiving
// leg's reader goroutine: a's reader sends through b to b's far end, and b's
// reader the other way round.
type Bridge struct {
	a, b   Port
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
// touched only by the source leg's reader goroutine.
type relay struct {
	dst     Port
	t0      time.Time
	pt      [128]uint8
	splice  *splice // nil: packets keep their own SSRC, seq and timestamp
	tap     Tap
	aToB    bool // the direction, for tap
	packets atomic.Uint64
	dropped atomic.Uint64
	lastRx  atomic.Int64 // nanoseconds since t0
}

// NewBridge prepares a bridge between a and b; nothing is relayed before
// Start. It panics on programming errors (nil or identical legs, payload
// types above 127). The bridge never closes the legs.
func NewBridge(a, b Port, opt BridgeOptions) *Bridge {
	if nilPort(a) || nilPort(b) || a == b {
		panic("media: NewBridge needs two distinct legs")
	}
	t0 := time.Now()
	br := &Bridge{a: a, b: b, opt: opt, t0: t0}
	br.ab = newRelay(b, t0, opt.PTMapAtoB)
	br.ba = newRelay(a, t0, opt.PTMapBtoA)
	br.ab.tap, br.ab.aToB = opt.Tap, true
	br.ba.tap = opt.Tap
	if opt.ContinueA != nil {
		br.ba.splice = &splice{stream: opt.ContinueA}
	}
	if opt.ContinueB != nil {
		br.ab.splice = &splice{stream: opt.ContinueB}
	}
	return br
}

// nilPort also catches a nil *Endpoint or *Peer, which compares unequal to
// a nil interface and would otherwise panic only at Start.
func nilPort(p Port) bool {
	switch p := p.(type) {
	case nil:
		return true
	case *Endpoint:
		return p == nil
	case *Peer:
		return p == nil
	}
	return false
}

func newRelay(dst Port, t0 time.Time, m map[uint8]uint8) *relay {
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

// forward sends one validated RTP packet on. It must not allocate between
// two Endpoints: it runs for every packet of every call.
//
// The packet is rewritten before the destination says whether it can take
// it, so a packet dropped for want of an address still moves the splice:
// to the far end it is a lost packet, which keeps the stream's timing true.
func (r *relay) forward(p []byte) {
	now := int64(time.Since(r.t0))
	r.lastRx.Store(now)
	if r.tap != nil {
		r.tap.Packet(r.aToB, p)
	}
	p[1] = p[1]&0x80 | r.pt[p[1]&0x7f]
	if r.splice != nil {
		r.splice.rewrite(p, now)
	}
	if !r.dst.send(p) {
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
	// Before attaching: from then on only the readers touch the splices.
	b.ab.loadSplice()
	b.ba.loadSplice()
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
	last := min(b.ab.lastRx.Load(), b.ba.lastRx.Load())
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
// forwarded by this bridge, Stats are final and the ContinueA and ContinueB
// streams are back with their owner, continuing after the last packet
// relayed; the legs keep reading (and latching) until their owner
// closes them. Stop is idempotent and safe to call concurrently and from
// OnTimeout.
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
	// After detaching, which waited for any forward in progress.
	b.ab.storeSplice()
	b.ba.storeSplice()
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

func (r *relay) loadSplice() {
	if r.splice != nil {
		r.splice.load(r.t0)
	}
}

func (r *relay) storeSplice() {
	if r.splice != nil {
		r.splice.store(r.t0)
	}
}

const (
	// nsPerSample converts wall time to RTP timestamp units at 8 kHz,
	// the clock of G.711 and of telephone-event in these calls.
	nsPerSample = int64(time.Second / promptRate)
	// spliceMaxFrame bounds the timestamp step taken for a packet's
	// duration: 60 ms, the longest usual ptime. A larger step in sequence
	// is a silence the sender skipped (RFC 3551), not a long frame.
	spliceMaxFrame = 480
)

// splice rewrites the packets of one relay direction so that they continue
// an RTPStream: every packet gets the stream's SSRC, and its sequence number
// and timestamp moved by offsets that place the first packet relayed right
// after the stream's last one, the timestamp advanced by the wall time that
// has passed since that one's successor was due. The offsets stay for as
// long as the source keeps its SSRC, so reordered, lost or duplicated
// packets keep their relative order, gaps and timing, just as if the source
// had sent the stream itself. When the source's SSRC changes (the far end
// moved its media, a transfer), the new source is placed after the last
// packet sent the same way. The first packet of each source is marked as
// the start of a talkspurt, which tells the jitter buffer to resynchronise.
//
// RFC 4733 telephone-event packets are rewritten like audio: they share the
// audio stream's SSRC, sequence and clock.
//
// A splice is touched only by the relay's source reader while the bridge
// runs, and by Start and Stop outside that time.
type splice struct {
	stream *RTPStream
	ssrc   uint32

	// Where the first source starts: the stream's next sequence number
	// and timestamp, and when (ns since t0) its next packet was due, if
	// any was ever paced (hasDue).
	seq0   uint16
	ts0    uint32
	due0   int64
	hasDue bool

	started bool
	src     uint32 // SSRC of the source being relayed
	seqOff  uint16
	tsOff   uint32

	// The packet sent with the highest sequence number, rewritten, and
	// when; dur is the timestamp step of a packet, from the last steps
	// seen in sequence.
	lastSeq uint16
	lastTS  uint32
	lastAt  int64
	dur     uint32
}

func (s *splice) load(t0 time.Time) {
	st := s.stream
	*s = splice{stream: st, ssrc: st.SSRC, seq0: st.Seq, ts0: st.TS, dur: promptFrameLen}
	if !st.due.IsZero() {
		s.due0, s.hasDue = int64(st.due.Sub(t0)), true
	}
}

// store leaves the stream as Play would after sending the last packet
// relayed, so that what is played next continues after it.
func (s *splice) store(t0 time.Time) {
	if !s.started {
		return
	}
	st := s.stream
	st.Seq = s.lastSeq + 1
	st.TS = s.lastTS + s.dur
	st.due = t0.Add(time.Duration(s.lastAt + int64(s.dur)*nsPerSample))
}

// rewrite must not allocate: it runs for every relayed packet.
func (s *splice) rewrite(p []byte, now int64) {
	seq := binary.BigEndian.Uint16(p[2:4])
	ts := binary.BigEndian.Uint32(p[4:8])
	src := binary.BigEndian.Uint32(p[8:12])
	if !s.started || src != s.src {
		s.restart(seq, ts, src, now)
		p[1] |= 0x80
	}
	oseq, ots := seq+s.seqOff, ts+s.tsOff
	binary.BigEndian.PutUint16(p[2:4], oseq)
	binary.BigEndian.PutUint32(p[4:8], ots)
	binary.BigEndian.PutUint32(p[8:12], s.ssrc)
	ahead := oseq - s.lastSeq
	if ahead == 0 || ahead >= 0x8000 {
		// A duplicate or a late packet: it does not move the end of
		// the stream.
		return
	}
	if step := ots - s.lastTS; ahead == 1 && p[1]&0x80 == 0 && step > 0 && step <= spliceMaxFrame {
		s.dur = step
	}
	s.lastSeq, s.lastTS, s.lastAt = oseq, ots, now
}

// restart sets the offsets that place a new source's packet (seq, ts) right
// after what has been sent.
func (s *splice) restart(seq uint16, ts, src uint32, now int64) {
	next, nextTS, due, hasDue := s.seq0, s.ts0, s.due0, s.hasDue
	if s.started {
		next, nextTS = s.lastSeq+1, s.lastTS+s.dur
		due, hasDue = s.lastAt+int64(s.dur)*nsPerSample, true
	}
	if late := now - due; hasDue && late > 0 {
		nextTS += uint32(late / nsPerSample)
	}
	s.seqOff, s.tsOff = next-seq, nextTS-ts
	s.started, s.src = true, src
	// As if the packet before this one had been sent, so that this one
	// counts as the next in sequence without its step being taken for a
	// packet's duration (it is marked).
	s.lastSeq, s.lastTS = next-1, nextTS-s.dur
}
