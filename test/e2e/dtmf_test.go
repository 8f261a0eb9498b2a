package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pcapTEPT is the payload type of sipp's dtmf_2833_*.pcap captures. sipp
// sends a pcap as it is, so the scenarios that play them offer
// telephone-event on this number (checked in dtmfOf).
const pcapTEPT = 101

// edgeAgentTEPT is the telephone-event payload type the edge offers
// agents. Both cases below are built on it (checked against the edge's
// INVITE): an agent answering another number forces a rewrite.
const edgeAgentTEPT = 101

// The digits each side presses, as played by carrier-dtmf.xml and
// agent-answer-dtmf.xml.
var (
	carrierDTMF = []string{"dtmf_2833_1.pcap", "dtmf_2833_5.pcap"}
	agentDTMF   = []string{"dtmf_2833_9.pcap"}
)

// rtpPacket is the part of an RTP packet a relay may or may not change.
type rtpPacket struct {
	Marker  bool
	PT      uint8
	Payload []byte
}

// parseRTP reads an RTP header (RFC 3550), skipping CSRCs, an extension
// and padding, so that Payload is the RFC 4733 event itself.
func parseRTP(b []byte) (rtpPacket, bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return rtpPacket{}, false
	}
	hl := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < hl+4 {
			return rtpPacket{}, false
		}
		hl += 4 + 4*int(binary.BigEndian.Uint16(b[hl+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 && end > 0 {
		end -= int(b[end-1])
	}
	if hl > end {
		return rtpPacket{}, false
	}
	return rtpPacket{Marker: b[1]&0x80 != 0, PT: b[1] & 0x7f, Payload: b[hl:end]}, true
}

// teEvent is an RFC 4733 payload: the event code and the End bit.
func teEvent(p []byte) (event int, end, ok bool) {
	if len(p) < 4 {
		return 0, false, false
	}
	return int(p[0]), p[1]&0x80 != 0, true
}

func (p rtpPacket) String() string {
	ev, end, ok := teEvent(p.Payload)
	if !ok {
		return fmt.Sprintf("pt=%d m=%v payload=% x", p.PT, p.Marker, p.Payload)
	}
	return fmt.Sprintf("pt=%d m=%v event=%d end=%v payload=% x", p.PT, p.Marker, ev, end, p.Payload)
}

// dtmfOf returns the RTP packets sipp plays from its DTMF captures, in
// order, and checks they carry pcapTEPT, which the scenarios rely on.
func dtmfOf(t *testing.T, files []string) []rtpPacket {
	t.Helper()
	var out []rtpPacket
	for _, f := range files {
		path := filepath.Join("/usr/share/sip-tester", f)
		pkts, err := readPcap(path)
		if err != nil {
			t.Fatalf("%s (Debian sip-tester; `make test` installs it): %v", path, err)
		}
		for _, p := range pkts {
			r, ok := parseRTP(p.Payload)
			if !ok {
				t.Fatalf("%s: a packet that is not RTP: % x", path, p.Payload)
			}
			if r.PT != pcapTEPT {
				t.Fatalf("%s carries payload type %d; the DTMF scenarios offer %d and must follow it", path, r.PT, pcapTEPT)
			}
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no RTP in %v", files)
	}
	return out
}

// wantDTMF checks that the RTP a side received (pkts, already narrowed to
// its media port and the expected source) is exactly the telephone-events
// the other side played, in order, each with payload type wantPT: event
// codes, End bits, volumes, durations and marker bits intact. The scenarios
// send nothing but DTMF, so any other packet is a failure too.
func wantDTMF(t *testing.T, side string, pkts []packet, wantPT uint8, played []rtpPacket) {
	t.Helper()
	var got []rtpPacket
	ptCount := map[uint8]int{}
	for _, p := range pkts {
		r, ok := parseRTP(p.Payload)
		if !ok {
			t.Errorf("%s received a packet from %s that is not RTP: % x", side, p.Src, p.Payload)
			continue
		}
		ptCount[r.PT]++
		got = append(got, r)
	}
	digits := endedDigits(got)
	t.Logf("%s received %d telephone-event packets by payload type %v; digits ended: %v", side, len(got), ptCount, digits)

	if n := len(got) - ptCount[wantPT]; n > 0 {
		t.Errorf("%s received %d of %d packets with a payload type other than %d (by type: %v): "+
			"telephone-event did not arrive on the payload type this leg negotiated", side, n, len(got), wantPT, ptCount)
	}
	if want := endedDigits(played); !slices.Equal(digits, want) {
		t.Errorf("%s saw the End of digits %v, want %v", side, digits, want)
	}
	same := len(got) == len(played)
	for i := 0; same && i < len(got); i++ {
		same = got[i].Marker == played[i].Marker && bytes.Equal(got[i].Payload, played[i].Payload)
	}
	if !same {
		var b strings.Builder
		for i := range max(len(got), len(played)) {
			g, w := "-", "-"
			if i < len(got) {
				g = got[i].String()
			}
			if i < len(played) {
				w = played[i].String()
			}
			fmt.Fprintf(&b, "\n  %2d got %-60s want %s", i, g, w)
		}
		t.Errorf("%s: the telephone-events received differ from those played (payload type aside):%s", side, b.String())
	}
}

// endedDigits lists the events whose End bit was seen, in order, once
// each: RFC 4733 senders repeat the last packet of an event.
func endedDigits(pkts []rtpPacket) []int {
	var out []int
	for _, r := range pkts {
		if ev, end, ok := teEvent(r.Payload); ok && end && !slices.Contains(out, ev) {
			out = append(out, ev)
		}
	}
	return out
}

// fromEdgeTo returns the packets sent to port from the edge's RTP range,
// failing for any that came from elsewhere (above all straight from the
// other side's media port).
func fromEdgeTo(t *testing.T, e *edge, pkts []packet, side string, port, otherPort int) []packet {
	t.Helper()
	var out []packet
	for _, p := range pkts {
		switch {
		case int(p.Dst.Port()) != port:
		case int(p.Src.Port()) == otherPort:
			t.Errorf("%s received a packet straight from the other side (%s), not through the edge", side, p.Src)
		case p.Src.Addr() == netip.MustParseAddr("127.0.0.1") && e.inRTPRange(int(p.Src.Port())):
			out = append(out, p)
		default:
			t.Errorf("%s received a packet from %s, outside the edge's RTP range %d-%d", side, p.Src, e.rtpLow, e.rtpHigh)
		}
	}
	return out
}

// telephoneEventPT is the payload type an SDP body maps to
// telephone-event/8000.
func telephoneEventPT(body string) (int, bool) {
	for _, l := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), "a=rtpmap:")
		if !ok {
			continue
		}
		pt, enc, _ := strings.Cut(rest, " ")
		if strings.EqualFold(strings.TrimSpace(enc), "telephone-event/8000") {
			n, err := strconv.Atoi(pt)
			return n, err == nil
		}
	}
	return 0, false
}

// TestTelephoneEventRelay: the caller presses 1 and 5 (RFC 4733 on 101),
// the agent presses 9. When the agent answered the edge's offer with
// another telephone-event payload type (96), the edge must rewrite the
// caller's events to 96 on the way to the agent; when both legs agree on
// 101, events pass unchanged. The agent sends with 101, the number the
// edge offered it, so the caller gets 101 either way.
func TestTelephoneEventRelay(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	carrierPlayed, agentPlayed := dtmfOf(t, carrierDTMF), dtmfOf(t, agentDTMF)
	for _, tc := range []struct {
		name    string
		agentPT int
	}{
		{"agent answers 96", 96},
		{"both legs on 101", 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			agent := startSipp(t, "agent", sippOpts{
				Scenario: "agent-answer-dtmf.xml",
				Calls:    1,
				Timeout:  30 * time.Second,
				Extra:    []string{"-key", "te_pt", strconv.Itoa(tc.agentPT)},
			})
			e := startEdge(t, edgeConfig{
				Queue:  queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"agent"}},
				Agents: []agentConfig{fixedAgent("agent", "Agent", agent)},
			})
			carrierMedia := mediaPort(t)
			rtp := startCapture(t, carrierMedia, agent.mediaPort)
			c := carrierOn(t, e, "carrier", "carrier-dtmf.xml", carrierMedia)
			c.succeed(t, 45*time.Second)
			agent.succeed(t, 10*time.Second)
			pkts := rtp.datagrams(t)

			// The case is only a rewrite (or not) if the edge offered the
			// agent the number assumed here.
			inv := firstReceived(t, agent, "the edge's INVITE", isRequest("INVITE"))
			if pt, ok := telephoneEventPT(inv.Body); !ok || pt != edgeAgentTEPT {
				t.Fatalf("the edge offered the agent telephone-event on %d (found: %v), the test assumes %d:\n%s",
					pt, ok, edgeAgentTEPT, inv.Body)
			}
			ok200 := firstReceived(t, c, "200 for the INVITE", isResponse(200, "INVITE"))
			if pt, ok := telephoneEventPT(ok200.Body); !ok || pt != pcapTEPT {
				t.Errorf("the edge answered the carrier telephone-event on %d (found: %v), want the offered %d:\n%s",
					pt, ok, pcapTEPT, ok200.Body)
			}

			wantDTMF(t, "agent", fromEdgeTo(t, e, pkts, "agent", agent.mediaPort, c.mediaPort), uint8(tc.agentPT), carrierPlayed)
			wantDTMF(t, "carrier", fromEdgeTo(t, e, pkts, "carrier", c.mediaPort, agent.mediaPort), pcapTEPT, agentPlayed)
		})
	}
}
