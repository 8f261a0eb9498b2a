package media

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// readBufSize is larger than any RTP packet on a 1500-byte MTU path; a
// datagram that fills it completely may have been truncated and is dropped.
const readBufSize = 2048

// Endpoint is the edge's RTP socket for one call leg.
//
// Each Endpoint runs exactly one reader goroutine for its whole life, so the
// socket is never read by two goroutines. The reader validates and latches
// every packet and hands it to the sink attached by a Bridge (or drops it when
// none is attached, e.g. before the call is answered).
type Endpoint struct {
	conn  *net.UDPConn
	local netip.AddrPort
	ports *Ports
	slot  int

	// remote is where packets for this leg are sent: the latched source
	// if any, otherwise the SDP address. Read per packet by the other
	// direction's reader, hence atomic.
	remote atomic.Pointer[netip.AddrPort]
	// latched is the source the peer's media really comes from; nil
	// until the first valid packet.
	latched atomic.Pointer[netip.AddrPort]

	mu        sync.Mutex // guards sdpRemote and serialises latch updates
	sdpRemote netip.AddrPort

	// sinkMu is held by the reader while it forwards one packet, so
	// detaching a sink waits for an in-flight forward. It is private to
	// this leg, so it is never contended by other calls.
	sinkMu sync.Mutex
	sink   *relay

	malformed atomic.Uint64
	foreign   atomic.Uint64

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// EndpointStats are per-leg receive counters.
type EndpointStats struct {
	// Malformed counts datagrams shorter than an RTP header, not RTP
	// version 2, or too large.
	Malformed uint64
	// Foreign counts packets from a source other than the latched one;
	// they are dropped so a third party cannot hijack the stream.
	Foreign uint64
}

func newEndpoint(conn *net.UDPConn, p *Ports, slot int) *Endpoint {
	e := &Endpoint{
		conn:  conn,
		local: conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		ports: p,
		slot:  slot,
		done:  make(chan struct{}),
	}
	go e.readLoop()
	return e
}

// LocalAddr is the address the socket is bound to. When the Ports address is
// unspecified (0.0.0.0) the caller must advertise its own public address in
// SDP.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.local }

// SetRemote sets the address taken from the peer's SDP. It is used until the
// first packet latches the real source. A changed address (re-INVITE moving
// the media) drops the latch so the new source can latch; repeating the same
// address keeps it. An invalid or unspecified address (e.g. the old
// c=0.0.0.0 hold) means "do not send until latched": on Linux, sending to
// 0.0.0.0 would reach the local host.
func (e *Endpoint) SetRemote(ap netip.AddrPort) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	e.mu.Lock()
	defer e.mu.Unlock()
	prev := e.sdpRemote
	if ap == prev {
		return
	}
	e.sdpRemote = ap
	if prev.IsValid() {
		e.latched.Store(nil)
	}
	if e.latched.Load() != nil {
		return
	}
	if usable(ap) {
		e.remote.Store(&ap)
	} else {
		e.remote.Store(nil)
	}
}

func usable(ap netip.AddrPort) bool {
	return ap.IsValid() && ap.Port() != 0 && !ap.Addr().IsUnspecified()
}

// Remote is the address packets for this leg are currently sent to: the
// latched source, else the SDP address, else the zero value.
func (e *Endpoint) Remote() netip.AddrPort {
	if p := e.remote.Load(); p != nil {
		return *p
	}
	return netip.AddrPort{}
}

// Latched reports whether media from the peer has been seen and latched.
func (e *Endpoint) Latched() bool { return e.latched.Load() != nil }

// Stats returns the leg's receive counters.
func (e *Endpoint) Stats() EndpointStats {
	return EndpointStats{Malformed: e.malformed.Load(), Foreign: e.foreign.Load()}
}

// Close closes the socket, waits for the reader goroutine to end and returns
// the port to the pool. It is idempotent.
func (e *Endpoint) Close() error {
	e.closeOnce.Do(func() {
		e.closeErr = e.conn.Close()
		<-e.done
		e.ports.release(e.slot)
	})
	return e.closeErr
}

func (e *Endpoint) readLoop() {
	defer close(e.done)
	buf := make([]byte, readBufSize)
	for {
		n, src, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (e.g. ICMP-induced) errors must not end the leg.
			continue
		}
		pkt := buf[:n]
		// Checked before latching so a stray non-RTP datagram cannot latch.
		if n < 12 || n == len(buf) || pkt[0]>>6 != 2 {
			e.malformed.Add(1)
			e.dropped()
			continue
		}
		if l := e.latched.Load(); l == nil {
			e.latch(src)
		} else if *l != src {
			e.foreign.Add(1)
			e.dropped()
			continue
		}
		e.sinkMu.Lock()
		if s := e.sink; s != nil {
			s.forward(pkt)
		}
		e.sinkMu.Unlock()
	}
}

// dropped charges a drop to the attached bridge, if any.
func (e *Endpoint) dropped() {
	e.sinkMu.Lock()
	if s := e.sink; s != nil {
		s.dropped.Add(1)
	}
	e.sinkMu.Unlock()
}

// latch is a separate function so that the one heap allocation it needs
// happens only when latching, not on every packet.
func (e *Endpoint) latch(src netip.AddrPort) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.latched.Load() != nil {
		return
	}
	p := new(netip.AddrPort)
	*p = src
	e.latched.Store(p)
	e.remote.Store(p)
}

func (e *Endpoint) attach(r *relay) {
	e.sinkMu.Lock()
	defer e.sinkMu.Unlock()
	if e.sink != nil && e.sink != r {
		panic("media: endpoint is already bridged")
	}
	e.sink = r
}

// detach returns only after a forward in progress on this leg has finished.
func (e *Endpoint) detach(r *relay) {
	e.sinkMu.Lock()
	if e.sink == r {
		e.sink = nil
	}
	e.sinkMu.Unlock()
}
