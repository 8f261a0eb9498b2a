package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckExample(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"check", "-c", "../../examples/callsign.yaml"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut.String())
	}
	if got := out.String(); !strings.Contains(got, "callsign.yaml: ok") || strings.Count(got, "\n") != 1 {
		t.Fatalf("want a one-line summary, got %q", got)
	}
}

func TestCheckReportsEveryProblemWithPosition(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	cfg := `trunks:
  carrier:
    allow: [10.0.0.0/33]
numbers:
  "+1 555 01": {source: x, flow: sales}
flows:
  sales:
    steps:
      - queue: salse
queues: {}
agents: {}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-c", path}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q", code, out.String())
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	want := []string{path + ":3:", path + ":5:", path + ":9:"}
	if len(lines) != len(want) {
		t.Fatalf("want %d problem lines, got:\n%s", len(want), errOut.String())
	}
	for i, prefix := range want {
		if !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i], prefix)
		}
	}
	if out.Len() != 0 {
		t.Errorf("nothing belongs on stdout for a bad config, got %q", out.String())
	}
}

func TestServeRefusesBadConfigBeforeStarting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte("sip:\n  lisen: [udp://127.0.0.1:5060]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"serve", "-c", path}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), path+":2:3: unknown key \"lisen\"") {
		t.Fatalf("want the unknown key with its position, got:\n%s", errOut.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("serve created its storage before the config was valid")
	}
}

func TestCommands(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "callsign ") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "Usage:") {
		t.Errorf("no command: exit %d, %q", code, errOut.String())
	}
}
