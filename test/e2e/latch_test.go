package e2e

import (
	"encoding/binary"
	"strconv"
	"testing"
	"time"
)

// TestMediaLatching: a side behind a NAT advertises in its SDP a media port
// where nothing listens, and its audio really comes from another one (its
// -mp port). The edge may only send to the advertised port until the first
// RTP from that side arrives; from then on everything must go to the
// address the audio came from, or the side would hear nothing. The lying
// side waits 500 ms before playing, so the edge always has the other side's
// audio to send before it can latch, and both phases are seen.
func TestMediaLatching(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	for _, tc := range []struct {
		name             string
		agent, carrier   string
		carrierBehindNAT bool
	}{
		{"carrier behind NAT", "agent-answer.xml", "carrier-latch.xml", true},
		{"agent behind NAT", "agent-answer-latch.xml", "carrier-answered.xml", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Two ports, an even one and its RTCP neighbour, so that
			// nothing else in the run binds either.
			sdpPort := freePorts(t, 2)
			key := []string{"-key", "sdp_port", strconv.Itoa(sdpPort)}
			var agentKey, carrierKey []string
			if tc.carrierBehindNAT {
				carrierKey = key
			} else {
				agentKey = key
			}
			agent := startSipp(t, "agent", sippOpts{
				Scenario: tc.agent, Calls: 1, Timeout: 40 * time.Second, Extra: agentKey,
			})
			e := startEdge(t, edgeConfig{
				Queue:  queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"agent"}},
				Agents: []agentConfig{fixedAgent("agent", "Agent", agent)},
			})
			carrierMedia := mediaPort(t)
			// The edge's own ports are captured too: what arrives there
			// tells when it could first latch.
			ports := []int{carrierMedia, agent.mediaPort, sdpPort}
			for p := e.rtpLow; p <= e.rtpHigh; p++ {
				ports = append(ports, p)
			}
			rtp := startCapture(t, ports...)
			c := startSipp(t, "carrier", sippOpts{
				Scenario:  tc.carrier,
				Remote:    e.sipTarget(),
				Service:   dialedUser,
				Calls:     1,
				Timeout:   40 * time.Second,
				MediaPort: carrierMedia,
				Extra:     carrierKey,
			})
			c.succeed(t, 45*time.Second)
			agent.succeed(t, 10*time.Second)
			pkts := rtp.datagrams(t)

			carrierLeg := edgeLegPort(t, e, "carrier", firstReceived(t, c, "200 for the INVITE", isResponse(200, "INVITE")))
			agentLeg := edgeLegPort(t, e, "agent", firstReceived(t, agent, "the edge's INVITE", isRequest("INVITE")))
			natted := latchLeg{side: "carrier", media: carrierMedia, edgeLeg: carrierLeg}
			other := latchLeg{side: "agent", media: agent.mediaPort, edgeLeg: agentLeg}
			offer := firstSent(t, c.messages(t), "INVITE")
			if !tc.carrierBehindNAT {
				natted, other = other, natted
				offer = firstSentResponse(t, agent.messages(t), 200)
			}
			// Without this the test would prove nothing: a scenario that
			// advertised its real port would pass with or without latching.
			if sdp, ok := parseSDP(offer.Body); !ok || sdp.Port != sdpPort {
				t.Fatalf("the %s advertised media port %d (SDP found: %v), want the unused %d:\n%s",
					natted.side, sdp.Port, ok, sdpPort, offer.Body)
			}

			wantRTPThroughEdge(t, e, pkts, "carrier", carrierMedia, agent.mediaPort)
			wantRTPThroughEdge(t, e, pkts, "agent", agent.mediaPort, carrierMedia)
			wantLatched(t, pkts, natted, other, sdpPort)
		})
	}
}

// latchLeg is one side of a call as the capture sees it: the port it plays
// its audio from and the edge's port for its leg.
type latchLeg struct {
	side    string
	media   int
	edgeLeg int
}

// edgeLegPort is the edge's RTP port for a side's leg, from the SDP the
// edge sent that side.
func edgeLegPort(t *testing.T, e *edge, side string, m sipMsg) int {
	t.Helper()
	sdp, ok := parseSDP(m.Body)
	if !ok || !e.inRTPRange(sdp.Port) {
		t.Fatalf("%s: %s from the edge has no audio port in the edge's RTP range %d-%d:\n%s",
			side, m.Start, e.rtpLow, e.rtpHigh, m.Raw)
	}
	return sdp.Port
}

// wantLatched checks that the edge sent natted's audio to the advertised
// sdpPort only until natted's first RTP reached the edge. A relay forwards
// a packet only after reading it, so a packet of the other side that
// arrived before the latch may still be sent to sdpPort after it: such a
// packet is told by its RTP sequence number and timestamp (relayed
// unchanged on a call without prompts), not by capture order, which a
// relay delayed under load would mix up. A packet the other side sent
// after the latch must not go there.
func wantLatched(t *testing.T, pkts []packet, natted, other latchLeg, sdpPort int) {
	t.Helper()
	latch := -1
	for i, p := range pkts {
		if p.Src == addrPort(natted.media) && int(p.Dst.Port()) == natted.edgeLeg {
			latch = i
			break
		}
	}
	if latch < 0 {
		t.Errorf("no RTP from the %s's media port %d reached the edge's port %d: nothing to latch to",
			natted.side, natted.media, natted.edgeLeg)
		return
	}
	// rtpID is what identifies a relayed packet: sequence number and
	// timestamp.
	rtpID := func(b []byte) (uint64, bool) {
		if len(b) < 12 {
			return 0, false
		}
		return uint64(binary.BigEndian.Uint16(b[2:4]))<<32 | uint64(binary.BigEndian.Uint32(b[4:8])), true
	}
	readBefore := map[uint64]bool{}
	var before, inFlight, after, otherBefore int
	for i, p := range pkts {
		if i < latch && p.Src == addrPort(other.media) && int(p.Dst.Port()) == other.edgeLeg {
			otherBefore++
			if id, ok := rtpID(p.Payload); ok {
				readBefore[id] = true
			}
		}
		if int(p.Dst.Port()) != sdpPort {
			continue
		}
		if p.Src != addrPort(natted.edgeLeg) {
			t.Errorf("the %s's advertised port %d received a packet from %s, not from the edge's port %d for its leg",
				natted.side, sdpPort, p.Src, natted.edgeLeg)
		}
		id, _ := rtpID(p.Payload)
		switch {
		case i < latch:
			before++
		case readBefore[id]:
			inFlight++
		default:
			after++
		}
	}
	t.Logf("the %s's advertised port %d received %d packets before its first RTP reached the edge (the %s had sent %d by then), %d read before it and sent after, %d read after",
		natted.side, sdpPort, before, other.side, otherBefore, inFlight, after)
	// The lying side starts 500 ms after the other one, about 16 packets:
	// none at all means the edge ignored the SDP address until latching.
	if before == 0 {
		t.Errorf("the edge sent nothing to the %s's advertised port %d before latching, though the %s had sent %d packets by then: it should use the SDP address until media arrives",
			natted.side, sdpPort, other.side, otherBefore)
	}
	if before+inFlight > otherBefore {
		t.Errorf("the edge sent %d packets to the %s's advertised port %d before latching, more than the %d the %s had sent it",
			before+inFlight, natted.side, sdpPort, otherBefore, other.side)
	}
	if inFlight > 2 {
		t.Errorf("the edge sent %d packets read before the latch to the %s's advertised port %d after it; one or two may be in the relay at that moment",
			inFlight, natted.side, sdpPort)
	}
	if after > 0 {
		t.Errorf("the edge went on sending to the %s's advertised port %d after the %s's RTP arrived from port %d: %d packets; it must latch to where the media comes from",
			natted.side, sdpPort, natted.side, natted.media, after)
	}
}
