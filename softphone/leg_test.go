package softphone

import (
	"io"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/media"
	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// sink collects what a leg reports to its call.
type sink chan call.Event

func (s sink) Post(ev call.Event) { s <- ev }

func (s sink) next(t *testing.T) call.Event {
	t.Helper()
	select {
	case ev := <-s:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("the leg reported nothing to its call")
		return call.Event{}
	}
}

// callerLeg is the caller's leg as far as the softphone looks at it.
type callerLeg struct{ te uint8 }

func (callerLeg) Ringing()                                  {}
func (callerLeg) Answer() error                             { return nil }
func (callerLeg) Reject(int)                                {}
func (callerLeg) Hangup()                                   {}
func (callerLeg) Play(*config.Prompt, uint64) (stop func()) { return func() {} }
func (callerLeg) Capture(call.Tap) (stop func())            { return func() {} }
func (c callerLeg) MediaFormat() (media.Codec, uint8) {
	return media.Codec{Name: "PCMU", PT: 0, Rate: 8000}, c.te
}
func (c callerLeg) String() string { return "caller" }
func dialRequest(agent string) call.DialRequest {
	started := time.Now().Add(-4 * time.Second)
	return call.DialRequest{
		CallID: "01CALL" + agent, Agent: agent, Caller: "+15551234567", CallerName: "Jane Roe",
		Inbound: callerLeg{te: 101}, RingTimeout: 15 * time.Second,
		Record: call.Record{
			ID: "01CALL" + agent, Caller: "+15551234567", CallerName: "Jane Roe", TrackingNumber: "+15550100001",
			Source: "google-ads", Medium: "cpc", Campaign: "spring-sale", Keyword: "plumber",
			Queue: "sales", IVR: []string{"1"}, StartedAt: started,
		},
	}
}

// answerWithPion answers an offer as a browser would, with a pion peer
// on loopback, and returns the SDP answer.
func answerWithPion(t *testing.T, offer string) (*webrtc.PeerConnection, string) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 0)))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logging.DefaultLoggerFactory{Writer: io.Discard, DefaultLogLevel: logging.LogLevelDisabled}
	mux := webrtc.NewICEUDPMux(logs.NewLogger("ice"), conn)
	var se webrtc.SettingEngine
	se.LoggerFactory = logs
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pc.Close()
		_ = mux.Close()
	})
	mic, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "mic", "page")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(mic); err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(10 * time.Second):
		t.Fatal("the test's browser did not gather candidates")
	}
	return pc, pc.LocalDescription().SDP
}

func availableAgent(t *testing.T, th *testHub, agent, token string) *page {
	t.Helper()
	p := th.login(t, agent, token)
	p.send(map[string]any{"type": "presence", "status": "available"})
	p.expect("presence")
	return p
}

func TestOfferedCallCarriesWhatTheAgentNeeds(t *testing.T) {
	th := newTestHub(t, Options{})
	p := availableAgent(t, th, "alice", "alice-secret")
	s := make(sink, 8)
	leg, err := th.Dial(dialRequest("alice"), s)
	if err != nil {
		t.Fatal(err)
	}
	if ev := s.next(t); ev.Kind != call.AgentRinging || ev.Leg != leg {
		t.Fatalf("first event %+v, want AgentRinging of the leg", ev)
	}
	if m := p.expect("presence"); m.Status != Busy {
		t.Fatalf("presence while ringing %q, want busy", m.Status)
	}
	m := p.expect("call.offered")
	want := message{
		Type: "call.offered", CallID: "01CALLalice", Caller: "+15551234567", CallerName: "Jane Roe",
		TrackingNumber: "+15550100001", Source: "google-ads", Medium: "cpc", Campaign: "spring-sale",
		Keyword: "plumber", Queue: "sales", IVR: []string{"1"}, RingTimeoutMS: 15000,
	}
	got := m
	got.SDP, got.StartedAt, got.WaitedMS = "", "", 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("call.offered = %+v\nwant %+v", got, want)
	}
	if m.WaitedMS < 3500 || m.WaitedMS > 10000 {
		t.Errorf("waited_ms %d, want about 4000", m.WaitedMS)
	}
	if _, err := time.Parse(time.RFC3339Nano, m.StartedAt); err != nil {
		t.Errorf("started_at %q: %v", m.StartedAt, err)
	}
	for _, line := range []string{"a=rtpmap:0 PCMU/8000", "telephone-event/8000", "a=fingerprint:", "a=candidate:", " 127.0.0.1 "} {
		if !strings.Contains(m.SDP, line) {
			t.Errorf("offer lacks %q:\n%s", line, m.SDP)
		}
	}
	if strings.Contains(m.SDP, "opus") || strings.Contains(m.SDP, "PCMA") {
		t.Errorf("offer has codecs other than the caller's:\n%s", m.SDP)
	}
	// Only the agent it was offered to can act on it.
	bob := availableAgent(t, th, "bob", "bob-secret")
	bob.send(map[string]any{"type": "decline", "call_id": "01CALLalice", "id": "b1"})
	if e := bob.next(); e.Code != errUnknownCall || e.Ref != "b1" {
		t.Fatalf("bob declining alice's call: %+v, want unknown_call", e)
	}
	select {
	case ev := <-s:
		t.Fatalf("bob's decline reached alice's call: %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
	// The call moves on (ring timeout): the page learns it, alice is
	// available again and the leg's port is free.
	leg.Cancel()
	if e := p.expect("call.ended"); e.Reason != "cancelled" {
		t.Errorf("call.ended reason %q, want cancelled", e.Reason)
	}
	if m := p.expect("presence"); m.Status != Available {
		t.Errorf("presence after the call %q, want available", m.Status)
	}
	waitFor(t, "the leg's port returned", func() bool { return th.ports.InUse() == 0 })
}

func TestAnswerDeclineAndHangup(t *testing.T) {
	th := newTestHub(t, Options{})
	p := availableAgent(t, th, "alice", "alice-secret")

	// Declined: the call hears 603 at once.
	s := make(sink, 8)
	if _, err := th.Dial(dialRequest("alice"), s); err != nil {
		t.Fatal(err)
	}
	s.next(t)
	m := p.expect("call.offered")
	p.send(map[string]any{"type": "decline", "call_id": m.CallID})
	if ev := s.next(t); ev.Kind != call.AgentFailed || ev.Code != 603 {
		t.Fatalf("decline reported %+v, want AgentFailed 603", ev)
	}
	if e := p.expect("call.ended"); e.Reason != "declined" {
		t.Errorf("reason %q", e.Reason)
	}

	// Answered: the media connects, the call hears the answer; the
	// agent hangs up.
	s = make(sink, 8)
	leg, err := th.Dial(dialRequest("alice"), s)
	if err != nil {
		t.Fatal(err)
	}
	s.next(t)
	m = p.expect("call.offered")
	p.send(map[string]any{"type": "answer", "call_id": m.CallID, "sdp": "v=0 this is no SDP"})
	if e := p.expect("error"); e.Code != errBadSDP {
		t.Fatalf("bad answer: %+v", e)
	}
	_, answer := answerWithPion(t, m.SDP)
	p.send(map[string]any{"type": "answer", "call_id": m.CallID, "sdp": answer})
	if ev := s.next(t); ev.Kind != call.AgentAnswered || ev.Leg != leg {
		t.Fatalf("after the answer: %+v, want AgentAnswered", ev)
	}
	p.expect("call.answered")
	p.send(map[string]any{"type": "dtmf", "call_id": m.CallID, "digits": "12x"})
	if e := p.expect("error"); e.Code != errBadDigits {
		t.Fatalf("bad digits: %+v", e)
	}
	p.send(map[string]any{"type": "dtmf", "call_id": m.CallID, "digits": "12#"})
	p.send(map[string]any{"type": "hangup", "call_id": m.CallID})
	if ev := s.next(t); ev.Kind != call.AgentHungUp {
		t.Fatalf("hangup reported %+v, want AgentHungUp", ev)
	}
	if e := p.expect("call.ended"); e.Reason != "agent_hangup" {
		t.Errorf("reason %q", e.Reason)
	}
	leg.(interface{ Close() }).Close()
	waitFor(t, "the legs' ports returned", func() bool { return th.ports.InUse() == 0 })
}

func TestPageClosedWhileRingingMovesTheCallOn(t *testing.T) {
	th := newTestHub(t, Options{Grace: time.Hour})
	p := availableAgent(t, th, "alice", "alice-secret")
	s := make(sink, 8)
	if _, err := th.Dial(dialRequest("alice"), s); err != nil {
		t.Fatal(err)
	}
	s.next(t)
	p.expect("call.offered")
	start := time.Now()
	_ = p.conn.CloseNow()
	if ev := s.next(t); ev.Kind != call.AgentFailed || ev.Code != 0 {
		t.Fatalf("page closed: %+v, want AgentFailed without a code (unreachable)", ev)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the call learnt of the closed page after %s", d)
	}
	if _, err := th.Dial(dialRequest("alice"), make(sink, 8)); err != ErrUnavailable {
		t.Fatalf("dialling an agent whose page is closed: %v, want ErrUnavailable", err)
	}
}

func TestAwayAgentIsNotDialled(t *testing.T) {
	th := newTestHub(t, Options{})
	th.login(t, "alice", "alice-secret")
	if _, err := th.Dial(dialRequest("alice"), make(sink, 8)); err != ErrUnavailable {
		t.Fatalf("dialling an away agent: %v, want ErrUnavailable", err)
	}
	if th.ports.InUse() != 0 {
		t.Fatal("a refused dial kept a port")
	}
}
