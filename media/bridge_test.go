package media

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// testRange gives each test its own port range so tests of other packages
// running in parallel are unlikely to collide; Open skips held ports anyway.
func testPorts(t testing.TB, base int) *Ports {
	t.Helper()
	base += (os.Getpid() % 20) * 1000
	p, err := NewPorts(loopback, base, base+199)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func openEP(t testing.TB, p *Ports) *Endpoint {
	t.Helper()
	e, err := p.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// peer is a fake phone or carrier: a plain UDP socket.
type peer struct {
	t    testing.TB
	conn *net.UDPConn
	buf  []byte
}

func newPeer(t testing.TB) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, conn: c, buf: make([]byte, 2048)}
}

func (p *peer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *peer) send(to netip.AddrPort, pkt []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(pkt, to); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next packet, or nil after d.
func (p *peer) recv(d time.Duration) ([]byte, netip.AddrPort) {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(d))
	n, src, err := p.conn.ReadFromUDPAddrPort(p.buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, netip.AddrPort{}
		}
		p.t.Fatal(err)
	}
	return p.buf[:n], src
}

func (p *peer) mustRecv() ([]byte, netip.AddrPort) {
	p.t.Helper()
	pkt, src := p.recv(2 * time.Second)
	if pkt == nil {
		p.t.Fatal("no packet within 2s")
	}
	return pkt, src
}

func rtp(pt uint8, seq uint16) []byte {
	p := make([]byte, 12+160)
	p[0] = 0x80
	p[1] = pt
	p[2], p[3] = byte(seq>>8), byte(seq)
	return p
}

func seqOf(p []byte) uint16 { return uint16(p[2])<<8 | uint16(p[3]) }

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type call struct {
	a, b   *Endpoint
	pa, pb *peer
}

func newCall(t testing.TB, base int) call {
	ports := testPorts(t, base)
	c := call{a: openEP(t, ports), b: openEP(t, ports), pa: newPeer(t), pb: newPeer(t)}
	c.a.SetRemote(c.pa.addr())
	c.b.SetRemote(c.pb.addr())
	return c
}

func TestBridgeRelaysBothWays(t *testing.T) {
	c := newCall(t, 10000)
	m := NewMeter()
	br := NewBridge(c.a, c.b, BridgeOptions{Meter: m})
	br.Start()
	defer br.Stop()

	for i := uint16(0); i < 10; i++ {
		c.pa.send(c.a.LocalAddr(), rtp(0, i))
		pkt, src := c.pb.mustRecv()
		if seqOf(pkt) != i || src != c.b.LocalAddr() {
			t.Fatalf("a->b got seq %d from %v, want %d from %v", seqOf(pkt), src, i, c.b.LocalAddr())
		}
		c.pb.send(c.b.LocalAddr(), rtp(8, 100+i))
		pkt, src = c.pa.mustRecv()
		if seqOf(pkt) != 100+i || src != c.a.LocalAddr() || pkt[1] != 8 {
			t.Fatalf("b->a got seq %d pt %d from %v", seqOf(pkt), pkt[1], src)
		}
	}
	// The counter is bumped after the write returns, so the peer may see
	// the packet first.
	waitFor(t, "stats", func() bool { return br.Stats() == BridgeStats{AtoB: 10, BtoA: 10} })
	if n := m.RelayedPackets(); n != 20 {
		t.Fatalf("meter live = %d, want 20", n)
	}
	br.Stop()
	if n, live := m.RelayedPackets(), m.ActiveBridges(); n != 20 || live != 0 {
		t.Fatalf("meter after stop = %d (%d live), want 20 (0)", n, live)
	}
}

func TestLatchingAndHijackProtection(t *testing.T) {
	c := newCall(t, 10200)
	// The SDP of leg a announces a port nobody uses; media will really come
	// from pa (think NAT).
	sdpPeer := newPeer(t)
	c.a.SetRemote(sdpPeer.addr())
	br := NewBridge(c.a, c.b, BridgeOptions{})
	br.Start()
	defer br.Stop()

	// Before anything arrived on a, b->a goes to the SDP address.
	c.pb.send(c.b.LocalAddr(), rtp(0, 1))
	if pkt, _ := sdpPeer.mustRecv(); seqOf(pkt) != 1 {
		t.Fatal("pre-latch packet not sent to SDP address")
	}

	c.pa.send(c.a.LocalAddr(), rtp(0, 2))
	c.pb.mustRecv()
	if got := c.a.Remote(); got != c.pa.addr() {
		t.Fatalf("remote %v, want latched %v", got, c.pa.addr())
	}
	c.pb.send(c.b.LocalAddr(), rtp(0, 3))
	if pkt, _ := c.pa.mustRecv(); seqOf(pkt) != 3 {
		t.Fatal("post-latch packet not sent to latched source")
	}

	// A third party cannot take over the leg.
	evil := newPeer(t)
	evil.send(c.a.LocalAddr(), rtp(0, 666))
	waitFor(t, "foreign drop", func() bool { return c.a.Stats().Foreign == 1 })
	c.pa.send(c.a.LocalAddr(), rtp(0, 4))
	if pkt, _ := c.pb.mustRecv(); seqOf(pkt) != 4 {
		t.Fatalf("got seq %d, want 4: foreign packet was relayed", seqOf(pkt))
	}
	if got := c.a.Remote(); got != c.pa.addr() {
		t.Fatalf("remote hijacked: %v", got)
	}
	waitFor(t, "bridge drop count", func() bool { return br.Stats().Dropped == 1 })

	// Repeating the SDP address (session refresh) keeps the latch, a new
	// one releases it.
	c.a.SetRemote(sdpPeer.addr())
	if c.a.Remote() != c.pa.addr() {
		t.Fatal("same SDP address dropped the latch")
	}
	moved := newPeer(t)
	c.a.SetRemote(moved.addr())
	if c.a.Latched() || c.a.Remote() != moved.addr() {
		t.Fatal("changed SDP address did not reset the latch")
	}
}

func TestPacketsBeforeStartLatchButAreDropped(t *testing.T) {
	c := newCall(t, 10400)
	c.a.SetRemote(netip.AddrPort{})
	c.pa.send(c.a.LocalAddr(), rtp(0, 1))
	waitFor(t, "latch", c.a.Latched)
	if c.a.Remote() != c.pa.addr() {
		t.Fatal("not latched to sender")
	}
	br := NewBridge(c.a, c.b, BridgeOptions{})
	br.Start()
	defer br.Stop()
	c.pa.send(c.a.LocalAddr(), rtp(0, 2))
	if pkt, _ := c.pb.mustRecv(); seqOf(pkt) != 2 {
		t.Fatalf("got seq %d: pre-answer packet was relayed", seqOf(pkt))
	}
}

func TestMalformedDropped(t *testing.T) {
	c := newCall(t, 10600)
	c.a.SetRemote(netip.AddrPort{})
	br := NewBridge(c.a, c.b, BridgeOptions{})
	br.Start()
	defer br.Stop()
	c.pa.send(c.a.LocalAddr(), []byte{0x80, 0, 1})
	bad := rtp(0, 9)
	bad[0] = 0x40 // version 1
	c.pa.send(c.a.LocalAddr(), bad)
	waitFor(t, "malformed drops", func() bool { return c.a.Stats().Malformed == 2 })
	if c.a.Latched() {
		t.Fatal("garbage latched the leg")
	}
	c.pa.send(c.a.LocalAddr(), rtp(0, 3))
	if pkt, _ := c.pb.mustRecv(); seqOf(pkt) != 3 {
		t.Fatal("malformed packet relayed")
	}
	waitFor(t, "stats", func() bool { return br.Stats() == BridgeStats{AtoB: 1, Dropped: 2} })
}

func TestPayloadTypeMapping(t *testing.T) {
	c := newCall(t, 10800)
	br := NewBridge(c.a, c.b, BridgeOptions{
		PTMapAtoB: map[uint8]uint8{101: 96},
		PTMapBtoA: map[uint8]uint8{96: 101},
	})
	br.Start()
	defer br.Stop()

	c.pa.send(c.a.LocalAddr(), rtp(0x80|101, 1)) // marker bit set
	if pkt, _ := c.pb.mustRecv(); pkt[1] != 0x80|96 {
		t.Fatalf("a->b byte1 = %#x, want marker+96", pkt[1])
	}
	c.pa.send(c.a.LocalAddr(), rtp(0, 2))
	if pkt, _ := c.pb.mustRecv(); pkt[1] != 0 {
		t.Fatalf("PCMU changed to %d", pkt[1])
	}
	c.pb.send(c.b.LocalAddr(), rtp(96, 3))
	if pkt, _ := c.pa.mustRecv(); pkt[1] != 101 {
		t.Fatalf("b->a pt = %d, want 101", pkt[1])
	}
	c.pb.send(c.b.LocalAddr(), rtp(8, 4))
	if pkt, _ := c.pa.mustRecv(); pkt[1] != 8 {
		t.Fatalf("PCMA changed to %d", pkt[1])
	}
}

func TestTimeout(t *testing.T) {
	c := newCall(t, 11000)
	var fired atomic.Int32
	firedAt := make(chan time.Time, 4)
	const timeout = 150 * time.Millisecond
	br := NewBridge(c.a, c.b, BridgeOptions{
		Timeout: timeout,
		OnTimeout: func() {
			fired.Add(1)
			firedAt <- time.Now()
		},
	})
	br.Start()
	defer br.Stop()

	// Alternate directions: traffic in either one keeps the call alive.
	end := time.Now().Add(4 * timeout)
	var quietSince time.Time
	for i := uint16(0); time.Now().Before(end); i++ {
		if i%2 == 0 {
			c.pa.send(c.a.LocalAddr(), rtp(0, i))
		} else {
			c.pb.send(c.b.LocalAddr(), rtp(0, i))
		}
		quietSince = time.Now()
		time.Sleep(timeout / 5)
	}
	if fired.Load() != 0 {
		t.Fatal("timeout fired while media was flowing")
	}
	select {
	case at := <-firedAt:
		if d := at.Sub(quietSince); d < timeout {
			t.Fatalf("fired after %v of silence, want about %v", d, timeout)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("timeout did not fire")
	}
	time.Sleep(3 * timeout)
	if n := fired.Load(); n != 1 {
		t.Fatalf("OnTimeout called %d times", n)
	}
}

func TestStopIdempotentAndEndsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	ports := testPorts(t, 11200)
	a, err := ports.Open()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ports.Open()
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := newPeer(t), newPeer(t)
	a.SetRemote(pa.addr())
	b.SetRemote(pb.addr())
	br := NewBridge(a, b, BridgeOptions{Timeout: time.Hour, OnTimeout: func() {}})
	br.Start()
	pa.send(a.LocalAddr(), rtp(0, 1))
	pb.mustRecv()

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); br.Stop() }()
	}
	wg.Wait()
	br.Stop()
	br.Start() // no restart after Stop

	// Stop must not close the endpoints, and nothing is relayed any more.
	pa.send(a.LocalAddr(), rtp(0, 2))
	if pkt, _ := pb.recv(100 * time.Millisecond); pkt != nil {
		t.Fatal("relayed after Stop")
	}
	if s := br.Stats(); s.AtoB != 1 {
		t.Fatalf("stats changed after Stop: %+v", s)
	}

	// A new bridge can take over the same legs (e.g. transfer).
	br2 := NewBridge(a, b, BridgeOptions{})
	br2.Start()
	pa.send(a.LocalAddr(), rtp(0, 3))
	if pkt, _ := pb.mustRecv(); seqOf(pkt) != 3 {
		t.Fatal("second bridge did not relay")
	}
	br2.Stop()

	a.Close()
	b.Close()
	a.Close()
	if ports.InUse() != 0 {
		t.Fatalf("%d ports still in use", ports.InUse())
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestForwardDoesNotAllocate(t *testing.T) {
	c := newCall(t, 11400)
	br := NewBridge(c.a, c.b, BridgeOptions{
		PTMapAtoB: map[uint8]uint8{101: 96},
		Timeout:   time.Hour,
		OnTimeout: func() {},
	})
	br.Start()
	defer br.Stop()
	pkt := rtp(101, 1)
	to := c.a.LocalAddr()
	// Warm up: latching allocates once.
	c.pa.send(to, pkt)
	c.pb.mustRecv()

	// One forward step as the reader does it.
	allocs := testing.AllocsPerRun(1000, func() { br.ab.forward(pkt) })
	if allocs != 0 {
		t.Fatalf("relay.forward: %v allocs per packet", allocs)
	}
	for range 1000 { // drain what the step above sent
		if p, _ := c.pb.recv(50 * time.Millisecond); p == nil {
			break
		}
	}

	// The whole path, reader goroutine included (AllocsPerRun counts
	// allocations process-wide).
	allocs = testing.AllocsPerRun(1000, func() {
		c.pa.conn.WriteToUDPAddrPort(pkt, to)
		c.pb.conn.SetReadDeadline(time.Time{})
		c.pb.conn.ReadFromUDPAddrPort(c.pb.buf)
	})
	if allocs != 0 {
		t.Fatalf("end to end: %v allocs per packet", allocs)
	}
}

func BenchmarkRelay(b *testing.B) {
	c := newCall(b, 11600)
	br := NewBridge(c.a, c.b, BridgeOptions{Timeout: time.Hour, OnTimeout: func() {}})
	br.Start()
	defer br.Stop()
	pkt := rtp(0, 1)
	to := c.a.LocalAddr()
	c.pa.send(to, pkt)
	c.pb.mustRecv()
	c.pb.conn.SetReadDeadline(time.Time{})

	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	b.ResetTimer()
	for b.Loop() {
		// Ping-pong keeps the socket buffers from overflowing, so every
		// iteration is one packet through the relay.
		if _, err := c.pa.conn.WriteToUDPAddrPort(pkt, to); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.pb.conn.ReadFromUDPAddrPort(c.pb.buf); err != nil {
			b.Fatal(err)
		}
	}
}
