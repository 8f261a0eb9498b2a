package media

import (
	"fmt"
	"math"
)

// Resampler design: prompts arrive at whatever rate the recording tool
// chose, and the call is 8 kHz. Decimating 44.1 kHz speech without a proper
// low-pass folds sibilants (4-11 kHz) back into the voice band as hiss, so
// this is a polyphase windowed-sinc (Kaiser) filter: flat to 3.4 kHz, at
// least ~70 dB down from 4 kHz, i.e. anything that would alias is gone.
// The filter is symmetric and centred on each output instant, so the output
// is not delayed relative to the input.
const (
	resamplePassband    = 0.425 // passband edge, as a fraction of the lower rate (3.4 kHz at 8 kHz)
	resampleStopband    = 0.5   // stopband edge: the lower rate's Nyquist frequency
	resampleAttenuation = 70.0  // dB, drives the Kaiser window's beta and length
	// resampleMaxPhases bounds the polyphase table: the output rate
	// divided by gcd(in, out). 11.025 kHz needs 320; odd rates such as
	// 8001 Hz would need thousands and are refused.
	resampleMaxPhases = 320
)

// resampler converts between two fixed rates whose ratio is L/M in lowest
// terms: output sample j sits at input position j*M/L.
type resampler struct {
	l, m int
	half int         // taps on each side of the output instant
	taps [][]float64 // taps[p] for output instants p/L past an input sample
}

func newResampler(inRate, outRate int) (*resampler, error) {
	if inRate <= 0 || outRate <= 0 {
		return nil, fmt.Errorf("sample rate %d Hz -> %d Hz is invalid", inRate, outRate)
	}
	g := gcd(inRate, outRate)
	l, m := outRate/g, inRate/g
	if l > resampleMaxPhases {
		return nil, fmt.Errorf("resampling %d Hz to %d Hz is not supported", inRate, outRate)
	}
	low := float64(min(inRate, outRate))
	fs := float64(inRate)
	// Filter frequencies relative to the input rate, since the taps are
	// applied to input samples.
	pass, stop := resamplePassband*low/fs, resampleStopband*low/fs
	cutoff := (pass + stop) / 2
	// Kaiser's design formulas (Oppenheim & Schafer 7.6).
	beta := 0.1102 * (resampleAttenuation - 8.7)
	n := (resampleAttenuation - 7.95) / (14.36 * (stop - pass))
	half := int(math.Ceil(n / 2))
	r := &resampler{l: l, m: m, half: half, taps: make([][]float64, l)}
	i0beta := besselI0(beta)
	for p := range r.taps {
		h := make([]float64, 2*half)
		var sum float64
		for i := range h {
			t := float64(i-half+1) - float64(p)/float64(l)
			if math.Abs(t) > float64(half) {
				continue
			}
			w := besselI0(beta*math.Sqrt(1-(t/float64(half))*(t/float64(half)))) / i0beta
			h[i] = 2 * cutoff * sinc(2*cutoff*t) * w
			sum += h[i]
		}
		// Unity gain at DC for every phase, otherwise the phases'
		// slightly different sums would modulate the signal at the
		// phase-cycling rate.
		for i := range h {
			h[i] /= sum
		}
		r.taps[p] = h
	}
	return r, nil
}

// process resamples a whole signal; samples outside it count as silence.
func (r *resampler) process(in []float64) []float64 {
	nOut := (int64(len(in))*int64(r.l) + int64(r.m) - 1) / int64(r.m)
	out := make([]float64, nOut)
	for j := range out {
		pos := int64(j) * int64(r.m)
		n, p := int(pos/int64(r.l)), int(pos%int64(r.l))
		h := r.taps[p]
		lo := n - r.half + 1
		var acc float64
		if lo >= 0 && lo+len(h) <= len(in) {
			for i, v := range in[lo : lo+len(h)] {
				acc += v * h[i]
			}
		} else {
			// Near either end, where part of the window is outside
			// the signal.
			for i := max(0, -lo); i < len(h) && lo+i < len(in); i++ {
				acc += in[lo+i] * h[i]
			}
		}
		out[j] = acc
	}
	return out
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// besselI0 is the zeroth-order modified Bessel function of the first kind,
// by its power series, which converges quickly for the betas used here.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 100; k++ {
		term *= (x / 2) * (x / 2) / float64(k*k)
		sum += term
		if term < sum*1e-16 {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
