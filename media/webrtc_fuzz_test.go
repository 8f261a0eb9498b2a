package media

import (
	"strings"
	"testing"
)

// FuzzDigitWriter writes queued digits into a browser's packets of any
// bytes, as Peer.readLoop does with what the browser sends: in a read
// buffer, after the same checks. A packet it rewrites stays RTP the
// detectors take, with an RFC 4733 event of a queued key on the
// telephone-event type, or tones in the audio's own length.
func FuzzDigitWriter(f *testing.F) {
	audio := carrierPacket(0, 1, 160)
	padded := append(carrierPacket(0, 2, 160), 0, 0, 3)
	padded[0] |= 0x20
	short := carrierPacket(0, 3, 1)
	f.Add(audio, "1#", uint8(101), false, uint8(12))
	f.Add(audio, "5", uint8(0), false, uint8(12))
	f.Add(padded, "A*", uint8(101), true, uint8(8))
	f.Add(short, "9", uint8(101), false, uint8(4))
	// As long as readLoop takes, with a payload shorter than an event.
	long := make([]byte, readBufSize-1)
	copy(long, carrierPacket(0, 4, 0))
	long[0] |= 0x10
	ext := (len(long) - 12 - 4 - 1) / 4
	long[14], long[15] = byte(ext>>8), byte(ext)
	long = long[:12+4+4*ext+1]
	f.Add(long, "7", uint8(101), false, uint8(1))
	f.Fuzz(func(t *testing.T, pkt []byte, digits string, te uint8, pcma bool, count uint8) {
		codec, _ := lookupG711Codec("PCMU")
		if pcma {
			codec, _ = lookupG711Codec("PCMA")
		}
		if te != 0 && (te < 96 || te > 127) {
			te = 0
		}
		n := len(pkt)
		if n < 12 || n >= readBufSize || pkt[0]>>6 != 2 {
			return // readLoop drops these
		}
		// Only the audio type is written into; other packets pass.
		pkt[1] = pkt[1]&0x80 | codec.pt
		var queue []byte
		for i := 0; i < len(digits) && len(queue) < peerMaxQueuedDigits; i++ {
			if strings.IndexByte(dtmfEventDigits, digits[i]) >= 0 {
				queue = append(queue, digits[i])
			}
		}
		next := func() (byte, bool) {
			if len(queue) == 0 {
				return 0, false
			}
			d := queue[0]
			queue = queue[1:]
			return d, true
		}
		w := digitWriter{codec: codec, audioPT: codec.pt}
		buf := make([]byte, readBufSize)
		for range int(count%32) + 1 {
			copy(buf, pkt)
			out := w.write(buf[:n], te, next)
			if &out[0] != &buf[0] || len(out) > readBufSize {
				t.Fatalf("% x: written outside the read buffer", pkt)
			}
			payload, _, _, _, ok := rtpPayload(out)
			if !ok {
				if _, _, _, _, inOK := rtpPayload(pkt); inOK {
					t.Fatalf("% x: rewritten into % x, which is not RTP", pkt, out)
				}
				continue
			}
			switch pt := out[1] & 0x7f; {
			case te != 0 && pt == te:
				if len(payload) != 4 || int(payload[0]) >= len(dtmfEventDigits) {
					t.Fatalf("% x: event % x", pkt, payload)
				}
			case pt != codec.pt:
				t.Fatalf("% x: rewritten to payload type %d", pkt, pt)
			}
		}
	})
}
