package media

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Defaults of PeerOptions. A browser that vanishes without closing (a
// laptop lid shut, a network gone) must be noticed in seconds, not in the
// half minute pion waits by default: the caller is left talking to no one.
const (
	peerDisconnectedTimeout = 4 * time.Second
	peerFailedTimeout       = 8 * time.Second
	peerKeepaliveInterval   = 2 * time.Second
)

const (
	// peerMaxQueuedDigits bounds what SendDigits may queue: digits go out
	// at five or six a second, so more than this is a client gone wrong.
	peerMaxQueuedDigits = 64
	// peerMaxEarlyCandidates bounds the candidates kept until the answer
	// arrives; a browser gathers a handful.
	peerMaxEarlyCandidates = 32

	// A sent digit lasts 100 ms and is followed by 60 ms without it:
	// longer than the 40 ms receivers must accept for both, short enough
	// that a string of digits does not drag.
	digitSamples    = 800
	digitGapSamples = 480
	// digitVolume is the power level RFC 4733 events announce, -10 dBm0,
	// about what phones send.
	digitVolume = 10
	// digitEndPackets is how many packets carry an event's End bit: the
	// first and the two retransmissions RFC 4733 2.5.1.4 recommends, so
	// that a lost one does not leave the key held.
	digitEndPackets = 3
	// digitToneAmplitude is each of the two tones at about -7 dBm0 in
	// PCM16 (0 dBm0 being about 22230): the level of a telephone's keypad,
	// and the pair cannot clip.
	digitToneAmplitude = 9900

	telephoneEventMime = "audio/telephone-event"
)

// PeerOptions configure a Peer.
type PeerOptions struct {
	// Ports gives the peer its one UDP socket, which carries ICE, DTLS
	// and SRTP: a browser leg costs one port like any other leg.
	Ports *Ports
	// Address is the address of the edge's only ICE candidate, a host
	// candidate on the socket's port: the address browsers reach the media
	// ports at. It is the Ports address, or the advertised one when media
	// binds 0.0.0.0 or sits behind a 1:1 NAT. Its family must be that of
	// the Ports address.
	Address netip.Addr
	// Codec is the caller's codec, PCMU or PCMA at 8000 Hz, and the only
	// audio codec offered, so that the bridge relays without transcoding.
	// Its payload type is offered as is: the static one (0, 8) or a
	// dynamic one (96-127) when the caller's leg uses that.
	Codec Codec
	// TelephoneEvent is the payload type (96-127) of telephone-event/8000
	// to offer; 0 offers none.
	TelephoneEvent uint8

	// DisconnectedTimeout is how long without hearing from the browser
	// the connection counts as disconnected (it may still recover);
	// FailedTimeout, longer, how long until it counts as failed and
	// Failed is closed. KeepaliveInterval is how often the edge sends
	// ICE keepalives when no media flows. Zero means 4 s, 8 s and 2 s.
	DisconnectedTimeout time.Duration
	FailedTimeout       time.Duration
	KeepaliveInterval   time.Duration
}

// PeerStats are a peer's counters.
type PeerStats struct {
	// NotReady counts packets for the browser dropped because media could
	// not flow yet: no answer, or ICE and DTLS not up.
	NotReady uint64
	// Unnegotiated counts packets for the browser dropped because the
	// browser did not accept their payload type: comfort noise, or
	// telephone-event when the answer declined it.
	Unnegotiated uint64
	// SendErrors counts packets for the browser lost to a failed send.
	SendErrors uint64
	// Malformed counts packets from the browser that were not RTP or had
	// a payload type that was not negotiated.
	Malformed uint64
}

// Peer is the edge's WebRTC end of a browser's call leg: one PeerConnection
// with one sendrecv audio stream in the caller's codec, on one socket of the
// media port range. A Bridge relays between it and a plain RTP Endpoint as
// between two Endpoints: packets from the browser are handed to the bridge
// by the peer's reader goroutine, and packets for the browser are encrypted
// and sent on the goroutine of the leg they come from.
//
// The edge makes the offer: Offer, then SetAnswer with the browser's answer
// and AddCandidate with its trickled candidates.
type Peer struct {
	audioPT uint8
	offerTE uint8
	codec   g711Codec
	mime    string
	pc      *webrtc.PeerConnection
	mux     ice.UDPMux
	release func()

	// te is the negotiated telephone-event payload type, 0 for none: set
	// by SetAnswer, read per packet on both directions' goroutines.
	te atomic.Uint32
	// out is where packets for the browser go once the sender is bound to
	// the negotiated codec; nil before and after.
	out atomic.Pointer[peerOut]

	// mu serialises the signalling calls and guards their state. It is
	// never taken by pion's callbacks, so holding it across pion calls
	// cannot deadlock.
	mu       sync.Mutex
	closed   bool
	offered  bool
	gathered <-chan struct{}
	answered bool
	early    []webrtc.ICECandidateInit // candidates that came before the answer

	// sinkMu is held by the reader while it forwards one packet, so that
	// detaching waits for a forward in progress, as Endpoint does.
	sinkMu sync.Mutex
	sink   *relay

	digitMu sync.Mutex
	digits  []byte
	queued  atomic.Int32 // len(digits), so the reader need not lock per packet
	dtmf    digitWriter  // the reader goroutine's alone

	// goMu guards starting goroutines against Close waiting for them.
	goMu     sync.Mutex
	stopping bool
	reading  bool
	wg       sync.WaitGroup

	connected     chan struct{}
	failed        chan struct{}
	closing       chan struct{}
	connectedOnce sync.Once
	failedOnce    sync.Once
	closeOnce     sync.Once
	isClosed      atomic.Bool
	closeErr      error

	notReady     atomic.Uint64
	unnegotiated atomic.Uint64
	sendErrors   atomic.Uint64
	malformed    atomic.Uint64
}

// peerOut is the sender's binding: the SSRC the offer announced and the
// stream that encrypts and sends.
type peerOut struct {
	ssrc uint32
	w    webrtc.TrackLocalWriter
}

// NewPeer takes a port from opt.Ports and prepares a PeerConnection on it.
// Nothing is sent before Offer.
func NewPeer(opt PeerOptions) (*Peer, error) {
	if opt.Ports == nil {
		return nil, errors.New("media: WebRTC peer without ports")
	}
	addr := opt.Address.Unmap()
	if !addr.IsValid() || addr.IsUnspecified() {
		return nil, fmt.Errorf("media: WebRTC peer needs the address browsers reach it at, not %v", opt.Address)
	}
	if addr.Is4() != opt.Ports.addr.Is4() {
		return nil, fmt.Errorf("media: ICE address %v is not of the family of the media address %v", addr, opt.Ports.addr)
	}
	codec, ok := lookupG711Codec(opt.Codec.Name)
	if !ok || (opt.Codec.Rate != 0 && opt.Codec.Rate != promptRate) {
		return nil, fmt.Errorf("media: WebRTC peer codec %s/%d is not PCMU or PCMA at 8000 Hz", opt.Codec.Name, opt.Codec.Rate)
	}
	if pt := opt.Codec.PT; pt != codec.pt && (pt < 96 || pt > 127) {
		return nil, fmt.Errorf("media: %s on payload type %d is neither static nor dynamic", codec.name, pt)
	}
	if te := opt.TelephoneEvent; te != 0 && (te < 96 || te > 127 || te == opt.Codec.PT) {
		return nil, fmt.Errorf("media: telephone-event payload type %d is not a free dynamic type", te)
	}
	disc := orDefault(opt.DisconnectedTimeout, peerDisconnectedTimeout)
	failed := orDefault(opt.FailedTimeout, peerFailedTimeout)
	keepalive := orDefault(opt.KeepaliveInterval, peerKeepaliveInterval)
	if failed <= disc {
		return nil, fmt.Errorf("media: ICE failed timeout %v is not longer than the disconnected one %v", failed, disc)
	}

	conn, release, err := opt.Ports.Listen()
	if err != nil {
		return nil, err
	}
	p := &Peer{
		audioPT:   opt.Codec.PT,
		offerTE:   opt.TelephoneEvent,
		codec:     codec,
		mime:      "audio/" + codec.name,
		release:   release,
		connected: make(chan struct{}),
		failed:    make(chan struct{}),
		closing:   make(chan struct{}),
	}
	p.dtmf = digitWriter{codec: codec, audioPT: opt.Codec.PT}

	// The mux is told the socket is at the advertised address rather than
	// rewriting candidates with NAT 1:1 rules: on a socket bound to
	// 0.0.0.0 the mux would list every interface of the host (and warn),
	// and rules cannot drop the addresses of the other family. This way
	// the one candidate is the advertised address at the socket's port,
	// whatever the socket is bound to.
	port := conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	// pion would log to stderr, past the edge's logger, and mostly about
	// things a caller sees anyway through Connected, Failed and errors.
	logs := &logging.DefaultLoggerFactory{Writer: io.Discard, DefaultLogLevel: logging.LogLevelDisabled}
	p.mux = webrtc.NewICEUDPMux(logs.NewLogger("ice"), &advertisedConn{
		UDPConn: conn,
		addr:    net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, port)),
	})
	if err := p.setup(addr, logs, disc, failed, keepalive); err != nil {
		if p.pc != nil {
			_ = p.pc.GracefulClose()
		}
		_ = p.mux.Close()
		p.release()
		p.wg.Wait()
		return nil, err
	}
	return p, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (p *Peer) setup(addr netip.Addr, logs logging.LoggerFactory, disc, failed, keepalive time.Duration) error {
	var se webrtc.SettingEngine
	se.LoggerFactory = logs
	se.SetICEUDPMux(p.mux)
	if addr.Is4() {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP6})
	}
	// Browsers hide their host addresses behind mDNS names, which the
	// edge does not resolve; their checks reach our candidate anyway and
	// ICE learns their address from them (peer-reflexive).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// The one candidate is chosen by the caller; a loopback one is what
	// tests and a same-host browser need.
	se.SetIncludeLoopbackCandidate(true)
	// pion counts the failed timeout from the disconnection.
	se.SetICETimeouts(disc, failed-disc, keepalive)

	// Channels 0 leaves the count out of the rtpmap, which means one,
	// as browsers write it.
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: p.mime, ClockRate: promptRate},
		PayloadType:        webrtc.PayloadType(p.audioPT),
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("media: WebRTC codec: %w", err)
	}
	if p.offerTE != 0 {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: telephoneEventMime, ClockRate: promptRate, SDPFmtpLine: "0-16"},
			PayloadType:        webrtc.PayloadType(p.offerTE),
		}, webrtc.RTPCodecTypeAudio); err != nil {
			return fmt.Errorf("media: WebRTC telephone-event: %w", err)
		}
	}
	// An empty registry: the default interceptors (retransmission,
	// congestion control, RTCP reports) serve video and statistics, and
	// would only add work to every packet of a G.711 relay.
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return fmt.Errorf("media: WebRTC peer: %w", err)
	}
	p.pc = pc
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			p.connectedOnce.Do(func() { close(p.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			p.fail()
		}
	})
	pc.OnTrack(p.onTrack)
	tr, err := pc.AddTransceiverFromTrack(peerTrack{p}, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		return fmt.Errorf("media: WebRTC audio: %w", err)
	}
	p.wg.Add(1)
	go drainRTCP(tr.Sender(), &p.wg)
	return nil
}

// advertisedConn is the peer's socket as the ICE mux sees it: at the
// advertised address. It keeps the mux's allocation-free reads and writes,
// which the mux only finds on a bare *net.UDPConn or by these methods.
type advertisedConn struct {
	*net.UDPConn
	addr *net.UDPAddr
}

func (c *advertisedConn) LocalAddr() net.Addr { return c.addr }

func (c *advertisedConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.ReadFromUDPAddrPort(b)
}

func (c *advertisedConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.WriteToUDPAddrPort(b, addr)
}

// Offer returns the SDP offer for the browser: one sendrecv audio stream
// with the codec and telephone-event of PeerOptions, and the edge's ICE
// candidate, so the browser needs no trickle from the edge. It waits for
// candidate gathering, which takes milliseconds on one socket, or for ctx.
// Calling it again returns the same offer.
func (p *Peer) Offer(ctx context.Context) (string, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return "", net.ErrClosed
	}
	if !p.offered {
		offer, err := p.pc.CreateOffer(nil)
		if err != nil {
			p.mu.Unlock()
			return "", fmt.Errorf("media: WebRTC offer: %w", err)
		}
		// Before SetLocalDescription, which starts gathering.
		gathered := webrtc.GatheringCompletePromise(p.pc)
		if err := p.pc.SetLocalDescription(offer); err != nil {
			p.mu.Unlock()
			return "", fmt.Errorf("media: WebRTC offer: %w", err)
		}
		p.offered, p.gathered = true, gathered
	}
	gathered := p.gathered
	p.mu.Unlock()
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-p.closing:
		return "", net.ErrClosed
	}
	ld := p.pc.LocalDescription()
	if ld == nil {
		return "", net.ErrClosed
	}
	return ld.SDP, nil
}

// SetAnswer applies the browser's answer to the offer. An answer that does
// not parse wraps ErrInvalidSDP, one without an audio stream ErrNoAudio,
// and one that does not accept the offered codec ErrNoCommonCodec; such an
// answer changes nothing, so a corrected one may follow. A peer takes one
// answer.
func (p *Peer) SetAnswer(answer string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return net.ErrClosed
	case !p.offered:
		return errors.New("media: WebRTC answer before the offer")
	case p.answered:
		return errors.New("media: WebRTC peer already has its answer")
	}
	te, err := checkAnswer(answer, p.audioPT, p.codec.name, p.offerTE)
	if err != nil {
		return err
	}
	// Before the answer is applied, as the sender may start at once.
	p.te.Store(uint32(te))
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		p.te.Store(0)
		return fmt.Errorf("%w: WebRTC answer: %v", ErrInvalidSDP, err)
	}
	p.answered = true
	for _, c := range p.early {
		// Checked when they came; ICE ignores what it cannot pair.
		_ = p.pc.AddICECandidate(c)
	}
	p.early = nil
	return nil
}

// checkAnswer says why pion would not make audio of an answer, in the
// package's SDP errors, and returns the telephone-event type it accepted.
func checkAnswer(answer string, audioPT uint8, codec string, te uint8) (uint8, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal([]byte(answer)); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	var md *sdp.MediaDescription
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media == "audio" {
			md = m
			break
		}
	}
	switch {
	case md == nil:
		return 0, fmt.Errorf("%w: no m=audio line in the answer", ErrNoAudio)
	case md.MediaName.Port.Value == 0:
		return 0, fmt.Errorf("%w: the browser rejected the audio stream", ErrNoAudio)
	}
	rtpmap := rtpmapOf(md)
	audioOK, teOK := false, false
	for _, f := range md.MediaName.Formats {
		n, err := strconv.ParseUint(f, 10, 8)
		if err != nil || n > 127 {
			return 0, fmt.Errorf("%w: payload type %q", ErrInvalidSDP, f)
		}
		pt := uint8(n)
		c, ok := rtpmap[pt]
		if !ok {
			c, ok = staticCodec(pt)
		}
		if !ok || c.Rate != promptRate {
			continue
		}
		switch {
		case pt == audioPT && strings.EqualFold(c.Name, codec):
			audioOK = true
		case te != 0 && pt == te && strings.EqualFold(c.Name, "telephone-event"):
			teOK = true
		}
	}
	if !audioOK {
		return 0, fmt.Errorf("%w: the answer does not accept %s on payload type %d (answered %s)",
			ErrNoCommonCodec, codec, audioPT, strings.Join(md.MediaName.Formats, " "))
	}
	if teOK {
		return te, nil
	}
	return 0, nil
}

// AddCandidate adds one ICE candidate the browser trickled, as its
// RTCIceCandidate has it. An empty candidate marks the end of the
// browser's candidates, which needs nothing; candidates the edge cannot
// use (mDNS names, unknown types) are ignored. Candidates that come before
// the answer are kept until it arrives. A malformed candidate is an error.
func (p *Peer) AddCandidate(candidate string, sdpMid *string, sdpMLineIndex *uint16) error {
	value := strings.TrimPrefix(strings.TrimSpace(candidate), "candidate:")
	if value == "" {
		return nil
	}
	if _, err := ice.UnmarshalCandidate(value); err != nil {
		if errors.Is(err, ice.ErrUnknownCandidateTyp) || errors.Is(err, ice.ErrDetermineNetworkType) {
			return nil
		}
		return fmt.Errorf("media: ICE candidate %q: %w", candidate, err)
	}
	c := webrtc.ICECandidateInit{Candidate: candidate, SDPMid: sdpMid, SDPMLineIndex: sdpMLineIndex}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return net.ErrClosed
	}
	if !p.answered {
		if len(p.early) >= peerMaxEarlyCandidates {
			return errors.New("media: too many ICE candidates before the answer")
		}
		p.early = append(p.early, c)
		return nil
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("media: ICE candidate %q: %w", candidate, err)
	}
	return nil
}

// Connected is closed once ICE and DTLS are up, so media can flow.
func (p *Peer) Connected() <-chan struct{} { return p.connected }

// Failed is closed when the connection failed to come up, broke (no word
// from the browser for FailedTimeout), the browser closed it, or Close was
// called. A peer that has failed stays failed.
func (p *Peer) Failed() <-chan struct{} { return p.failed }

func (p *Peer) fail() { p.failedOnce.Do(func() { close(p.failed) }) }

// TelephoneEvent is the negotiated telephone-event payload type: the
// offered one if the browser's answer kept it, else 0 (also before the
// answer). The bridge maps the caller's to it.
func (p *Peer) TelephoneEvent() uint8 { return uint8(p.te.Load()) }

// Stats returns the peer's counters.
func (p *Peer) Stats() PeerStats {
	return PeerStats{
		NotReady:     p.notReady.Load(),
		Unnegotiated: p.unnegotiated.Load(),
		SendErrors:   p.sendErrors.Load(),
		Malformed:    p.malformed.Load(),
	}
}

// SendDigits queues DTMF digits (0-9, *, #, A-D) for the far end of a
// bridge, as if the browser had sent them: with telephone-event negotiated
// as RFC 4733 events, else as tones in the audio. They take the place of
// the browser's audio packets, one packet at a time, so they go out at the
// browser's pace and only while it sends; each lasts 100 ms, and 60 ms
// separate two. A string with any other character queues nothing and is
// an error, as is one that would queue more than 64 digits.
func (p *Peer) SendDigits(digits string) error {
	for i := 0; i < len(digits); i++ {
		if strings.IndexByte(dtmfEventDigits, digits[i]) < 0 {
			return fmt.Errorf("media: %q is not a DTMF digit (0-9, *, #, A-D)", digits[i])
		}
	}
	if p.isClosed.Load() {
		return net.ErrClosed
	}
	p.digitMu.Lock()
	defer p.digitMu.Unlock()
	if len(p.digits)+len(digits) > peerMaxQueuedDigits {
		return fmt.Errorf("media: more than %d DTMF digits queued", peerMaxQueuedDigits)
	}
	p.digits = append(p.digits, digits...)
	p.queued.Store(int32(len(p.digits)))
	return nil
}

// nextDigit takes the next queued digit, if any.
func (p *Peer) nextDigit() (byte, bool) {
	if p.queued.Load() == 0 {
		return 0, false
	}
	p.digitMu.Lock()
	defer p.digitMu.Unlock()
	if len(p.digits) == 0 {
		return 0, false
	}
	d := p.digits[0]
	p.digits = p.digits[1:]
	p.queued.Store(int32(len(p.digits)))
	return d, true
}

// Close closes the PeerConnection (which tells the browser, if connected),
// returns the port to the pool and waits for the peer's goroutines to end.
// It is idempotent and may be called at any time, also concurrently with
// the other methods, which then fail with net.ErrClosed.
func (p *Peer) Close() error {
	p.closeOnce.Do(func() {
		// Waits for a signalling call in progress.
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.isClosed.Store(true)
		close(p.closing)
		p.goMu.Lock()
		p.stopping = true
		p.goMu.Unlock()
		// Graceful: it also waits for pion's goroutines.
		p.closeErr = p.pc.GracefulClose()
		_ = p.mux.Close()
		p.release()
		p.wg.Wait()
		p.fail()
	})
	return p.closeErr
}

// onTrack starts reading the browser's audio. It runs on a pion goroutine.
func (p *Peer) onTrack(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	p.goMu.Lock()
	if p.stopping || p.reading || track.Kind() != webrtc.RTPCodecTypeAudio {
		p.goMu.Unlock()
		return
	}
	p.reading = true
	p.wg.Add(2)
	p.goMu.Unlock()
	go p.readLoop(track)
	go drainRTCP(recv, &p.wg)
}

// drainRTCP reads RTCP nobody needs, so that pion's buffers do not fill,
// until the PeerConnection closes.
func drainRTCP(r interface {
	Read([]byte) (int, interceptor.Attributes, error)
}, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, readBufSize)
	for {
		if _, _, err := r.Read(buf); err != nil {
			return
		}
	}
}

// readLoop hands the browser's packets to the bridge, as Endpoint.readLoop
// does those of a plain RTP leg, with queued digits written into them.
func (p *Peer) readLoop(track *webrtc.TrackRemote) {
	defer p.wg.Done()
	buf := make([]byte, readBufSize)
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			if n == 0 || errors.Is(err, io.EOF) {
				// Closed, or the stream is gone.
				return
			}
			// A packet of a payload type that was not negotiated.
			p.malformed.Add(1)
			p.dropped()
			continue
		}
		pkt := buf[:n]
		if n < 12 || n == len(buf) || pkt[0]>>6 != 2 {
			p.malformed.Add(1)
			p.dropped()
			continue
		}
		pkt = p.dtmf.write(pkt, uint8(p.te.Load()), p.nextDigit)
		p.sinkMu.Lock()
		if s := p.sink; s != nil {
			s.forward(pkt)
		}
		p.sinkMu.Unlock()
	}
}

// dropped charges a drop to the attached bridge, if any.
func (p *Peer) dropped() {
	p.sinkMu.Lock()
	if s := p.sink; s != nil {
		s.dropped.Add(1)
	}
	p.sinkMu.Unlock()
}

func (p *Peer) attach(r *relay) {
	p.sinkMu.Lock()
	defer p.sinkMu.Unlock()
	if p.sink != nil && p.sink != r {
		panic("media: peer is already bridged")
	}
	p.sink = r
}

func (p *Peer) detach(r *relay) {
	p.sinkMu.Lock()
	if p.sink == r {
		p.sink = nil
	}
	p.sinkMu.Unlock()
}

// send writes one packet to the browser. Only the negotiated audio and
// telephone-event payload types go: a browser cannot use anything else, and
// pion would not stop it. The SSRC becomes the one the offer announced, so
// that the browser keeps one stream when the caller's leg changes source.
// The write encrypts and sends a datagram on the calling goroutine; it does
// not wait for the browser.
func (p *Peer) send(pkt []byte) bool {
	out := p.out.Load()
	if out == nil {
		p.notReady.Add(1)
		return false
	}
	if pt := pkt[1] & 0x7f; pt != p.audioPT {
		if te := p.te.Load(); te == 0 || uint32(pt) != te {
			p.unnegotiated.Add(1)
			return false
		}
	}
	binary.BigEndian.PutUint32(pkt[8:12], out.ssrc)
	n, err := out.w.Write(pkt)
	switch {
	case err != nil:
		p.sendErrors.Add(1)
		return false
	case n == 0:
		// SRTP is not up yet: pion drops the packet without an error.
		p.notReady.Add(1)
		return false
	}
	return true
}

// peerTrack is the peer's outgoing audio. It is not pion's
// TrackLocalStaticRTP because that one stamps every packet with the codec's
// payload type, which would turn relayed telephone-events into garbled
// audio: this one writes packets as the bridge made them.
type peerTrack struct{ p *Peer }

// Bind is pion telling which codecs the browser accepted and which SSRC and
// stream to send with.
func (t peerTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, t.p.mime) {
			t.p.out.Store(&peerOut{ssrc: uint32(ctx.SSRC()), w: ctx.WriteStream()})
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (t peerTrack) Unbind(webrtc.TrackLocalContext) error {
	t.p.out.Store(nil)
	return nil
}

func (peerTrack) ID() string                { return "audio" }
func (peerTrack) RID() string               { return "" }
func (peerTrack) StreamID() string          { return "callsign" }
func (peerTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }

// digitWriter turns queued digits into the browser's outgoing packets, each
// rewritten in place. The packets keep the browser's sequence numbers and
// SSRC, so to the far end the digits are part of the browser's stream, and
// a bridge splices and maps them like the rest of it. Only the reader
// goroutine uses it.
type digitWriter struct {
	codec   g711Codec
	audioPT uint8

	active  bool
	event   uint8   // RFC 4733 event code of the digit being sent
	low     float64 // its tones, Hz
	high    float64
	ts      uint32 // RTP timestamp of its first packet
	samples int    // of it sent so far
	ends    int    // packets with the End bit sent
	gap     int    // samples of pause left before the next digit
}

// write returns pkt, or pkt rewritten to carry the current digit, as an
// RFC 4733 event of payload type te, or as tones when te is 0. Only audio
// packets are used; their payload length is their sample count (G.711).
func (w *digitWriter) write(pkt []byte, te uint8, next func() (byte, bool)) []byte {
	if pkt[1]&0x7f != w.audioPT || !w.active && w.gap <= 0 && !w.start(next) {
		return pkt
	}
	payload, _, ts, _, ok := rtpPayload(pkt)
	if !ok || len(payload) == 0 {
		return pkt
	}
	end := len(pkt)
	if pkt[0]&0x20 != 0 {
		end -= int(pkt[end-1])
	}
	off, n := end-len(payload), len(payload)

	if !w.active {
		// The pause between two digits: the browser's audio, or silence
		// for a tone detector to see the key released.
		w.gap -= n
		if te != 0 {
			return pkt
		}
		for i := range payload {
			payload[i] = w.codec.silence
		}
		pkt[0] &^= 0x20
		return pkt[:off+n]
	}

	if te == 0 {
		for i := range payload {
			t := 2 * math.Pi * float64(w.samples+i) / promptRate
			s := digitToneAmplitude * (math.Sin(w.low*t) + math.Sin(w.high*t))
			payload[i] = w.codec.encode(int16(math.Round(s)))
		}
		w.samples += n
		if w.samples >= digitSamples {
			w.active, w.gap = false, digitGapSamples
		}
		pkt[0] &^= 0x20
		return pkt[:off+n]
	}

	first := w.samples == 0
	if w.ends == 0 {
		w.samples += n
	}
	if w.samples >= digitSamples {
		w.ends++
	}
	if first {
		w.ts = ts
	}
	pkt = pkt[:off+4]
	pkt[0] &^= 0x20
	pkt[1] = te
	if first {
		pkt[1] |= 0x80
	}
	binary.BigEndian.PutUint32(pkt[4:8], w.ts)
	pkt[off] = w.event
	pkt[off+1] = digitVolume
	if w.ends > 0 {
		pkt[off+1] |= 0x80
	}
	binary.BigEndian.PutUint16(pkt[off+2:], uint16(min(w.samples, 0xFFFF)))
	if w.ends >= digitEndPackets {
		w.active, w.gap = false, digitGapSamples
	}
	return pkt
}

// start takes the next digit, if one is queued.
func (w *digitWriter) start(next func() (byte, bool)) bool {
	d, ok := next()
	if !ok {
		return false
	}
	w.active, w.samples, w.ends = true, 0, 0
	w.event = uint8(strings.IndexByte(dtmfEventDigits, d))
	for r := range dtmfKeys {
		for c := range dtmfKeys[r] {
			if dtmfKeys[r][c] == d {
				w.low, w.high = dtmfRowHz[r], dtmfColHz[c]
			}
		}
	}
	return true
}
