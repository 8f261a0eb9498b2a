package media

import (
	"encoding/binary"
	"testing"
)

// tePacket builds an RTP telephone-event packet.
func tePacket(ssrc, ts uint32, marker bool, event byte, end bool, dur uint16) []byte {
	p := make([]byte, 16)
	p[0] = 0x80
	p[1] = 101
	if marker {
		p[1] |= 0x80
	}
	binary.BigEndian.PutUint32(p[4:], ts)
	binary.BigEndian.PutUint32(p[8:], ssrc)
	p[12] = event
	p[13] = 10 // volume -10 dBm0
	if end {
		p[13] |= 0x80
	}
	binary.BigEndian.PutUint16(p[14:], dur)
	return p
}

// press returns the packets a typical sender emits for one key: a start
// packet, updates every 20 ms, and the End packet three times.
func press(ssrc, ts uint32, marker bool, event byte, updates int) [][]byte {
	pkts := [][]byte{tePacket(ssrc, ts, marker, event, false, 160)}
	for i := 1; i <= updates; i++ {
		pkts = append(pkts, tePacket(ssrc, ts, false, event, false, uint16(160*(i+1))))
	}
	for range 3 {
		pkts = append(pkts, tePacket(ssrc, ts, false, event, true, uint16(160*(updates+2))))
	}
	return pkts
}

func feedAll(d *EventDetector, pkts [][]byte) string {
	var got []byte
	for _, p := range pkts {
		if c, ok := d.Feed(p); ok {
			got = append(got, c)
		}
	}
	return string(got)
}

func TestEventDetectorOncePerPress(t *testing.T) {
	for _, marker := range []bool{true, false} {
		var d EventDetector
		var pkts [][]byte
		ts := uint32(1000)
		for i, ev := range []byte{1, 1, 10, 11, 0, 9, 5, 5, 5} {
			pkts = append(pkts, press(0x1234, ts, marker, ev, i%4)...)
			ts += 1600
		}
		if got := feedAll(&d, pkts); got != "11*#09555" {
			t.Errorf("marker %v: got %q", marker, got)
		}
	}
}

func TestEventDetectorReportsAtFirstPacket(t *testing.T) {
	var d EventDetector
	if c, ok := d.Feed(tePacket(1, 500, true, 7, false, 0)); !ok || c != '7' {
		t.Fatalf("start packet: %q %v", c, ok)
	}
	// Start and updates lost: the End packets alone still make one press.
	for i := range 3 {
		c, ok := d.Feed(tePacket(1, 2000, false, 8, true, 800))
		if ok != (i == 0) || ok && c != '8' {
			t.Fatalf("End-only press, packet %d: %q %v", i, c, ok)
		}
	}
}

func TestEventDetectorLateAndReordered(t *testing.T) {
	var d EventDetector
	a := press(9, 8000, true, 3, 2)
	b := press(9, 9600, true, 4, 2)
	// The last End of "3" arrives after "4" has started, then an old
	// update of "3".
	pkts := append(append(append([][]byte{}, a[:len(a)-1]...), b[:2]...), a[len(a)-1], a[1])
	pkts = append(pkts, b[2:]...)
	if got := feedAll(&d, pkts); got != "34" {
		t.Errorf("got %q", got)
	}
}

// sipp plays each key from its own capture, all recorded with one SSRC:
// a later key can carry an earlier timestamp. Its Marker makes it a new
// press; the late start of the key before it does not.
func TestEventDetectorReplayedCapturesGoBack(t *testing.T) {
	var d EventDetector
	seven := press(0x0e05384e, 54720, true, 7, 6)
	two := press(0x0e05384e, 23200, true, 2, 6)
	pkts := append(append([][]byte{}, seven...), two...)
	pkts = append(pkts, seven[0], two[len(two)-1])
	if got := feedAll(&d, pkts); got != "72" {
		t.Errorf("got %q, want 72", got)
	}
}

func TestEventDetectorTimestampWrapAndJump(t *testing.T) {
	var d EventDetector
	pkts := press(5, 0xFFFFF000, true, 1, 1)
	pkts = append(pkts, press(5, 0x00000600, true, 2, 1)...) // across the wrap
	// A sender that restarts its timestamps far back, same SSRC.
	pkts = append(pkts, press(5, 0x40000000, true, 3, 1)...)
	pkts = append(pkts, press(5, 0x10000000, true, 4, 1)...)
	if got := feedAll(&d, pkts); got != "1234" {
		t.Errorf("got %q", got)
	}
}

func TestEventDetectorNewSSRC(t *testing.T) {
	var d EventDetector
	pkts := press(1, 1000, true, 6, 1)
	pkts = append(pkts, press(2, 1000, true, 6, 1)...) // same timestamp, other stream
	if got := feedAll(&d, pkts); got != "66" {
		t.Errorf("got %q", got)
	}
}

// A key held longer than the 16-bit duration can count is sent as several
// segments, each with a new timestamp and no Marker (RFC 4733 2.5.1.3).
func TestEventDetectorLongEventSegments(t *testing.T) {
	var d EventDetector
	var pkts [][]byte
	pkts = append(pkts, tePacket(3, 10000, true, 0, false, 160))
	pkts = append(pkts, tePacket(3, 10000, false, 0, false, 0xFF00))
	pkts = append(pkts, tePacket(3, 10000, false, 0, false, 0xFFFF))
	pkts = append(pkts, tePacket(3, 10000+0xFFFF, false, 0, false, 160))
	pkts = append(pkts, tePacket(3, 10000+0xFFFF, false, 0, true, 4000))
	pkts = append(pkts, tePacket(3, 10000+0xFFFF, false, 0, true, 4000))
	// The same key pressed again afterwards is a new press.
	pkts = append(pkts, press(3, 10000+0xFFFF+8000, false, 0, 1)...)
	if got := feedAll(&d, pkts); got != "00" {
		t.Errorf("got %q", got)
	}
}

func TestEventDetectorAlphabet(t *testing.T) {
	var d EventDetector
	var got []byte
	for ev := range 20 {
		if c, ok := d.Feed(tePacket(1, uint32(1000*(ev+1)), true, byte(ev), false, 0)); ok {
			got = append(got, c)
		}
	}
	if string(got) != "0123456789*#ABCD" {
		t.Errorf("got %q", got)
	}
	// Flash (16) is not a key but ends the previous event: the same key
	// afterwards counts again.
	d.Reset()
	pkts := press(1, 100, true, 5, 0)
	pkts = append(pkts, press(1, 2000, true, 16, 0)...)
	pkts = append(pkts, press(1, 4000, true, 5, 0)...)
	if got := feedAll(&d, pkts); got != "55" {
		t.Errorf("around flash: got %q", got)
	}
	for _, c := range []byte("0123456789*#") {
		if !IsKeypadDigit(c) {
			t.Errorf("IsKeypadDigit(%q) = false", c)
		}
	}
	for _, c := range []byte("ABCD\x00a") {
		if IsKeypadDigit(c) {
			t.Errorf("IsKeypadDigit(%q) = true", c)
		}
	}
}

func TestEventDetectorHeaderVariants(t *testing.T) {
	payload := []byte{2, 0x0a, 0x01, 0x40}
	hdr := func(b0 byte, extra ...byte) []byte {
		p := []byte{b0, 101, 0, 1, 0, 0, 0x10, 0, 0, 0, 0, 7}
		return append(append(p, extra...), payload...)
	}
	withPad := append(hdr(0xA0), 0, 0, 3) // 3 bytes of padding
	cases := map[string][]byte{
		"plain":     hdr(0x80),
		"2 CSRC":    hdr(0x82, 1, 2, 3, 4, 5, 6, 7, 8),
		"extension": hdr(0x90, 0xBE, 0xDE, 0, 1, 1, 2, 3, 4),
		"padding":   withPad,
	}
	for name, pkt := range cases {
		var d EventDetector
		if c, ok := d.Feed(pkt); !ok || c != '2' {
			t.Errorf("%s: %q %v", name, c, ok)
		}
	}
}

func TestEventDetectorIgnoresMalformed(t *testing.T) {
	good := tePacket(1, 100, true, 1, false, 0)
	bad := [][]byte{
		nil,
		{},
		good[:11],
		good[:12],                         // no payload
		good[:15],                         // payload of 3 bytes
		append([]byte{0x40}, good[1:]...), // version 1
		append([]byte{0x8F}, good[1:]...), // 15 CSRC, far past the end
		append([]byte{0x90}, good[1:]...), // extension header past the end
		append([]byte{0x90}, append(append([]byte{}, good[1:12]...), 0xBE, 0xDE, 0xFF, 0xFF)...),
		append(append([]byte{0xA0}, good[1:]...), 0),   // padding count 0
		append(append([]byte{0xA0}, good[1:]...), 200), // padding past the start
		append(append([]byte{0xA0}, good[1:]...), 2),   // padding leaves 3 bytes
	}
	var d EventDetector
	for i, p := range bad {
		if c, ok := d.Feed(p); ok {
			t.Errorf("malformed %d (% x): reported %q", i, p, c)
		}
	}
	if c, ok := d.Feed(good); !ok || c != '1' {
		t.Errorf("good packet after malformed ones: %q %v", c, ok)
	}
}

func TestEventDetectorFeedDoesNotAllocate(t *testing.T) {
	pkts := press(1, 100, true, 1, 3)
	var d EventDetector
	i := 0
	if n := testing.AllocsPerRun(100, func() { d.Feed(pkts[i%len(pkts)]); i++ }); n != 0 {
		t.Errorf("Feed allocates %v times", n)
	}
}

func BenchmarkEventDetector(b *testing.B) {
	pkts := press(1, 100, true, 1, 5)
	var d EventDetector
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Feed(pkts[i%len(pkts)])
		i++
	}
}
