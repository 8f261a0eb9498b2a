package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	pionrtp "github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// rtcWait bounds every wait for something WebRTC does on loopback, which
// takes milliseconds; the margin is for a loaded machine running -race.
const rtcWait = 10 * time.Second

var (
	pcmu = Codec{PT: 0, Name: "PCMU", Rate: 8000}
	pcma = Codec{PT: 8, Name: "PCMA", Rate: 8000}
)

// browser plays the agent's browser: a pion PeerConnection of its own, on a
// loopback socket of its own, with a microphone track.
type browser struct {
	t      *testing.T
	pc     *webrtc.PeerConnection
	conn   *net.UDPConn
	mux    ice.UDPMux
	mic    *webrtc.TrackLocalStaticRTP
	tracks chan *webrtc.TrackRemote
	cands  chan *webrtc.ICECandidate

	stop     chan struct{}
	stopOnce sync.Once
	sending  sync.WaitGroup
}

// newBrowser accepts codec and, when te is not 0, telephone-event on te.
func newBrowser(t *testing.T, codec Codec, te uint8) *browser {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logging.DefaultLoggerFactory{Writer: io.Discard, DefaultLogLevel: logging.LogLevelDisabled}
	b := &browser{
		t: t, conn: conn,
		mux:    webrtc.NewICEUDPMux(logs.NewLogger("ice"), conn),
		tracks: make(chan *webrtc.TrackRemote, 1),
		cands:  make(chan *webrtc.ICECandidate, 16),
		stop:   make(chan struct{}),
	}
	var se webrtc.SettingEngine
	se.LoggerFactory = logs
	se.SetICEUDPMux(b.mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if te != 0 {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000, SDPFmtpLine: "0-15"},
			PayloadType:        webrtc.PayloadType(te),
		}, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	b.pc, err = webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	b.mic, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: "audio/" + codec.Name, ClockRate: 8000}, "mic", "browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.pc.AddTrack(b.mic); err != nil {
		t.Fatal(err)
	}
	b.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		select {
		case b.tracks <- tr:
		default:
		}
	})
	b.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		select {
		case b.cands <- c:
		default:
		}
	})
	t.Cleanup(b.close)
	return b
}

func (b *browser) close() {
	b.stopOnce.Do(func() { close(b.stop) })
	b.sending.Wait()
	_ = b.pc.GracefulClose()
	_ = b.mux.Close()
}

// answer takes the offer and returns the browser's answer, with its
// candidates when gathered is set, else without (they trickle).
func (b *browser) answer(offer string, gathered bool) string {
	b.t.Helper()
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		b.t.Fatal(err)
	}
	ans, err := b.pc.CreateAnswer(nil)
	if err != nil {
		b.t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(ans); err != nil {
		b.t.Fatal(err)
	}
	if !gathered {
		return ans.SDP
	}
	select {
	case <-done:
	case <-time.After(rtcWait):
		b.t.Fatal("browser did not gather")
	}
	return b.pc.LocalDescription().SDP
}

// talk sends a packet of payload every 20 ms until the test ends.
func (b *browser) talk(payload []byte) {
	b.sending.Add(1)
	go func() {
		defer b.sending.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		pkt := &pionrtp.Packet{Header: pionrtp.Header{Version: 2}, Payload: payload}
		for {
			select {
			case <-b.stop:
				return
			case <-tick.C:
			}
			pkt.SequenceNumber++
			pkt.Timestamp += uint32(len(payload))
			if err := b.mic.WriteRTP(pkt); err != nil {
				return
			}
		}
	}()
}

// track waits for the edge's audio to arrive.
func (b *browser) track() *webrtc.TrackRemote {
	b.t.Helper()
	select {
	case tr := <-b.tracks:
		return tr
	case <-time.After(rtcWait):
		b.t.Fatal("no track from the edge")
		return nil
	}
}

// readRTP reads the edge's next packet, failing the test after rtcWait.
func readRTP(t *testing.T, tr *webrtc.TrackRemote) *pionrtp.Packet {
	t.Helper()
	if err := tr.SetReadDeadline(time.Now().Add(rtcWait)); err != nil {
		t.Fatal(err)
	}
	pkt, _, err := tr.ReadRTP()
	if err != nil {
		t.Fatalf("browser read: %v", err)
	}
	return pkt
}

func newTestPeer(t *testing.T, ports *Ports, opt PeerOptions) *Peer {
	t.Helper()
	opt.Ports, opt.Address = ports, loopback
	p, err := NewPeer(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func offer(t *testing.T, p *Peer) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rtcWait)
	defer cancel()
	o, err := p.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func waitClosed(t *testing.T, what string, c <-chan struct{}, d time.Duration) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(d):
		t.Fatalf("%s: not within %v", what, d)
	}
}

// waitGoroutines waits for the goroutine count to fall back to before.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(rtcWait)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rtcCall is a carrier on plain RTP bridged to a browser over WebRTC.
type rtcCall struct {
	ports   *Ports
	peer    *Peer
	browser *browser
	ep      *Endpoint
	carrier *peer // the carrier's RTP socket
	bridge  *Bridge
}

// connect sets up a peer offering codec and peerTE, a browser accepting
// codec and browserTE, answering with trickled candidates, and waits for
// the media to connect; the bridge is made with opt but not started.
func connect(t *testing.T, base int, codec Codec, peerTE, browserTE uint8, opt BridgeOptions) *rtcCall {
	t.Helper()
	c := &rtcCall{ports: testPorts(t, base)}
	c.peer = newTestPeer(t, c.ports, PeerOptions{Codec: codec, TelephoneEvent: peerTE})
	c.browser = newBrowser(t, codec, browserTE)
	ans := c.browser.answer(offer(t, c.peer), false)
	if err := c.peer.SetAnswer(ans); err != nil {
		t.Fatal(err)
	}
	go func() {
		// Trickle, as a page relays RTCPeerConnection.onicecandidate.
		for {
			select {
			case cand := <-c.browser.cands:
				if cand == nil {
					_ = c.peer.AddCandidate("", nil, nil)
					return
				}
				j := cand.ToJSON()
				_ = c.peer.AddCandidate(j.Candidate, j.SDPMid, j.SDPMLineIndex)
			case <-c.browser.stop:
				return
			}
		}
	}()
	waitClosed(t, "peer connected", c.peer.Connected(), rtcWait)
	c.ep = openEP(t, c.ports)
	c.carrier = newPeer(t)
	c.ep.SetRemote(c.carrier.addr())
	c.bridge = NewBridge(c.ep, c.peer, opt)
	t.Cleanup(c.bridge.Stop)
	return c
}

// carrierTalks sends a carrier packet of payload type pt every 20 ms until
// stop is closed, each from next.
func (c *rtcCall) carrierTalks(stop <-chan struct{}, next func(seq uint16) []byte) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.carrier.conn.WriteToUDPAddrPort(next(seq), c.ep.LocalAddr()); err != nil {
				return
			}
		}
	}()
	return &wg
}

// carrierPacket is a carrier packet with a payload that tells it apart.
func carrierPacket(pt uint8, seq uint16, n int) []byte {
	p := srcRTP(pt, seq, 160*uint32(seq), 0xCA4417E4)[:12+n]
	for i := range p[12:] {
		p[12+i] = byte(seq) + byte(i)
	}
	return p
}

func TestPeerOffer(t *testing.T) {
	for _, tc := range []struct {
		codec   Codec
		te      uint8
		formats string
	}{
		{pcmu, 0, "0"},
		{pcma, 101, "8 101"},
	} {
		t.Run(tc.formats, func(t *testing.T) {
			ports := testPorts(t, 16000)
			p := newTestPeer(t, ports, PeerOptions{Codec: tc.codec, TelephoneEvent: tc.te})
			if ports.InUse() != 1 {
				t.Fatalf("InUse = %d, want the peer's one port", ports.InUse())
			}
			o := offer(t, p)
			var sd sdp.SessionDescription
			if err := sd.Unmarshal([]byte(o)); err != nil {
				t.Fatalf("offer does not parse: %v\n%s", err, o)
			}
			if len(sd.MediaDescriptions) != 1 {
				t.Fatalf("%d m-lines, want one:\n%s", len(sd.MediaDescriptions), o)
			}
			md := sd.MediaDescriptions[0]
			if md.MediaName.Media != "audio" || strings.Join(md.MediaName.Formats, " ") != tc.formats {
				t.Fatalf("m=%s %v, want audio %s:\n%s", md.MediaName.Media, md.MediaName.Formats, tc.formats, o)
			}
			if _, ok := md.Attribute("sendrecv"); !ok {
				t.Errorf("not sendrecv:\n%s", o)
			}
			rtpmaps := map[string]bool{}
			var cands []string
			for _, a := range md.Attributes {
				switch a.Key {
				case "rtpmap":
					rtpmaps[a.Value] = true
				case "candidate":
					cands = append(cands, a.Value)
				case "extmap":
					t.Errorf("header extension offered: %s", a.Value)
				}
			}
			want := map[string]bool{fmt.Sprintf("%d %s/8000", tc.codec.PT, tc.codec.Name): true}
			if tc.te != 0 {
				want[fmt.Sprintf("%d telephone-event/8000", tc.te)] = true
			}
			if len(rtpmaps) != len(want) {
				t.Errorf("rtpmaps %v, want %v", rtpmaps, want)
			}
			for m := range want {
				if !rtpmaps[m] {
					t.Errorf("no rtpmap %q in %v", m, rtpmaps)
				}
			}
			// pion lists the candidate once per component, RTP and
			// RTCP, though RTCP is muxed.
			if len(cands) == 0 {
				t.Fatalf("no candidate:\n%s", o)
			}
			for _, cand := range cands {
				f := strings.Fields(cand)
				if len(f) < 8 || strings.ToLower(f[2]) != "udp" || f[4] != "127.0.0.1" || f[6] != "typ" || f[7] != "host" {
					t.Fatalf("candidate %q, want udp 127.0.0.1 typ host", cand)
				}
				port, err := strconv.Atoi(f[5])
				if err != nil {
					t.Fatal(err)
				}
				if port < ports.first || port > ports.max || port%2 != 0 {
					t.Fatalf("candidate port %d is not a port of the pool %d-%d", port, ports.min, ports.max)
				}
				if f[5] != strings.Fields(cands[0])[5] {
					t.Fatalf("candidates on two ports: %q", cands)
				}
			}
			if again := offer(t, p); again != o {
				t.Error("a second Offer changed the offer")
			}
			p.Close()
			if ports.InUse() != 0 {
				t.Fatalf("InUse = %d after Close", ports.InUse())
			}
		})
	}
}

func TestNewPeerRejectsBadOptions(t *testing.T) {
	ports := testPorts(t, 16200)
	for name, opt := range map[string]PeerOptions{
		"no ports":         {Address: loopback, Codec: pcmu},
		"no address":       {Ports: ports, Codec: pcmu},
		"IPv6 address":     {Ports: ports, Address: netip.IPv6Loopback(), Codec: pcmu},
		"G729":             {Ports: ports, Address: loopback, Codec: Codec{PT: 18, Name: "G729", Rate: 8000}},
		"PCMA on 0":        {Ports: ports, Address: loopback, Codec: Codec{PT: 0, Name: "PCMA", Rate: 8000}},
		"PCMU at 16 kHz":   {Ports: ports, Address: loopback, Codec: Codec{PT: 0, Name: "PCMU", Rate: 16000}},
		"static TE":        {Ports: ports, Address: loopback, Codec: pcmu, TelephoneEvent: 13},
		"TE on codec":      {Ports: ports, Address: loopback, Codec: Codec{PT: 100, Name: "PCMU", Rate: 8000}, TelephoneEvent: 100},
		"failed too short": {Ports: ports, Address: loopback, Codec: pcmu, DisconnectedTimeout: 5 * time.Second, FailedTimeout: time.Second},
	} {
		if p, err := NewPeer(opt); err == nil {
			p.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	if ports.InUse() != 0 {
		t.Fatalf("InUse = %d after rejected options", ports.InUse())
	}
}

func TestPeerRelaysBothWays(t *testing.T) {
	for i, codec := range []Codec{pcmu, pcma} {
		t.Run(codec.Name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			tap := &tapLog{}
			c := connect(t, 16400+200*i, codec, 101, 101, BridgeOptions{
				PTMapAtoB: map[uint8]uint8{96: 101},
				PTMapBtoA: map[uint8]uint8{101: 96},
				Tap:       tap,
			})
			if te := c.peer.TelephoneEvent(); te != 101 {
				t.Fatalf("TelephoneEvent = %d, want the offered 101", te)
			}
			c.bridge.Start()
			// The browser's microphone: a payload that is not silence.
			mic := bytes.Repeat([]byte{0x12, 0x34, 0x56, 0x78}, 40)
			c.browser.talk(mic)

			// Carrier to browser: audio, a telephone-event the bridge
			// maps, and comfort noise the browser did not accept.
			stop := make(chan struct{})
			talking := c.carrierTalks(stop, func(seq uint16) []byte {
				switch seq % 10 {
				case 3:
					return carrierPacket(96, seq, 4)
				case 7:
					return carrierPacket(13, seq, 1)
				}
				return carrierPacket(codec.PT, seq, 160)
			})
			stopTalking := sync.OnceFunc(func() { close(stop); talking.Wait() })
			defer stopTalking()

			tr := c.browser.track()
			var audio, events int
			for audio < 5 || events < 1 {
				pkt := readRTP(t, tr)
				seq := byte(pkt.SequenceNumber)
				switch pkt.PayloadType {
				case codec.PT:
					// The browser's sequence numbers are the carrier's,
					// which the payload pattern starts from.
					if len(pkt.Payload) != 160 || pkt.Payload[0] != seq || pkt.Payload[159] != seq+159 {
						t.Fatalf("browser got audio payload % x... for seq %d", pkt.Payload[:4], pkt.SequenceNumber)
					}
					audio++
				case 101:
					if !bytes.Equal(pkt.Payload, []byte{seq, seq + 1, seq + 2, seq + 3}) {
						t.Fatalf("browser got event payload % x for seq %d", pkt.Payload, pkt.SequenceNumber)
					}
					events++
				default:
					t.Fatalf("browser got payload type %d", pkt.PayloadType)
				}
				if ssrc := pkt.SSRC; ssrc == 0xCA4417E4 {
					t.Fatal("browser got the carrier's SSRC, not the one offered")
				}
			}
			waitFor(t, "comfort noise dropped", func() bool { return c.peer.Stats().Unnegotiated > 0 })

			// Browser to carrier.
			for n := 0; n < 5; {
				pkt, src := c.carrier.mustRecv()
				if src != c.ep.LocalAddr() {
					t.Fatalf("carrier got a packet from %v", src)
				}
				if pkt[1]&0x7f != codec.PT || !bytes.Equal(pkt[12:], mic) {
					t.Fatalf("carrier got PT %d payload % x...", pkt[1]&0x7f, pkt[12:16])
				}
				n++
			}

			tap.mu.Lock()
			aToB, bToA := len(tap.aToB), len(tap.bToA)
			tap.mu.Unlock()
			if aToB == 0 || bToA == 0 {
				t.Fatalf("tap saw %d packets a->b and %d b->a", aToB, bToA)
			}
			if s := c.bridge.Stats(); s.AtoB == 0 || s.BtoA == 0 || s.Dropped == 0 {
				t.Fatalf("bridge stats %+v: want both ways relayed and comfort noise dropped", s)
			}

			// Close while media flows both ways; the bridge outlives it.
			if err := c.peer.Close(); err != nil {
				t.Logf("Close: %v", err)
			}
			waitClosed(t, "Failed after Close", c.peer.Failed(), time.Second)
			if c.ports.InUse() != 1 {
				t.Fatalf("InUse = %d with the carrier's endpoint left", c.ports.InUse())
			}
			c.bridge.Stop()
			c.ep.Close()
			c.browser.close()
			stopTalking()
			if c.ports.InUse() != 0 {
				t.Fatalf("InUse = %d after Close", c.ports.InUse())
			}
			c.carrier.conn.Close()
			waitGoroutines(t, before)
		})
	}
}

func TestPeerTelephoneEventDeclined(t *testing.T) {
	c := connect(t, 16800, pcmu, 101, 0, BridgeOptions{})
	if te := c.peer.TelephoneEvent(); te != 0 {
		t.Fatalf("TelephoneEvent = %d for an answer without telephone-event", te)
	}
}

// The digits the agent presses reach the carrier as RFC 4733 events on the
// carrier's payload type, in the stream the caller has been hearing.
func TestPeerSendDigitsRFC4733(t *testing.T) {
	stream := &RTPStream{SSRC: 0x5EED, Seq: 40000, TS: 7000}
	c := connect(t, 17000, pcmu, 101, 101, BridgeOptions{
		PTMapAtoB: map[uint8]uint8{96: 101},
		PTMapBtoA: map[uint8]uint8{101: 96},
		ContinueA: stream,
	})
	c.bridge.Start()
	c.browser.talk(bytes.Repeat([]byte{0xFF}, 160))
	// Audio first, so the digits are not the stream's first packets.
	c.carrier.mustRecv()
	if err := c.peer.SendDigits("5#"); err != nil {
		t.Fatal(err)
	}

	type event struct {
		code     byte
		marker   bool
		ends     int
		duration uint16
		volume   byte
		packets  int
	}
	var (
		det     EventDetector
		digits  []byte
		events  = map[uint32]*event{}
		order   []uint32
		lastSeq uint16
		seen    bool
	)
	deadline := time.Now().Add(rtcWait)
	for len(digits) < 2 || len(events) < 2 || events[order[1]].ends < digitEndPackets {
		if time.Now().After(deadline) {
			t.Fatalf("carrier got digits %q", digits)
		}
		pkt, _ := c.carrier.mustRecv()
		if ssrc := binary.BigEndian.Uint32(pkt[8:]); ssrc != stream.SSRC {
			t.Fatalf("SSRC %#x, want the caller's stream's %#x", ssrc, stream.SSRC)
		}
		seq := seqOf(pkt)
		if seen && seq != lastSeq+1 {
			t.Fatalf("sequence %d after %d", seq, lastSeq)
		}
		lastSeq, seen = seq, true
		switch pt := pkt[1] & 0x7f; pt {
		case 0:
			continue
		case 96:
		default:
			t.Fatalf("carrier got payload type %d", pt)
		}
		if d, ok := det.Feed(pkt); ok {
			digits = append(digits, d)
		}
		ts := binary.BigEndian.Uint32(pkt[4:])
		ev := events[ts]
		if ev == nil {
			ev = &event{code: pkt[12], marker: pkt[1]&0x80 != 0}
			events[ts] = ev
			order = append(order, ts)
		} else if pkt[1]&0x80 != 0 {
			t.Error("marker on a later packet of an event")
		}
		ev.packets++
		ev.volume = pkt[13] & 0x3f
		dur := binary.BigEndian.Uint16(pkt[14:])
		if pkt[13]&0x80 != 0 {
			ev.ends++
			if ev.ends > 1 && dur != ev.duration {
				t.Errorf("End packets with durations %d and %d", ev.duration, dur)
			}
		} else if ev.ends > 0 {
			t.Error("an event packet after its End")
		}
		if dur < ev.duration {
			t.Errorf("duration fell from %d to %d", ev.duration, dur)
		}
		ev.duration = dur
	}
	if string(digits) != "5#" {
		t.Fatalf("EventDetector found %q, want 5#", digits)
	}
	for i, want := range []byte{5, 11} {
		ev := events[order[i]]
		if ev.code != want || !ev.marker || ev.ends != digitEndPackets || ev.duration != 800 || ev.volume != digitVolume {
			t.Errorf("event %d: %+v, want code %d, marker, %d End packets at duration 800, volume %d",
				i, *ev, want, digitEndPackets, digitVolume)
		}
	}
}

// Without telephone-event the digits are tones in the audio.
func TestPeerSendDigitsInband(t *testing.T) {
	for i, codec := range []Codec{pcmu, pcma} {
		t.Run(codec.Name, func(t *testing.T) {
			c := connect(t, 17200+200*i, codec, 0, 0, BridgeOptions{})
			c.bridge.Start()
			g, _ := lookupG711Codec(codec.Name)
			c.browser.talk(bytes.Repeat([]byte{g.silence}, 160))
			c.carrier.mustRecv()
			if err := c.peer.SendDigits("5#"); err != nil {
				t.Fatal(err)
			}
			var got []byte
			rx := newTestDTMFReceiver(t, codec.Name, 0, func(d byte, via string) {
				if via != DTMFViaInband {
					t.Errorf("digit via %s", via)
				}
				got = append(got, d)
			})
			deadline := time.Now().Add(rtcWait)
			for string(got) != "5#" {
				if time.Now().After(deadline) || len(got) > 2 {
					t.Fatalf("tone detector found %q, want 5#", got)
				}
				pkt, _ := c.carrier.mustRecv()
				if pt := pkt[1] & 0x7f; pt != codec.PT {
					t.Fatalf("payload type %d, want only %s", pt, codec.Name)
				}
				rx.ReceiveRTP(pkt)
			}
			// Nothing more: the tones were the only thing but silence.
			for range 20 {
				pkt, _ := c.carrier.mustRecv()
				rx.ReceiveRTP(pkt)
			}
			if string(got) != "5#" {
				t.Fatalf("tone detector found %q, want 5#", got)
			}
		})
	}
}

func TestPeerSendDigitsRejects(t *testing.T) {
	p := newTestPeer(t, testPorts(t, 17600), PeerOptions{Codec: pcmu})
	for _, s := range []string{"12x", "a", " 1", "E"} {
		if err := p.SendDigits(s); err == nil {
			t.Errorf("SendDigits(%q) accepted", s)
		}
	}
	if err := p.SendDigits(strings.Repeat("1", peerMaxQueuedDigits+1)); err == nil {
		t.Error("an unbounded queue")
	}
	if err := p.SendDigits("0123456789*#ABCD"); err != nil {
		t.Fatal(err)
	}
}

func TestPeerBadAnswer(t *testing.T) {
	ports := testPorts(t, 17800)
	p := newTestPeer(t, ports, PeerOptions{Codec: pcmu, TelephoneEvent: 101})
	if err := p.SetAnswer("v=0\r\n"); err == nil {
		t.Fatal("answer before the offer accepted")
	}
	o := offer(t, p)
	b := newBrowser(t, pcmu, 101)
	good := b.answer(o, true)
	const head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	for _, tc := range []struct {
		name, sdp string
		want      error
	}{
		{"garbage", "hello", ErrInvalidSDP},
		{"video only", head + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n", ErrNoAudio},
		{"audio rejected", head + "m=audio 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\n", ErrNoAudio},
		{"PCMA", head + "m=audio 9 UDP/TLS/RTP/SAVPF 8\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:8 PCMA/8000\r\n", ErrNoCommonCodec},
		{"opus", strings.Replace(strings.Replace(good, "RTP/SAVPF 0 101", "RTP/SAVPF 111", 1), "a=rtpmap:0 PCMU/8000", "a=rtpmap:111 opus/48000/2", 1), ErrNoCommonCodec},
	} {
		if err := p.SetAnswer(tc.sdp); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// A bad answer changes nothing: the browser's own still works.
	if err := p.SetAnswer(good); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "connected", p.Connected(), rtcWait)
	if err := p.SetAnswer(good); err == nil {
		t.Error("a second answer accepted")
	}
}

func TestPeerAddCandidate(t *testing.T) {
	p := newTestPeer(t, testPorts(t, 18000), PeerOptions{Codec: pcmu})
	mid, idx := "0", uint16(0)
	for _, c := range []string{
		"",
		"candidate:1 1 udp 2122260223 0b0e3c1c-6e54-4d05-9c70-5a3b0b1a4b4e.local 54321 typ host generation 0",
		"candidate:2 1 udp 2122260223 127.0.0.1 54321 typ host",
	} {
		if err := p.AddCandidate(c, &mid, &idx); err != nil {
			t.Errorf("AddCandidate(%q): %v", c, err)
		}
	}
	if err := p.AddCandidate("candidate:bogus", &mid, &idx); err == nil {
		t.Error("malformed candidate accepted")
	}
}

// A browser that closes its connection (the page closed, the agent hung up
// in the browser) ends the peer at once.
func TestPeerBrowserCloses(t *testing.T) {
	c := connect(t, 18200, pcmu, 0, 0, BridgeOptions{})
	select {
	case <-c.peer.Failed():
		t.Fatal("Failed while connected")
	default:
	}
	c.browser.close()
	waitClosed(t, "Failed after the browser closed", c.peer.Failed(), rtcWait)
}

// A browser that vanishes without a word is noticed by the ICE timeouts.
func TestPeerBrowserVanishes(t *testing.T) {
	ports := testPorts(t, 18400)
	p := newTestPeer(t, ports, PeerOptions{
		Codec:               pcmu,
		DisconnectedTimeout: 500 * time.Millisecond,
		FailedTimeout:       1500 * time.Millisecond,
		KeepaliveInterval:   200 * time.Millisecond,
	})
	b := newBrowser(t, pcmu, 0)
	if err := p.SetAnswer(b.answer(offer(t, p), true)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "connected", p.Connected(), rtcWait)
	start := time.Now()
	b.conn.Close() // no DTLS close alert can leave
	waitClosed(t, "Failed after the browser vanished", p.Failed(), rtcWait)
	if d := time.Since(start); d < time.Second {
		t.Errorf("failed after %v, before the timeouts", d)
	}
}

func TestPeerCloseAnyTime(t *testing.T) {
	before := runtime.NumGoroutine()
	ports := testPorts(t, 18600)

	// Before Offer, and twice.
	p, err := NewPeer(PeerOptions{Ports: ports, Address: loopback, Codec: pcmu})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	waitClosed(t, "Failed after Close", p.Failed(), time.Second)
	if _, err := p.Offer(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Offer after Close: %v", err)
	}
	if err := p.SetAnswer("v=0"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetAnswer after Close: %v", err)
	}
	if err := p.AddCandidate("candidate:2 1 udp 2122260223 127.0.0.1 54321 typ host", nil, nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("AddCandidate after Close: %v", err)
	}
	if err := p.SendDigits("1"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SendDigits after Close: %v", err)
	}

	// After the offer, with an answer arriving after Close.
	p, err = NewPeer(PeerOptions{Ports: ports, Address: loopback, Codec: pcmu})
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, pcmu, 0)
	ans := b.answer(offer(t, p), true)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); p.Close() }()
	}
	wg.Wait()
	if err := p.SetAnswer(ans); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetAnswer after Close: %v", err)
	}
	// Bridging a closed peer is harmless: it just drops.
	ep := openEP(t, ports)
	br := NewBridge(ep, p, BridgeOptions{})
	br.Start()
	br.Stop()
	ep.Close()
	b.close()
	if ports.InUse() != 0 {
		t.Fatalf("InUse = %d after Close", ports.InUse())
	}
	waitGoroutines(t, before)
}

// A browser that answers but is never reached fails the peer too.
func TestPeerNeverConnects(t *testing.T) {
	p := newTestPeer(t, testPorts(t, 18800), PeerOptions{
		Codec:               pcmu,
		DisconnectedTimeout: 500 * time.Millisecond,
		FailedTimeout:       1500 * time.Millisecond,
	})
	b := newBrowser(t, pcmu, 0)
	ans := b.answer(offer(t, p), true)
	b.conn.Close()
	if err := p.SetAnswer(ans); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "Failed for a browser never reached", p.Failed(), rtcWait)
	select {
	case <-p.Connected():
		t.Fatal("connected to a closed socket")
	default:
	}
}

func TestPortsListen(t *testing.T) {
	p, min, max := smallRange(t, 12700, 4) // two pairs
	conn, release, err := p.Listen()
	if err != nil {
		t.Fatal(err)
	}
	port := int(conn.LocalAddr().(*net.UDPAddr).Port)
	if port%2 != 0 || port < min || port+1 > max {
		t.Fatalf("port %d not an even port of %d-%d", port, min, max)
	}
	e, err := p.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if p.InUse() != 2 {
		t.Fatalf("InUse = %d, want the listener's and the endpoint's", p.InUse())
	}
	if _, _, err := p.Listen(); !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("Listen on a full range: %v", err)
	}
	release()
	release()
	if p.InUse() != 1 {
		t.Fatalf("InUse = %d after release", p.InUse())
	}
	if _, err := conn.WriteToUDPAddrPort([]byte{0}, e.LocalAddr()); err == nil {
		t.Fatal("release left the socket open")
	}
}
