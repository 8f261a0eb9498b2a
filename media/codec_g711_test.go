package media

import (
	"math"
	"testing"
)

// The reference functions below transcribe ITU-T G.191 g711.c (loops and
// all) so the table-driven code is checked against the standard's own
// arithmetic for every input, not against itself.

func refULawCompress(x int16) byte {
	var absno int
	if x < 0 {
		absno = int(^x)>>2 + 33
	} else {
		absno = int(x)>>2 + 33
	}
	if absno > 0x1FFF {
		absno = 0x1FFF
	}
	i := absno >> 6
	segno := 1
	for i != 0 {
		segno++
		i >>= 1
	}
	high := 8 - segno
	low := 15 - (absno>>segno)&15
	out := high<<4 | low
	if x >= 0 {
		out |= 0x80
	}
	return byte(out)
}

func refULawExpand(b byte) int16 {
	sign := 1
	if b < 0x80 {
		sign = -1
	}
	m := int(^b)
	exp := m >> 4 & 7
	seg := exp + 1
	mant := m & 15
	step := 4 << seg
	return int16(sign * (0x80<<exp + step*mant + step/2 - 4*33))
}

func refALawCompress(x int16) byte {
	var ix int
	if x < 0 {
		ix = int(^x) >> 4
	} else {
		ix = int(x) >> 4
	}
	if ix > 15 {
		iexp := 1
		for ix > 16+15 {
			ix >>= 1
			iexp++
		}
		ix -= 16
		ix += iexp << 4
	}
	if x >= 0 {
		ix |= 0x80
	}
	return byte(ix ^ 0x55)
}

func refALawExpand(b byte) int16 {
	ix := int(b^0x55) & 0x7F
	iexp := ix >> 4
	mant := ix & 15
	if iexp > 0 {
		mant += 16
	}
	mant = mant<<4 + 8
	if iexp > 1 {
		mant <<= iexp - 1
	}
	if b > 127 {
		return int16(mant)
	}
	return int16(-mant)
}

func TestG711MatchesG191Reference(t *testing.T) {
	for b := 0; b < 256; b++ {
		if got, want := pcmuToLinear(byte(b)), refULawExpand(byte(b)); got != want {
			t.Fatalf("mu-law decode %#02x = %d, want %d", b, got, want)
		}
		if got, want := pcmaToLinear(byte(b)), refALawExpand(byte(b)); got != want {
			t.Fatalf("A-law decode %#02x = %d, want %d", b, got, want)
		}
	}
	for x := math.MinInt16; x <= math.MaxInt16; x++ {
		if got, want := pcmuFromLinear(int16(x)), refULawCompress(int16(x)); got != want {
			t.Fatalf("mu-law encode %d = %#02x, want %#02x", x, got, want)
		}
		if got, want := pcmaFromLinear(int16(x)), refALawCompress(int16(x)); got != want {
			t.Fatalf("A-law encode %d = %#02x, want %#02x", x, got, want)
		}
	}
}

// Values quoted in G.711's tables and in every implementation's test
// vectors, independent of the reference code above.
func TestG711KnownValues(t *testing.T) {
	ulawEnc := []struct {
		x int16
		b byte
	}{
		{0, 0xFF}, {-1, 0x7F}, {32767, 0x80}, {-32768, 0x00},
		{32124, 0x80}, {-32124, 0x00}, {8, 0xFE}, {100, 0xF2}, {-100, 0x73},
		{1000, 0xCE}, {-1000, 0x4E},
		// One's complement for negatives: -101, not -100, mirrors +100.
		{-101, 0x72},
	}
	for _, c := range ulawEnc {
		if got := pcmuFromLinear(c.x); got != c.b {
			t.Errorf("mu-law encode %d = %#02x, want %#02x", c.x, got, c.b)
		}
	}
	ulawDec := map[byte]int16{0xFF: 0, 0x7F: 0, 0x80: 32124, 0x00: -32124, 0xFE: 8, 0xCE: 988, 0x4E: -988}
	for b, x := range ulawDec {
		if got := pcmuToLinear(b); got != x {
			t.Errorf("mu-law decode %#02x = %d, want %d", b, got, x)
		}
	}
	alawEnc := []struct {
		x int16
		b byte
	}{
		{0, 0xD5}, {-1, 0x55}, {32767, 0xAA}, {-32768, 0x2A}, {1000, 0xFA}, {-1000, 0x7A},
	}
	for _, c := range alawEnc {
		if got := pcmaFromLinear(c.x); got != c.b {
			t.Errorf("A-law encode %d = %#02x, want %#02x", c.x, got, c.b)
		}
	}
	alawDec := map[byte]int16{0xD5: 8, 0x55: -8, 0xAA: 32256, 0x2A: -32256, 0xFA: 1008, 0x7A: -1008}
	for b, x := range alawDec {
		if got := pcmaToLinear(b); got != x {
			t.Errorf("A-law decode %#02x = %d, want %d", b, got, x)
		}
	}
}

// Every sample must come back within half a quantisation step of the level
// it was coded to, plus the low bits G.711 drops (2 for mu-law's 14-bit
// input, 4 for A-law's 12-bit magnitude, counted in 16-bit units); beyond
// the top level the error is simply the clipping.
func TestG711RoundTripErrorBound(t *testing.T) {
	for x := math.MinInt16; x <= math.MaxInt16; x++ {
		u := pcmuFromLinear(int16(x))
		q := int(pcmuToLinear(u))
		e := int(^u>>4) & 7
		bound := (8<<e)/2 + 4
		if a := codecAbs(x); a > 32124 {
			bound = max(bound, a-32124)
		}
		if d := codecAbs(q - x); d > bound {
			t.Fatalf("mu-law %d -> %#02x -> %d: error %d > %d", x, u, q, d, bound)
		}

		a := pcmaFromLinear(int16(x))
		q = int(pcmaToLinear(a))
		e = int((a^0x55)>>4) & 7
		step := 16
		if e > 1 {
			step = 16 << (e - 1)
		}
		if d := codecAbs(q - x); d > step/2+16 {
			t.Fatalf("A-law %d -> %#02x -> %d: error %d > %d", x, a, q, d, step/2+16)
		}
	}
}

// G.711 gives about 38 dB SNR over a wide range of levels; a sine at
// -10 dBFS and one at -30 dBFS must both stay well above 30 dB.
func TestG711SineSNR(t *testing.T) {
	for _, c := range []struct {
		name string
		enc  func(int16) byte
		dec  func(byte) int16
	}{{"mu-law", pcmuFromLinear, pcmuToLinear}, {"A-law", pcmaFromLinear, pcmaToLinear}} {
		for _, dbfs := range []float64{-10, -30} {
			amp := 32767 * math.Pow(10, dbfs/20)
			var sig, noise float64
			for i := 0; i < 8000; i++ {
				x := int16(math.Round(amp * math.Sin(2*math.Pi*1013*float64(i)/8000)))
				d := float64(c.dec(c.enc(x))) - float64(x)
				sig += float64(x) * float64(x)
				noise += d * d
			}
			snr := 10 * math.Log10(sig/noise)
			if snr < 33 {
				t.Errorf("%s at %v dBFS: SNR %.1f dB, want >= 33", c.name, dbfs, snr)
			}
			t.Logf("%s at %v dBFS: SNR %.1f dB", c.name, dbfs, snr)
		}
	}
}

func codecAbs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestDecodeG711(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, c := range []struct {
		name string
		ref  func(byte) int16
	}{{"PCMU", refULawExpand}, {"pcma", refALawExpand}} {
		prefix := []int16{7, 8}
		got, err := DecodeG711(c.name, prefix, all)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 258 || got[0] != 7 || got[1] != 8 {
			t.Fatalf("%s: did not append to dst: len %d, % d", c.name, len(got), got[:2])
		}
		for i, v := range got[2:] {
			if want := c.ref(byte(i)); v != want {
				t.Errorf("%s: byte %#02x decoded to %d, want %d", c.name, i, v, want)
			}
		}
		buf := make([]int16, 0, 256)
		if n := testing.AllocsPerRun(100, func() { DecodeG711(c.name, buf[:0], all) }); n != 0 {
			t.Errorf("%s: %v allocs with room in dst", c.name, n)
		}
	}
	dst := []int16{1}
	got, err := DecodeG711("G722", dst, all)
	if err == nil || len(got) != 1 {
		t.Errorf("G722: %d samples, err %v", len(got), err)
	}
}
