package media

import (
	"math"
	"testing"
)

func resampleTone(rate int, hz, amp float64, seconds float64) []float64 {
	x := make([]float64, int(float64(rate)*seconds))
	for i := range x {
		x[i] = amp * math.Sin(2*math.Pi*hz*float64(i)/float64(rate))
	}
	return x
}

// middle drops the filter's start-up and tail, where the signal is cut off.
func resampleMiddle(x []float64) []float64 { return x[len(x)/5 : len(x)-len(x)/5] }

func resampleRMS(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s / float64(len(x)))
}

func resampleMust(t *testing.T, in, out int) *resampler {
	t.Helper()
	r, err := newResampler(in, out)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// From 44.1 kHz, a 3 kHz tone must survive and a
// 6 kHz tone (which would alias to 2 kHz) must be at least 30 dB down. The
// design target is 70 dB, so the test holds it to 60.
func TestResample44100ToneKeptAndAliasRejected(t *testing.T) {
	r := resampleMust(t, 44100, 8000)
	const amp = 10000
	kept := r.process(resampleTone(44100, 3000, amp, 1))
	if got := resampleRMS(resampleMiddle(kept)) / (amp / math.Sqrt2); math.Abs(20*math.Log10(got)) > 0.1 {
		t.Errorf("3 kHz tone gain %.3f dB, want within 0.1 dB", 20*math.Log10(got))
	}
	gone := r.process(resampleTone(44100, 6000, amp, 1))
	att := -20 * math.Log10(resampleRMS(resampleMiddle(gone))/(amp/math.Sqrt2))
	if att < 60 {
		t.Errorf("6 kHz tone attenuated by %.1f dB, want >= 60 (spec: 30)", att)
	}
	t.Logf("6 kHz tone attenuated by %.1f dB", att)

	// Just above the output's Nyquist frequency, where a filter with a
	// lazy transition band would let most of it fold back to 3.8 kHz.
	edge := r.process(resampleTone(44100, 4200, amp, 1))
	if att := -20 * math.Log10(resampleRMS(resampleMiddle(edge))/(amp/math.Sqrt2)); att < 60 {
		t.Errorf("4.2 kHz tone attenuated by %.1f dB, want >= 60", att)
	}
}

// The ends of the signal, where the filter window runs off it, must be
// handled as silence, not read out of bounds or dropped.
func TestResampleEdges(t *testing.T) {
	r := resampleMust(t, 48000, 8000)
	for _, n := range []int{1, 5, 6, 7, 100, 2 * r.half} {
		in := make([]float64, n)
		for i := range in {
			in[i] = 1000
		}
		out := r.process(in)
		if want := (n + 5) / 6; len(out) != want {
			t.Errorf("%d samples in: %d out, want %d", n, len(out), want)
		}
		for i, v := range out {
			if math.IsNaN(v) || math.Abs(v) > 1100 {
				t.Errorf("%d samples in: out[%d] = %v", n, i, v)
			}
		}
	}
}

// Every supported source rate: a tone in the voice band comes out as the
// same sine sampled at 8 kHz (same amplitude, no delay, no phase shift),
// and a tone above 4 kHz that the source can carry is removed.
func TestResampleCommonRates(t *testing.T) {
	for _, rate := range []int{11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000} {
		r := resampleMust(t, rate, 8000)
		const amp = 10000
		in := resampleTone(rate, 1000, amp, 0.5)
		out := r.process(in)
		if want := len(in) * 8000 / rate; len(out) < want || len(out) > want+1 {
			t.Errorf("%d Hz: %d samples in, %d out, want %d", rate, len(in), len(out), want)
		}
		want := resampleTone(8000, 1000, amp, 0.5)
		var maxErr float64
		for i := len(out) / 5; i < len(out)*4/5; i++ {
			maxErr = max(maxErr, math.Abs(out[i]-want[i]))
		}
		// 1e-3 of full scale: the passband ripple of a 70 dB design.
		if maxErr > amp*1e-3 {
			t.Errorf("%d Hz: 1 kHz tone deviates by %.2f from the ideal 8 kHz sine", rate, maxErr)
		}
		reject := min(5000, 0.45*float64(rate))
		gone := r.process(resampleTone(rate, reject, amp, 0.5))
		if att := -20 * math.Log10(resampleRMS(resampleMiddle(gone))/(amp/math.Sqrt2)); att < 60 {
			t.Errorf("%d Hz: %.0f Hz tone attenuated by only %.1f dB", rate, reject, att)
		}
	}
}

func TestResampleDC(t *testing.T) {
	r := resampleMust(t, 22050, 8000)
	in := make([]float64, 22050)
	for i := range in {
		in[i] = 1000
	}
	for i, v := range resampleMiddle(r.process(in)) {
		if math.Abs(v-1000) > 1e-6 {
			t.Fatalf("DC input gave %v at %d", v, i)
		}
	}
}

func TestResampleRefusesAwkwardRatios(t *testing.T) {
	for _, rate := range []int{8001, 44056, 0, -8000} {
		if _, err := newResampler(rate, 8000); err == nil {
			t.Errorf("%d Hz accepted", rate)
		}
	}
}
