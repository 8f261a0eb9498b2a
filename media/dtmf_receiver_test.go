package media

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dtmfHit is one onDigit call.
type dtmfHit struct {
	digit byte
	via   string
}

// dtmfLog collects the digits a receiver reports.
type dtmfLog struct{ hits []dtmfHit }

func (l *dtmfLog) onDigit(d byte, via string) { l.hits = append(l.hits, dtmfHit{d, via}) }

func (l *dtmfLog) digits(t *testing.T, via string) string {
	t.Helper()
	var s []byte
	for _, h := range l.hits {
		if h.via != via {
			t.Errorf("digit %q reported via %q, want %q", h.digit, h.via, via)
		}
		s = append(s, h.digit)
	}
	return string(s)
}

func newTestDTMFReceiver(t testing.TB, codec string, tePT uint8, onDigit func(byte, string)) *DTMFReceiver {
	t.Helper()
	r, err := NewDTMFReceiver(codec, tePT, onDigit)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// audioRTP encodes pcm in codec and cuts it into 20 ms RTP packets of one
// stream.
func audioRTP(t testing.TB, codec string, pcm []int16, s *RTPStream) [][]byte {
	t.Helper()
	c, ok := lookupG711Codec(codec)
	if !ok {
		t.Fatalf("codec %q", codec)
	}
	var pkts [][]byte
	for len(pcm) > 0 {
		n := min(len(pcm), 160)
		payload := make([]byte, n)
		for i, v := range pcm[:n] {
			payload[i] = c.encode(v)
		}
		pkts = append(pkts, s.Next(nil, payload, c.pt, false))
		pcm = pcm[n:]
	}
	return pkts
}

// promptRTP is every frame of a prompt as RTP packets of one stream.
func promptRTP(p *Prompt, s *RTPStream) [][]byte {
	var pkts [][]byte
	for i := range p.Frames() {
		pkts = append(pkts, s.Next(nil, p.Frame(i), p.PayloadType(), i == 0))
	}
	return pkts
}

const keypad = "0123456789*#"

func TestDTMFReceiverRFC4733(t *testing.T) {
	for _, marker := range []bool{true, false} {
		var log dtmfLog
		r := newTestDTMFReceiver(t, "PCMU", 101, log.onDigit)
		ts := uint32(1000)
		// Every key, then A-D (events 12-15), then flash (16): only the
		// 12 keys are reported, once each however many End packets come.
		for ev := range byte(17) {
			for _, p := range press(0x1234, ts, marker, ev, int(ev%4)) {
				r.ReceiveRTP(p)
			}
			ts += 1600
		}
		if got := log.digits(t, DTMFViaRFC4733); got != keypad {
			t.Errorf("marker %v: got %q, want %q", marker, got, keypad)
		}
	}

	// Events on another payload type, and tones in the audio, are not
	// this call's DTMF when telephone-event was negotiated.
	var log dtmfLog
	r := newTestDTMFReceiver(t, "PCMU", 96, log.onDigit)
	for _, p := range press(1, 0, true, 5, 3) { // payload type 101
		r.ReceiveRTP(p)
	}
	for _, p := range audioRTP(t, "PCMU", newSig(1).key(t, '2', 100, -10).silence(60).pcm(), NewRTPStream()) {
		r.ReceiveRTP(p)
	}
	if len(log.hits) != 0 {
		t.Errorf("got %+v", log.hits)
	}
}

func TestDTMFReceiverInband(t *testing.T) {
	for _, codec := range []string{"PCMU", "PCMA"} {
		// The brief's case: "2" at -10 dBm0 for 60 ms, in 20 ms packets.
		var log dtmfLog
		r := newTestDTMFReceiver(t, codec, 0, log.onDigit)
		s := NewRTPStream()
		for _, p := range audioRTP(t, codec, newSig(2).silence(40).key(t, '2', 60, -10).silence(60).pcm(), s) {
			r.ReceiveRTP(p)
		}
		if got := log.digits(t, DTMFViaInband); got != "2" {
			t.Errorf("%s: got %q, want \"2\"", codec, got)
		}

		// Every key in a row, then A, which is not on the pad.
		log.hits = nil
		x := newSig(3)
		for i := range len(keypad) {
			x.key(t, keypad[i], 60, -10).silence(60)
		}
		x.key(t, 'A', 60, -10).silence(60)
		for _, p := range audioRTP(t, codec, x.pcm(), s) {
			r.ReceiveRTP(p)
		}
		if got := log.digits(t, DTMFViaInband); got != keypad {
			t.Errorf("%s: got %q, want %q", codec, got, keypad)
		}
	}

	// Only the call's own codec is decoded: PCMA bytes read as PCMU, or
	// telephone-event payloads read as audio, are noise at best.
	var log dtmfLog
	r := newTestDTMFReceiver(t, "pcmu", 0, log.onDigit)
	for _, p := range audioRTP(t, "PCMA", newSig(4).key(t, '7', 100, -10).silence(60).pcm(), NewRTPStream()) {
		r.ReceiveRTP(p)
	}
	for _, p := range press(1, 0, true, 7, 3) {
		r.ReceiveRTP(p)
	}
	if len(log.hits) != 0 {
		t.Errorf("got %+v", log.hits)
	}
}

// Speech, and every prompt the edge ships (the IVR's own voice may come back
// as echo), must never make a key.
func TestDTMFReceiverIgnoresSpeechAndPrompts(t *testing.T) {
	raw, err := os.ReadFile("testdata/speech-8k.raw")
	if err != nil {
		t.Fatal(err)
	}
	speech := make([]int16, len(raw)/2)
	for i := range speech {
		speech[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	files, err := filepath.Glob(filepath.Join("..", "prompts", "*.wav"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no prompts: %v", err)
	}
	for _, codec := range []string{"PCMU", "PCMA"} {
		var log dtmfLog
		r := newTestDTMFReceiver(t, codec, 0, log.onDigit)
		for _, p := range audioRTP(t, codec, speech, NewRTPStream()) {
			r.ReceiveRTP(p)
		}
		if len(log.hits) != 0 {
			t.Errorf("%s speech: got %+v", codec, log.hits)
		}
		for _, f := range files {
			log.hits = nil
			p, err := LoadPrompt(f, codec)
			if err != nil {
				t.Fatal(err)
			}
			for _, pkt := range promptRTP(p, NewRTPStream()) {
				r.ReceiveRTP(pkt)
			}
			if len(log.hits) != 0 {
				t.Errorf("%s as %s: got %+v", filepath.Base(f), codec, log.hits)
			}
		}
	}
}

func TestDTMFReceiverAcceptsOddPackets(t *testing.T) {
	var log dtmfLog
	r := newTestDTMFReceiver(t, "PCMA", 0, log.onDigit)
	// Short, headerless or with lengths that do not add up: ignored.
	for _, p := range [][]byte{nil, {0x80}, {0x80, 8, 0, 1}, {0xa0, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40}} {
		r.ReceiveRTP(p)
	}
	// 40 ms packets (ptime 40) and one 2000-byte packet decode in chunks.
	s := NewRTPStream()
	pcm := newSig(6).silence(20).key(t, '9', 80, -20).silence(80).pcm()
	c, _ := lookupG711Codec("PCMA")
	enc := func(x []int16) []byte {
		b := make([]byte, len(x))
		for i, v := range x {
			b[i] = c.encode(v)
		}
		return b
	}
	for i := 0; i < len(pcm); i += 320 {
		r.ReceiveRTP(s.Next(nil, enc(pcm[i:min(i+320, len(pcm))]), 8, false))
	}
	big := newSig(7).key(t, '#', 100, -10).silence(150).pcm()
	r.ReceiveRTP(s.Next(nil, enc(big), 8, false))
	if got := log.digits(t, DTMFViaInband); got != "9#" {
		t.Errorf("got %q, want \"9#\"", got)
	}
}

func TestNewDTMFReceiverErrors(t *testing.T) {
	nop := func(byte, string) {}
	if _, err := NewDTMFReceiver("G729", 0, nop); err == nil {
		t.Error("in-band detection accepted G729")
	}
	if _, err := NewDTMFReceiver("PCMU", 0, nil); err == nil {
		t.Error("accepted a nil callback")
	}
	if _, err := NewDTMFReceiver("PCMU", 128, nop); err == nil {
		t.Error("accepted payload type 128")
	}
	// With telephone-event the audio is not decoded, so its codec does not
	// matter.
	if _, err := NewDTMFReceiver("G729", 101, nop); err != nil {
		t.Error(err)
	}
}

func TestDTMFReceiverDoesNotAllocate(t *testing.T) {
	n := 0
	count := func(byte, string) { n++ }
	for _, tePT := range []uint8{0, 101} {
		r := newTestDTMFReceiver(t, "PCMU", tePT, count)
		var pkts [][]byte
		if tePT == 0 {
			pkts = audioRTP(t, "PCMU", newSig(8).key(t, '5', 60, -10).silence(60).pcm(), NewRTPStream())
		} else {
			pkts = press(9, 0, true, 5, 3)
		}
		i := 0
		allocs := testing.AllocsPerRun(200, func() {
			r.ReceiveRTP(pkts[i%len(pkts)])
			i++
		})
		if allocs != 0 {
			t.Errorf("tePT %d: %v allocs per packet", tePT, allocs)
		}
	}
	if n == 0 {
		t.Error("no digit was reported while measuring")
	}
}

// Through a real leg: a phone's packets over loopback reach the receiver,
// and the digits come out on the channel an IVR would read.
func TestDTMFReceiverOnEndpoint(t *testing.T) {
	ports := testPorts(t, 14000)
	for _, tc := range []struct {
		name string
		tePT uint8
		via  string
	}{{"rfc4733", 101, DTMFViaRFC4733}, {"inband", 0, DTMFViaInband}} {
		t.Run(tc.name, func(t *testing.T) {
			e := openEP(t, ports)
			phone := newPeer(t)
			e.SetRemote(phone.addr())
			hits := make(chan dtmfHit, 16)
			r := newTestDTMFReceiver(t, "PCMA", tc.tePT, func(d byte, via string) {
				select {
				case hits <- dtmfHit{d, via}:
				default:
				}
			})
			e.SetReceiver(r)

			var pkts [][]byte
			s := NewRTPStream()
			for i, d := range []byte("1#0") {
				if tc.tePT != 0 {
					pkts = append(pkts, press(s.SSRC, uint32(i)*1600, true, byte(strings.IndexByte(dtmfEventDigits, d)), 3)...)
				} else {
					pkts = append(pkts, audioRTP(t, "PCMA", newSig(uint64(i)).key(t, d, 60, -10).silence(60).pcm(), s)...)
				}
			}
			for _, p := range pkts {
				if tc.tePT != 0 {
					p[1] = p[1]&0x80 | tc.tePT
				}
				phone.send(e.LocalAddr(), p)
				// Paced a little, as a phone would, so that
				// the socket buffer never overflows.
				time.Sleep(time.Millisecond)
			}
			var got []byte
			for len(got) < 3 {
				select {
				case h := <-hits:
					if h.via != tc.via {
						t.Errorf("via %q", h.via)
					}
					got = append(got, h.digit)
				case <-time.After(2 * time.Second):
					t.Fatalf("got %q within 2s, want \"1#0\"", got)
				}
			}
			if string(got) != "1#0" {
				t.Fatalf("got %q", got)
			}
			e.SetReceiver(nil)
			phone.send(e.LocalAddr(), pkts[0])
			select {
			case h := <-hits:
				t.Fatalf("digit %q after the receiver was removed", h.digit)
			case <-time.After(50 * time.Millisecond):
			}
		})
	}
}
