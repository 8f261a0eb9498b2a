package media

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestWriteRTPFollowsRemote(t *testing.T) {
	ports := testPorts(t, 13000)
	e := openEP(t, ports)
	sdp, phone := newPeer(t), newPeer(t)

	// Nowhere to send yet: the packet is dropped without failing.
	if err := e.WriteRTP(rtp(0, 1)); err != nil {
		t.Fatalf("without remote: %v", err)
	}
	if s := e.Stats(); s.NoRemote != 1 {
		t.Fatalf("stats %+v, want NoRemote 1", s)
	}

	e.SetRemote(sdp.addr())
	if err := e.WriteRTP(rtp(0, 2)); err != nil {
		t.Fatal(err)
	}
	if pkt, src := sdp.mustRecv(); seqOf(pkt) != 2 || src != e.LocalAddr() {
		t.Fatalf("got seq %d from %v", seqOf(pkt), src)
	}

	// Media really comes from elsewhere (NAT): the latched source wins.
	phone.send(e.LocalAddr(), rtp(0, 100))
	waitFor(t, "latch", e.Latched)
	if err := e.WriteRTP(rtp(0, 3)); err != nil {
		t.Fatal(err)
	}
	if pkt, _ := phone.mustRecv(); seqOf(pkt) != 3 {
		t.Fatalf("latched peer got seq %d", seqOf(pkt))
	}

	// A send the kernel refuses is a lost packet, not the end of the leg.
	if err := e.WriteRTP(make([]byte, 70000)); err != nil {
		t.Fatalf("oversized packet: %v", err)
	}
	if s := e.Stats(); s.SendErrors != 1 {
		t.Fatalf("stats %+v, want SendErrors 1", s)
	}

	e.Close()
	if err := e.WriteRTP(rtp(0, 4)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	// Also when there is no address, so the write never reaches the socket.
	e.SetRemote(netip.AddrPort{})
	if e.Remote().IsValid() {
		t.Fatalf("remote %v left", e.Remote())
	}
	if err := e.WriteRTP(rtp(0, 5)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Close, no remote: %v", err)
	}
}

// A prompt played to a leg that is closed under it ends instead of pacing
// on to the end.
func TestPlaybackEndsWhenEndpointCloses(t *testing.T) {
	ports := testPorts(t, 13200)
	e := openEP(t, ports)
	phone := newPeer(t)
	e.SetRemote(phone.addr())
	pb := StartPlay(context.Background(), NewRTPStream(), playTestPrompt(t, 500, "PCMU"), e, nil)
	phone.mustRecv()
	e.Close()
	select {
	case <-pb.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("playback still running 2s after Close")
	}
	if err := pb.Wait(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Wait = %v", err)
	}
}

// chanReceiver hands a copy of each packet to the test.
type chanReceiver chan []byte

func (c chanReceiver) ReceiveRTP(pkt []byte) { c <- append([]byte(nil), pkt...) }

func (c chanReceiver) next(t *testing.T) []byte {
	t.Helper()
	select {
	case p := <-c:
		return p
	case <-time.After(2 * time.Second):
		t.Fatal("receiver got no packet within 2s")
		return nil
	}
}

func (c chanReceiver) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case p := <-c:
		t.Fatalf("receiver got seq %d", seqOf(p))
	case <-time.After(d):
	}
}

func TestReceiverGetsPacketsOnlyWhileNotBridged(t *testing.T) {
	c := newCall(t, 13400)
	rx := make(chanReceiver, 100)
	c.a.SetReceiver(rx)

	c.pa.send(c.a.LocalAddr(), rtp(0, 1))
	if p := rx.next(t); seqOf(p) != 1 || len(p) != 172 {
		t.Fatalf("got seq %d, %d bytes", seqOf(p), len(p))
	}
	// Neither garbage nor a third party's packets reach it.
	c.pa.send(c.a.LocalAddr(), []byte{0x80, 0, 1})
	newPeer(t).send(c.a.LocalAddr(), rtp(0, 666))
	waitFor(t, "drops", func() bool { s := c.a.Stats(); return s.Malformed == 1 && s.Foreign == 1 })
	c.pa.send(c.a.LocalAddr(), rtp(0, 2))
	if p := rx.next(t); seqOf(p) != 2 {
		t.Fatalf("got seq %d, want 2", seqOf(p))
	}

	br := NewBridge(c.a, c.b, BridgeOptions{})
	br.Start()
	c.pa.send(c.a.LocalAddr(), rtp(0, 3))
	if p, _ := c.pb.mustRecv(); seqOf(p) != 3 {
		t.Fatalf("bridge relayed seq %d", seqOf(p))
	}
	rx.none(t, 50*time.Millisecond)
	br.Stop()

	c.pa.send(c.a.LocalAddr(), rtp(0, 4))
	if p := rx.next(t); seqOf(p) != 4 {
		t.Fatalf("after the bridge: seq %d", seqOf(p))
	}
	c.a.SetReceiver(nil)
	c.pa.send(c.a.LocalAddr(), rtp(0, 5))
	rx.none(t, 50*time.Millisecond)
}

// blockingReceiver holds the reader inside ReceiveRTP until released.
type blockingReceiver struct {
	entered chan struct{}
	release chan struct{}
}

func (b blockingReceiver) ReceiveRTP([]byte) {
	b.entered <- struct{}{}
	<-b.release
}

func TestSetReceiverWaitsForReceiveInProgress(t *testing.T) {
	c := newCall(t, 13600)
	r := blockingReceiver{entered: make(chan struct{}, 1), release: make(chan struct{})}
	c.a.SetReceiver(r)
	c.pa.send(c.a.LocalAddr(), rtp(0, 1))
	select {
	case <-r.entered:
	case <-time.After(2 * time.Second):
		t.Fatal("receiver not called")
	}
	removed := make(chan struct{})
	go func() { c.a.SetReceiver(nil); close(removed) }()
	select {
	case <-removed:
		t.Fatal("SetReceiver returned while ReceiveRTP was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(r.release)
	select {
	case <-removed:
	case <-time.After(2 * time.Second):
		t.Fatal("SetReceiver did not return after ReceiveRTP did")
	}
}

// countReceiver signals each packet without copying it.
type countReceiver chan struct{}

func (c countReceiver) ReceiveRTP([]byte) { c <- struct{}{} }

func TestReceivePathDoesNotAllocate(t *testing.T) {
	c := newCall(t, 13800)
	rx := make(countReceiver, 1)
	c.a.SetReceiver(rx)
	pkt, to := rtp(0, 1), c.a.LocalAddr()
	c.pa.send(to, pkt) // latching allocates once
	<-rx
	// The whole path, reader goroutine included (AllocsPerRun counts
	// allocations process-wide).
	allocs := testing.AllocsPerRun(1000, func() {
		c.pa.conn.WriteToUDPAddrPort(pkt, to)
		<-rx
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per received packet", allocs)
	}
}
