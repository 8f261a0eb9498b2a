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
// every packet and hands it to the sink attached by a Bridge, else to the
// Receiver set with SetReceiver (an IVR listening for DTMF), else drops it
// (e.g. before the call is answered).
//
// An Endpoint is also a PacketWriter, so prompts can be played to the leg.
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
	// detaching a sink or a receiver waits for an in-flight forward. It
	// is private to this leg, so it is never contended by other calls.
	sinkMu   sync.Mutex
	sink     *relay
	receiver Receiver

	malformed  atomic.Uint64
	foreign    atomic.Uint64
	noRemote   atomic.Uint64
	sendErrors atomic.Uint64

	// closed is set before the socket is closed, so that WriteRTP fails
	// even when it has no address to send to and never reaches the socket.
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// EndpointStats are per-leg counters.
type EndpointStats struct {
	// Malformed counts datagrams shorter than an RTP header, not RTP
	// version 2, or too large.
	Malformed uint64
	// Foreign counts packets from a source other than the latched one;
	// they are dropped so a third party cannot hijack the stream.
	Foreign uint64
	// NoRemote counts packets WriteRTP dropped because no usable address
	// was known yet (no SDP address and nothing latched).
	NoRemote uint64
	// SendErrors counts packets WriteRTP lost to a failed send.
	SendErrors uint64
}

// Receiver gets the valid RTP packets of a leg while no bridge relays them,
// e.g. to detect DTMF during an IVR. ReceiveRTP runs on the leg's reader
// goroutine, so it must be quick and must not block: the socket is not read
// while it runs. pkt is reused once it returns, so it must not be kept, and
// it must not call SetReceiver on the same leg, which waits for it.
type Receiver interface {
	ReceiveRTP(pkt []byte)
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
	return EndpointStats{
		Malformed:  e.malformed.Load(),
		Foreign:    e.foreign.Load(),
		NoRemote:   e.noRemote.Load(),
		SendErrors: e.sendErrors.Load(),
	}
}

// SetReceiver makes r the receiver of the leg's valid RTP packets, replacing
// any previous one; nil removes it. While a Bridge is attached the bridge
// gets the packets and r does not; r gets them again once the bridge has
// stopped. SetReceiver returns only after a ReceiveRTP in progress has
// finished, so once it has removed a receiver, that receiver is not called
// again and its state may be reused.
func (e *Endpoint) SetReceiver(r Receiver) {
	e.sinkMu.Lock()
	e.receiver = r
	e.sinkMu.Unlock()
}

// WriteRTP sends one packet to the leg's remote address, so that prompts can
// be played to the leg. It does not keep pkt.
//
// A packet is dropped, and nil returned, when no address is known yet (an
// SDP without a usable one, nothing latched) or the send fails: a prompt
// must keep its pace and not end because the caller's media has not
// arrived or one datagram was refused. Only a closed Endpoint is an error,
// net.ErrClosed, so that playback to a leg that has gone ends.
//
// Packets written while a Bridge relays to this leg are interleaved with the
// relayed ones, which the far end would see as one garbled stream.
func (e *Endpoint) WriteRTP(pkt []byte) error {
	if e.closed.Load() {
		return net.ErrClosed
	}
	dst := e.remote.Load()
	if dst == nil {
		e.noRemote.Add(1)
		return nil
	}
	if _, err := e.conn.WriteToUDPAddrPort(pkt, *dst); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		e.sendErrors.Add(1)
	}
	return nil
}

// Close closes the socket, waits for the reader goroutine to end and returns
// the port to the pool. It is idempotent.
func (e *Endpoint) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
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
		} else if r := e.receiver; r != nil {
			r.ReceiveRTP(pkt)
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

// send is the bridge's way out to this leg. Unlike WriteRTP it does not
// count its drops: the bridge does.
func (e *Endpoint) send(p []byte) bool {
	dst := e.remote.Load()
	if dst == nil {
		return false
	}
	_, err := e.conn.WriteToUDPAddrPort(p, *dst)
	return err == nil
}
