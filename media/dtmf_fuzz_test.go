package media

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	pionrtp "github.com/pion/rtp"
)

// splitPackets cuts a fuzz input into datagrams, each prefixed by its
// length in one byte, so that one input can be a stream of packets. A
// length past the end takes what is left.
func splitPackets(data []byte) [][]byte {
	var pkts [][]byte
	for len(data) > 0 {
		n := min(int(data[0]), len(data)-1)
		pkts = append(pkts, data[1:1+n])
		data = data[1+n:]
	}
	return pkts
}

// joinPackets is the inverse of splitPackets, for seeds.
func joinPackets(pkts ...[]byte) []byte {
	var b []byte
	for _, p := range pkts {
		b = append(b, byte(len(p)))
		b = append(b, p...)
	}
	return b
}

// The seeds of the DTMF targets are the packets of the unit tests.
func dtmfSeeds() [][]byte {
	var seeds [][]byte
	seeds = append(seeds, joinPackets(press(0x1234, 1000, true, 1, 2)...))
	seeds = append(seeds, joinPackets(append(press(7, 100, false, 10, 0), press(7, 1700, false, 11, 1)...)...))
	// A key held past the 16-bit duration: two segments of one press.
	seeds = append(seeds, joinPackets(
		tePacket(9, 0, true, 5, false, 0xFFFF),
		tePacket(9, 0xFFFF, false, 5, false, 160),
		tePacket(9, 0xFFFF, false, 5, true, 320)))
	// Padding, CSRCs and an extension.
	padded := append(tePacket(3, 50, true, 2, false, 160), 0, 0, 3)
	padded[0] |= 0x20
	ext := append([]byte{0x91}, tePacket(4, 60, true, 3, false, 160)[1:12]...)
	ext = append(ext, 0, 0, 0, 0, 0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0, 9, 10, 0, 160)
	seeds = append(seeds, joinPackets(padded, ext))
	seeds = append(seeds, []byte{13, 0xBF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF})
	return seeds
}

// FuzzEventDetector feeds a stream of packets of any bytes. Every digit
// reported is of the RFC 4733 alphabet, and a stream with every packet
// duplicated reports exactly the same digits: a network that duplicates
// datagrams must not press keys twice.
func FuzzEventDetector(f *testing.F) {
	for _, s := range dtmfSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pkts := splitPackets(data)
		var once, twice EventDetector
		for i, p := range pkts {
			d1, ok1 := once.Feed(p)
			if ok1 && strings.IndexByte(dtmfEventDigits, d1) < 0 {
				t.Fatalf("packet %d (% x): digit %q is not a DTMF key", i, p, d1)
			}
			d2, ok2 := twice.Feed(p)
			if _, dup := twice.Feed(p); dup {
				t.Fatalf("packet %d (% x): a duplicate reported a second digit", i, p)
			}
			if ok1 != ok2 || d1 != d2 {
				t.Fatalf("packet %d (% x): %q %v alone, %q %v after duplicates", i, p, d1, ok1, d2, ok2)
			}
		}
	})
}

// FuzzDTMFReceiver feeds a leg's receiver a stream of packets of any bytes,
// with a telephone-event type or with G.711 audio for tones. It reports only
// keys of the 12-key pad, by the way the call negotiated, and with
// telephone-event exactly the keys an EventDetector finds in the packets of
// that type.
func FuzzDTMFReceiver(f *testing.F) {
	for _, s := range dtmfSeeds() {
		f.Add(s, uint8(101), false)
	}
	// In-band: the tone tests' audio.
	var st RTPStream
	tones := newSig(1).silence(40).key(f, '5', 100, -10).silence(60).key(f, '#', 80, -15).silence(40).pcm()
	for _, pcma := range []bool{false, true} {
		codec := "PCMU"
		if pcma {
			codec = "PCMA"
		}
		f.Add(joinPackets(audioRTP(f, codec, tones, &st)...), uint8(0), pcma)
	}
	f.Fuzz(func(t *testing.T, data []byte, tePT uint8, pcma bool) {
		tePT &= 0x7f
		codec := "PCMU"
		if pcma {
			codec = "PCMA"
		}
		var got []dtmfHit
		r, err := NewDTMFReceiver(codec, tePT, func(d byte, via string) { got = append(got, dtmfHit{d, via}) })
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		var ref EventDetector
		for _, p := range splitPackets(data) {
			r.ReceiveRTP(p)
			if tePT != 0 && len(p) >= 12 && p[1]&0x7f == tePT {
				if d, ok := ref.Feed(p); ok && IsKeypadDigit(d) {
					want = append(want, d)
				}
			}
		}
		via := DTMFViaInband
		if tePT != 0 {
			via = DTMFViaRFC4733
		}
		var digits []byte
		for _, h := range got {
			if !IsKeypadDigit(h.digit) || h.via != via {
				t.Fatalf("reported %q via %q; want a keypad digit via %q", h.digit, h.via, via)
			}
			digits = append(digits, h.digit)
		}
		if tePT != 0 && !bytes.Equal(digits, want) {
			t.Fatalf("reported %q, the packets of type %d carry %q", digits, tePT, want)
		}
	})
}

// FuzzRTPPayload checks the detectors' RTP parsing against pion's: where
// both take a packet they must agree on its payload and header fields, and
// what rtpPayload takes is a well-formed version 2 packet.
func FuzzRTPPayload(f *testing.F) {
	for _, s := range dtmfSeeds() {
		for _, p := range splitPackets(s) {
			f.Add(p)
		}
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		payload, marker, ts, ssrc, ok := rtpPayload(pkt)
		if !ok {
			return
		}
		if len(pkt) < 12 || pkt[0]>>6 != 2 || len(payload) > len(pkt)-12 {
			t.Fatalf("% x: took a payload of %d bytes", pkt, len(payload))
		}
		var p pionrtp.Packet
		if err := p.Unmarshal(pkt); err != nil {
			return
		}
		if !bytes.Equal(p.Payload, payload) || p.Marker != marker || p.Timestamp != ts || p.SSRC != ssrc {
			t.Fatalf("% x: payload % x marker %v ts %d ssrc %d; pion: % x %v %d %d",
				pkt, payload, marker, ts, ssrc, p.Payload, p.Marker, p.Timestamp, p.SSRC)
		}
	})
}

// FuzzParseDTMFInfo parses INFO bodies of any content type and bytes. A
// key taken is of the RFC 4733 alphabet, every error is one of the two
// the SIP layer tells apart, and the same key sent as application/dtmf
// reads the same.
func FuzzParseDTMFInfo(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160"},
		{"application/dtmf-relay", "Signal= #\r\nDuration= 250"},
		{"application/dtmf-relay", "SIGNAL = 0"},
		{"application/dtmf-relay", "Signal=10\r\nDuration=100"},
		{"application/dtmf-relay", "Signal=d"},
		{"application/dtmf-relay", "Signal=16"},
		{"application/dtmf-relay", "Signal=5\r\nSignal=6"},
		{"application/dtmf-relay; charset=utf-8", "Signal=4"},
		{"application/dtmf", "#"},
		{"application/dtmf", " 11 "},
		{"application/dtmf", "Signal=5"},
		{"text/plain", "Signal=5"},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		d, err := ParseDTMFInfo(ct, body)
		if err != nil {
			if !errors.Is(err, ErrDTMFContentType) && !errors.Is(err, ErrDTMFBody) {
				t.Fatalf("%q %q: error %v is neither of ParseDTMFInfo's", ct, body, err)
			}
			return
		}
		if strings.IndexByte(dtmfEventDigits, d) < 0 {
			t.Fatalf("%q %q: digit %q without error", ct, body, d)
		}
		if d2, err := ParseDTMFInfo("application/dtmf", []byte{d}); err != nil || d2 != d {
			t.Fatalf("%q %q gave %q, but application/dtmf %q gives %q, %v", ct, body, d, d, d2, err)
		}
	})
}
