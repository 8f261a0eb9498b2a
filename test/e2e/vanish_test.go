package e2e

import (
	"testing"
	"time"
)

// TestVanishedAgent: an agent's phone answers and then vanishes: no RTP,
// no BYE. The caller goes on talking, and still the edge finds the
// silent leg after media.timeout and hangs up both sides, not only once
// the caller falls silent too.
func TestVanishedAgent(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-silent-wait-bye.xml", Calls: 1, Timeout: 30 * time.Second})
	e := startEdge(t, edgeConfig{
		MediaTimeout: "1500ms",
		Queue:        queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents:       []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	c := carrier(t, e, "carrier", "carrier-talk-wait-bye.xml")
	c.succeed(t, 30*time.Second)
	agent.succeed(t, 10*time.Second)

	// The caller's audio lasts about 3 s after the answer; a timeout
	// counted over both directions would come 1.5 s after that.
	wantDuration(t, "carrier: 200 to the edge's BYE",
		between(t, c, "200", recvd(isResponse(200, "INVITE")), "BYE", recvd(isRequest("BYE"))),
		1300*time.Millisecond, 2500*time.Millisecond)
	firstReceived(t, agent, "the edge's BYE to the vanished phone", isRequest("BYE"))

	evs := e.events.callEvents(t, c.callID, eventDeadline)
	completed := one(t, evs, "call.completed")
	wantFields(t, completed, map[string]string{"agent": "carol", "outcome": "answered", "hangup_by": "edge"})
	wantMs(t, completed, "talk_ms", 1300, 3000)
}
