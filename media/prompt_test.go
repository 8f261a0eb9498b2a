package media

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func promptReadOK(t *testing.T, data []byte, codec string) *Prompt {
	t.Helper()
	p, err := ReadPrompt("test.wav", data, codec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPromptFramesAndPadding(t *testing.T) {
	x := make([]int16, 200)
	for i := range x {
		x[i] = int16(i * 100)
	}
	wav := makeWAV(wavMono8k(16), wavPCM16(x...))
	for _, c := range []struct {
		codec   string
		pt      uint8
		silence byte
		enc     func(int16) byte
	}{{"PCMU", 0, 0xFF, pcmuFromLinear}, {"PCMA", 8, 0xD5, pcmaFromLinear}} {
		p := promptReadOK(t, wav, c.codec)
		if p.Codec() != c.codec || p.PayloadType() != c.pt || p.Name() != "test.wav" {
			t.Errorf("%s: codec %q pt %d name %q", c.codec, p.Codec(), p.PayloadType(), p.Name())
		}
		if p.Frames() != 2 || p.Duration() != 25*time.Millisecond {
			t.Fatalf("%s: %d frames, %v; want 2, 25ms", c.codec, p.Frames(), p.Duration())
		}
		for i := 0; i < 320; i++ {
			f := p.Frame(i / 160)
			if len(f) != 160 || cap(f) != 160 {
				t.Fatalf("frame len %d cap %d", len(f), cap(f))
			}
			want := c.silence
			if i < len(x) {
				want = c.enc(x[i])
			}
			if got := f[i%160]; got != want {
				t.Fatalf("%s: byte %d = %#02x, want %#02x", c.codec, i, got, want)
			}
		}
	}
}

func TestPromptCodecName(t *testing.T) {
	wav := makeWAV(wavMono8k(16), wavPCM16(1, 2, 3))
	if p := promptReadOK(t, wav, "pcma"); p.Codec() != "PCMA" {
		t.Errorf("pcma gave %q", p.Codec())
	}
	for _, c := range []string{"G722", "", "opus"} {
		if _, err := ReadPrompt("x.wav", wav, c); err == nil || !strings.Contains(err.Error(), "x.wav") {
			t.Errorf("codec %q: err %v", c, err)
		}
	}
	if _, err := LoadPrompt("no-such.wav", "G729"); err == nil || !strings.Contains(err.Error(), "no-such.wav") {
		t.Errorf("bad codec on a missing file: err %v", err)
	}
}

// A G.711 file in the call's own codec is sent byte for byte; in the other
// law it is transcoded through linear.
func TestPromptG711PassThroughAndTranscode(t *testing.T) {
	u := make([]byte, 256)
	for i := range u {
		u[i] = byte(i)
	}
	wav := makeWAV(wavSpec{tag: wavFormatMuLaw, channels: 1, rate: 8000, bits: 8}, u)
	p := promptReadOK(t, wav, "PCMU")
	for i, b := range u {
		if got := p.Frame(i / 160)[i%160]; got != b {
			t.Fatalf("byte %d = %#02x, want %#02x unchanged", i, got, b)
		}
	}
	p = promptReadOK(t, wav, "PCMA")
	for i, b := range u {
		if got, want := p.Frame(i / 160)[i%160], pcmaFromLinear(pcmuToLinear(b)); got != want {
			t.Fatalf("byte %d = %#02x, want %#02x", i, got, want)
		}
	}
}

func TestLoadPromptErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "welcome.wav")
	if err := os.WriteFile(bad, []byte("<html>not audio</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{bad, filepath.Join(dir, "missing.wav")} {
		if _, err := LoadPrompt(path, "PCMU"); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err %v", path, err)
		}
	}
}

// Files written by sox, as a user's own recordings would be: 44.1 kHz
// stereo, 24-bit WAVE_FORMAT_EXTENSIBLE at 48 kHz with a fact chunk, and
// both G.711 laws with a fact chunk.
func TestLoadPromptRealFiles(t *testing.T) {
	for _, c := range []struct {
		file string
		dur  time.Duration
	}{
		{"tone-44k1-stereo.wav", 200 * time.Millisecond},
		{"tone-48k-24bit.wav", 200 * time.Millisecond},
		{"tone-alaw.wav", 250 * time.Millisecond},
		{"tone-ulaw.wav", 250 * time.Millisecond},
	} {
		for _, codec := range []string{"PCMU", "PCMA"} {
			p, err := LoadPrompt(filepath.Join("testdata", c.file), codec)
			if err != nil {
				t.Error(err)
				continue
			}
			if p.Duration() != c.dur {
				t.Errorf("%s: duration %v, want %v", c.file, p.Duration(), c.dur)
			}
			// The tones are at half scale: after decoding, the level
			// must be there, not lost to a mis-read format.
			lin := promptDecodeFrames(p)
			want := 16384 / math.Sqrt2
			if r := resampleRMS(lin[len(lin)/4 : len(lin)*3/4]); math.Abs(r-want) > want/10 {
				t.Errorf("%s as %s: RMS %.0f, want %.0f", c.file, codec, r, want)
			}
		}
	}
}

func promptDecodeFrames(p *Prompt) []float64 {
	var x []float64
	for i := range p.Frames() {
		for _, b := range p.Frame(i) {
			x = append(x, float64(p.codec.decode(b)))
		}
	}
	return x
}

// The prompts that ship in prompts/ are what the example configuration
// plays, so each must load for both codecs and be of a plausible length
// and loudness.
func TestShippedPrompts(t *testing.T) {
	want := map[string][2]time.Duration{
		"welcome.wav":           {time.Second, 8 * time.Second},
		"sales-menu.wav":        {2 * time.Second, 10 * time.Second},
		"invalid.wav":           {time.Second, 6 * time.Second},
		"goodbye.wav":           {500 * time.Millisecond, 3 * time.Second},
		"recording-notice.wav":  {2 * time.Second, 8 * time.Second},
		"recording-consent.wav": {2 * time.Second, 10 * time.Second},
		"hold-music.wav":        {8 * time.Second, 30 * time.Second},
	}
	files, err := filepath.Glob(filepath.Join("..", "prompts", "*.wav"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		base := filepath.Base(f)
		seen[base] = true
		for _, codec := range []string{"PCMU", "PCMA"} {
			p, err := LoadPrompt(f, codec)
			if err != nil {
				t.Error(err)
				continue
			}
			lo, hi := time.Second/2, 60*time.Second
			if w, ok := want[base]; ok {
				lo, hi = w[0], w[1]
			}
			if d := p.Duration(); d < lo || d > hi {
				t.Errorf("%s: %v long, want %v to %v", f, d, lo, hi)
			}
			if r := resampleRMS(promptDecodeFrames(p)); r < 500 {
				t.Errorf("%s as %s: RMS %.0f, nearly silent", f, codec, r)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("prompts/%s is missing (scripts/make-prompts.sh makes it)", name)
		}
	}
}
