package media

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
)

func smallRange(t *testing.T, base, size int) (*Ports, int, int) {
	t.Helper()
	min := base + (os.Getpid()%20)*1000
	max := min + size - 1
	p, err := NewPorts(loopback, min, max)
	if err != nil {
		t.Fatal(err)
	}
	return p, min, max
}

func TestPortsEvenAndExhaustion(t *testing.T) {
	p, min, max := smallRange(t, 12000, 6) // three RTP/RTCP pairs
	var eps []*Endpoint
	for range 3 {
		e, err := p.Open()
		if errors.Is(err, ErrNoFreePort) {
			t.Skipf("another process holds ports of %d-%d: %v", min, max, err)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		port := int(e.LocalAddr().Port())
		if port%2 != 0 || port < min || port+1 > max {
			t.Fatalf("port %d not an even port of %d-%d", port, min, max)
		}
		eps = append(eps, e)
	}
	if p.InUse() != 3 {
		t.Fatalf("InUse = %d", p.InUse())
	}
	_, err := p.Open()
	if !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("err = %v, want ErrNoFreePort", err)
	}
	if want := "no free RTP port in "; !strings.Contains(err.Error(), want) {
		t.Fatalf("err %q lacks %q", err, want)
	}
	eps[1].Close()
	if p.InUse() != 2 {
		t.Fatalf("InUse after close = %d", p.InUse())
	}
	e, err := p.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.LocalAddr() != eps[1].LocalAddr() {
		t.Fatalf("got %v, want the only free port %v", e.LocalAddr(), eps[1].LocalAddr())
	}
}

func TestPortsReuseOrderCyclesRange(t *testing.T) {
	p, _, _ := smallRange(t, 12100, 20)
	a, err := p.Open()
	if err != nil {
		t.Fatal(err)
	}
	first := a.LocalAddr().Port()
	a.Close()
	seen := map[uint16]bool{}
	for i := range 10 {
		e, err := p.Open()
		if err != nil {
			t.Fatal(err)
		}
		port := e.LocalAddr().Port()
		if port == first && i < 9 {
			t.Fatalf("freed port %d reused after %d opens, before the range cycled", port, i)
		}
		seen[port] = true
		e.Close()
	}
	if len(seen) != 10 {
		t.Fatalf("expected 10 distinct ports, got %d", len(seen))
	}
}

func TestPortsSkipsPortHeldElsewhere(t *testing.T) {
	p, min, _ := smallRange(t, 12200, 10)
	first := min + min%2
	held, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, uint16(first))))
	if err != nil {
		t.Skipf("cannot hold port %d: %v", first, err)
	}
	defer held.Close()
	e, err := p.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if int(e.LocalAddr().Port()) == first {
		t.Fatal("got the held port")
	}
	if p.InUse() != 1 {
		t.Fatalf("InUse = %d, failed bind leaked a slot", p.InUse())
	}
}

func TestPortsConcurrent(t *testing.T) {
	p, _, _ := smallRange(t, 12400, 200)
	var wg sync.WaitGroup
	var mu sync.Mutex
	live := map[netip.AddrPort]bool{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				e, err := p.Open()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if live[e.LocalAddr()] {
					t.Errorf("port %v handed out twice", e.LocalAddr())
				}
				live[e.LocalAddr()] = true
				mu.Unlock()
				_ = p.InUse()
				mu.Lock()
				delete(live, e.LocalAddr())
				mu.Unlock()
				e.Close()
			}
		}()
	}
	wg.Wait()
	if p.InUse() != 0 {
		t.Fatalf("InUse = %d after all closed", p.InUse())
	}
}

func TestNewPortsValidation(t *testing.T) {
	for _, r := range [][2]int{{0, 100}, {200, 100}, {5000, 70000}, {5001, 5001}, {5000, 5000}} {
		if _, err := NewPorts(loopback, r[0], r[1]); err == nil {
			t.Errorf("range %v accepted", r)
		}
	}
	if _, err := NewPorts(netip.Addr{}, 5000, 5999); err == nil {
		t.Error("invalid address accepted")
	}
}
