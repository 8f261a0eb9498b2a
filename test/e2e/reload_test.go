package e2e

import (
	"bytes"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReload: SIGHUP puts an edited configuration in force for new calls;
// a configuration with a mistake is refused and the running one stays.
func TestReload(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Timeout: 60 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "5s", Agents: []string{"carol"}},
		Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	orig, err := os.ReadFile(e.configPath)
	if err != nil {
		t.Fatal(err)
	}
	reload := func(cfg []byte, logLine string) {
		t.Helper()
		if err := os.WriteFile(e.configPath, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(e.log.String(), logLine)
		if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(e.log.String(), logLine) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the edge's log after SIGHUP", logLine)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	callSource := func() string {
		t.Helper()
		c := carrier(t, e, "carrier", "carrier-answered.xml")
		c.succeed(t, 45*time.Second)
		evs := e.events.callEvents(t, c.callID, eventDeadline)
		return one(t, evs, "call.started").str("source")
	}

	edited := bytes.Replace(orig, []byte("source: google-ads"), []byte("source: bing-ads"), 1)
	reload(edited, "configuration reloaded")
	if got := callSource(); got != "bing-ads" {
		t.Fatalf("after the reload a call has source %q, want bing-ads", got)
	}

	broken := bytes.Replace(edited, []byte("ring_timeout:"), []byte("ring_timout:"), 1)
	reload(broken, "reload refused")
	if !strings.Contains(e.log.String(), `unknown key \"ring_timout\"`) {
		t.Errorf("the refused reload does not say what is wrong:\n%s", e.log.String())
	}
	if got := callSource(); got != "bing-ads" {
		t.Fatalf("after a refused reload a call has source %q, want bing-ads (the configuration in force)", got)
	}
}
