package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// The agent's browser of these benchmarks runs in a process of its own: the
// test binary again, running TestBenchBrowser. In the benchmark's process
// every allocation, every byte of heap and every CPU sample is then the
// edge's, as in production, where the browser is on the agent's machine.

// benchBrowserEnv tells the test binary it runs as the browser process.
const benchBrowserEnv = "MEDIA_BENCH_BROWSER"

// benchMsg is a request to the browser process or its reply, one JSON
// object a line: requests on the process's stdin, replies on its fd 3, so
// that nothing the testing package prints on stdout can garble them.
//
// The requests: "answer" makes browser ID answer the offer SDP; "close"
// closes it in the background (no reply); "sync" waits for those closes;
// "talk" starts its microphone (50 packets/s); "acks" sends every packet
// of the edge's audio, once decrypted, to To; "talks" returns the Addr
// whose datagrams the microphone sends; "forward" is a plain RTP phone,
// which sends every datagram to Addr on to To.
type benchMsg struct {
	Op   string `json:",omitempty"`
	ID   int    `json:",omitempty"`
	SDP  string `json:",omitempty"`
	To   string `json:",omitempty"`
	Addr string `json:",omitempty"`
}

// TestBenchBrowser is no test: it is the browser end of the Peer benchmarks,
// which start it.
func TestBenchBrowser(t *testing.T) {
	if os.Getenv(benchBrowserEnv) != "1" {
		t.Skip("the browser process of the Peer benchmarks")
	}
	replies := json.NewEncoder(os.NewFile(3, "replies"))
	requests := json.NewDecoder(os.Stdin)
	legs := map[int]*browserLeg{}
	var closing []*browserLeg
	defer func() {
		for _, l := range legs {
			close(l.hangUp)
			closing = append(closing, l)
		}
		for _, l := range closing {
			<-l.ended
		}
	}()
	get := func(id int) *browserLeg {
		l := legs[id]
		if l == nil {
			t.Fatalf("no browser %d", id)
		}
		return l
	}
	for {
		var req benchMsg
		if err := requests.Decode(&req); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Error(err)
			}
			return
		}
		rep := benchMsg{ID: req.ID}
		switch req.Op {
		case "answer":
			var l *browserLeg
			l, rep.SDP = startLeg(t, req.ID, req.SDP)
			legs[req.ID] = l
		case "close":
			l := get(req.ID)
			delete(legs, req.ID)
			close(l.hangUp)
			closing = append(closing, l)
			continue
		case "sync":
			for _, l := range closing {
				<-l.ended
			}
			closing = nil
		case "talk":
			get(req.ID).b.talk(bytes.Repeat([]byte{0xFF}, 160))
		case "acks":
			go ackTrack(get(req.ID).b, benchSocket(t), netip.MustParseAddrPort(req.To))
		case "talks":
			conn := benchSocket(t)
			rep.Addr = conn.LocalAddr().String()
			go micFrom(get(req.ID).b, conn)
		case "forward":
			conn := benchSocket(t)
			rep.Addr = conn.LocalAddr().String()
			go forwardTo(conn, netip.MustParseAddrPort(req.To))
		default:
			t.Fatalf("unknown request %q", req.Op)
		}
		if err := replies.Encode(rep); err != nil {
			t.Fatal(err)
		}
	}
}

// browserLeg is one browser of the browser process. It lives in a subtest
// of its own, which ends when the leg is hung up: the browser then closes
// and its memory goes, where the test's own cleanups would keep every
// browser of a long run until the process ends.
type browserLeg struct {
	b      *browser
	hangUp chan struct{}
	ended  chan struct{}
}

// startLeg makes a browser answer offer.
func startLeg(t *testing.T, id int, offer string) (*browserLeg, string) {
	l := &browserLeg{hangUp: make(chan struct{}), ended: make(chan struct{})}
	answered := make(chan string, 1)
	go func() {
		defer close(l.ended)
		t.Run(strconv.Itoa(id), func(t *testing.T) {
			l.b = newBrowser(t, pcmu, 0)
			answered <- l.b.answer(offer, true)
			<-l.hangUp
		})
		// The leg stays in the list of legs closing until a sync; its
		// closed browser need not.
		l.b = nil
	}()
	select {
	case sdp := <-answered:
		return l, sdp
	case <-l.ended:
		t.Fatalf("browser %d did not answer", id)
		return nil, ""
	}
}

func benchSocket(t *testing.T) *net.UDPConn {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// ackTrack sends the edge's audio on to the benchmark, which so learns that
// a packet went all the way through.
func ackTrack(b *browser, conn *net.UDPConn, to netip.AddrPort) {
	var tr *webrtc.TrackRemote
	select {
	case tr = <-b.tracks:
	case <-b.stop:
		return
	case <-time.After(rtcWait):
		return
	}
	buf := make([]byte, readBufSize)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if _, err := conn.WriteToUDPAddrPort(buf[:n], to); err != nil {
			return
		}
	}
}

// micFrom sends what the benchmark gives it as the browser's microphone.
func micFrom(b *browser, conn *net.UDPConn) {
	buf := make([]byte, readBufSize)
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if _, err := b.mic.Write(buf[:n]); err != nil {
			return
		}
	}
}

func forwardTo(conn *net.UDPConn, to netip.AddrPort) {
	buf := make([]byte, readBufSize)
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if _, err := conn.WriteToUDPAddrPort(buf[:n], to); err != nil {
			return
		}
	}
}

// browserProcess is the benchmark's end of the browser process.
type browserProcess struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	req     *json.Encoder
	replies chan benchMsg
	output  lockedBuffer
	next    int
}

// lockedBuffer takes the process's output, which exec copies on a goroutine
// of its own while a failing benchmark may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startBrowserProcess(tb testing.TB) *browserProcess {
	tb.Helper()
	if runtime.GOOS == "windows" {
		tb.Skip("the browser process replies on fd 3, which Windows does not pass on")
	}
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	bp := &browserProcess{replies: make(chan benchMsg, 1)}
	bp.cmd = exec.Command(os.Args[0], "-test.run=^TestBenchBrowser$", "-test.count=1")
	bp.cmd.Env = append(os.Environ(), benchBrowserEnv+"=1")
	bp.cmd.ExtraFiles = []*os.File{w}
	bp.cmd.Stdout, bp.cmd.Stderr = &bp.output, &bp.output
	if bp.stdin, err = bp.cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	if err := bp.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	// The process holds the write end now; ours would keep the reader
	// below from seeing it exit.
	w.Close()
	bp.req = json.NewEncoder(bp.stdin)
	go func() {
		defer close(bp.replies)
		defer r.Close()
		dec := json.NewDecoder(r)
		for {
			var m benchMsg
			if dec.Decode(&m) != nil {
				return
			}
			bp.replies <- m
		}
	}()
	tb.Cleanup(func() { bp.stop(tb) })
	return bp
}

// stop ends the process as a finished test ends: its browsers close.
func (bp *browserProcess) stop(tb testing.TB) {
	bp.stdin.Close()
	exited := make(chan error, 1)
	go func() { exited <- bp.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			tb.Errorf("browser process: %v\n%s", err, bp.output.String())
		}
	case <-time.After(rtcWait):
		bp.cmd.Process.Kill()
		<-exited
		tb.Errorf("browser process still running %v after its last request", rtcWait)
	}
	for range bp.replies {
	}
}

// do sends req and returns its reply.
func (bp *browserProcess) do(tb testing.TB, req benchMsg) benchMsg {
	tb.Helper()
	if err := bp.req.Encode(req); err != nil {
		tb.Fatalf("browser process: %v\n%s", err, bp.output.String())
	}
	if req.Op == "close" {
		return benchMsg{}
	}
	timer := time.NewTimer(rtcWait)
	defer timer.Stop()
	select {
	case rep, ok := <-bp.replies:
		if !ok {
			tb.Fatalf("browser process ended:\n%s", bp.output.String())
		}
		if rep.ID != req.ID {
			tb.Fatalf("browser process answered %d to %s %d", rep.ID, req.Op, req.ID)
		}
		return rep
	case <-timer.C:
		tb.Fatalf("browser process: no reply to %s within %v\n%s", req.Op, rtcWait, bp.output.String())
	}
	return benchMsg{}
}

// dial sets up a browser leg as the edge does for an agent: a Peer, its
// offer, the browser's answer, ICE and DTLS up. The answer carries the
// browser's candidate, so none trickles. It returns the browser's ID.
func (bp *browserProcess) dial(tb testing.TB, ports *Ports) (*Peer, int) {
	tb.Helper()
	p, err := NewPeer(PeerOptions{Ports: ports, Address: loopback, Codec: pcmu})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rtcWait)
	o, err := p.Offer(ctx)
	cancel()
	if err != nil {
		p.Close()
		tb.Fatal(err)
	}
	bp.next++
	id := bp.next
	ans := bp.do(tb, benchMsg{Op: "answer", ID: id, SDP: o})
	if err := p.SetAnswer(ans.SDP); err != nil {
		p.Close()
		tb.Fatal(err)
	}
	timer := time.NewTimer(rtcWait)
	defer timer.Stop()
	select {
	case <-p.Connected():
	case <-p.Failed():
		p.Close()
		tb.Fatal("peer failed to connect")
	case <-timer.C:
		p.Close()
		tb.Fatalf("peer not connected within %v", rtcWait)
	}
	return p, id
}

// hangUp closes a browser leg at both ends and checks the edge's end gave
// back its port.
func (bp *browserProcess) hangUp(tb testing.TB, ports *Ports, p *Peer, id int) {
	tb.Helper()
	held := ports.InUse()
	if err := p.Close(); err != nil {
		tb.Logf("Close: %v", err)
	}
	bp.do(tb, benchMsg{Op: "close", ID: id})
	if n := ports.InUse(); n != held-1 {
		tb.Fatalf("%d ports in use after Close, %d before", n, held)
	}
}

// settle waits for the goroutine count to fall back to before.
func settle(tb testing.TB, before int) {
	tb.Helper()
	deadline := time.Now().Add(rtcWait)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			tb.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkPeerSetup measures one browser leg from NewPeer to Close: the
// offer, the browser's answer, ICE and DTLS up, and the hang-up.
func BenchmarkPeerSetup(b *testing.B) {
	bp := startBrowserProcess(b)
	ports := testPorts(b, 19000)
	before := runtime.NumGoroutine()
	// One leg first, so that what is set up once per process (pion's
	// tables, pools, the crypto packages) is not charged to the legs.
	p, id := bp.dial(b, ports)
	bp.hangUp(b, ports, p, id)
	bp.do(b, benchMsg{Op: "sync"})
	settle(b, before)

	b.ReportAllocs()
	for b.Loop() {
		p, id := bp.dial(b, ports)
		bp.hangUp(b, ports, p, id)
		// pion's ICE mux and agent may end a goroutine just after Close
		// returns; waiting for it is the harness's time, not the leg's.
		if runtime.NumGoroutine() > before {
			b.StopTimer()
			settle(b, before)
			b.StartTimer()
		}
	}
	bp.do(b, benchMsg{Op: "sync"})
	settle(b, before)
}

// BenchmarkPeerRelay measures one packet through a bridge between the
// carrier's leg and an agent's, one at a time as BenchmarkRelay does, for a
// browser leg and, as the baseline, for a plain RTP phone in the same
// harness. The agent's end is in the browser process, which costs each
// packet one more loopback datagram than BenchmarkRelay: the one that
// tells the benchmark a packet reached the agent (an ack), or the one that
// makes the agent send. ns/op is thus the time a packet takes through both
// processes, the browser's work included.
func BenchmarkPeerRelay(b *testing.B) {
	opt := BridgeOptions{Timeout: time.Hour, OnTimeout: func() {}}
	b.Run("carrier-to-browser", func(b *testing.B) {
		bp := startBrowserProcess(b)
		ports := testPorts(b, 19200)
		p, id := bp.dial(b, ports)
		b.Cleanup(func() { p.Close() })
		ep := openEP(b, ports)
		carrier, acks := newPeer(b), newPeer(b)
		br := NewBridge(ep, p, opt)
		br.Start()
		b.Cleanup(br.Stop)
		bp.do(b, benchMsg{Op: "acks", ID: id, To: acks.addr().String()})
		pingPong(b, carrier, ep.LocalAddr(), acks)
	})
	b.Run("browser-to-carrier", func(b *testing.B) {
		bp := startBrowserProcess(b)
		ports := testPorts(b, 19200)
		p, id := bp.dial(b, ports)
		b.Cleanup(func() { p.Close() })
		ep := openEP(b, ports)
		carrier, trigger := newPeer(b), newPeer(b)
		ep.SetRemote(carrier.addr())
		br := NewBridge(ep, p, opt)
		br.Start()
		b.Cleanup(br.Stop)
		mic := bp.do(b, benchMsg{Op: "talks", ID: id})
		pingPong(b, trigger, netip.MustParseAddrPort(mic.Addr), carrier)
	})
	b.Run("carrier-to-phone", func(b *testing.B) {
		bp := startBrowserProcess(b)
		ports := testPorts(b, 19200)
		ep, agent := openEP(b, ports), openEP(b, ports)
		carrier, acks := newPeer(b), newPeer(b)
		phone := bp.do(b, benchMsg{Op: "forward", To: acks.addr().String()})
		agent.SetRemote(netip.MustParseAddrPort(phone.Addr))
		br := NewBridge(ep, agent, opt)
		br.Start()
		b.Cleanup(br.Stop)
		pingPong(b, carrier, ep.LocalAddr(), acks)
	})
	b.Run("phone-to-carrier", func(b *testing.B) {
		bp := startBrowserProcess(b)
		ports := testPorts(b, 19200)
		ep, agent := openEP(b, ports), openEP(b, ports)
		carrier, trigger := newPeer(b), newPeer(b)
		ep.SetRemote(carrier.addr())
		phone := bp.do(b, benchMsg{Op: "forward", To: agent.LocalAddr().String()})
		br := NewBridge(ep, agent, opt)
		br.Start()
		b.Cleanup(br.Stop)
		pingPong(b, trigger, netip.MustParseAddrPort(phone.Addr), carrier)
	})
}

// pingPong sends a G.711 packet from tx to dst and waits for it at rx, one
// at a time. Each packet has the next sequence number, as SRTP's replay
// protection drops a repeated one.
func pingPong(b *testing.B, tx *peer, dst netip.AddrPort, rx *peer) {
	pkt := rtp(0, 0)
	var seq uint16
	next := func() {
		seq++
		binary.BigEndian.PutUint16(pkt[2:4], seq)
		binary.BigEndian.PutUint32(pkt[4:8], 160*uint32(seq))
	}
	recv := func(d time.Duration) (int, error) {
		rx.conn.SetReadDeadline(time.Now().Add(d))
		n, _, err := rx.conn.ReadFromUDPAddrPort(rx.buf)
		return n, err
	}
	// The first packets find the far end not yet reading, as a track
	// starts with its first packet; then the acks of the packets queued
	// meanwhile must go before the timed packets come.
	deadline := time.Now().Add(rtcWait)
	for {
		next()
		tx.send(dst, pkt)
		if _, err := recv(50 * time.Millisecond); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no packet through within %v", rtcWait)
		}
	}
	for {
		if _, err := recv(200 * time.Millisecond); err != nil {
			break
		}
	}

	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	n := 0
	for b.Loop() {
		// A deadline per packet would be a timer operation per packet.
		if n%1024 == 0 {
			rx.conn.SetReadDeadline(time.Now().Add(rtcWait))
		}
		n++
		next()
		if _, err := tx.conn.WriteToUDPAddrPort(pkt, dst); err != nil {
			b.Fatal(err)
		}
		m, _, err := rx.conn.ReadFromUDPAddrPort(rx.buf)
		if err != nil {
			b.Fatalf("packet %d: %v", n, err)
		}
		if m != len(pkt) {
			b.Fatalf("packet %d came through as %d bytes, sent %d", n, m, len(pkt))
		}
	}
}

// BenchmarkPeerMemory measures what the edge holds for one connected browser
// leg whose browser sends audio: 20 legs are set up, then the heap, the
// goroutines and their stacks are compared with before, after a GC. The
// legs are not bridged, as the bridge and the carrier's Endpoint are the
// same for any agent. live-B/peer is the live heap; inuse-B/peer, the heap
// spans in use, is noisier, as new objects also fill spans that older ones
// left partly free.
func BenchmarkPeerMemory(b *testing.B) {
	const peers = 20
	bp := startBrowserProcess(b)
	ports := testPorts(b, 19400)
	before := runtime.NumGoroutine()
	p, id := bp.dial(b, ports)
	bp.hangUp(b, ports, p, id)
	bp.do(b, benchMsg{Op: "sync"})
	settle(b, before)

	var inuse, live, stack, goroutines float64
	runs := 0
	legs := make([]*Peer, peers)
	ids := make([]int, peers)
	for b.Loop() {
		m0, g0 := memNow()
		for i := range legs {
			legs[i], ids[i] = bp.dial(b, ports)
			bp.do(b, benchMsg{Op: "talk", ID: ids[i]})
		}
		for _, p := range legs {
			waitReading(b, p)
		}
		m1, g1 := memNow()
		inuse += float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / peers
		live += float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / peers
		stack += float64(int64(m1.StackInuse)-int64(m0.StackInuse)) / peers
		goroutines += float64(g1-g0) / peers
		runs++
		for i, p := range legs {
			bp.hangUp(b, ports, p, ids[i])
		}
		// A closed Peer still holds much of what it held: kept here, the
		// next round would count its legs without them.
		clear(legs)
		bp.do(b, benchMsg{Op: "sync"})
		settle(b, before)
	}
	b.ReportMetric(live/float64(runs), "live-B/peer")
	b.ReportMetric(inuse/float64(runs), "inuse-B/peer")
	b.ReportMetric(stack/float64(runs), "stack-B/peer")
	b.ReportMetric(goroutines/float64(runs), "goroutines/peer")
	// The time to set up and close the legs is BenchmarkPeerSetup's.
	b.ReportMetric(0, "ns/op")
}

// memNow reads the memory statistics after two GCs, the second to empty
// the pools the first only moved to their victim caches.
func memNow() (runtime.MemStats, int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m, runtime.NumGoroutine()
}

// waitReading waits for the peer to read the browser's audio, which it
// starts to at the first packet.
func waitReading(tb testing.TB, p *Peer) {
	tb.Helper()
	deadline := time.Now().Add(rtcWait)
	for {
		p.goMu.Lock()
		reading := p.reading
		p.goMu.Unlock()
		if reading {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the browser's audio not read within %v", rtcWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
