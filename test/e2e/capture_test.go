package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// capture records UDP packets on loopback to some ports with tcpdump:
// sipp counts the RTP it sends but not what it receives.
type capture struct {
	file    string
	cmd     *exec.Cmd
	stderr  *syncBuffer
	exited  chan struct{}
	stopped bool
}

// packet is one captured UDP datagram.
type packet struct {
	Src, Dst netip.AddrPort
	Len      int
}

// startCapture starts tcpdump for UDP to any of ports and returns once it
// is listening.
func startCapture(t *testing.T, ports ...int) *capture {
	t.Helper()
	requireTools(t, "tcpdump")
	var filter []string
	for _, p := range ports {
		filter = append(filter, fmt.Sprintf("dst port %d", p))
	}
	c := &capture{
		file:   filepath.Join(t.TempDir(), "rtp.pcap"),
		stderr: &syncBuffer{},
		exited: make(chan struct{}),
	}
	// -U flushes every packet into the file; -Z root keeps tcpdump from
	// dropping to a user that cannot write into the test's temp dir.
	c.cmd = exec.Command("tcpdump", "-i", "lo", "-n", "-U", "-Z", "root", "-w", c.file,
		"udp and ("+strings.Join(filter, " or ")+")")
	c.cmd.Stderr = c.stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.stop(t)
	})
	deadline := time.After(10 * time.Second)
	for !strings.Contains(c.stderr.String(), "listening on") {
		select {
		case <-c.exited:
			t.Fatalf("tcpdump exited (it needs root or CAP_NET_RAW): %s", c.stderr.String())
		case <-deadline:
			t.Fatalf("tcpdump not listening within 10s: %s", c.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return c
}

// stop ends the capture; SIGINT lets tcpdump close the file properly.
func (c *capture) stop(t *testing.T) {
	if c.stopped {
		return
	}
	c.stopped = true
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
	}
}

// packets stops the capture and returns what it saw.
func (c *capture) packets(t *testing.T) []packet {
	t.Helper()
	c.stop(t)
	if _, err := os.Stat(c.file); err != nil {
		t.Fatalf("tcpdump wrote no file: %v (%s)", err, c.stderr.String())
	}
	var out, errb bytes.Buffer
	read := exec.Command("tcpdump", "-r", c.file, "-nn", "-q", "-tt")
	read.Stdout, read.Stderr = &out, &errb
	if err := read.Run(); err != nil {
		t.Fatalf("tcpdump -r %s: %v: %s", c.file, err, errb.String())
	}
	var pkts []packet
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		// 1795425047.848001 IP 127.0.0.1.20002 > 127.0.0.1.16000: UDP, length 172
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[1] != "IP" {
			continue
		}
		src, err1 := parseDotted(f[2])
		dst, err2 := parseDotted(strings.TrimSuffix(f[4], ":"))
		if err1 != nil || err2 != nil {
			continue
		}
		var n int
		fmt.Sscanf(f[len(f)-1], "%d", &n)
		pkts = append(pkts, packet{Src: src, Dst: dst, Len: n})
	}
	return pkts
}

// parseDotted reads tcpdump's 127.0.0.1.5060 form.
func parseDotted(s string) (netip.AddrPort, error) {
	i := strings.LastIndex(s, ".")
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("no port in %q", s)
	}
	return netip.ParseAddrPort(s[:i] + ":" + s[i+1:])
}

// rtpTo summarises the packets sent to one port: how many came from
// where.
func rtpTo(pkts []packet, port int) map[netip.AddrPort]int {
	out := map[netip.AddrPort]int{}
	for _, p := range pkts {
		if int(p.Dst.Port()) == port {
			out[p.Src]++
		}
	}
	return out
}

func addrPort(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}
