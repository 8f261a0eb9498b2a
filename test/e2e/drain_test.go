package e2e

import (
	"syscall"
	"testing"
	"time"
)

// TestDrainTimeLimit: SIGTERM with a call that outlasts -drain-timeout.
// When the time is up the edge hangs up both legs itself, publishes the
// call's end (hangup_by edge) before it leaves, and exits 0.
func TestDrainTimeLimit(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-silent-wait-bye.xml", Calls: 1, Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:     queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents:    []agentConfig{fixedAgent("carol", "Carol", agent)},
		ServeArgs: []string{"-drain-timeout", "2s"},
	})
	c := carrier(t, e, "carrier", "carrier-silent-wait-bye.xml")
	e.events.wait(t, "call.answered", bySIPCallID(c.callID), 10*time.Second)

	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	signalled := time.Now()
	select {
	case <-e.exited:
		took := e.exitedAt.Sub(signalled)
		t.Logf("edge exited %s after SIGTERM", took.Round(time.Millisecond))
		if e.exitErr != nil {
			t.Errorf("edge exited with %v, want 0", e.exitErr)
		}
		if took < 1800*time.Millisecond {
			t.Errorf("edge exited %s after SIGTERM, before -drain-timeout 2s was up", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("edge still running 15s after SIGTERM with -drain-timeout 2s")
	}
	// Both sides were told, and the call's end is on the stream.
	c.succeed(t, 10*time.Second)
	agent.succeed(t, 10*time.Second)
	completed := e.events.wait(t, "call.completed", bySIPCallID(c.callID), eventDeadline)
	wantFields(t, completed, map[string]string{"agent": "carol", "outcome": "answered", "hangup_by": "edge"})
	wantMs(t, completed, "talk_ms", 1800, 6000)
}
