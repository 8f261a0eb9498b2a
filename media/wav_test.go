package media

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

// wavSpec describes a WAV file for makeWAV to build, so the parser is
// tested on exactly the layouts the RIFF/WAVE format allows, not only on what one tool
// happens to write.
type wavSpec struct {
	tag        uint16
	channels   int
	rate       int
	bits       int
	extensible bool
	guidTail   []byte // overrides the subformat GUID's tail
	before     [][]byte
	between    [][]byte // chunks between fmt and data
	after      [][]byte
	dataSize   *uint32 // overrides the data chunk's declared size
}

func wavChunk(id string, body []byte) []byte {
	b := append([]byte(id), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(body)))
	b = append(b, body...)
	if len(body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func makeWAV(s wavSpec, audio []byte) []byte {
	width := s.bits / 8
	fmtBody := binary.LittleEndian.AppendUint16(nil, s.tag)
	if s.extensible {
		fmtBody = binary.LittleEndian.AppendUint16(nil, wavFormatExtensible)
	}
	fmtBody = binary.LittleEndian.AppendUint16(fmtBody, uint16(s.channels))
	fmtBody = binary.LittleEndian.AppendUint32(fmtBody, uint32(s.rate))
	fmtBody = binary.LittleEndian.AppendUint32(fmtBody, uint32(s.rate*s.channels*width))
	fmtBody = binary.LittleEndian.AppendUint16(fmtBody, uint16(s.channels*width))
	fmtBody = binary.LittleEndian.AppendUint16(fmtBody, uint16(s.bits))
	if s.extensible {
		fmtBody = binary.LittleEndian.AppendUint16(fmtBody, 22)
		fmtBody = binary.LittleEndian.AppendUint16(fmtBody, uint16(s.bits))
		fmtBody = binary.LittleEndian.AppendUint32(fmtBody, 0)
		fmtBody = binary.LittleEndian.AppendUint16(fmtBody, s.tag)
		tail := wavSubformatTail[:]
		if s.guidTail != nil {
			tail = s.guidTail
		}
		fmtBody = append(fmtBody, tail...)
	}
	var body []byte
	body = append(body, "WAVE"...)
	for _, c := range s.before {
		body = append(body, c...)
	}
	body = append(body, wavChunk("fmt ", fmtBody)...)
	for _, c := range s.between {
		body = append(body, c...)
	}
	data := wavChunk("data", audio)
	if s.dataSize != nil {
		binary.LittleEndian.PutUint32(data[4:], *s.dataSize)
	}
	body = append(body, data...)
	for _, c := range s.after {
		body = append(body, c...)
	}
	return append(wavChunk("RIFF", body)[:8:8], body...)
}

func wavPCM16(x ...int16) []byte {
	var b []byte
	for _, v := range x {
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}

func wavMono8k(bits int) wavSpec {
	return wavSpec{tag: wavFormatPCM, channels: 1, rate: 8000, bits: bits}
}

func wavDecodeOK(t *testing.T, data []byte) []int16 {
	t.Helper()
	x, err := DecodeWAV("test.wav", data)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func wavEqual16(t *testing.T, got, want []int16) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d samples %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("sample %d = %d, want %d (got %v)", i, got[i], want[i], got)
		}
	}
}

var wavTestSamples = []int16{0, 1, -1, 1000, -1000, 32767, -32768, 12345}

func TestWAVPCM16(t *testing.T) {
	wavEqual16(t, wavDecodeOK(t, makeWAV(wavMono8k(16), wavPCM16(wavTestSamples...))), wavTestSamples)
}

// LIST (metadata written by most editors), fact and an odd-sized junk chunk
// with its pad byte, before fmt, between fmt and data, and after data.
func TestWAVSkipsUnknownAndOddChunks(t *testing.T) {
	s := wavMono8k(16)
	s.before = [][]byte{wavChunk("JUNK", []byte{1, 2, 3})}
	s.between = [][]byte{wavChunk("LIST", append([]byte("INFOISFT"), 5, 0, 0, 0, 's', 'o', 'x', '!', 0)), wavChunk("fact", []byte{4, 0, 0, 0})}
	s.after = [][]byte{wavChunk("LIST", []byte("INFOx"))}
	wavEqual16(t, wavDecodeOK(t, makeWAV(s, wavPCM16(wavTestSamples...))), wavTestSamples)

	// An odd-sized data chunk keeps its whole samples and ignores the
	// stray byte.
	odd := append(wavPCM16(wavTestSamples...), 0x7f)
	wavEqual16(t, wavDecodeOK(t, makeWAV(wavMono8k(16), odd)), wavTestSamples)
}

func TestWAVExtensible(t *testing.T) {
	s := wavMono8k(16)
	s.extensible = true
	wavEqual16(t, wavDecodeOK(t, makeWAV(s, wavPCM16(wavTestSamples...))), wavTestSamples)

	s.tag = wavFormatMuLaw
	s.bits = 8
	u := []byte{0xFF, 0x80, 0x00}
	wavEqual16(t, wavDecodeOK(t, makeWAV(s, u)), []int16{0, 32124, -32124})

	s = wavMono8k(16)
	s.extensible = true
	s.guidTail = bytes.Repeat([]byte{0xAB}, 14)
	if _, err := DecodeWAV("x.wav", makeWAV(s, wavPCM16(wavTestSamples...))); err == nil || !strings.Contains(err.Error(), "subformat") {
		t.Errorf("unknown subformat: err = %v", err)
	}
}

func TestWAVBitDepths(t *testing.T) {
	want := []int16{0, 256, -256, 32512, -32768}
	u8 := []byte{128, 129, 127, 255, 0}
	wavEqual16(t, wavDecodeOK(t, makeWAV(wavMono8k(8), u8)), want)

	var s24, s32, f32, f64 []byte
	for _, v := range want {
		x := int32(v) << 16
		s24 = append(s24, byte(x>>8), byte(x>>16), byte(x>>24))
		s32 = binary.LittleEndian.AppendUint32(s32, uint32(x))
		f32 = binary.LittleEndian.AppendUint32(f32, math.Float32bits(float32(v)/32768))
		f64 = binary.LittleEndian.AppendUint64(f64, math.Float64bits(float64(v)/32768))
	}
	wavEqual16(t, wavDecodeOK(t, makeWAV(wavMono8k(24), s24)), want)
	wavEqual16(t, wavDecodeOK(t, makeWAV(wavMono8k(32), s32)), want)
	fl := wavSpec{tag: wavFormatFloat, channels: 1, rate: 8000, bits: 32}
	wavEqual16(t, wavDecodeOK(t, makeWAV(fl, f32)), want)
	fl.bits = 64
	wavEqual16(t, wavDecodeOK(t, makeWAV(fl, f64)), want)

	// Float beyond full scale clips instead of wrapping.
	over := binary.LittleEndian.AppendUint32(nil, math.Float32bits(1.5))
	over = binary.LittleEndian.AppendUint32(over, math.Float32bits(-1.5))
	fl.bits = 32
	wavEqual16(t, wavDecodeOK(t, makeWAV(fl, over)), []int16{32767, -32768})
}

func TestWAVG711(t *testing.T) {
	a := wavSpec{tag: wavFormatALaw, channels: 1, rate: 8000, bits: 8}
	wavEqual16(t, wavDecodeOK(t, makeWAV(a, []byte{0xD5, 0x55, 0xAA})), []int16{8, -8, 32256})
	u := wavSpec{tag: wavFormatMuLaw, channels: 1, rate: 8000, bits: 8}
	wavEqual16(t, wavDecodeOK(t, makeWAV(u, []byte{0xFF, 0x00})), []int16{0, -32124})
}

func TestWAVStereoDownmix(t *testing.T) {
	s := wavSpec{tag: wavFormatPCM, channels: 2, rate: 8000, bits: 16}
	got := wavDecodeOK(t, makeWAV(s, wavPCM16(1000, 3000, -2000, 0, 32767, 32767, -32768, -32768)))
	wavEqual16(t, got, []int16{2000, -1000, 32767, -32768})
}

// sox and ffmpeg writing to a pipe cannot go back to fill in the size.
func TestWAVStreamedDataSize(t *testing.T) {
	s := wavMono8k(16)
	size := uint32(wavStreamedSize)
	s.dataSize = &size
	wavEqual16(t, wavDecodeOK(t, makeWAV(s, wavPCM16(wavTestSamples...))), wavTestSamples)
}

func TestWAVResamples(t *testing.T) {
	s := wavSpec{tag: wavFormatPCM, channels: 2, rate: 44100, bits: 16}
	var audio []byte
	for i := range 44100 {
		v := int16(math.Round(8000 * math.Sin(2*math.Pi*440*float64(i)/44100)))
		audio = append(audio, wavPCM16(v, v)...)
	}
	got := wavDecodeOK(t, makeWAV(s, audio))
	if len(got) != 8000 {
		t.Fatalf("1 s at 44.1 kHz gave %d samples at 8 kHz", len(got))
	}
	for i := 1000; i < 7000; i++ {
		want := 8000 * math.Sin(2*math.Pi*440*float64(i)/8000)
		if d := math.Abs(float64(got[i]) - want); d > 10 {
			t.Fatalf("sample %d = %d, want %.0f", i, got[i], want)
		}
	}
}

func TestWAVErrors(t *testing.T) {
	good := makeWAV(wavMono8k(16), wavPCM16(wavTestSamples...))
	with := func(f func(*wavSpec)) []byte {
		s := wavMono8k(16)
		f(&s)
		return makeWAV(s, wavPCM16(wavTestSamples...))
	}
	big := uint32(1000)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a WAV file"},
		{"mp3", []byte("ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), "not a WAV file"},
		{"avi", append([]byte("RIFF\x04\x00\x00\x00AVI "), good[12:]...), "not WAVE"},
		{"rifx", append([]byte("RIFX"), good[4:]...), "not supported"},
		{"header only", good[:12], "no fmt chunk"},
		{"cut in fmt", good[:30], "truncated"},
		{"cut in data", good[:len(good)-3], "truncated"},
		{"declared too long", with(func(s *wavSpec) { s.dataSize = &big }), "truncated"},
		{"no data chunk", good[:36], "no data chunk"},
		{"empty data", makeWAV(wavMono8k(16), nil), "no audio data"},
		{"half a sample", makeWAV(wavMono8k(16), []byte{1}), "no audio data"},
		{"adpcm", with(func(s *wavSpec) { s.tag = 2; s.bits = 4 }), "unsupported format tag 0x0002 (MS ADPCM)"},
		{"mp3 in wav", with(func(s *wavSpec) { s.tag = 0x55 }), "MP3"},
		{"12-bit", with(func(s *wavSpec) { s.bits = 12 }), "unsupported bit depth"},
		{"16-bit alaw", with(func(s *wavSpec) { s.tag = wavFormatALaw }), "unsupported bit depth"},
		{"16-bit float", with(func(s *wavSpec) { s.tag = wavFormatFloat }), "unsupported bit depth"},
		{"no channels", with(func(s *wavSpec) { s.channels = 0 }), "channel count 0"},
		{"too many channels", with(func(s *wavSpec) { s.channels = 9 }), "channel count 9"},
		{"6 kHz", with(func(s *wavSpec) { s.rate = 6000 }), "unsupported sample rate 6000"},
		{"odd rate", with(func(s *wavSpec) { s.rate = 8001 }), "unsupported sample rate 8001"},
		{"absurd rate", with(func(s *wavSpec) { s.rate = 1 << 30 }), "unsupported sample rate"},
		{"two fmt", with(func(s *wavSpec) { s.between = [][]byte{good[12:36]} }), "two fmt"},
	}
	for _, c := range cases {
		_, err := DecodeWAV("prompts/x.wav", c.data)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "prompts/x.wav") {
			t.Errorf("%s: error %q, want it to name the file and say %q", c.name, err, c.want)
		}
	}
}
