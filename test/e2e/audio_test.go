package e2e

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// rtpFull is an RTP packet as a receiver sees it, with the capture time.
type rtpFull struct {
	At      time.Time
	Marker  bool
	PT      uint8
	Seq     uint16
	TS      uint32
	SSRC    uint32
	Payload []byte
}

// rtpStream parses the RTP in pkts, in capture order.
func rtpStream(t *testing.T, pkts []packet) []rtpFull {
	t.Helper()
	var out []rtpFull
	for _, p := range pkts {
		r, ok := parseRTP(p.Payload)
		if !ok {
			t.Errorf("a packet from %s that is not RTP: % x", p.Src, p.Payload)
			continue
		}
		b := p.Payload
		out = append(out, rtpFull{
			At: p.At, Marker: r.Marker, PT: r.PT, Payload: r.Payload,
			Seq:  binary.BigEndian.Uint16(b[2:]),
			TS:   binary.BigEndian.Uint32(b[4:]),
			SSRC: binary.BigEndian.Uint32(b[8:]),
		})
	}
	return out
}

// talkspurts splits a stream where the marker bit starts a new talkspurt.
func talkspurts(s []rtpFull) [][]rtpFull {
	var out [][]rtpFull
	for i, p := range s {
		if i == 0 || p.Marker {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], p)
	}
	return out
}

// decodeG711 decodes the audio payloads of s (PCMU 0, PCMA 8) to linear
// PCM. The decoders are written out here, from G.711, so that what the
// test hears does not depend on the code under test.
func decodeG711(t *testing.T, s []rtpFull) []float64 {
	t.Helper()
	var out []float64
	for _, p := range s {
		for _, b := range p.Payload {
			switch p.PT {
			case 0:
				out = append(out, float64(pcmuToLinear(b)))
			case 8:
				out = append(out, float64(pcmaToLinear(b)))
			default:
				t.Fatalf("payload type %d is not G.711 audio", p.PT)
			}
		}
	}
	return out
}

func pcmuToLinear(u byte) int16 {
	u = ^u
	t := (int(u&0x0f) << 3) + 0x84
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

func pcmaToLinear(a byte) int16 {
	a ^= 0x55
	t := int(a&0x0f) << 4
	switch seg := int(a&0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// promptPCM reads one of the shipped prompts (8 kHz mono 16-bit WAV).
func promptPCM(t *testing.T, name string) []float64 {
	t.Helper()
	path := filepath.Join(moduleRoot, "prompts", name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s is not a WAV file", path)
	}
	var fmtOK bool
	for off := 12; off+8 <= len(b); {
		id, n := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		body := b[off+8 : min(off+8+n, len(b))]
		switch id {
		case "fmt ":
			fmtOK = binary.LittleEndian.Uint16(body[0:]) == 1 && binary.LittleEndian.Uint16(body[2:]) == 1 &&
				binary.LittleEndian.Uint32(body[4:]) == 8000 && binary.LittleEndian.Uint16(body[14:]) == 16
		case "data":
			if !fmtOK {
				t.Fatalf("%s is not 8 kHz mono 16-bit PCM", path)
			}
			out := make([]float64, len(body)/2)
			for i := range out {
				out[i] = float64(int16(binary.LittleEndian.Uint16(body[2*i:])))
			}
			return out
		}
		off += 8 + n + n&1
	}
	t.Fatalf("%s has no data chunk", path)
	return nil
}

// similarity is the largest normalised cross-correlation of ref against
// got at a lag of at most maxLag samples either way: 1 for the same audio
// (G.711 quantisation leaves about 0.99), near 0 for unrelated audio.
func similarity(got, ref []float64, maxLag int) float64 {
	var eRef float64
	for _, v := range ref {
		eRef += v * v
	}
	best := 0.0
	for lag := -maxLag; lag <= maxLag; lag++ {
		var dot, eGot float64
		for i, r := range ref {
			j := i + lag
			if j < 0 || j >= len(got) {
				continue
			}
			dot += got[j] * r
			eGot += got[j] * got[j]
		}
		if eGot == 0 || eRef == 0 {
			continue
		}
		if c := dot / math.Sqrt(eGot*eRef); c > best {
			best = c
		}
	}
	return best
}

// wantHeard checks that audio (what a side received) holds the prompt
// starting at sample from (within 40 ms), for its first seconds, and that
// an unrelated prompt does not match there: decoding and comparing, not
// counting packets.
func wantHeard(t *testing.T, what string, audio []float64, from int, prompt, other string, seconds float64) {
	t.Helper()
	ref := promptPCM(t, prompt)
	n := min(len(ref), int(seconds*8000))
	ref = ref[:n]
	const lag = 320
	lo := max(from-lag, 0)
	hi := min(from+n+lag, len(audio))
	if hi-lo < n/2 {
		t.Errorf("%s: only %d samples of audio from sample %d, want %s (%d samples)", what, hi-lo, from, prompt, n)
		return
	}
	window := audio[lo:hi]
	got := similarity(window, ref, from-lo+lag)
	otherPCM := promptPCM(t, other)
	miss := similarity(window, otherPCM[:min(n, len(otherPCM))], from-lo+lag)
	t.Logf("%s: similarity to %s %.3f, to %s %.3f", what, prompt, got, other, miss)
	if got < 0.9 {
		t.Errorf("%s: the audio does not match %s (similarity %.3f, want ≥ 0.9)", what, prompt, got)
	}
	if miss > 0.5 {
		t.Errorf("%s: the audio matches %s too (similarity %.3f): the comparison tells nothing", what, other, miss)
	}
}

// wantOneStream checks that everything the caller received from the edge
// is one RTP stream: one SSRC, sequence numbers without a gap or a jump,
// timestamps moving forward with the time between packets.
func wantOneStream(t *testing.T, s []rtpFull) {
	t.Helper()
	if len(s) == 0 {
		t.Error("no RTP from the edge")
		return
	}
	for i := 1; i < len(s); i++ {
		a, b := s[i-1], s[i]
		if b.SSRC != a.SSRC {
			t.Errorf("packet %d: SSRC %08x after %08x: the stream changed without a signal", i, b.SSRC, a.SSRC)
			return
		}
		if b.Seq != a.Seq+1 {
			t.Errorf("packet %d: sequence %d after %d", i, b.Seq, a.Seq)
			return
		}
		dts := int64(int32(b.TS - a.TS))
		if dts <= 0 {
			t.Errorf("packet %d: timestamp %d after %d does not move forward", i, b.TS, a.TS)
			return
		}
		// A pause (between prompts, or before the agent) must move the
		// timestamp by about the time that passed.
		wall := b.At.Sub(a.At).Seconds() * 8000
		if b.Marker && math.Abs(float64(dts)-wall) > 400 {
			t.Errorf("packet %d: timestamp moved %d samples over %.0f samples of time", i, dts, wall)
		}
	}
}

func (r rtpFull) String() string {
	return fmt.Sprintf("seq=%d ts=%d ssrc=%08x m=%v pt=%d len=%d", r.Seq, r.TS, r.SSRC, r.Marker, r.PT, len(r.Payload))
}
