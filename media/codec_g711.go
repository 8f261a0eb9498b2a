package media

import (
	"fmt"
	"slices"
	"strings"
)

// G.711 (ITU-T, 1988) companding, bit-exact with the ITU-T G.191 software
// tools (g711.c), which is what telephony equipment is tested against. It
// lives here so prompts can be encoded once at load time into the call's
// codec, and a caller's audio decoded to listen for in-band DTMF; the relay
// itself never transcodes.
//
// Encoders treat negative samples by their one's complement (^x), as G.191
// does, so -1 encodes as "negative zero" rather than the smallest negative
// step.

// pcmuLinearTable maps every mu-law byte to its 16-bit linear value.
var pcmuLinearTable = [256]int16{
	-32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956,
	-23932, -22908, -21884, -20860, -19836, -18812, -17788, -16764,
	-15996, -15484, -14972, -14460, -13948, -13436, -12924, -12412,
	-11900, -11388, -10876, -10364, -9852, -9340, -8828, -8316,
	-7932, -7676, -7420, -7164, -6908, -6652, -6396, -6140,
	-5884, -5628, -5372, -5116, -4860, -4604, -4348, -4092,
	-3900, -3772, -3644, -3516, -3388, -3260, -3132, -3004,
	-2876, -2748, -2620, -2492, -2364, -2236, -2108, -1980,
	-1884, -1820, -1756, -1692, -1628, -1564, -1500, -1436,
	-1372, -1308, -1244, -1180, -1116, -1052, -988, -924,
	-876, -844, -812, -780, -748, -716, -684, -652,
	-620, -588, -556, -524, -492, -460, -428, -396,
	-372, -356, -340, -324, -308, -292, -276, -260,
	-244, -228, -212, -196, -180, -164, -148, -132,
	-120, -112, -104, -96, -88, -80, -72, -64,
	-56, -48, -40, -32, -24, -16, -8, 0,
	32124, 31100, 30076, 29052, 28028, 27004, 25980, 24956,
	23932, 22908, 21884, 20860, 19836, 18812, 17788, 16764,
	15996, 15484, 14972, 14460, 13948, 13436, 12924, 12412,
	11900, 11388, 10876, 10364, 9852, 9340, 8828, 8316,
	7932, 7676, 7420, 7164, 6908, 6652, 6396, 6140,
	5884, 5628, 5372, 5116, 4860, 4604, 4348, 4092,
	3900, 3772, 3644, 3516, 3388, 3260, 3132, 3004,
	2876, 2748, 2620, 2492, 2364, 2236, 2108, 1980,
	1884, 1820, 1756, 1692, 1628, 1564, 1500, 1436,
	1372, 1308, 1244, 1180, 1116, 1052, 988, 924,
	876, 844, 812, 780, 748, 716, 684, 652,
	620, 588, 556, 524, 492, 460, 428, 396,
	372, 356, 340, 324, 308, 292, 276, 260,
	244, 228, 212, 196, 180, 164, 148, 132,
	120, 112, 104, 96, 88, 80, 72, 64,
	56, 48, 40, 32, 24, 16, 8, 0,
}

// pcmaLinearTable maps every A-law byte to its 16-bit linear value.
var pcmaLinearTable = [256]int16{
	-5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736,
	-7552, -7296, -8064, -7808, -6528, -6272, -7040, -6784,
	-2752, -2624, -3008, -2880, -2240, -2112, -2496, -2368,
	-3776, -3648, -4032, -3904, -3264, -3136, -3520, -3392,
	-22016, -20992, -24064, -23040, -17920, -16896, -19968, -18944,
	-30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136,
	-11008, -10496, -12032, -11520, -8960, -8448, -9984, -9472,
	-15104, -14592, -16128, -15616, -13056, -12544, -14080, -13568,
	-344, -328, -376, -360, -280, -264, -312, -296,
	-472, -456, -504, -488, -408, -392, -440, -424,
	-88, -72, -120, -104, -24, -8, -56, -40,
	-216, -200, -248, -232, -152, -136, -184, -168,
	-1376, -1312, -1504, -1440, -1120, -1056, -1248, -1184,
	-1888, -1824, -2016, -1952, -1632, -1568, -1760, -1696,
	-688, -656, -752, -720, -560, -528, -624, -592,
	-944, -912, -1008, -976, -816, -784, -880, -848,
	5504, 5248, 6016, 5760, 4480, 4224, 4992, 4736,
	7552, 7296, 8064, 7808, 6528, 6272, 7040, 6784,
	2752, 2624, 3008, 2880, 2240, 2112, 2496, 2368,
	3776, 3648, 4032, 3904, 3264, 3136, 3520, 3392,
	22016, 20992, 24064, 23040, 17920, 16896, 19968, 18944,
	30208, 29184, 32256, 31232, 26112, 25088, 28160, 27136,
	11008, 10496, 12032, 11520, 8960, 8448, 9984, 9472,
	15104, 14592, 16128, 15616, 13056, 12544, 14080, 13568,
	344, 328, 376, 360, 280, 264, 312, 296,
	472, 456, 504, 488, 408, 392, 440, 424,
	88, 72, 120, 104, 24, 8, 56, 40,
	216, 200, 248, 232, 152, 136, 184, 168,
	1376, 1312, 1504, 1440, 1120, 1056, 1248, 1184,
	1888, 1824, 2016, 1952, 1632, 1568, 1760, 1696,
	688, 656, 752, 720, 560, 528, 624, 592,
	944, 912, 1008, 976, 816, 784, 880, 848,
}

// g711SegmentTable[k] is the bit length of k: it gives the segment
// (exponent) of a magnitude from its top seven bits without a loop.
var g711SegmentTable = [128]uint8{
	0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
	6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
}

// pcmuFromLinear encodes one sample as mu-law (G.191 ulaw_compress).
func pcmuFromLinear(x int16) byte {
	m := int32(x)
	if m < 0 {
		m = ^m
	}
	// 14-bit magnitude plus the mu-law bias of 33, clipped to 13 bits.
	m = m>>2 + 33
	if m > 0x1FFF {
		m = 0x1FFF
	}
	seg := int32(g711SegmentTable[m>>6]) + 1
	code := byte((8-seg)<<4) | byte(15-(m>>seg)&15)
	if x >= 0 {
		code |= 0x80
	}
	return code
}

// pcmuToLinear decodes one mu-law byte.
func pcmuToLinear(b byte) int16 { return pcmuLinearTable[b] }

// pcmaFromLinear encodes one sample as A-law (G.191 alaw_compress).
func pcmaFromLinear(x int16) byte {
	m := int32(x)
	if m < 0 {
		m = ^m
	}
	m >>= 4 // 12-bit magnitude, 0..2047
	seg := int32(g711SegmentTable[m>>4])
	var code byte
	if seg == 0 {
		code = byte(m)
	} else {
		code = byte(seg<<4) | byte(m>>(seg-1)&15)
	}
	if x >= 0 {
		code |= 0x80
	}
	// Even bits are inverted on the wire so that silence (small values)
	// is not a run of zeros.
	return code ^ 0x55
}

// pcmaToLinear decodes one A-law byte.
func pcmaToLinear(b byte) int16 { return pcmaLinearTable[b] }

// g711Codec is what loading a prompt needs to know about a call's codec.
type g711Codec struct {
	name    string // SDP encoding name, canonical case
	pt      uint8  // static RTP payload type (RFC 3551)
	silence byte   // encoding of 0, used to pad the last frame
	encode  func(int16) byte
	decode  func(byte) int16
}

// lookupG711Codec accepts the encoding name in any case, as SDP rtpmap
// names are case-insensitive.
func lookupG711Codec(name string) (g711Codec, bool) {
	switch {
	case strings.EqualFold(name, "PCMU"):
		return g711Codec{name: "PCMU", pt: 0, silence: 0xFF, encode: pcmuFromLinear, decode: pcmuToLinear}, true
	case strings.EqualFold(name, "PCMA"):
		return g711Codec{name: "PCMA", pt: 8, silence: 0xD5, encode: pcmaFromLinear, decode: pcmaToLinear}, true
	}
	return g711Codec{}, false
}

// linear is the decoding table, for loops that decode a whole payload
// without a function call per sample.
func (c g711Codec) linear() *[256]int16 {
	if c.pt == 8 {
		return &pcmaLinearTable
	}
	return &pcmuLinearTable
}

// decodeG711 appends the samples of payload to dst. It allocates only when
// dst has no room for them.
func decodeG711(c g711Codec, dst []int16, payload []byte) []int16 {
	tab := c.linear()
	dst = slices.Grow(dst, len(payload))
	for _, b := range payload {
		dst = append(dst, tab[b])
	}
	return dst
}

// DecodeG711 appends to dst the 16-bit linear samples of a G.711 payload in
// codec, the SDP encoding name "PCMU" or "PCMA" (any case), one sample per
// byte, and returns the extended slice. It allocates only when dst has no
// room for them. An unknown codec is an error and leaves dst unchanged.
func DecodeG711(codec string, dst []int16, payload []byte) ([]int16, error) {
	c, ok := lookupG711Codec(codec)
	if !ok {
		return dst, fmt.Errorf("media: codec %q is not PCMU or PCMA", codec)
	}
	return decodeG711(c, dst, payload), nil
}
