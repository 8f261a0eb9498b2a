// Package e2e drives a real callsign edge from the outside, the way carriers
// and agents' phones see it: sipp plays the carrier and the agents' phones,
// tcpdump counts the RTP each side receives, and a NATS client reads the
// events the edge publishes.
//
// Run with `go test ./test/e2e/` (as root, for tcpdump) or `make test`,
// which also installs sipp, baresip and tcpdump.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var (
	// edgeBinary is the callsign binary built once for the whole run.
	edgeBinary string
	// buildErr keeps a failed build so that each test needing the edge
	// fails with it, while tests that need only sipp still run.
	buildErr error
	// moduleRoot is the directory holding go.mod.
	moduleRoot string
	// sippDir holds the scenario files.
	sippDir string
)

// edgeBinaryEnv names the edge binary to use instead of building one.
const edgeBinaryEnv = "CALLSIGN_E2E_EDGE_BINARY"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// defaultParallel is how many tests run at once unless -parallel says
// otherwise. The tests mostly wait (for rings, timeouts, audio), each on
// its own edge and ports, so more run at once than there are CPUs.
const defaultParallel = "6"

func runMain(m *testing.M) int {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", defaultParallel)
	}
	root, err := findModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	moduleRoot = root
	sippDir = filepath.Join(root, "test", "sipp")

	// A run of this binary started by one of its own tests (in a network
	// namespace of its own) takes the edge its parent built.
	if bin := os.Getenv(edgeBinaryEnv); bin != "" {
		edgeBinary = bin
		return m.Run()
	}

	tmp, err := os.MkdirTemp("", "callsign-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	edgeBinary = filepath.Join(tmp, "callsign")
	build := exec.Command("go", "build", "-o", edgeBinary, "./cmd/callsign")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build ./cmd/callsign: %v\n%s", err, out)
	}
	return m.Run()
}

func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// requireTools fails (never skips) when a tool the tests drive is missing:
// a skipped end-to-end test reads as a pass in CI.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%s not found in PATH: run `make test`, which installs them", strings.Join(missing, " and "))
	}
	if _, err := os.Stat("/usr/share/sip-tester/g711a.pcap"); err != nil {
		t.Fatalf("the scenarios play /usr/share/sip-tester/g711a.pcap (Debian sip-tester): %v; run `make test`, which installs it", err)
	}
}

func requireEdge(t *testing.T) {
	t.Helper()
	requireTools(t, "sipp", "tcpdump")
	if buildErr != nil {
		t.Fatalf("the edge does not build: %v", buildErr)
	}
}
