package media

import (
	"fmt"
	"os"
	"time"
)

const (
	// promptFrameLen is one 20 ms G.711 frame: 160 samples, one byte each.
	promptFrameLen = 160
	promptPtime    = 20 * time.Millisecond
	// promptMaxFileSize keeps a mistyped path (a video, a disk image)
	// from being read whole into memory; six minutes of 44.1 kHz stereo
	// is about 64 MB.
	promptMaxFileSize = 128 << 20
)

// Prompt is audio ready to be sent to a caller: decoded, resampled and
// encoded into one codec when it is loaded, so that playing it costs no
// more per packet than relaying. A Prompt is immutable and may be played on
// any number of calls at once.
type Prompt struct {
	name    string
	codec   g711Codec
	payload []byte // whole frames; the last one padded with silence
	samples int    // real audio samples, without the padding
}

// LoadPrompt reads a WAV file and encodes it for a call using codec, the
// SDP encoding name "PCMU" or "PCMA". Accepted: PCM (8, 16, 24, 32-bit),
// float, A-law and mu-law WAV, including WAVE_FORMAT_EXTENSIBLE, any number
// of channels up to 8 (averaged to mono), at 8 kHz or at a common higher
// rate (11.025, 16, 22.05, 24, 32, 44.1, 48, 96 kHz ...), which is
// resampled. Errors name the file.
func LoadPrompt(path, codec string) (*Prompt, error) {
	if _, ok := lookupG711Codec(codec); !ok {
		return nil, fmt.Errorf("prompt %s: codec %q is not PCMU or PCMA", path, codec)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", err)
	}
	if fi.Size() > promptMaxFileSize {
		return nil, fmt.Errorf("prompt %s: file is %d bytes, more than the %d a prompt may have", path, fi.Size(), promptMaxFileSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", err)
	}
	return ReadPrompt(path, data, codec)
}

// ReadPrompt is LoadPrompt for a WAV file already in memory, e.g. embedded
// in the binary; name is used in errors and by Name.
func ReadPrompt(name string, data []byte, codec string) (*Prompt, error) {
	c, ok := lookupG711Codec(codec)
	if !ok {
		return nil, fmt.Errorf("prompt %s: codec %q is not PCMU or PCMA", name, codec)
	}
	f, audio, err := parseWAV(name, data)
	if err != nil {
		return nil, err
	}
	p := &Prompt{name: name, codec: c}
	if f.rate == promptRate && f.channels == 1 && f.tag == g711WAVTag(c) {
		// Already in the call's codec: copied as is, since decoding and
		// re-encoding would only risk changing it.
		p.samples = len(audio)
		p.payload = make([]byte, frameCeil(len(audio)))
		copy(p.payload, audio)
	} else {
		x, err := wavToMono8k(name, f, audio)
		if err != nil {
			return nil, err
		}
		p.samples = len(x)
		p.payload = make([]byte, frameCeil(len(x)))
		for i, v := range x {
			p.payload[i] = c.encode(clip16(v))
		}
	}
	if p.samples == 0 {
		return nil, wavError(name, "no audio data")
	}
	for i := p.samples; i < len(p.payload); i++ {
		p.payload[i] = c.silence
	}
	return p, nil
}

func g711WAVTag(c g711Codec) uint16 {
	if c.name == "PCMA" {
		return wavFormatALaw
	}
	return wavFormatMuLaw
}

// frameCeil rounds a sample count up to whole frames.
func frameCeil(n int) int {
	return (n + promptFrameLen - 1) / promptFrameLen * promptFrameLen
}

// Name is the path or name the prompt was loaded from.
func (p *Prompt) Name() string { return p.name }

// Codec is the SDP encoding name the prompt is encoded in, "PCMU" or "PCMA".
func (p *Prompt) Codec() string { return p.codec.name }

// PayloadType is the codec's static RTP payload type: 0 for PCMU, 8 for PCMA.
func (p *Prompt) PayloadType() uint8 { return p.codec.pt }

// Frames is the number of 20 ms frames.
func (p *Prompt) Frames() int { return len(p.payload) / promptFrameLen }

// Frame returns the encoded payload of frame i, 160 bytes. It is shared by
// every call playing the prompt and must not be modified.
func (p *Prompt) Frame(i int) []byte {
	off := i * promptFrameLen
	// The capacity limit stops an append by a caller from writing into
	// the next frame.
	return p.payload[off : off+promptFrameLen : off+promptFrameLen]
}

// Duration is the length of the audio itself; playing it takes Frames
// times 20 ms, the last frame being padded with silence.
func (p *Prompt) Duration() time.Duration {
	return time.Duration(p.samples) * time.Second / promptRate
}
