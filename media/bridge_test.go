package media

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
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

	// Alternate directions: traffic in both keeps the call alive.
	end := time.Now().Add(4 * timeout)
	var lastA, lastB time.Time
	for i := uint16(0); time.Now().Before(end); i++ {
		if i%2 == 0 {
			c.pa.send(c.a.LocalAddr(), rtp(0, i))
			lastA = time.Now()
		} else {
			c.pb.send(c.b.LocalAddr(), rtp(0, i))
			lastB = time.Now()
		}
		time.Sleep(timeout / 5)
	}
	// The leg that went quiet first is the one timed out.
	quietSince := lastA
	if lastB.Before(lastA) {
		quietSince = lastB
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

// TestTimeoutOneSideSilent: a leg that stops sending is found even while
// the other one goes on talking.
func TestTimeoutOneSideSilent(t *testing.T) {
	c := newCall(t, 11100)
	firedAt := make(chan time.Time, 4)
	const timeout = 150 * time.Millisecond
	br := NewBridge(c.a, c.b, BridgeOptions{
		Timeout:   timeout,
		OnTimeout: func() { firedAt <- time.Now() },
	})
	start := time.Now()
	br.Start()
	defer br.Stop()
	stop := time.After(6 * timeout)
	for i := uint16(0); ; i++ {
		select {
		case at := <-firedAt:
			if d := at.Sub(start); d < timeout || d > 3*timeout {
				t.Fatalf("fired %v after the start with b silent all along, want about %v", d, timeout)
			}
			return
		case <-stop:
			t.Fatalf("no timeout while b sent nothing for %v (a talking all along)", 6*timeout)
		case <-time.After(20 * time.Millisecond):
			c.pa.send(c.a.LocalAddr(), rtp(0, i))
		}
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
	benchRelay(b, 11600, BridgeOptions{Timeout: time.Hour, OnTimeout: func() {}})
}

// benchRelay measures one packet a to b through a bridge with opt.
func benchRelay(b *testing.B, port int, opt BridgeOptions) {
	c := newCall(b, port)
	br := NewBridge(c.a, c.b, opt)
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

// srcRTP is a packet of a source with its own SSRC and timeline.
func srcRTP(pt uint8, seq uint16, ts, ssrc uint32) []byte {
	p := rtp(pt, seq)
	binary.BigEndian.PutUint32(p[4:], ts)
	binary.BigEndian.PutUint32(p[8:], ssrc)
	return p
}

const ms = int64(time.Millisecond)

// The offset arithmetic, with time under the test's control.
func TestSpliceRewrite(t *testing.T) {
	t0 := time.Now()
	ts0 := uint32(0xffffff00)
	st := &RTPStream{SSRC: 0xaaaa, Seq: 65534, TS: ts0, due: t0.Add(100 * time.Millisecond)}
	sp := &splice{stream: st}
	sp.load(t0)
	send := func(now int64, p []byte) rtpHdr {
		t.Helper()
		sp.rewrite(p, now)
		return parseRTPHdr(p)
	}
	check := func(got rtpHdr, marker bool, seq uint16, ts uint32) {
		t.Helper()
		if want := (rtpHdr{marker: marker, seq: seq, ts: ts, ssrc: 0xaaaa}); got != want {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}

	// 200 ms after the stream's next packet was due: the timestamp moves
	// over them, the sequence does not, and a talkspurt starts.
	ts := ts0 + 1600
	check(send(300*ms, srcRTP(0, 5000, 77777, 0xbbbb)), true, 65534, ts)
	check(send(320*ms, srcRTP(0, 5001, 77777+160, 0xbbbb)), false, 65535, ts+160)
	// Loss and reordering keep their shape; both counters wrap.
	check(send(360*ms, srcRTP(0, 5003, 77777+480, 0xbbbb)), false, 1, ts+480)
	check(send(361*ms, srcRTP(0, 5002, 77777+320, 0xbbbb)), false, 0, ts+320)
	check(send(362*ms, srcRTP(0, 5003, 77777+480, 0xbbbb)), false, 1, ts+480)
	// A marked packet keeps the offsets too: it is the same source.
	check(send(500*ms, srcRTP(0x80, 5004, 77777+480+1280, 0xbbbb)), true, 2, ts+1760)

	// A new source continues after the last packet: the one at 500 ms
	// was 20 ms long, so the next was due at 520 ms; it is 540 ms.
	ts += 1760
	check(send(540*ms, srcRTP(0, 10, 42, 0xcccc)), true, 3, ts+160+160)
	ts += 320
	// Back to the old source at once: no time to move over, but the
	// timestamp still advances by one packet so none overlaps.
	check(send(541*ms, srcRTP(0, 5005, 1, 0xbbbb)), true, 4, ts+160)
	ts += 160

	// A telephone event of the source is rewritten the same way.
	te := srcRTP(101, 5006, 161, 0xbbbb)
	if h := send(560*ms, te); h.pt != 101 || h.seq != 5 || h.ts != ts+160 || h.ssrc != 0xaaaa || h.marker {
		t.Fatalf("telephone-event: %+v", h)
	}
	ts += 160

	sp.store(t0)
	if st.SSRC != 0xaaaa || st.Seq != 6 || st.TS != ts+160 || !st.due.Equal(t0.Add(580*time.Millisecond)) {
		t.Fatalf("stream left at %+v, due +%v", st, st.due.Sub(t0))
	}
}

// The packet duration the next source and the stream continue from follows
// the source's ptime, and is not fooled by silences or event repeats.
func TestSpliceFrameDuration(t *testing.T) {
	t0 := time.Now()
	st := &RTPStream{SSRC: 1, Seq: 100, TS: 1000} // never played: no due
	sp := &splice{stream: st}
	sp.load(t0)
	p := srcRTP(0, 1, 0, 9)
	sp.rewrite(p, 5000*ms)
	if h := parseRTPHdr(p); h.seq != 100 || h.ts != 1000 || !h.marker {
		t.Fatalf("first packet of an unpaced stream: %+v", h)
	}
	steps := []struct {
		dts    uint32
		marker bool
		dur    uint32
	}{
		{240, false, 240}, // 30 ms frames
		{240, false, 240},
		{0, false, 240},    // an event's repeated timestamp
		{4000, true, 240},  // after a silence, marked
		{2400, false, 240}, // after a silence, unmarked
		{480, false, 480},  // 60 ms frames
	}
	ts := uint32(0)
	for i, s := range steps {
		ts += s.dts
		p := srcRTP(0, uint16(i+2), ts, 9)
		if s.marker {
			p[1] |= 0x80
		}
		sp.rewrite(p, 5000*ms+int64(i+1)*20*ms)
		if sp.dur != s.dur {
			t.Fatalf("step %d: duration %d, want %d", i, sp.dur, s.dur)
		}
	}
}

func TestSpliceDoesNotAllocate(t *testing.T) {
	c := newCall(t, 14200)
	br := NewBridge(c.a, c.b, BridgeOptions{ContinueA: NewRTPStream(), Timeout: time.Hour, OnTimeout: func() {}})
	br.Start()
	defer br.Stop()
	pkt := srcRTP(0, 1, 1, 7)
	to := c.b.LocalAddr()
	c.pb.send(to, pkt)
	c.pa.mustRecv()

	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		// Alternating sources, so the restart path is measured too.
		binary.BigEndian.PutUint32(pkt[8:], uint32(i%2))
		i++
		// Locked as the reader does, which orders these forwards
		// after its own.
		c.b.sinkMu.Lock()
		br.ba.forward(pkt)
		c.b.sinkMu.Unlock()
	})
	if allocs != 0 {
		t.Fatalf("forward with splice: %v allocs per packet", allocs)
	}
	for range 1000 {
		if p, _ := c.pa.recv(50 * time.Millisecond); p == nil {
			break
		}
	}
	pkt = srcRTP(0, 1, 1, 7)
	allocs = testing.AllocsPerRun(1000, func() {
		c.pb.conn.WriteToUDPAddrPort(pkt, to)
		c.pa.conn.SetReadDeadline(time.Time{})
		c.pa.conn.ReadFromUDPAddrPort(c.pa.buf)
	})
	if allocs != 0 {
		t.Fatalf("end to end: %v allocs per packet", allocs)
	}
}

// stamped is a received packet's header and arrival time.
type stamped struct {
	rtpHdr
	at time.Time
}

func (p *peer) recvHdr() stamped {
	p.t.Helper()
	pkt, _ := p.mustRecv()
	return stamped{parseRTPHdr(pkt), time.Now()}
}

// wallTS is how many 8 kHz samples passed between two arrivals.
func wallTS(from, to time.Time) int64 { return int64(to.Sub(from)) / nsPerSample }

// checkSpliced checks that got continues the stream right after prev.
func checkSpliced(t *testing.T, what string, prev, got stamped, ssrc uint32) {
	t.Helper()
	if got.ssrc != ssrc || got.seq != prev.seq+1 || !got.marker {
		t.Fatalf("%s: %+v after %+v, want SSRC %#x, next seq, marker", what, got.rtpHdr, prev.rtpHdr, ssrc)
	}
	// Arrival times measure the send times on loopback to well within the
	// tolerance, which is for a scheduler that runs a goroutine late.
	dts, wall := int64(got.ts-prev.ts), wallTS(prev.at, got.at)
	t.Logf("%s: timestamp moved %d, wall time %d samples", what, dts, wall)
	if dts < 160 || dts < wall-240 || dts > wall+240 {
		t.Fatalf("%s: timestamp moved %d, wall time %d samples", what, dts, wall)
	}
}

// A caller hears prompts played on a stream, then the agent through the
// bridge, then a goodbye: one stream all along.
func TestBridgeContinuesPromptStream(t *testing.T) {
	c := newCall(t, 14400)
	s := NewRTPStream()
	ssrc := s.SSRC
	prompt := playTestPrompt(t, 5, "PCMU")
	pb := StartPlay(context.Background(), s, prompt, c.a, nil)
	var prev stamped
	for i := range prompt.Frames() {
		prev = c.pa.recvHdr()
		if prev.ssrc != ssrc || i > 0 && prev.marker {
			t.Fatalf("prompt packet %d: %+v", i, prev.rtpHdr)
		}
	}
	if err := pb.Wait(); err != nil {
		t.Fatal(err)
	}

	time.Sleep(100 * time.Millisecond) // the IVR connects the agent
	br := NewBridge(c.a, c.b, BridgeOptions{ContinueA: s, PTMapBtoA: map[uint8]uint8{96: 101}})
	br.Start()
	defer br.Stop()

	// The agent's phone has its own SSRC, sequence and timestamps.
	agent := func(pt uint8, seq uint16, ts, src uint32) stamped {
		t.Helper()
		c.pb.send(c.b.LocalAddr(), srcRTP(pt, seq, ts, src))
		return c.pa.recvHdr()
	}
	got := agent(0, 40000, 1000000, 0x5eed)
	checkSpliced(t, "first relayed", prev, got, ssrc)
	for i := range uint16(4) {
		time.Sleep(20 * time.Millisecond)
		h := agent(0, 40001+i, 1000000+160*uint32(i+1), 0x5eed)
		if want := (rtpHdr{seq: got.seq + 1 + i, ts: got.ts + 160*uint32(i+1), ssrc: ssrc}); h.rtpHdr != want {
			t.Fatalf("relayed packet %d: %+v, want %+v", i+1, h.rtpHdr, want)
		}
		prev = h
	}

	// The agent's media moves (a transfer, a re-INVITE): a new SSRC.
	time.Sleep(60 * time.Millisecond)
	got = agent(0, 7, 42, 0xf00d)
	checkSpliced(t, "new source", prev, got, ssrc)
	// A little reordering maps consistently; an event shares the stream.
	c.pb.send(c.b.LocalAddr(), srcRTP(0, 9, 42+320, 0xf00d))
	c.pb.send(c.b.LocalAddr(), srcRTP(0, 8, 42+160, 0xf00d))
	c.pb.send(c.b.LocalAddr(), srcRTP(96, 10, 42+480, 0xf00d))
	for _, want := range []rtpHdr{
		{seq: got.seq + 2, ts: got.ts + 320, ssrc: ssrc},
		{seq: got.seq + 1, ts: got.ts + 160, ssrc: ssrc},
		{pt: 101, seq: got.seq + 3, ts: got.ts + 480, ssrc: ssrc},
	} {
		if h := c.pa.recvHdr(); h.rtpHdr != want {
			t.Fatalf("got %+v, want %+v", h.rtpHdr, want)
		}
	}
	last := stamped{rtpHdr{seq: got.seq + 3, ts: got.ts + 480, ssrc: ssrc}, time.Now()}

	// The other direction is not continued: it passes unchanged.
	c.pa.send(c.a.LocalAddr(), srcRTP(0, 99, 555, 0x1234))
	if h := c.pb.recvHdr(); h.rtpHdr != (rtpHdr{seq: 99, ts: 555, ssrc: 0x1234}) {
		t.Fatalf("a->b changed: %+v", h.rtpHdr)
	}

	// The agent hangs up; the goodbye continues the same stream.
	br.Stop()
	if s.SSRC != ssrc || s.Seq != last.seq+1 || s.TS != last.ts+160 {
		t.Fatalf("stream left at %+v, last relayed %+v", s, last.rtpHdr)
	}
	time.Sleep(100 * time.Millisecond)
	pb = StartPlay(context.Background(), s, playTestPrompt(t, 2, "PCMU"), c.a, nil)
	checkSpliced(t, "goodbye", last, c.pa.recvHdr(), ssrc)
	if err := pb.Wait(); err != nil {
		t.Fatal(err)
	}
}

// ContinueB is the same for the other direction.
func TestBridgeContinueB(t *testing.T) {
	c := newCall(t, 14600)
	s := &RTPStream{SSRC: 0xb0b, Seq: 500, TS: 9000}
	br := NewBridge(c.a, c.b, BridgeOptions{ContinueB: s})
	br.Start()
	defer br.Stop()
	c.pa.send(c.a.LocalAddr(), srcRTP(0, 1, 1, 0x1))
	if h := c.pb.recvHdr(); h.rtpHdr != (rtpHdr{marker: true, seq: 500, ts: 9000, ssrc: 0xb0b}) {
		t.Fatalf("a->b: %+v", h.rtpHdr)
	}
	c.pb.send(c.b.LocalAddr(), srcRTP(0, 2, 2, 0x2))
	if h := c.pa.recvHdr(); h.rtpHdr != (rtpHdr{seq: 2, ts: 2, ssrc: 0x2}) {
		t.Fatalf("b->a changed: %+v", h.rtpHdr)
	}
}

func BenchmarkRelaySplice(b *testing.B) {
	benchRelay(b, 14800, BridgeOptions{ContinueB: NewRTPStream(), Timeout: time.Hour, OnTimeout: func() {}})
}

// tapLog keeps what a Tap was shown.
type tapLog struct {
	mu   sync.Mutex
	aToB []uint16
	bToA []uint16
}

func (l *tapLog) Packet(aToB bool, pkt []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if aToB {
		l.aToB = append(l.aToB, seqOf(pkt))
	} else {
		l.bToA = append(l.bToA, seqOf(pkt))
	}
}

// The tap sees each relayed packet once, with its direction, as its sender
// sent it: before the stream it continues rewrites it.
func TestBridgeTap(t *testing.T) {
	c := newCall(t, 15400)
	tap := &tapLog{}
	stream := &RTPStream{SSRC: 7, Seq: 5000, TS: 1}
	br := NewBridge(c.a, c.b, BridgeOptions{Tap: tap, ContinueA: stream})
	br.Start()
	for i := uint16(0); i < 5; i++ {
		c.pa.send(c.a.LocalAddr(), rtp(0, i))
		c.pb.mustRecv()
		c.pb.send(c.b.LocalAddr(), rtp(0, 100+i))
		if pkt, _ := c.pa.mustRecv(); seqOf(pkt) != 5000+i {
			t.Fatalf("b->a seq %d, want the stream's %d", seqOf(pkt), 5000+i)
		}
	}
	br.Stop()
	c.pa.send(c.a.LocalAddr(), rtp(0, 9))
	tap.mu.Lock()
	defer tap.mu.Unlock()
	if want := []uint16{0, 1, 2, 3, 4}; !slices.Equal(tap.aToB, want) {
		t.Errorf("a->b tapped %v, want %v", tap.aToB, want)
	}
	if want := []uint16{100, 101, 102, 103, 104}; !slices.Equal(tap.bToA, want) {
		t.Errorf("b->a tapped %v, want %v (as sent, not rewritten)", tap.bToA, want)
	}
}
