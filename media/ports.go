// Package media anchors RTP for the SIP edge: it allocates per-leg UDP
// sockets, latches onto the address media really comes from, relays RTP
// between two legs and speaks just enough SDP to negotiate audio.
//
// The package knows nothing about SIP or routing.
package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// ErrNoFreePort is wrapped by Open and Listen when no port of the range can be bound;
// the SIP layer typically answers 503.
var ErrNoFreePort = errors.New("media: no free RTP port")

// maxBindAttempts bounds how many ports Open and Listen try when binds
// fail, so a range largely held by another process fails fast instead of
// scanning thousands of ports during call setup.
const maxBindAttempts = 32

// Ports hands out RTP ports from a fixed range on one local address.
type Ports struct {
	addr         netip.Addr
	network      string
	min, max     int // as configured, for error messages
	first        int // lowest even port of the range
	used         []bool
	mu           sync.Mutex
	next         int // slot index where the next search starts
	inUse        int
	bindAttempts int
}

// NewPorts returns an allocator for even ports in [min,max] on addr. A port
// is only handed out if its RTCP companion (port+1) is also inside the range,
// so that a later version can bind RTCP without changing the range.
func NewPorts(addr netip.Addr, min, max int) (*Ports, error) {
	if !addr.IsValid() {
		return nil, errors.New("media: invalid RTP bind address")
	}
	if min < 1 || max > 65535 || min > max {
		return nil, fmt.Errorf("media: invalid RTP port range %d-%d", min, max)
	}
	first := min + min%2
	if first+1 > max {
		return nil, fmt.Errorf("media: RTP port range %d-%d holds no even/odd port pair", min, max)
	}
	addr = addr.Unmap()
	network := "udp4"
	if addr.Is6() {
		network = "udp6"
	}
	return &Ports{
		addr:         addr,
		network:      network,
		min:          min,
		max:          max,
		first:        first,
		used:         make([]bool, (max-first+1)/2),
		bindAttempts: maxBindAttempts,
	}, nil
}

// Open binds a UDP socket on the next free even port. The search continues
// from where the previous one stopped, so a just-freed port is reused only
// after the whole range has been cycled; late packets of a finished call then
// do not land in a new one.
func (p *Ports) Open() (*Endpoint, error) {
	conn, slot, err := p.bind()
	if err != nil {
		return nil, err
	}
	return newEndpoint(conn, p, slot), nil
}

// Listen takes a port as Open does, for a leg whose socket is read by
// something other than an Endpoint: a WebRTC peer, whose ICE, DTLS and SRTP
// share one socket. release closes conn and returns the port to the pool;
// it is idempotent, and the port counts in InUse until it is called.
func (p *Ports) Listen() (conn *net.UDPConn, release func(), err error) {
	conn, slot, err := p.bind()
	if err != nil {
		return nil, nil, err
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			// A socket already closed by its user is not an error here.
			_ = conn.Close()
			p.release(slot)
		})
	}
	return conn, release, nil
}

// bind reserves a slot and binds its port.
func (p *Ports) bind() (*net.UDPConn, int, error) {
	var lastErr error
	for attempt := 0; attempt < p.bindAttempts; attempt++ {
		slot, ok := p.reserve()
		if !ok {
			if lastErr != nil {
				break
			}
			return nil, 0, fmt.Errorf("%w in %d-%d", ErrNoFreePort, p.min, p.max)
		}
		port := p.first + 2*slot
		// The bind happens outside the mutex: it is a syscall and other
		// call setups should not queue behind it.
		conn, err := net.ListenUDP(p.network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.addr, uint16(port))))
		if err != nil {
			// Probably held by another process; the cursor has moved on
			// already, so the next attempt tries the next free port.
			p.release(slot)
			lastErr = err
			continue
		}
		return conn, slot, nil
	}
	return nil, 0, fmt.Errorf("%w in %d-%d: %d bind attempts failed, last: %v",
		ErrNoFreePort, p.min, p.max, p.bindAttempts, lastErr)
}

// reserve marks the next free slot at or after the cursor as used.
func (p *Ports) reserve() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.used)
	for i := 0; i < n; i++ {
		s := (p.next + i) % n
		if !p.used[s] {
			p.used[s] = true
			p.inUse++
			p.next = (s + 1) % n
			return s, true
		}
	}
	return 0, false
}

func (p *Ports) release(slot int) {
	p.mu.Lock()
	if p.used[slot] {
		p.used[slot] = false
		p.inUse--
	}
	p.mu.Unlock()
}

// InUse reports how many ports are currently handed out.
func (p *Ports) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}
