package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// WAVE format tags (RFC 2361, mmreg.h).
const (
	wavFormatPCM        = 0x0001
	wavFormatFloat      = 0x0003
	wavFormatALaw       = 0x0006
	wavFormatMuLaw      = 0x0007
	wavFormatExtensible = 0xFFFE
)

// wavSubformatTail is bytes 2..15 of every KSDATAFORMAT_SUBTYPE_* GUID
// derived from a format tag; the first two bytes are the tag itself.
var wavSubformatTail = [14]byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

const (
	promptRate = 8000
	// Rates outside these bounds are almost certainly a corrupt header;
	// in between, the resampler decides which ratios it can do.
	wavMinRate     = 8000
	wavMaxRate     = 192000
	wavMaxChannels = 8
	// wavStreamedSize is what writers that cannot seek back (ffmpeg to
	// a pipe, some recorders) leave as the data chunk's size.
	wavStreamedSize = 0xFFFFFFFF
)

// wavFormat is a WAV file's fmt chunk, reduced to what decoding needs.
type wavFormat struct {
	tag      uint16 // the real format, with WAVE_FORMAT_EXTENSIBLE resolved
	channels int
	rate     int
	bits     int
}

// wavError prefixes every problem with the file's name: prompts are named
// in a configuration file, and "unsupported format" alone would not say
// which of several prompts to fix.
func wavError(name, format string, args ...any) error {
	return fmt.Errorf("prompt %s: %s", name, fmt.Sprintf(format, args...))
}

// parseWAV walks the RIFF chunks and returns the format and the audio
// bytes (whole sample frames only). It does not copy data.
func parseWAV(name string, data []byte) (wavFormat, []byte, error) {
	var f wavFormat
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		switch {
		case len(data) >= 4 && (string(data[0:4]) == "RIFX" || string(data[0:4]) == "RF64"):
			return f, nil, wavError(name, "%s (big-endian or 64-bit) WAV is not supported; convert to a plain RIFF WAV", data[0:4])
		case len(data) >= 4 && string(data[0:4]) == "RIFF":
			return f, nil, wavError(name, "RIFF file is not WAVE audio")
		}
		return f, nil, wavError(name, "not a WAV file (no RIFF/WAVE header)")
	}
	var (
		haveFmt, haveData bool
		audio             []byte
	)
	// The RIFF size field is ignored: it is often wrong (streamed
	// files), and the chunks themselves say where the data is.
	for off := 12; off+8 <= len(data) && !(haveFmt && haveData); {
		id := string(data[off : off+4])
		size := binary.LittleEndian.Uint32(data[off+4 : off+8])
		body := data[off+8:]
		switch {
		case id == "data" && size == wavStreamedSize:
			size = uint32(len(body))
		case uint64(size) > uint64(len(body)):
			return f, nil, wavError(name, "truncated: %q chunk declares %d bytes, only %d present", id, size, len(body))
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if haveFmt {
				return f, nil, wavError(name, "two fmt chunks")
			}
			var err error
			if f, err = parseWAVFormat(body); err != nil {
				return f, nil, wavError(name, "%v", err)
			}
			haveFmt = true
		case "data":
			if haveData {
				return f, nil, wavError(name, "two data chunks")
			}
			audio, haveData = body, true
		}
		// Chunks are word-aligned: an odd-sized chunk is followed by a
		// pad byte that its size does not count.
		off += 8 + int(size) + int(size&1)
	}
	switch {
	case !haveFmt:
		return f, nil, wavError(name, "no fmt chunk (truncated or not a WAV file)")
	case !haveData:
		return f, nil, wavError(name, "no data chunk (truncated?)")
	}
	frame := f.channels * f.bits / 8
	audio = audio[:len(audio)/frame*frame]
	if len(audio) == 0 {
		return f, nil, wavError(name, "no audio data")
	}
	return f, audio, nil
}

func parseWAVFormat(b []byte) (wavFormat, error) {
	if len(b) < 16 {
		return wavFormat{}, fmt.Errorf("fmt chunk too short (%d bytes)", len(b))
	}
	f := wavFormat{
		tag:      binary.LittleEndian.Uint16(b[0:2]),
		channels: int(binary.LittleEndian.Uint16(b[2:4])),
		rate:     int(binary.LittleEndian.Uint32(b[4:8])),
		bits:     int(binary.LittleEndian.Uint16(b[14:16])),
	}
	if f.tag == wavFormatExtensible {
		// cbSize(2) validBits(2) channelMask(4) subformat GUID(16).
		if len(b) < 40 {
			return f, fmt.Errorf("WAVE_FORMAT_EXTENSIBLE fmt chunk too short (%d bytes)", len(b))
		}
		guid := b[24:40]
		if [14]byte(guid[2:]) != wavSubformatTail {
			return f, errors.New("WAVE_FORMAT_EXTENSIBLE with an unknown subformat; only PCM, float, A-law and mu-law are supported")
		}
		f.tag = binary.LittleEndian.Uint16(guid[0:2])
		// validBits below the container size (24 in 32) needs nothing
		// special: samples are left-justified, so the container is read.
	}
	switch f.tag {
	case wavFormatPCM:
		if f.bits != 8 && f.bits != 16 && f.bits != 24 && f.bits != 32 {
			return f, fmt.Errorf("unsupported bit depth: %d-bit PCM (8, 16, 24 and 32 are supported)", f.bits)
		}
	case wavFormatFloat:
		if f.bits != 32 && f.bits != 64 {
			return f, fmt.Errorf("unsupported bit depth: %d-bit float (32 and 64 are supported)", f.bits)
		}
	case wavFormatALaw, wavFormatMuLaw:
		if f.bits != 8 {
			return f, fmt.Errorf("unsupported bit depth: %d-bit G.711 (must be 8)", f.bits)
		}
	default:
		return f, fmt.Errorf("unsupported format tag %#04x (%s); convert to 16-bit PCM, e.g. sox in.wav -r 8000 -c 1 -b 16 -e signed-integer out.wav", f.tag, wavFormatName(f.tag))
	}
	if f.channels < 1 || f.channels > wavMaxChannels {
		return f, fmt.Errorf("unsupported channel count %d", f.channels)
	}
	if f.rate < wavMinRate || f.rate > wavMaxRate {
		return f, fmt.Errorf("unsupported sample rate %d Hz (8000 Hz is used as is, 11025 to 192000 Hz is resampled)", f.rate)
	}
	return f, nil
}

func wavFormatName(tag uint16) string {
	switch tag {
	case 0x0002:
		return "MS ADPCM"
	case 0x0011:
		return "IMA ADPCM"
	case 0x0031:
		return "GSM 6.10"
	case 0x0055:
		return "MP3"
	}
	return "compressed or unknown"
}

// decodeWAV returns the file's audio as mono, 8 kHz samples on the int16
// scale (not yet rounded or clipped).
func decodeWAV(name string, data []byte) ([]float64, error) {
	f, audio, err := parseWAV(name, data)
	if err != nil {
		return nil, err
	}
	return wavToMono8k(name, f, audio)
}

func wavToMono8k(name string, f wavFormat, audio []byte) ([]float64, error) {
	width := f.bits / 8
	n := len(audio) / (width * f.channels)
	mono := make([]float64, n)
	// Downmixing by averaging cannot clip, and a stereo prompt is almost
	// always the same voice on both channels.
	scale := 1 / float64(f.channels)
	for i := range mono {
		var sum float64
		for c := 0; c < f.channels; c++ {
			off := (i*f.channels + c) * width
			sum += wavSample(f, audio[off:off+width])
		}
		mono[i] = sum * scale
	}
	if f.rate == promptRate {
		return mono, nil
	}
	r, err := newResampler(f.rate, promptRate)
	if err != nil {
		return nil, wavError(name, "unsupported sample rate %d Hz: %v", f.rate, err)
	}
	return r.process(mono), nil
}

// wavSample converts one sample to the int16 scale.
func wavSample(f wavFormat, b []byte) float64 {
	switch f.tag {
	case wavFormatALaw:
		return float64(pcmaToLinear(b[0]))
	case wavFormatMuLaw:
		return float64(pcmuToLinear(b[0]))
	case wavFormatFloat:
		if f.bits == 64 {
			return math.Float64frombits(binary.LittleEndian.Uint64(b)) * 32768
		}
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))) * 32768
	}
	switch f.bits {
	case 8: // the only unsigned PCM width
		return float64(int(b[0])-128) * 256
	case 16:
		return float64(int16(binary.LittleEndian.Uint16(b)))
	case 24:
		return float64(int32(uint32(b[0])<<8|uint32(b[1])<<16|uint32(b[2])<<24)) / 65536
	default:
		return float64(int32(binary.LittleEndian.Uint32(b))) / 65536
	}
}

// DecodeWAV returns a WAV file's audio as 8 kHz mono 16-bit samples, the
// form every prompt is reduced to before it is encoded for a call: other
// rates are resampled and multi-channel audio is averaged. name appears in
// errors.
func DecodeWAV(name string, data []byte) ([]int16, error) {
	x, err := decodeWAV(name, data)
	if err != nil {
		return nil, err
	}
	out := make([]int16, len(x))
	for i, v := range x {
		out[i] = clip16(v)
	}
	return out, nil
}

// clip16 rounds to the nearest int16; resampling overshoot and float
// sources can exceed full scale slightly.
func clip16(v float64) int16 {
	v = math.Round(v)
	if v > math.MaxInt16 {
		return math.MaxInt16
	}
	if v < math.MinInt16 {
		return math.MinInt16
	}
	return int16(v)
}
