package softphone

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/media"
	"github.com/coder/websocket"
	"github.com/rs/zerolog"
)

// FuzzSocket drives a page's socket with frames of any bytes, through the
// same decoding and validation readLoop uses, and checks what it does:
//
//   - it never ends the socket, nor stalls it by filling its queue;
//   - every reply is a message of the protocol with a known type, and an
//     error has a known code and says something;
//   - before a login nothing reaches a call: the replies are pong, the
//     login's own and errors about the frame, and no call changes state;
//   - after a login, only the calls of the agent logged in can change;
//   - after a refused login, nothing is acted on.
//
// The input is the page's frames separated by newlines; bit i%8 of binary
// makes frame i a binary frame.
func FuzzSocket(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping"}`,
		`{"type":"presence","status":"available","id":"m1"}` + "\n" + `{"type":"answer","call_id":"c1","sdp":"v=0"}`,
		`{"type":"login","agent":"alice","token":"alice-secret"}` + "\n" + `{"type":"presence","status":"available"}`,
		`{"type":"login","agent":"alice","token":"wrong"}` + "\n" + `{"type":"ping"}`,
		`{"type":"login","agent":"alice","token":"alice-secret"}` + "\n" +
			`{"type":"answer","call_id":"c1","sdp":"v=0\r\n"}` + "\n" +
			`{"type":"ice","call_id":"c1","candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}` + "\n" +
			`{"type":"dtmf","call_id":"c1","digits":"12#"}` + "\n" +
			`{"type":"decline","call_id":"c1"}` + "\n" +
			`{"type":"hangup","call_id":"c2"}`,
		`{"type":"login","agent":"bob","token":"bob-secret"}` + "\n" + `{"type":"hangup","call_id":"c2"}` + "\n" + `{"type":"login","agent":"alice","token":"alice-secret"}`,
		`{not json` + "\n" + `{"type":"presence","status":42}` + "\n" + `[1,2,3]` + "\n" + `{"type":"launch-rockets"}`,
		`{"type":"login","agent":"carol","token":""}`,
	} {
		f.Add([]byte(s), uint8(0))
	}
	f.Add([]byte(`{"type":"ping"}`), uint8(1))
	f.Add([]byte(`{"type":"ping","pad":"`+strings.Repeat("x", maxMessage)+`"}`), uint8(0))

	ports, err := media.NewPorts(netip.MustParseAddr("127.0.0.1"), 42400, 42499)
	if err != nil {
		f.Fatal(err)
	}
	// The calls' peer is closed, so that what reaches a call does what it
	// does at once and without a network; one serves every input.
	peer, err := media.NewPeer(media.PeerOptions{
		Ports: ports, Address: netip.MustParseAddr("127.0.0.1"),
		Codec: media.Codec{Name: "PCMU", PT: 0, Rate: 8000},
	})
	if err != nil {
		f.Fatal(err)
	}
	_ = peer.Close()
	cfg := testConfig(map[string]string{"alice": "alice-secret", "bob": "bob-secret"})

	f.Fuzz(func(t *testing.T, data []byte, binary uint8) {
		h := New(Options{Config: cfg, Log: zerolog.Nop()})
		legs := map[string]*leg{}
		for agent, callID := range map[string]string{"alice": "c1", "bob": "c2"} {
			l := &leg{
				h: h, agent: agent, callID: callID, peer: peer, log: zerolog.Nop(),
				events: make(chan call.Event, 4), done: make(chan struct{}),
			}
			legs[callID] = l
			h.states[agent] = &agentState{id: agent, choice: Away, legs: map[string]*leg{callID: l}}
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := &socket{h: h, log: h.log, out: make(chan message, sendQueue), ctx: ctx, cancel: cancel}

		for i, frame := range bytes.Split(data, []byte{'\n'}) {
			typ := websocket.MessageText
			if binary&(1<<(i%8)) != 0 {
				typ = websocket.MessageBinary
			}
			before := s.agent
			wasRefused := s.refused
			states := map[string]int{}
			for id, l := range legs {
				states[id] = legState(l)
			}
			if !s.receive(typ, frame) {
				t.Fatalf("frame %d %q ended the socket", i, frame)
			}
			if ctx.Err() != nil {
				t.Fatalf("frame %d %q stalled the socket", i, frame)
			}
			var replies []message
			for len(s.out) > 0 {
				replies = append(replies, <-s.out)
			}
			for _, m := range replies {
				checkReply(t, frame, m, s.agent)
			}
			for _, m := range replies {
				// The writer closes the socket after the refusal; only
				// frames it could not decode still get their error.
				if wasRefused && (m.Type != "error" || m.Code != errBadMessage && m.Code != errTooLarge) {
					t.Fatalf("frame %d %q: reply %+v after a refused login", i, frame, m)
				}
			}
			for id, l := range legs {
				if legState(l) != states[id] && (before == "" || l.agent != before) {
					t.Fatalf("frame %d %q of agent %q changed call %s of %s", i, frame, before, id, l.agent)
				}
			}
			if before != "" {
				continue
			}
			for _, m := range replies {
				switch {
				case m.Type == "pong",
					m.Type == "welcome" && s.agent != "",
					m.Type == "error" && (m.Code == errNotLoggedIn || m.Code == errBadMessage ||
						m.Code == errTooLarge || m.Code == errBadLogin):
				default:
					t.Fatalf("frame %d %q before login got %+v", i, frame, m)
				}
			}
		}
	})
}

func legState(l *leg) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// checkReply fails unless m is a message of the protocol the page can
// read back, for a page logged in as agent.
func checkReply(t *testing.T, frame []byte, m message, agent string) {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("%q: reply %+v does not encode: %v", frame, m, err)
	}
	var back message
	if err := json.Unmarshal(data, &back); err != nil || back.Type != m.Type || back.Code != m.Code {
		t.Fatalf("%q: reply %s does not decode: %v", frame, data, err)
	}
	presence := func(p string) bool { return p == Available || p == Away || p == Busy }
	switch m.Type {
	case "pong":
	case "welcome":
		if m.Agent != agent || !presence(m.Presence) {
			t.Fatalf("%q: welcome %s for agent %q", frame, data, agent)
		}
	case "presence":
		if agent == "" || !presence(m.Status) {
			t.Fatalf("%q: presence %s for agent %q", frame, data, agent)
		}
	case "call.ended":
		if agent == "" || m.CallID == "" || m.Reason == "" {
			t.Fatalf("%q: %s for agent %q", frame, data, agent)
		}
	case "error":
		switch m.Code {
		case errBadLogin, errNotLoggedIn, errBadMessage, errUnknownType, errUnknownCall,
			errBadSDP, errBadDigits, errTooLarge:
		default:
			t.Fatalf("%q: error code in %s", frame, data)
		}
		if m.Message == "" {
			t.Fatalf("%q: error %s says nothing", frame, data)
		}
	default:
		t.Fatalf("%q: reply %s of no type of the protocol", frame, data)
	}
}
