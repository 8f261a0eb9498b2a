package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
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
	// At is when it was captured; only datagrams fills it in.
	At time.Time
	// Payload is the UDP payload; only datagrams fills it in.
	Payload []byte
}

// startCapture starts tcpdump for UDP to any of ports and returns once it
// is listening.
func startCapture(t *testing.T, ports ...int) *capture {
	t.Helper()
	var filter []string
	for _, p := range ports {
		filter = append(filter, fmt.Sprintf("dst port %d", p))
	}
	return startCaptureFilter(t, "udp and ("+strings.Join(filter, " or ")+")")
}

// startCaptureFilter starts tcpdump on loopback with a pcap filter.
func startCaptureFilter(t *testing.T, filter string) *capture {
	t.Helper()
	requireTools(t, "tcpdump")
	c := &capture{
		file:   filepath.Join(t.TempDir(), "rtp.pcap"),
		stderr: &syncBuffer{},
		exited: make(chan struct{}),
	}
	// -U flushes every packet into the file; -Z root keeps tcpdump from
	// dropping to a user that cannot write into the test's temp dir.
	c.cmd = exec.Command("tcpdump", "-i", "lo", "-n", "-U", "-Z", "root", "-w", c.file, filter)
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

// datagrams stops the capture and returns what it saw with the UDP
// payloads, read from the file in Go: tcpdump's text output does not show
// RTP headers in a form worth parsing.
func (c *capture) datagrams(t *testing.T) []packet {
	t.Helper()
	c.stop(t)
	pkts, err := readPcap(c.file)
	if err != nil {
		t.Fatalf("reading the capture %s: %v (%s)", c.file, err, c.stderr.String())
	}
	return pkts
}

// readPcap returns the UDP-over-IPv4 datagrams of a classic pcap file (what
// tcpdump -w writes; not pcapng), skipping everything else. A last record
// cut short, as when tcpdump is killed mid-write, ends the file.
func readPcap(path string) ([]packet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, errors.New("shorter than a pcap file header")
	}
	var bo binary.ByteOrder
	nanos := false
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d: // µs and ns timestamps
		bo = binary.LittleEndian
		nanos = binary.LittleEndian.Uint32(b) == 0xa1b23c4d
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
		nanos = binary.BigEndian.Uint32(b) == 0xa1b23c4d
	default:
		return nil, fmt.Errorf("not a classic pcap file (magic % x)", b[:4])
	}
	// The upper bits of the link type field may carry FCS information.
	link := bo.Uint32(b[20:]) & 0xffff
	var out []packet
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		sec, frac := int64(bo.Uint32(b[off:])), int64(bo.Uint32(b[off+4:]))
		if !nanos {
			frac *= 1000
		}
		at := time.Unix(sec, frac)
		off += 16
		if n > len(b)-off {
			break
		}
		frame := b[off : off+n]
		off += n
		ip, ok := ipv4OfFrame(link, frame)
		if !ok {
			continue
		}
		if p, ok := udpOfIPv4(ip); ok {
			p.At = at
			out = append(out, p)
		}
	}
	return out, nil
}

// ipv4OfFrame strips the link-layer header of the link types tcpdump may
// write for lo (Ethernet on Linux, cooked captures with -i any, BSD's
// loopback, raw IP).
func ipv4OfFrame(link uint32, f []byte) ([]byte, bool) {
	switch link {
	case 1: // EN10MB
		if len(f) < 14 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
			return nil, false
		}
		return f[14:], true
	case 113: // LINUX_SLL
		if len(f) < 16 || binary.BigEndian.Uint16(f[14:]) != 0x0800 {
			return nil, false
		}
		return f[16:], true
	case 276: // LINUX_SLL2
		if len(f) < 20 || binary.BigEndian.Uint16(f[0:]) != 0x0800 {
			return nil, false
		}
		return f[20:], true
	case 0, 108: // NULL, LOOP: a 4-byte address family
		if len(f) < 4 {
			return nil, false
		}
		return f[4:], true
	case 12, 101: // RAW
		return f, true
	}
	return nil, false
}

func udpOfIPv4(ip []byte) (packet, bool) {
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != 17 {
		return packet{}, false
	}
	// A later fragment has no UDP header.
	if binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
		return packet{}, false
	}
	hl := int(ip[0]&0x0f) * 4
	if total := int(binary.BigEndian.Uint16(ip[2:])); total >= hl && total < len(ip) {
		ip = ip[:total] // Ethernet pads short frames
	}
	if hl < 20 || len(ip) < hl+8 {
		return packet{}, false
	}
	udp := ip[hl:]
	src, _ := netip.AddrFromSlice(ip[12:16])
	dst, _ := netip.AddrFromSlice(ip[16:20])
	payload := udp[8:]
	if ul := int(binary.BigEndian.Uint16(udp[4:])); ul >= 8 && ul-8 < len(payload) {
		payload = payload[:ul-8]
	}
	return packet{
		Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:])),
		Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:])),
		Len:     len(payload),
		Payload: bytes.Clone(payload),
	}, true
}
