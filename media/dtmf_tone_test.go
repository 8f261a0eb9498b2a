package media

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// 0 dBm0 in PCM16: the G.711 digital milliwatt (+3.17 dBm0) peaks at 32124.
var dtmfDBm0 = 32124 / math.Pow(10, 3.17/20)

func dBm0Amp(level float64) float64 { return dtmfDBm0 * math.Pow(10, level/20) }

// dtmfPair returns the row and column frequencies of key d.
func dtmfPair(t testing.TB, d byte) (row, col float64) {
	t.Helper()
	for r := range 4 {
		for c := range 4 {
			if dtmfKeys[r][c] == d {
				return dtmfRowHz[r], dtmfColHz[c]
			}
		}
	}
	t.Fatalf("no key %q", d)
	return 0, 0
}

// sig is a test signal at 8 kHz, built by appending pieces.
type sig struct {
	x   []float64
	rng *rand.Rand
}

func newSig(seed uint64) *sig { return &sig{rng: rand.New(rand.NewPCG(seed, 1))} }

func msToN(ms float64) int { return int(math.Round(ms * toneRate / 1000)) }

func (s *sig) silence(ms float64) *sig {
	s.x = append(s.x, make([]float64, msToN(ms))...)
	return s
}

// tones appends the sum of sines (frequency, amplitude pairs) for ms, with
// random starting phases.
func (s *sig) tones(ms float64, fa ...float64) *sig {
	n := msToN(ms)
	start := len(s.x)
	s.x = append(s.x, make([]float64, n)...)
	for j := 0; j < len(fa); j += 2 {
		w, a, ph := 2*math.Pi*fa[j]/toneRate, fa[j+1], s.rng.Float64()*2*math.Pi
		for i := range n {
			s.x[start+i] += a * math.Sin(w*float64(i)+ph)
		}
	}
	return s
}

// key appends key d at level dBm0 per tone for ms.
func (s *sig) key(t testing.TB, d byte, ms, level float64) *sig {
	r, c := dtmfPair(t, d)
	return s.tones(ms, r, dBm0Amp(level), c, dBm0Amp(level))
}

// noise adds white Gaussian noise of the given RMS to the whole signal.
func (s *sig) noise(rms float64) *sig {
	for i := range s.x {
		s.x[i] += s.rng.NormFloat64() * rms
	}
	return s
}

func (s *sig) pcm() []int16 {
	out := make([]int16, len(s.x))
	for i, v := range s.x {
		out[i] = int16(max(-32768, min(32767, math.Round(v))))
	}
	return out
}

// detect feeds pcm to a new detector in frames of the given length and
// returns the keys it reported.
func detect(pcm []int16, frame int) string {
	var td ToneDetector
	var got []byte
	for len(pcm) > 0 {
		n := min(frame, len(pcm))
		got = td.Feed(got, pcm[:n])
		pcm = pcm[n:]
	}
	return string(got)
}

const allKeys = "123A456B789C*0#D"

func TestToneDetectorEveryKey(t *testing.T) {
	for i := range len(allKeys) {
		d := allKeys[i]
		pcm := newSig(uint64(i)).silence(50).key(t, d, 100, -10).silence(100).pcm()
		if got := detect(pcm, 160); got != string(d) {
			t.Errorf("key %q: detected %q", d, got)
		}
	}
}

// Every offset of the tone against the 5 ms analysis grid, and both ends of
// the level range, for the duration limits.
func TestToneDetectorDuration(t *testing.T) {
	cases := []struct {
		ms    float64
		want  bool
		level float64
	}{
		{40, true, -10}, {40, true, -30}, {40, true, 0},
		{19, false, -10}, {15, false, -10}, {15, false, 0}, {10, false, 0},
	}
	for _, tc := range cases {
		for i := range len(allKeys) {
			d := allKeys[i]
			for lead := 0; lead < toneHop; lead += 3 {
				s := newSig(uint64(lead*100 + i))
				s.x = make([]float64, 400+lead)
				pcm := s.key(t, d, tc.ms, tc.level).silence(100).pcm()
				got := detect(pcm, 160)
				if tc.want && got != string(d) || !tc.want && got != "" {
					t.Errorf("%v ms of %q at %v dBm0, %d samples in: detected %q", tc.ms, d, tc.level, lead, got)
				}
			}
		}
	}
}

func TestToneDetectorLevel(t *testing.T) {
	for _, tc := range []struct {
		level float64
		want  bool
	}{{-30, true}, {-20, true}, {-3, true}, {-40, false}} {
		pcm := newSig(7).silence(20).key(t, '5', 60, tc.level).silence(60).pcm()
		if got := detect(pcm, 160); (got == "5") != tc.want || got != "" && got != "5" {
			t.Errorf("'5' at %v dBm0 per tone: detected %q", tc.level, got)
		}
	}
}

func TestToneDetectorFrequencyTolerance(t *testing.T) {
	for _, tc := range []struct {
		dev  float64
		want bool
	}{{0.015, true}, {-0.015, true}, {0.05, false}, {-0.05, false}, {0.035, false}, {-0.035, false}} {
		for i := range len(allKeys) {
			d := allKeys[i]
			r, c := dtmfPair(t, d)
			a := dBm0Amp(-10)
			pcm := newSig(uint64(i)).silence(30).tones(60, r*(1+tc.dev), a, c*(1+tc.dev), a).silence(60).pcm()
			got := detect(pcm, 160)
			if tc.want && got != string(d) || !tc.want && got != "" {
				t.Errorf("%q off by %+.1f%%: detected %q", d, tc.dev*100, got)
			}
		}
	}
}

// Normal twist: the high-group (column) tone weaker than the low-group
// (row) tone, as the loss of a line rises with frequency; reverse twist:
// the column tone stronger.
func TestToneDetectorTwist(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rowDB     float64 // row level minus column level
		wantFound bool
	}{
		{"normal 8 dB", 8, true},
		{"reverse 4 dB", -4, true},
		{"normal 12 dB", 12, false},
		{"reverse 8 dB", -8, false},
	} {
		for i := range len(allKeys) {
			d := allKeys[i]
			r, c := dtmfPair(t, d)
			// The stronger tone at -6 dBm0, the weaker below it.
			rowLvl, colLvl := -6.0, -6.0-tc.rowDB
			if tc.rowDB < 0 {
				rowLvl, colLvl = -6+tc.rowDB, -6
			}
			pcm := newSig(uint64(i)).silence(30).tones(60, r, dBm0Amp(rowLvl), c, dBm0Amp(colLvl)).silence(60).pcm()
			got := detect(pcm, 160)
			if tc.wantFound && got != string(d) || !tc.wantFound && got != "" {
				t.Errorf("%s on %q: detected %q", tc.name, d, got)
			}
		}
	}
}

func TestToneDetectorNoise(t *testing.T) {
	// 20 dB below the power of the pair (two tones at -20 dBm0 each).
	level := -20.0
	pairPower := dBm0Amp(level) * dBm0Amp(level) // 2 tones × A²/2
	rms := math.Sqrt(pairPower / 100)
	for seed := range uint64(3) {
		for i := range len(allKeys) {
			d := allKeys[i]
			pcm := newSig(seed*100+uint64(i)).silence(30).key(t, d, 45, level).silence(60).noise(rms).pcm()
			if got := detect(pcm, 160); got != string(d) {
				t.Errorf("%q at 20 dB SNR (seed %d): detected %q", d, seed, got)
			}
		}
	}
}

func TestToneDetectorIgnoresNoiseAndLoneTones(t *testing.T) {
	for _, rms := range []float64{100, 1000, 8000} {
		if got := detect(newSig(uint64(rms)).silence(3000).noise(rms).pcm(), 160); got != "" {
			t.Errorf("white noise, RMS %v: detected %q", rms, got)
		}
	}
	freqs := append(append([]float64{}, dtmfRowHz[:]...), dtmfColHz[:]...)
	freqs = append(freqs, 350, 440, 480, 620, 1000, 1100, 2100)
	for _, f := range freqs {
		pcm := newSig(uint64(f)).tones(500, f, dBm0Amp(-3)).pcm()
		if got := detect(pcm, 160); got != "" {
			t.Errorf("lone %v Hz sine: detected %q", f, got)
		}
	}
	// Dial and busy tones are dual tones too, but not DTMF pairs.
	for _, p := range [][2]float64{{350, 440}, {480, 620}, {440, 480}} {
		pcm := newSig(1).tones(1000, p[0], dBm0Amp(-13), p[1], dBm0Amp(-13)).pcm()
		if got := detect(pcm, 160); got != "" {
			t.Errorf("%v+%v Hz: detected %q", p[0], p[1], got)
		}
	}
}

// Two keys of one column pressed at once sound three tones; which one was
// meant cannot be told, so neither is reported, even when one row is
// somewhat weaker.
func TestToneDetectorIgnoresTwoKeysAtOnce(t *testing.T) {
	for _, weaker := range []float64{0, 4} {
		a := dBm0Amp(-10)
		pcm := newSig(1).tones(200, 697, a, 770, dBm0Amp(-10-weaker), 1209, a).silence(50).pcm()
		if got := detect(pcm, 160); got != "" {
			t.Errorf("1 and 4 together, 4 %v dB weaker: detected %q", weaker, got)
		}
	}
}

// speechLike synthesises voiced speech: harmonics of a fundamental gliding
// between 120 and 200 Hz, shaped by the three formants of a succession of
// vowels, in syllables with an amplitude envelope and short pauses.
func speechLike(seed uint64, seconds float64) []int16 {
	rng := rand.New(rand.NewPCG(seed, 2))
	vowels := [][3]float64{
		{270, 2290, 3010}, {730, 1090, 2440}, {300, 870, 2240}, {530, 1840, 2480},
		{570, 840, 2410}, {660, 1720, 2410}, {440, 1020, 2240}, {490, 1350, 1690},
	}
	bw := [3]float64{60, 90, 150}
	total := msToN(seconds * 1000)
	out := make([]int16, 0, total)
	var phase [40]float64
	for len(out) < total {
		n := msToN(120 + rng.Float64()*250)
		v := vowels[rng.IntN(len(vowels))]
		f0a, f0b := 120+rng.Float64()*80, 120+rng.Float64()*80
		peak := 2000 + rng.Float64()*12000
		for i := range n {
			u := float64(i) / float64(n)
			f0 := f0a + (f0b-f0a)*u
			env := peak * math.Sin(math.Pi*u)
			var x float64
			for k := 1; float64(k)*f0 < 3600 && k <= len(phase); k++ {
				f := float64(k) * f0
				g := 1 / float64(k) // source tilt
				for j, F := range v {
					r := f / F
					g *= 1 / math.Sqrt((1-r*r)*(1-r*r)+(f*bw[j]/(F*F))*(f*bw[j]/(F*F)))
				}
				phase[k-1] += 2 * math.Pi * f / toneRate
				x += g * math.Sin(phase[k-1])
			}
			out = append(out, int16(max(-32768, min(32767, env*x/8))))
		}
		out = append(out, make([]int16, msToN(rng.Float64()*120))...)
	}
	return out[:total]
}

func TestToneDetectorIgnoresSyntheticSpeech(t *testing.T) {
	for seed := range uint64(10) {
		if got := detect(speechLike(seed, 6), 160); got != "" {
			t.Errorf("synthetic speech (seed %d): detected %q", seed, got)
		}
	}
}

// music plays two-note chords of harmonic-rich notes from the equal-tempered
// scale, including notes within 3% of DTMF frequencies (F5 is 698.5 Hz).
func TestToneDetectorIgnoresChords(t *testing.T) {
	note := func(semitonesFromA4 int) float64 { return 440 * math.Pow(2, float64(semitonesFromA4)/12) }
	s := newSig(3)
	for lo := -2; lo <= 10; lo++ { // around F5
		for _, interval := range []int{3, 4, 5, 7, 9} {
			var fa []float64
			for _, f0 := range []float64{note(lo), note(lo + interval)} {
				for k := 1; k <= 6 && float64(k)*f0 < 3800; k++ {
					fa = append(fa, float64(k)*f0, dBm0Amp(-12)/float64(k))
				}
			}
			s.tones(150, fa...)
		}
	}
	if got := detect(s.pcm(), 160); got != "" {
		t.Errorf("chords: detected %q", got)
	}
}

// testdata/speech-8k.raw is real (synthesised) speech, 8 kHz mono PCM16
// little-endian, made with:
//
//	espeak-ng -v en-us -s 180 -w s1.wav "Thank you for calling. Press one for sales, or two for support."
//	espeak-ng -v en-us+f3 -p 70 -s 185 -w s2.wav "Hi, I'm checking my order, number four five nine."
//	sox s1.wav s2.wav -r 8000 -c 1 -b 16 -e signed-integer -L -t raw speech-8k.raw silence 1 0.05 1% -1 0.2 1%
func TestToneDetectorIgnoresRecordedSpeech(t *testing.T) {
	raw, err := os.ReadFile("testdata/speech-8k.raw")
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, len(raw)/2)
	for i := range pcm {
		pcm[i] = int16(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8)
	}
	if got := detect(pcm, 160); got != "" {
		t.Errorf("speech: detected %q", got)
	}
	// Louder and quieter, for the level thresholds.
	for _, gain := range []float64{0.25, 1.3} {
		scaled := make([]int16, len(pcm))
		for i, v := range pcm {
			scaled[i] = int16(max(-32768, min(32767, float64(v)*gain)))
		}
		if got := detect(scaled, 160); got != "" {
			t.Errorf("speech ×%v: detected %q", gain, got)
		}
	}
	// And a key pressed while the caller talks is still a key.
	s := newSig(5)
	s.x = make([]float64, len(pcm))
	for i, v := range pcm {
		s.x[i] = float64(v) * 0.1
	}
	s.key(t, '7', 80, -10).silence(50)
	if got := detect(s.pcm(), 160); got != "7" {
		t.Errorf("key after speech: detected %q", got)
	}
}

func TestToneDetectorPresses(t *testing.T) {
	cases := []struct {
		name string
		s    func() *sig
		want string
	}{
		{"1, silence, 1", func() *sig {
			return newSig(1).key(t, '1', 60, -10).silence(60).key(t, '1', 60, -10).silence(60)
		}, "11"},
		{"1, 40 ms pause, 1", func() *sig {
			return newSig(2).key(t, '1', 50, -10).silence(40).key(t, '1', 50, -10).silence(60)
		}, "11"},
		{"held 1 s", func() *sig { return newSig(3).key(t, '9', 1000, -10).silence(100) }, "9"},
		{"held, 10 ms dropout", func() *sig {
			return newSig(4).key(t, '9', 300, -10).silence(10).key(t, '9', 300, -10).silence(100)
		}, "9"},
		{"two keys back to back", func() *sig {
			return newSig(5).key(t, '4', 60, -10).key(t, '2', 60, -10).silence(60)
		}, "42"},
		{"10 keys per second", func() *sig {
			s := newSig(6)
			for i := range len("0123456789*#") {
				s.key(t, "0123456789*#"[i], 50, -10).silence(50)
			}
			return s
		}, "0123456789*#"},
		{"10 keys per second, noisy", func() *sig {
			s := newSig(7)
			for i := range len("5551234") {
				s.key(t, "5551234"[i], 50, -20).silence(50)
			}
			return s.noise(dBm0Amp(-20) / 10)
		}, "5551234"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := detect(tc.s().pcm(), 160); got != tc.want {
				t.Errorf("detected %q, want %q", got, tc.want)
			}
		})
	}
}

func TestToneDetectorFrameSizes(t *testing.T) {
	s := newSig(9)
	for i := range len(allKeys) {
		s.key(t, allKeys[i], 50, -10).silence(50)
	}
	pcm := s.pcm()
	for _, frame := range []int{1, 7, 40, 80, 160, 161, 320, 1000, len(pcm)} {
		if got := detect(pcm, frame); got != allKeys {
			t.Errorf("frames of %d: detected %q", frame, got)
		}
	}
}

func TestToneDetectorResetAndZeroValue(t *testing.T) {
	var td ToneDetector
	pcm := newSig(1).key(t, '3', 60, -10).pcm()
	if got := td.Feed(nil, pcm); string(got) != "3" {
		t.Fatalf("first press: %q", got)
	}
	// Still held: the same key again without a gap is the same press.
	if got := td.Feed(nil, pcm); len(got) != 0 {
		t.Fatalf("continued press reported %q", got)
	}
	td.Reset()
	if got := td.Feed(nil, pcm); string(got) != "3" {
		t.Fatalf("after Reset: %q", got)
	}
}

func TestToneDetectorFeedDoesNotAllocate(t *testing.T) {
	s := newSig(1)
	for range 5 {
		s.key(t, '8', 60, -10).silence(60)
	}
	pcm := s.pcm()
	var td ToneDetector
	var buf [8]byte
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		frame := pcm[i*160%(len(pcm)-160):][:160]
		i++
		_ = td.Feed(buf[:0], frame)
	})
	if allocs != 0 {
		t.Errorf("Feed allocates %v times per frame", allocs)
	}
}

func BenchmarkToneDetector20ms(b *testing.B) {
	s := newSig(1)
	for range 10 {
		s.key(b, '8', 60, -10).silence(60)
	}
	pcm := s.pcm()
	var td ToneDetector
	var buf [8]byte
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		off := i * 160 % (len(pcm) - 160)
		i++
		_ = td.Feed(buf[:0], pcm[off:off+160])
	}
}

func ExampleToneDetector() {
	// 100 ms of key 5 (770 + 1336 Hz), then 100 ms of silence, in 20 ms
	// frames as they would come off a decoded PCMU stream.
	audio := make([]int16, 1600)
	for i := range 800 {
		t := float64(i) / 8000
		audio[i] = int16(5000*math.Sin(2*math.Pi*770*t) + 5000*math.Sin(2*math.Pi*1336*t))
	}
	var td ToneDetector
	var buf [4]byte
	for frame := range 10 {
		for _, d := range td.Feed(buf[:0], audio[frame*160:][:160]) {
			fmt.Printf("key %c in frame %d\n", d, frame)
		}
	}
	// Output: key 5 in frame 1
}
