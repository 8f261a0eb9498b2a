package media

import "math"

// ToneDetector finds DTMF key presses in 8 kHz PCM16 audio, for calls that
// did not negotiate telephone-event and send their keys as sound. It reports
// each press once, in the alphabet of EventDetector.
//
// It aims at the usual receiver figures (AT&T, and ITU-T Q.24 for North
// America): tones of 40 ms and more are detected, tones under 20 ms rejected;
// frequencies off by 1.5% detected, by 3.5% rejected (when both tones are
// off, as when the sender's clock is); each tone from 0 to -30 dBm0; twist up
// to 8 dB normal (the high-group tone weaker than the low-group one, as a
// line's loss rises with frequency) and 4 dB reverse (the high-group tone
// stronger); and neither speech, music, noise nor a lone tone makes a key.
//
// The zero value is ready to use. Feed does not allocate. A ToneDetector is
// not safe for concurrent use.
type ToneDetector struct {
	win  [toneWindow]float64 // ring of the last toneWindow samples
	head int                 // index in win of the oldest sample
	due  int                 // samples to take before the next analysis

	cand    byte // digit of the current run of windows, 0 for none
	run     int  // consecutive windows that saw cand
	held    byte // digit reported and not yet released, 0 for none
	silence int  // consecutive windows without any digit
}

// Detection parameters. The analysis is a Goertzel filter at each of the 8
// DTMF frequencies over a Hann-windowed block of toneWindow samples,
// recomputed every toneHop samples.
//
// Why Hann over 25.5 ms rather than the classic rectangular 12.75 ms (102
// samples): both have the same main lobe (±78 Hz), which is what sets the
// frequency tolerance, but the rectangular window's sidelobes let the
// stronger tone leak into the weaker one's filter, so that with 8 dB of
// twist the measured twist swung by ±2 dB with the tones' relative phase and
// a legitimate key failed the twist test in one window out of a few. Hann
// sidelobes are 30 dB lower and the measurement is exact to 0.1 dB.
//
// Why overlapping windows every 5 ms rather than disjoint blocks: a tone's
// duration is judged by how many consecutive windows see it, and with a fine
// hop where the tone starts relative to the analysis grid hardly matters.
const (
	toneRate   = 8000
	toneWindow = 204
	toneHop    = 40 // 5 ms; a 160-sample frame is exactly four hops

	// A window sees a key when all of the following hold.
	//
	// Each tone is at least -34 dBm0 (an amplitude of 450 in PCM16, where
	// 0 dBm0 is about 22400): 4 dB under the weakest level required, and
	// above faint line noise and the echo of a prompt.
	toneMinAmplitude = 450
	// The two tones hold at least this share of the window's energy.
	// Speech and music spread theirs over many harmonics and fail here. A
	// pair off by 1.5% keeps 81% or more (the filter at 1633 Hz loses
	// 2.2 dB there), one off by 3.5% keeps 54% or less.
	toneFraction = 0.65
	// The strongest tone of each group is this many times (8 dB) the power
	// of every other tone of its group, so that a frequency between two
	// DTMF rows, or a vowel's harmonics around a formant, is not taken for
	// a key. An exact DTMF tone is 30 dB above its neighbours here.
	toneRelativePeak = 6.3
	// Twist limits, as power ratios. The low-group tone may be up to
	// 10.5 dB stronger than the high-group one (normal twist, 8 dB
	// required): a 1.5% frequency offset alone adds up to 1.9 dB of
	// apparent normal twist, the high-group filter being the more
	// selective. It may be up to 5 dB weaker (reverse twist, 4 dB
	// required); offsets only reduce apparent reverse twist.
	toneNormalTwist  = 11.2 // 10.5 dB
	toneReverseTwist = 3.16 // 5 dB

	// toneMinRun consecutive windows must see the same key before it is
	// reported. Measured over every alignment to the 5 ms grid and every
	// key: a 40 ms tone gives 6 to 8 such windows (5 to 7 when 1.5% off),
	// a 20 ms tone 2 to 4, so 5 sits between the two; the cut-off is about
	// 28 ms.
	toneMinRun = 5
	// toneReleaseRun consecutive windows without any key release the one
	// held, so that pressing it again reports it again. A 10 ms dropout
	// inside a tone (a lost packet concealed by silence) gives 2 to 4 such
	// windows and does not split the press; the shortest pause between
	// presses receivers must accept, 40 ms, gives 8 to 10.
	toneReleaseRun = 6
)

// dtmfRowHz and dtmfColHz are the low and high groups; dtmfKeys[row][col]
// is the key at their crossing. These tables, and the ones derived from them
// below, are computed once and never written afterwards.
var (
	dtmfRowHz = [4]float64{697, 770, 852, 941}
	dtmfColHz = [4]float64{1209, 1336, 1477, 1633}
	dtmfKeys  = [4][4]byte{
		{'1', '2', '3', 'A'},
		{'4', '5', '6', 'B'},
		{'7', '8', '9', 'C'},
		{'*', '0', '#', 'D'},
	}
	// dtmfCoef holds the Goertzel coefficients 2cos(2πf/fs), rows then
	// columns.
	dtmfCoef = func() (c [8]float64) {
		for i := range 4 {
			c[i] = 2 * math.Cos(2*math.Pi*dtmfRowHz[i]/toneRate)
			c[4+i] = 2 * math.Cos(2*math.Pi*dtmfColHz[i]/toneRate)
		}
		return c
	}()
	toneHann = func() (w [toneWindow]float64) {
		for i := range w {
			w[i] = 0.5 - 0.5*math.Cos(2*math.Pi*(float64(i)+0.5)/toneWindow)
		}
		return w
	}()
	// toneMinPower is the filter output of a tone of toneMinAmplitude
	// filling the window: (A/2·Σw)².
	// toneGain is filter output over windowed energy for a lone tone,
	// (Σw)²/(2Σw²): the energy share test compares against it.
	toneMinPower, toneGain = func() (minPower, gain float64) {
		var s, s2 float64
		for _, w := range toneHann {
			s += w
			s2 += w * w
		}
		a := toneMinAmplitude * s / 2
		return a * a, s * s / (2 * s2)
	}()
)

// Feed analyses pcm, 8 kHz mono samples continuing those of the previous
// call, and appends to dst each key whose press they complete. Frames of any
// length are accepted; with 20 ms frames at most one key is appended per
// call, as keys cannot be reported less than 25 ms apart. Typical use:
//
//	var buf [4]byte
//	for _, d := range td.Feed(buf[:0], frame) { ... }
func (t *ToneDetector) Feed(dst []byte, pcm []int16) []byte {
	if t.due == 0 {
		t.due = toneHop
	}
	for len(pcm) > 0 {
		n := min(t.due, len(pcm))
		for _, s := range pcm[:n] {
			t.win[t.head] = float64(s)
			t.head++
			if t.head == toneWindow {
				t.head = 0
			}
		}
		pcm = pcm[n:]
		t.due -= n
		if t.due > 0 {
			break
		}
		t.due = toneHop
		if d := t.step(toneClassify(t.win[t.head:], t.win[:t.head])); d != 0 {
			dst = append(dst, d)
		}
	}
	return dst
}

// Reset returns the detector to silence, e.g. after a gap in the audio.
func (t *ToneDetector) Reset() { *t = ToneDetector{} }

// step advances the press state machine by one window that saw key d (0 for
// none) and returns the key to report, if any.
func (t *ToneDetector) step(d byte) byte {
	if d == 0 {
		t.cand, t.run = 0, 0
		t.silence++
		if t.silence >= toneReleaseRun {
			t.held = 0
		}
		return 0
	}
	t.silence = 0
	if d == t.cand {
		t.run++
	} else {
		t.cand, t.run = d, 1
	}
	// A different key straight after another, with no pause, is a new
	// press; the same key needs the release pause first.
	if t.run >= toneMinRun && d != t.held {
		t.held = d
		return d
	}
	return 0
}

// toneClassify returns the key one window (a then b, in time order) holds,
// or 0.
func toneClassify(a, b []float64) byte {
	p, energy := goertzel8(a, b)
	r, c := 0, 4
	for i := 1; i < 4; i++ {
		if p[i] > p[r] {
			r = i
		}
		if p[4+i] > p[c] {
			c = 4 + i
		}
	}
	row, col := p[r], p[c]
	if row < toneMinPower || col < toneMinPower {
		return 0
	}
	if row > col*toneNormalTwist || col > row*toneReverseTwist {
		return 0
	}
	if row+col < toneFraction*toneGain*energy {
		return 0
	}
	for i := range 4 {
		if i != r && p[i]*toneRelativePeak > row {
			return 0
		}
		if 4+i != c && p[4+i]*toneRelativePeak > col {
			return 0
		}
	}
	return dtmfKeys[r][c-4]
}

// goertzel8 returns the power at the 8 DTMF frequencies of the Hann-windowed
// samples of a then b (len(a)+len(b) == toneWindow), and their windowed
// energy.
func goertzel8(a, b []float64) (p [8]float64, energy float64) {
	var s1, s2 [8]float64
	w := toneHann[:]
	for _, seg := range [2][]float64{a, b} {
		for i, x := range seg {
			x *= w[i]
			energy += x * x
			for k := range 8 {
				s := x + dtmfCoef[k]*s1[k] - s2[k]
				s2[k] = s1[k]
				s1[k] = s
			}
		}
		w = w[len(seg):]
	}
	for k := range 8 {
		p[k] = s1[k]*s1[k] + s2[k]*s2[k] - dtmfCoef[k]*s1[k]*s2[k]
	}
	return p, energy
}
