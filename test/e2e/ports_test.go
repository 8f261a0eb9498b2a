package e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ports come from below the kernel's ephemeral range (32768+ on Linux) so
// that no outgoing connection of another process grabs one between the
// check and the moment the edge or sipp binds it.
const (
	portLow  = 10000
	portHigh = 32000
)

var (
	portMu   sync.Mutex
	portUsed = map[int]bool{}
)

// freePorts returns the first of n consecutive loopback ports, starting at
// an even port, that are free for both UDP and TCP now and were not handed
// out before in this run. Even bases matter for RTP: sipp binds its -mp
// port and -mp+2, the edge wants even ports for its legs.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 1000 {
		base := portLow + 2*rand.IntN((portHigh-portLow-n)/2)
		if portsFree(base, n) {
			for p := base; p < base+n; p++ {
				portUsed[p] = true
			}
			return base
		}
	}
	t.Fatalf("no %d free consecutive loopback ports in %d-%d", n, portLow, portHigh)
	return 0
}

func portsFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		if portUsed[p] {
			return false
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		u.Close()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

func freePort(t *testing.T) int { return freePorts(t, 1) }

// udpBound reports whether some socket is bound to the UDP port. It reads
// /proc/net/udp instead of trying to bind the port, which would race with
// the process that is about to bind it.
func udpBound(port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, name := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 1 && strings.HasSuffix(fields[1], want) {
				f.Close()
				return true
			}
		}
		f.Close()
	}
	return false
}

func waitUDPBound(t *testing.T, what string, port int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !udpBound(port) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not bind UDP port %d within %s", what, port, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcpListening reports whether some socket listens on the TCP port, from
// /proc/net/tcp (state 0A is LISTEN).
func tcpListening(port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				f.Close()
				return true
			}
		}
		f.Close()
	}
	return false
}

func waitTCPListening(t *testing.T, what string, port int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !tcpListening(port) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on TCP port %d within %s", what, port, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
