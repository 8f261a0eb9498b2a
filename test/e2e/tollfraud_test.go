package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// attacker is a UDP address a request tries to make the edge call. It
// records what reaches it, which must be nothing.
type attacker struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []string
	done chan struct{}
}

func listenAttacker(t *testing.T) *attacker {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			a.mu.Lock()
			a.got = append(a.got, string(buf[:n]))
			a.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-a.done
	})
	return a
}

func (a *attacker) port() int { return a.conn.LocalAddr().(*net.UDPAddr).Port }

// wantNothing fails if anything reached the attacker's address.
func (a *attacker) wantNothing(t *testing.T) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range a.got {
		first, _, _ := strings.Cut(m, "\r\n")
		t.Errorf("the edge sent %q to the address a request named", first)
	}
}

// rewriteScenario copies a scenario of test/sipp with the first match of
// old replaced by new.
func rewriteScenario(t *testing.T, name, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sippDir, name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), old, new, 1)
	if s == string(b) {
		t.Fatalf("%s no longer has %q", name, old)
	}
	path := filepath.Join(t.TempDir(), "rewritten-"+name)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTollFraud: requests that try to make the edge place a call to a
// number or address they name. The edge only ever calls its configured
// agents.
func TestTollFraud(t *testing.T) {
	t.Parallel()
	requireEdge(t)

	t.Run("external number and host in the Request-URI", func(t *testing.T) {
		t.Parallel()
		evil := listenAttacker(t)
		e := startEdge(t, edgeConfig{
			Queue:  queueConfig{RingTimeout: "10s", Agents: []string{"carol"}},
			Agents: []agentConfig{{ID: "carol", Name: "Carol", Contact: "sip:carol@127.0.0.1:9"}},
		})
		scenario := rewriteScenario(t, "carrier-expect-404.xml",
			"INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
			fmt.Sprintf("INVITE sip:[service]@127.0.0.1:%d SIP/2.0", evil.port()))
		c := startSipp(t, "carrier", sippOpts{Scenario: scenario, Remote: e.sipTarget(), Service: "+15559999999", Calls: 1, Timeout: 20 * time.Second})
		c.succeed(t, 25*time.Second) // 404: not a tracking number
		time.Sleep(time.Second)
		evil.wantNothing(t)
	})

	t.Run("Route header to another host", func(t *testing.T) {
		t.Parallel()
		evil := listenAttacker(t)
		agent := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 40 * time.Second})
		e := startEdge(t, edgeConfig{
			Queue:  queueConfig{RingTimeout: "10s", Agents: []string{"carol"}},
			Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
		})
		scenario := rewriteScenario(t, "carrier-answered.xml", "      Max-Forwards: 70\n",
			fmt.Sprintf("      Max-Forwards: 70\n      Route: <sip:+15559999999@127.0.0.1:%d;lr>\n", evil.port()))
		c := startSipp(t, "carrier", sippOpts{Scenario: scenario, Remote: e.sipTarget(), Service: dialedUser, Calls: 1, Timeout: 40 * time.Second})
		c.succeed(t, 45*time.Second)
		agent.succeed(t, 10*time.Second) // the configured agent got the call
		evil.wantNothing(t)
	})

	t.Run("REFER and a re-INVITE to another target", func(t *testing.T) {
		t.Parallel()
		evil := listenAttacker(t)
		agent := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 40 * time.Second})
		e := startEdge(t, edgeConfig{
			Queue:  queueConfig{RingTimeout: "10s", Agents: []string{"carol"}},
			Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
		})
		target := fmt.Sprintf("<sip:+15559999999@127.0.0.1:%d>", evil.port())
		payloads, maps := offerPCMA()
		reinvite := strings.Join([]string{
			"v=0",
			"o=carrier 53655765 2353687638 IN IP4 127.0.0.1",
			"s=-",
			"c=IN IP4 127.0.0.1",
			"t=0 0",
			fmt.Sprintf("m=audio %d RTP/AVP 8 101", evil.port()+2),
			"a=rtpmap:8 PCMA/8000",
			"a=rtpmap:101 telephone-event/8000",
			"a=sendrecv",
		}, "\n      ")
		c := carrierOn(t, e, "carrier", writeCarrierScenario(t, carrierScript{
			Payloads: payloads, RTPMaps: maps,
			Steps: []carrierStep{
				// A transfer the edge does not do: 405, nothing dialed.
				{Pause: time.Second, Request: "REFER", Headers: []string{"Refer-To: " + target}, Want: 405},
				// A target refresh naming the attacker: answered with
				// the edge's own SDP, nothing dialed.
				{Request: "INVITE", Contact: target, Body: "      " + reinvite, ContentType: "application/sdp", Want: 200},
			},
			ByeAfter: time.Second,
		}), 0)
		c.succeed(t, 30*time.Second)
		agent.succeed(t, 10*time.Second)
		evs := e.events.callEvents(t, c.callID, eventDeadline)
		completed := one(t, evs, "call.completed")
		if atts := attemptsOf(t, completed); len(atts) != 1 || atts[0].Agent != "carol" {
			t.Errorf("attempts %+v: the edge rang someone else than its agent", atts)
		}
		evil.mu.Lock()
		for _, m := range evil.got {
			if strings.HasPrefix(m, "INVITE") || strings.HasPrefix(m, "REFER") {
				first, _, _ := strings.Cut(m, "\r\n")
				t.Errorf("the edge sent %q to the target a request named", first)
			}
		}
		evil.mu.Unlock()
	})
}
