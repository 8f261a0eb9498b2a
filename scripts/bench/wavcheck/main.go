// Command wavcheck checks the finished recordings under a directory (an
// edge's storage.dir/recordings), as scripts/bench-load.sh does after a
// FLOW=record step. For every <call id>.wav it checks:
//
//   - the header: RIFF, WAVE, a 16-byte fmt chunk of PCM, 2 channels,
//     8000 Hz, 32,000 bytes/s, 4-byte frames, 16 bits, then the data
//     chunk; the RIFF size is the file's length less 8 and the data size
//     its length less 44 (a whole number of frames);
//   - its sidecar <call id>.json: the sha256 of the whole file, the
//     duration (duration_ms against the data size, within 1 ms) and the
//     path (the file's own, absolute);
//   - the audio: the share of frames with sound (a sample other than 0;
//     A-law silence decodes to ±8, so 0 is where no packet landed) on the
//     left channel (the caller) and on the right (the agent).
//
// It prints one line of key=value for the script, then, on stderr, the
// first problems found.
//
// Usage: go run ./scripts/bench/wavcheck DIR
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const (
	headerSize = 44
	frameBytes = 4
	byteRate   = 32000
	maxReports = 10
)

type sidecar struct {
	DurationMS int64  `json:"duration_ms"`
	SHA256     string `json:"sha256"`
	Path       string `json:"path"`
}

type totals struct {
	files, headerOK, sidecarOK, shaOK, durationOK, pathOK, partFiles int
	wavBytes, jsonBytes, frames                                      int64
	soundLeft, soundRight                                            int64
	withLeft, withRight                                              int
	coverLeft, coverRight                                            []float64
	problems                                                         []string
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: wavcheck DIR")
		os.Exit(2)
	}
	root, err := filepath.Abs(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "wavcheck:", err)
		os.Exit(1)
	}
	var t totals
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
		case strings.HasSuffix(path, ".part"):
			t.partFiles++
		case strings.HasSuffix(path, ".json"):
			if info, err := d.Info(); err == nil {
				t.jsonBytes += info.Size()
			}
		case strings.HasSuffix(path, ".wav"):
			t.check(path)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "wavcheck:", err)
		os.Exit(1)
	}
	fmt.Printf("files=%d header_ok=%d sidecar_ok=%d sha256_ok=%d duration_ok=%d path_ok=%d part_files=%d wav_bytes=%d json_bytes=%d seconds=%.1f with_sound_caller=%d with_sound_agent=%d sound_caller_pct=%.2f sound_agent_pct=%.2f min_sound_caller_pct=%.2f min_sound_agent_pct=%.2f\n",
		t.files, t.headerOK, t.sidecarOK, t.shaOK, t.durationOK, t.pathOK, t.partFiles, t.wavBytes, t.jsonBytes,
		float64(t.frames)*frameBytes/byteRate, t.withLeft, t.withRight,
		pct(t.soundLeft, t.frames), pct(t.soundRight, t.frames), lowest(t.coverLeft), lowest(t.coverRight))
	for _, p := range t.problems {
		fmt.Fprintln(os.Stderr, "wavcheck:", p)
	}
	if t.headerOK != t.files || t.shaOK != t.files || t.durationOK != t.files || t.pathOK != t.files {
		os.Exit(1)
	}
}

func (t *totals) problem(format string, a ...any) {
	if len(t.problems) < maxReports {
		t.problems = append(t.problems, fmt.Sprintf(format, a...))
	}
}

func (t *totals) check(path string) {
	t.files++
	b, err := os.ReadFile(path)
	if err != nil {
		t.problem("%s: %v", path, err)
		return
	}
	t.wavBytes += int64(len(b))
	if msg := header(b); msg != "" {
		t.problem("%s: %s", path, msg)
		return
	}
	t.headerOK++
	data := b[headerSize:]
	frames := int64(len(data) / frameBytes)
	t.frames += frames
	var left, right int64
	for i := 0; i+frameBytes <= len(data); i += frameBytes {
		if data[i] != 0 || data[i+1] != 0 {
			left++
		}
		if data[i+2] != 0 || data[i+3] != 0 {
			right++
		}
	}
	t.soundLeft += left
	t.soundRight += right
	if left > 0 {
		t.withLeft++
	}
	if right > 0 {
		t.withRight++
	}
	if frames > 0 {
		t.coverLeft = append(t.coverLeft, 100*float64(left)/float64(frames))
		t.coverRight = append(t.coverRight, 100*float64(right)/float64(frames))
	}

	js, err := os.ReadFile(strings.TrimSuffix(path, ".wav") + ".json")
	var sc sidecar
	if err == nil {
		err = json.Unmarshal(js, &sc)
	}
	if err != nil {
		t.problem("%s: sidecar: %v", path, err)
		return
	}
	t.sidecarOK++
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) == sc.SHA256 {
		t.shaOK++
	} else {
		t.problem("%s: sha256 %x, the sidecar says %s", path, sum, sc.SHA256)
	}
	if ms := int64(len(data)) * 1000 / byteRate; abs(ms-sc.DurationMS) <= 1 {
		t.durationOK++
	} else {
		t.problem("%s: %d ms of data, the sidecar says %d", path, ms, sc.DurationMS)
	}
	if sc.Path == path {
		t.pathOK++
	} else {
		t.problem("%s: the sidecar's path is %s", path, sc.Path)
	}
}

// header says what is wrong with a WAV header for the file b, "" if nothing.
func header(b []byte) string {
	if len(b) < headerSize {
		return fmt.Sprintf("%d bytes, shorter than a header", len(b))
	}
	le := binary.LittleEndian
	n := uint32(len(b))
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"RIFF tag", string(b[0:4]), "RIFF"},
		{"RIFF size", le.Uint32(b[4:]), n - 8},
		{"WAVE tag", string(b[8:12]), "WAVE"},
		{"fmt tag", string(b[12:16]), "fmt "},
		{"fmt size", le.Uint32(b[16:]), uint32(16)},
		{"format", le.Uint16(b[20:]), uint16(1)},
		{"channels", le.Uint16(b[22:]), uint16(2)},
		{"sample rate", le.Uint32(b[24:]), uint32(8000)},
		{"byte rate", le.Uint32(b[28:]), uint32(byteRate)},
		{"block align", le.Uint16(b[32:]), uint16(frameBytes)},
		{"bits per sample", le.Uint16(b[34:]), uint16(16)},
		{"data tag", string(b[36:40]), "data"},
		{"data size", le.Uint32(b[40:]), n - headerSize},
		{"data size modulo a frame", (n - headerSize) % frameBytes, uint32(0)},
	} {
		if c.got != c.want {
			return fmt.Sprintf("%s is %v, want %v", c.what, c.got, c.want)
		}
	}
	return ""
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func lowest(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Min(v)
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
