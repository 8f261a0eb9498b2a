package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestScenariosSippToSipp plays each carrier scenario against the phone
// scenario (or a stand-in for the edge in test/sipp/selfcheck) it is meant
// to meet, with no edge in between. It tells a broken scenario apart from
// a broken edge, and proves the RTP counting works: sipp sends its pcap
// from its -mp port, so each side must see the other's packets.
func TestScenariosSippToSipp(t *testing.T) {
	requireTools(t, "sipp", "tcpdump")

	type side struct {
		scenario string
		calls    int
		extra    []string
	}
	type pair struct {
		name     string
		uas, uac side
		service  string
		rtp      bool
	}
	pairs := []pair{
		{"answered", side{"agent-answer.xml", 1, nil}, side{"carrier-answered.xml", 1, nil}, dialedUser, true},
		{"answered by the phone for lossy networks", side{"agent-answer-lossy.xml", 1, nil}, side{"carrier-answered.xml", 1, nil}, dialedUser, true},
		{"agent hangs up", side{"agent-bye.xml", 1, nil}, side{"carrier-wait-bye.xml", 1, nil}, dialedUser, true},
		{"caller cancels", side{"agent-noanswer.xml", 1, nil}, side{"carrier-cancel.xml", 1, nil}, dialedUser, false},
		{"busy", side{"agent-busy.xml", 1, nil}, side{"carrier-expect-486.xml", 1, nil}, dialedUser, false},
		{"403", side{"selfcheck/uas-reject.xml", 1, []string{"-set", "code", "403"}}, side{"carrier-expect-403.xml", 1, nil}, dialedUser, false},
		{"404", side{"selfcheck/uas-reject.xml", 1, []string{"-set", "code", "404"}}, side{"carrier-expect-404.xml", 1, nil}, unknownUser, false},
		{"480", side{"selfcheck/uas-reject.xml", 1, []string{"-set", "code", "480"}}, side{"carrier-expect-480.xml", 1, nil}, dialedUser, false},
		{"488", side{"selfcheck/uas-reject.xml", 1, []string{"-set", "code", "488"}}, side{"carrier-g729.xml", 1, nil}, dialedUser, false},
		{"options", side{"selfcheck/uas-options.xml", 1, nil}, side{"options.xml", 1, nil}, "", false},
		{"register", side{"selfcheck/registrar.xml", 1, []string{"-key", "user", "bob", "-key", "pass", bobPassword}},
			side{"register-auth.xml", 1, []string{"-au", "bob", "-ap", bobPassword}}, "bob", false},
		{"register wrong password", side{"selfcheck/registrar.xml", 1, []string{"-key", "user", "bob", "-key", "pass", bobPassword}},
			side{"register-wrong.xml", 1, []string{"-au", "bob", "-ap", "not-" + bobPassword}}, "bob", false},
		// The media-timeout scenarios send no RTP and wait for a BYE: each
		// meets a side that hangs up by itself.
		{"silent carrier waits for bye", side{"agent-bye.xml", 1, nil}, side{"carrier-silent-wait-bye.xml", 1, nil}, dialedUser, false},
		{"silent agent waits for bye", side{"agent-silent-wait-bye.xml", 1, nil}, side{"carrier-answered.xml", 1, nil}, dialedUser, false},
		{"carrier talks for -d", side{"agent-answer.xml", 1, nil}, side{"carrier-talk.xml", 1, []string{"-d", "3500"}}, dialedUser, true},
	}
	// Over TCP (-t t1 on both sides) the answered call must work as well:
	// the edge listens on TCP and rings agents at ;transport=tcp contacts.
	tcpPairs := []pair{
		{"answered over tcp", side{"agent-answer.xml", 1, nil}, side{"carrier-answered.xml", 1, nil}, dialedUser, true},
	}
	for i, pc := range append(pairs, tcpPairs...) {
		transport := ""
		if i >= len(pairs) {
			transport = "t1"
		}
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			uasCalls := pc.uas.calls
			if transport != "" {
				uasCalls = 0 // see below
			}
			uas := startSipp(t, "uas", sippOpts{Scenario: pc.uas.scenario, Calls: uasCalls, Timeout: 20 * time.Second, Extra: pc.uas.extra, Transport: transport})
			uacMedia := mediaPort(t)
			var rtp *capture
			if pc.rtp {
				rtp = startCapture(t, uas.mediaPort, uacMedia)
			}
			uacOpts := sippOpts{
				Scenario:  pc.uac.scenario,
				Remote:    fmt.Sprintf("127.0.0.1:%d", uas.port),
				Service:   pc.service,
				Calls:     pc.uac.calls,
				Timeout:   20 * time.Second,
				MediaPort: uacMedia,
				Extra:     pc.uac.extra,
				Transport: transport,
			}
			uac := startSipp(t, "uac", uacOpts)
			uac.succeed(t, 25*time.Second)
			if transport == "" {
				uas.succeed(t, 10*time.Second)
			} else {
				// sipp fails a call whose TCP connection closes, even in
				// its final timewait, and the uac closes it as it exits
				// after its last message. So the uas runs without -m and
				// is judged by its trace: it answered the BYE.
				uas.stop()
				if got := len(received(uas.messages(t), isRequest("BYE"))); got != 1 {
					t.Errorf("uas over TCP received %d BYEs, want 1", got)
				}
				if got := len(sentResponses(uas.messages(t), 200, "BYE")); got != 1 {
					t.Errorf("uas over TCP sent %d 200s for the BYE, want 1", got)
				}
			}
			if rtp != nil {
				pkts := rtp.packets(t)
				for _, dir := range []struct {
					to, from int
				}{{uas.mediaPort, uacMedia}, {uacMedia, uas.mediaPort}} {
					if n := rtpTo(pkts, dir.to)[addrPort(dir.from)]; n < minRTP {
						t.Errorf("port %d got %d RTP packets from %d, want at least %d", dir.to, n, dir.from, minRTP)
					}
				}
			}
		})
	}

	// The registering phone is rung at its contact by an INVITE it has
	// never seen the Call-ID of, which only works through -oocsf.
	t.Run("register then answer", func(t *testing.T) {
		t.Parallel()
		registrar := startSipp(t, "registrar", sippOpts{
			Scenario: "selfcheck/registrar.xml", Calls: 1, Timeout: 20 * time.Second,
			Extra: []string{"-key", "user", "bob", "-key", "pass", bobPassword},
		})
		agent := startSipp(t, "agent", sippOpts{
			Scenario: "register-then-answer.xml",
			Remote:   fmt.Sprintf("127.0.0.1:%d", registrar.port),
			Service:  "bob",
			Calls:    1,
			Timeout:  30 * time.Second,
			Extra: []string{
				"-oocsf", filepath.Join(sippDir, "register-then-answer-ooc.xml"),
				"-au", "bob", "-ap", bobPassword,
			},
		})
		waitRegistered(t, agent, 10*time.Second)
		registrar.succeed(t, 10*time.Second)
		c := startSipp(t, "carrier", sippOpts{
			Scenario: "carrier-answered.xml",
			Remote:   fmt.Sprintf("127.0.0.1:%d", agent.port),
			Service:  dialedUser,
			Calls:    1,
			Timeout:  20 * time.Second,
		})
		c.succeed(t, 25*time.Second)
		agent.succeed(t, 10*time.Second)
	})

	// With nothing in between to latch, each side sends where the other's
	// SDP says: the lying side's audio must come from its -mp port while
	// the other side's goes to the advertised port and never reaches -mp.
	// Otherwise TestMediaLatching could pass on scenarios that do not lie.
	for _, lc := range []struct {
		name         string
		uas, uac     string
		uacBehindNAT bool
	}{
		{"carrier behind NAT", "agent-answer.xml", "carrier-latch.xml", true},
		{"agent behind NAT", "agent-answer-latch.xml", "carrier-answered.xml", false},
	} {
		t.Run("latching, "+lc.name, func(t *testing.T) {
			t.Parallel()
			sdpPort := freePorts(t, 2)
			key := []string{"-key", "sdp_port", fmt.Sprint(sdpPort)}
			uasExtra, uacExtra := key, []string(nil)
			if lc.uacBehindNAT {
				uasExtra, uacExtra = uacExtra, uasExtra
			}
			uas := startSipp(t, "uas", sippOpts{Scenario: lc.uas, Calls: 1, Timeout: 20 * time.Second, Extra: uasExtra})
			uacMedia := mediaPort(t)
			rtp := startCapture(t, uas.mediaPort, uacMedia, sdpPort)
			uac := startSipp(t, "uac", sippOpts{
				Scenario:  lc.uac,
				Remote:    fmt.Sprintf("127.0.0.1:%d", uas.port),
				Service:   dialedUser,
				Calls:     1,
				Timeout:   20 * time.Second,
				MediaPort: uacMedia,
				Extra:     uacExtra,
			})
			uac.succeed(t, 25*time.Second)
			uas.succeed(t, 10*time.Second)
			pkts := rtp.packets(t)

			natted, honest := uacMedia, uas.mediaPort
			if !lc.uacBehindNAT {
				natted, honest = honest, natted
			}
			if n := rtpTo(pkts, honest)[addrPort(natted)]; n < minRTP {
				t.Errorf("port %d got %d RTP packets from the lying side's -mp %d, want at least %d (all: %v)",
					honest, n, natted, minRTP, rtpTo(pkts, honest))
			}
			if n := rtpTo(pkts, sdpPort)[addrPort(honest)]; n < minRTP {
				t.Errorf("the advertised port %d got %d RTP packets from %d, want at least %d (all: %v)",
					sdpPort, n, honest, minRTP, rtpTo(pkts, sdpPort))
			}
			if got := rtpTo(pkts, natted); len(got) != 0 {
				t.Errorf("the lying side's -mp %d received %v; its SDP should have sent everything to %d", natted, got, sdpPort)
			}
		})
	}

	// With nothing in between to rewrite, the phone that answered 96 gets
	// the caller's events on 101, as sent: what the edge has to repair in
	// TestTelephoneEventRelay. The capture is read both by tcpdump and by
	// the Go reader that test relies on, which must agree.
	t.Run("dtmf, phone answers 96", func(t *testing.T) {
		t.Parallel()
		uas := startSipp(t, "uas", sippOpts{
			Scenario: "agent-answer-dtmf.xml", Calls: 1, Timeout: 20 * time.Second,
			Extra: []string{"-key", "te_pt", "96"},
		})
		uacMedia := mediaPort(t)
		rtp := startCapture(t, uas.mediaPort, uacMedia)
		uac := startSipp(t, "uac", sippOpts{
			Scenario:  "carrier-dtmf.xml",
			Remote:    fmt.Sprintf("127.0.0.1:%d", uas.port),
			Service:   dialedUser,
			Calls:     1,
			Timeout:   20 * time.Second,
			MediaPort: uacMedia,
		})
		uac.succeed(t, 25*time.Second)
		uas.succeed(t, 10*time.Second)

		pkts := rtp.datagrams(t)
		byTcpdump := rtp.packets(t)
		if len(byTcpdump) != len(pkts) {
			t.Errorf("the Go pcap reader found %d datagrams, tcpdump %d", len(pkts), len(byTcpdump))
		}
		for i := range min(len(pkts), len(byTcpdump)) {
			g, w := pkts[i], byTcpdump[i]
			if g.Src != w.Src || g.Dst != w.Dst || g.Len != w.Len {
				t.Errorf("datagram %d: the Go pcap reader has %s > %s length %d, tcpdump %s > %s length %d",
					i, g.Src, g.Dst, g.Len, w.Src, w.Dst, w.Len)
			}
		}
		between := func(from, to int) []packet {
			var out []packet
			for _, p := range pkts {
				if p.Src == addrPort(from) && int(p.Dst.Port()) == to {
					out = append(out, p)
				}
			}
			return out
		}
		wantDTMF(t, "uas", between(uacMedia, uas.mediaPort), pcapTEPT, dtmfOf(t, carrierDTMF))
		wantDTMF(t, "uac", between(uas.mediaPort, uacMedia), pcapTEPT, dtmfOf(t, agentDTMF))
		if n := len(pkts) - len(between(uacMedia, uas.mediaPort)) - len(between(uas.mediaPort, uacMedia)); n != 0 {
			t.Errorf("%d captured datagrams were not between the two media ports", n)
		}
	})
}
