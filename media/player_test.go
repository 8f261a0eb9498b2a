package media

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestRTPStreamNext(t *testing.T) {
	s := &RTPStream{SSRC: 0xdeadbeef, Seq: 0xffff, TS: 0xffffff00}
	payload := make([]byte, 160)
	payload[0], payload[159] = 1, 2
	buf := make([]byte, 0, 172)
	p := s.Next(buf, payload, 8, true)
	want := []byte{0x80, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0xde, 0xad, 0xbe, 0xef}
	if string(p[:12]) != string(want) || len(p) != 172 || p[12] != 1 || p[171] != 2 {
		t.Fatalf("packet header % x, len %d", p[:12], len(p))
	}
	if &p[0] != &buf[:1][0] {
		t.Error("Next did not build into the caller's buffer")
	}
	// Both counters wrap, as RFC 3550 arithmetic is modulo 2^16 and 2^32.
	if s.Seq != 0 || s.TS != 0xffffffa0 {
		t.Errorf("after one packet: seq %d ts %#x", s.Seq, s.TS)
	}
	p = s.Next(buf, payload, 0, false)
	if p[1] != 0 || binary.BigEndian.Uint16(p[2:]) != 0 || binary.BigEndian.Uint32(p[4:]) != 0xffffffa0 {
		t.Errorf("second header % x", p[:12])
	}
	if s.TS != 0x40 {
		t.Errorf("ts did not wrap: %#x", s.TS)
	}
	if n := testing.AllocsPerRun(100, func() { s.Next(buf, payload, 0, false) }); n != 0 {
		t.Errorf("Next allocates %v times per packet", n)
	}
	if p := s.Next(nil, payload, 0, false); len(p) != 172 {
		t.Errorf("nil buffer gave %d bytes", len(p))
	}
}

func TestNewRTPStreamIsRandom(t *testing.T) {
	a, b := NewRTPStream(), NewRTPStream()
	if a.SSRC == b.SSRC && a.Seq == b.Seq && a.TS == b.TS {
		t.Error("two streams start identical")
	}
}

// playFakeClock runs time only when the test says so: every timer the player
// arms is reported on armed, and fires when the test moves time to it.
type playFakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*playFakeTimer
	armed  chan time.Time
}

type playFakeTimer struct {
	clk    *playFakeClock
	c      chan time.Time
	when   time.Time
	active bool
}

func newPlayFakeClock() *playFakeClock {
	return &playFakeClock{now: time.Unix(1_700_000_000, 0), armed: make(chan time.Time, 1000)}
}

func (c *playFakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *playFakeClock) NewTimer(d time.Duration) ClockTimer {
	t := &playFakeTimer{clk: c, c: make(chan time.Time, 1)}
	c.mu.Lock()
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	t.Reset(d)
	return t
}

func (t *playFakeTimer) C() <-chan time.Time { return t.c }

func (t *playFakeTimer) Reset(d time.Duration) {
	t.clk.mu.Lock()
	t.when, t.active = t.clk.now.Add(d), true
	when := t.when
	t.clk.mu.Unlock()
	t.clk.armed <- when
}

func (t *playFakeTimer) Stop() {
	t.clk.mu.Lock()
	t.active = false
	t.clk.mu.Unlock()
}

// set moves time to when and fires the timers due by then.
func (c *playFakeClock) set(when time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = when
	for _, t := range c.timers {
		if t.active && !t.when.After(when) {
			t.active = false
			t.c <- when
		}
	}
}

// drive fires the timers the player arms until quit closes: the n-th one
// late by late(n), or not at all (parking the player) when late says so.
func (c *playFakeClock) drive(t *testing.T, late func(n int, when time.Time) (time.Duration, bool), parked chan<- struct{}) (quit func()) {
	q := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; ; n++ {
			select {
			case when := <-c.armed:
				d, ok := late(n, when)
				if !ok {
					parked <- struct{}{}
					return
				}
				c.set(when.Add(d))
			case <-q:
				return
			}
		}
	}()
	return func() { close(q); <-done }
}

func playOnTime(int, time.Time) (time.Duration, bool) { return 0, true }

// playRecorder is a PacketWriter keeping a copy of every packet and the clock
// reading when it was written.
type playRecorder struct {
	clk  Clock
	mu   sync.Mutex
	pkts [][]byte
	at   []time.Time
	fail error
}

func (r *playRecorder) WriteRTP(p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.pkts = append(r.pkts, append([]byte(nil), p...))
	r.at = append(r.at, r.clk.Now())
	return nil
}

func (r *playRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pkts)
}

type rtpHdr struct {
	marker bool
	pt     uint8
	seq    uint16
	ts     uint32
	ssrc   uint32
}

func parseRTPHdr(p []byte) rtpHdr {
	return rtpHdr{p[1]&0x80 != 0, p[1] & 0x7f, binary.BigEndian.Uint16(p[2:]), binary.BigEndian.Uint32(p[4:]), binary.BigEndian.Uint32(p[8:])}
}

// playTestPrompt is frames 20 ms frames whose bytes say which frame they are.
func playTestPrompt(t testing.TB, frames int, codec string) *Prompt {
	x := make([]int16, frames*160)
	for i := range x {
		x[i] = int16(i / 160 * 100)
	}
	p, err := ReadPrompt("test", makeWAV(wavMono8k(16), wavPCM16(x...)), codec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkRTPRun checks that pkts continue the stream from first without a gap.
func checkRTPRun(t *testing.T, pkts [][]byte, first rtpHdr, p *Prompt, frame0 int) {
	t.Helper()
	for i, pkt := range pkts {
		h := parseRTPHdr(pkt)
		want := rtpHdr{marker: i == 0 && first.marker, pt: p.PayloadType(), seq: first.seq + uint16(i), ts: first.ts + uint32(160*i), ssrc: first.ssrc}
		if h != want {
			t.Fatalf("packet %d: %+v, want %+v", i, h, want)
		}
		if string(pkt[12:]) != string(p.Frame(frame0+i)) {
			t.Fatalf("packet %d does not carry frame %d", i, frame0+i)
		}
	}
}

func TestPlayPacesFromStartWithoutDrift(t *testing.T) {
	clk := newPlayFakeClock()
	start := clk.Now()
	// Wake-ups for these packets are late by less than the catch-up
	// limit: the packet goes late, the ones after it go back on the
	// original schedule, sent at once while they are overdue.
	late := map[int]time.Duration{10: 7 * time.Millisecond, 20: 45 * time.Millisecond, 31: 19 * time.Millisecond}
	defer clk.drive(t, func(_ int, when time.Time) (time.Duration, bool) {
		return late[int(when.Sub(start)/promptPtime)], true
	}, nil)()
	s := &RTPStream{SSRC: 42, Seq: 1000, TS: 5000}
	p := playTestPrompt(t, 50, "PCMU")
	w := &playRecorder{clk: clk}
	if err := Play(context.Background(), s, p, w, clk); err != nil {
		t.Fatal(err)
	}
	if len(w.pkts) != 50 {
		t.Fatalf("%d packets", len(w.pkts))
	}
	checkRTPRun(t, w.pkts, rtpHdr{marker: true, seq: 1000, ts: 5000, ssrc: 42}, p, 0)
	for n, at := range w.at {
		want := start.Add(time.Duration(n) * promptPtime)
		want = want.Add(late[n])
		if n > 0 {
			if prev := w.at[n-1]; want.Before(prev) {
				want = prev // catching up: sent at once
			}
		}
		if !at.Equal(want) {
			t.Errorf("packet %d at +%v, want +%v", n, at.Sub(start), want.Sub(start))
		}
	}
	if s.Seq != 1050 || s.TS != 5000+50*160 {
		t.Errorf("stream left at seq %d ts %d", s.Seq, s.TS)
	}
}

// After a stall too long to catch up by bursting, the talkspurt restarts:
// marker set, timestamp moved over the stall, sequence unbroken.
func TestPlayRestartsTalkspurtAfterStall(t *testing.T) {
	clk := newPlayFakeClock()
	start := clk.Now()
	stall := 200 * time.Millisecond
	defer clk.drive(t, func(_ int, when time.Time) (time.Duration, bool) {
		if when.Equal(start.Add(5 * promptPtime)) {
			return stall, true
		}
		return 0, true
	}, nil)()
	s := &RTPStream{SSRC: 1, Seq: 10, TS: 0}
	p := playTestPrompt(t, 10, "PCMA")
	w := &playRecorder{clk: clk}
	if err := Play(context.Background(), s, p, w, clk); err != nil {
		t.Fatal(err)
	}
	checkRTPRun(t, w.pkts[:5], rtpHdr{marker: true, seq: 10, ts: 0, ssrc: 1}, p, 0)
	checkRTPRun(t, w.pkts[5:], rtpHdr{marker: true, seq: 15, ts: 5*160 + uint32(stall/(time.Second/8000)), ssrc: 1}, p, 5)
	for n := 5; n < 10; n++ {
		if want := start.Add(stall + time.Duration(n)*promptPtime); !w.at[n].Equal(want) {
			t.Errorf("packet %d at +%v, want +%v", n, w.at[n].Sub(start), want.Sub(start))
		}
	}
}

// Two prompts in a row are one talkspurt: the second continues the first's
// sequence, timestamps and 20 ms grid. After a pause, the next prompt
// starts a new talkspurt whose timestamp accounts for the pause.
func TestPlayConsecutivePromptsContinueTheStream(t *testing.T) {
	clk := newPlayFakeClock()
	start := clk.Now()
	defer clk.drive(t, playOnTime, nil)()
	ts0 := uint32(4294967000) // wraps during the test
	s := &RTPStream{SSRC: 7, Seq: 65534, TS: ts0}
	a, b := playTestPrompt(t, 3, "PCMU"), playTestPrompt(t, 2, "PCMU")
	w := &playRecorder{clk: clk}
	for _, p := range []*Prompt{a, b} {
		if err := Play(context.Background(), s, p, w, clk); err != nil {
			t.Fatal(err)
		}
	}
	checkRTPRun(t, w.pkts[:3], rtpHdr{marker: true, seq: 65534, ts: ts0, ssrc: 7}, a, 0)
	checkRTPRun(t, w.pkts[3:], rtpHdr{marker: false, seq: 1, ts: ts0 + 3*160, ssrc: 7}, b, 0)
	for n, at := range w.at {
		if want := start.Add(time.Duration(n) * promptPtime); !at.Equal(want) {
			t.Errorf("packet %d at +%v, want +%v", n, at.Sub(start), want.Sub(start))
		}
	}

	// Five frames have been sent, the sixth would be due at +100ms; the
	// caller thinks for 3 s.
	clk.set(start.Add(3100 * time.Millisecond))
	w.pkts, w.at = nil, nil
	if err := Play(context.Background(), s, a, w, clk); err != nil {
		t.Fatal(err)
	}
	checkRTPRun(t, w.pkts, rtpHdr{marker: true, seq: 3, ts: ts0 + 5*160 + 3*8000, ssrc: 7}, a, 0)
}

// Barge-in: Stop returns while the player waits for its next frame, without
// the clock moving, so it never waits out a frame; nothing is sent after,
// and the next prompt carries on the stream where the stopped one left it.
func TestPlaybackStopMidPrompt(t *testing.T) {
	clk := newPlayFakeClock()
	start := clk.Now()
	parked := make(chan struct{})
	quit := clk.drive(t, func(n int, _ time.Time) (time.Duration, bool) { return 0, n < 9 }, parked)
	s := &RTPStream{SSRC: 9, Seq: 100, TS: 800}
	p := playTestPrompt(t, 50, "PCMU")
	w := &playRecorder{clk: clk}
	pb := StartPlay(context.Background(), s, p, w, clk)
	<-parked
	quit()
	if err := pb.Stop(); !errors.Is(err, ErrPlaybackStopped) {
		t.Fatalf("Stop = %v", err)
	}
	if !clk.Now().Equal(start.Add(180 * time.Millisecond)) {
		t.Fatalf("clock moved to +%v", clk.Now().Sub(start))
	}
	select {
	case <-pb.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if err := pb.Stop(); !errors.Is(err, ErrPlaybackStopped) {
		t.Errorf("second Stop = %v", err)
	}
	if len(w.pkts) != 10 || s.Seq != 110 || s.TS != 800+1600 {
		t.Fatalf("%d packets sent, stream at seq %d ts %d", len(w.pkts), s.Seq, s.TS)
	}
	checkRTPRun(t, w.pkts, rtpHdr{marker: true, seq: 100, ts: 800, ssrc: 9}, p, 0)

	defer clk.drive(t, playOnTime, nil)()
	w.pkts, w.at = nil, nil
	next := playTestPrompt(t, 2, "PCMU")
	pb = StartPlay(context.Background(), s, next, w, clk)
	if err := pb.Wait(); err != nil {
		t.Fatal(err)
	}
	checkRTPRun(t, w.pkts, rtpHdr{marker: false, seq: 110, ts: 800 + 1600, ssrc: 9}, next, 0)
	if !w.at[0].Equal(start.Add(200 * time.Millisecond)) {
		t.Errorf("first packet after barge-in at +%v, want +200ms", w.at[0].Sub(start))
	}
	if err := pb.Stop(); err != nil {
		t.Errorf("Stop after the end = %v", err)
	}
}

func TestPlayContextAndWriteErrors(t *testing.T) {
	clk := newPlayFakeClock()
	parked := make(chan struct{})
	quit := clk.drive(t, func(n int, _ time.Time) (time.Duration, bool) { return 0, n < 2 }, parked)
	ctx, cancel := context.WithCancel(context.Background())
	w := &playRecorder{clk: clk}
	pb := StartPlay(ctx, &RTPStream{}, playTestPrompt(t, 10, "PCMU"), w, clk)
	<-parked
	quit()
	cancel()
	if err := pb.Wait(); !errors.Is(err, context.Canceled) || w.count() != 3 {
		t.Errorf("cancelled: err %v after %d packets", err, w.count())
	}

	defer clk.drive(t, playOnTime, nil)()
	broken := errors.New("leg gone")
	w = &playRecorder{clk: clk, fail: broken}
	if err := Play(context.Background(), &RTPStream{}, playTestPrompt(t, 10, "PCMU"), w, clk); !errors.Is(err, broken) {
		t.Errorf("failing writer: err %v", err)
	}
}

// playInstantClock never waits: each timer fires as soon as it is armed, with
// time moved forward, and it allocates nothing while doing so.
type playInstantClock struct {
	now time.Time
	c   chan time.Time
}

func (c *playInstantClock) Now() time.Time                      { return c.now }
func (c *playInstantClock) NewTimer(d time.Duration) ClockTimer { c.Reset(d); return c }
func (c *playInstantClock) C() <-chan time.Time                 { return c.c }
func (c *playInstantClock) Reset(d time.Duration)               { c.now = c.now.Add(d); c.c <- c.now }
func (c *playInstantClock) Stop()                               {}

type playDiscard struct{ n int }

func (d *playDiscard) WriteRTP([]byte) error { d.n++; return nil }

func TestPlayAllocatesNothingPerPacket(t *testing.T) {
	short, long := playTestPrompt(t, 1, "PCMU"), playTestPrompt(t, 100, "PCMU")
	clk := &playInstantClock{now: time.Unix(0, 0), c: make(chan time.Time, 1)}
	s, w := &RTPStream{}, &playDiscard{}
	allocs := func(p *Prompt) float64 {
		return testing.AllocsPerRun(20, func() {
			if err := Play(context.Background(), s, p, w, clk); err != nil {
				t.Fatal(err)
			}
		})
	}
	a, b := allocs(short), allocs(long)
	if b != a {
		t.Errorf("a 1-frame prompt costs %v allocations, a 100-frame one %v", a, b)
	}
	if w.n != 21*101 {
		t.Errorf("%d packets written", w.n)
	}
}

// playUDPWriter is how a call would send: through a UDP socket.
type playUDPWriter struct {
	conn *net.UDPConn
	to   netip.AddrPort
}

func (u playUDPWriter) WriteRTP(p []byte) error {
	_, err := u.conn.WriteToUDPAddrPort(p, u.to)
	return err
}

// The real clock over loopback: 50 packets arrive 20 ms apart on average,
// in order and contiguous. The tolerance is wide because a shared CI host
// schedules goroutines late now and then; exact spacing is proven with
// the fake clock above.
func TestPlayRealTimeLoopback(t *testing.T) {
	rx := newPeer(t)
	tx := newPeer(t)
	p := playTestPrompt(t, 50, "PCMA")
	s := NewRTPStream()
	first := rtpHdr{marker: true, pt: 8, seq: s.Seq, ts: s.TS, ssrc: s.SSRC}
	errc := make(chan error, 1)
	go func() { errc <- Play(context.Background(), s, p, playUDPWriter{tx.conn, rx.addr()}, nil) }()
	var pkts [][]byte
	var at []time.Time
	buf := make([]byte, 2048)
	rx.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(pkts) < 50 {
		n, err := rx.conn.Read(buf)
		if err != nil {
			t.Fatalf("after %d packets: %v", len(pkts), err)
		}
		at = append(at, time.Now())
		pkts = append(pkts, append([]byte(nil), buf[:n]...))
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	checkRTPRun(t, pkts, first, p, 0)
	avg := at[49].Sub(at[0]) / 49
	t.Logf("average spacing %v", avg)
	if math.Abs(float64(avg-promptPtime)) > float64(3*time.Millisecond) {
		t.Errorf("average spacing %v, want 20ms ± 3ms", avg)
	}
}

func TestPlaybackStopRealTime(t *testing.T) {
	rx := newPeer(t)
	tx := newPeer(t)
	s := NewRTPStream()
	pb := StartPlay(context.Background(), s, playTestPrompt(t, 500, "PCMU"), playUDPWriter{tx.conn, rx.addr()}, nil)
	buf := make([]byte, 2048)
	rx.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < 5; i++ {
		if _, err := rx.conn.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	if err := pb.Stop(); !errors.Is(err, ErrPlaybackStopped) {
		t.Fatal(err)
	}
	t.Logf("Stop returned after %v", time.Since(t0))
	sent := s.Seq
	// Drain what was sent before Stop returned; nothing may follow.
	rx.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	for {
		n, err := rx.conn.Read(buf)
		if err != nil {
			break
		}
		if seq := binary.BigEndian.Uint16(buf[2:n]); seq-sent < 0x8000 {
			t.Fatalf("packet seq %d after Stop returned with the stream at %d", seq, sent)
		}
	}
}
