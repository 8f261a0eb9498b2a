package recording

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/media"
	"github.com/rs/zerolog"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func openStore(t testing.TB, dir string, c *clock) *Store {
	t.Helper()
	s, err := Open(dir, zerolog.Nop(), c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// g711 encodes linear samples by the nearest code of the decoder's own
// table, so that what the tests expect is exactly what decoding gives.
type g711 struct {
	codec  string
	values []int16 // sorted
	codes  []byte  // codes[i] decodes to values[i]
}

func newG711(t testing.TB, codec string) *g711 {
	t.Helper()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	lin, err := media.DecodeG711(codec, nil, all)
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, 256)
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return lin[idx[a]] < lin[idx[b]] })
	g := &g711{codec: codec}
	for _, i := range idx {
		g.values = append(g.values, lin[i])
		g.codes = append(g.codes, byte(i))
	}
	return g
}

func (g *g711) encode(x int16) byte {
	i := sort.Search(len(g.values), func(i int) bool { return g.values[i] >= x })
	if i == len(g.values) || i > 0 && int(x)-int(g.values[i-1]) < int(g.values[i])-int(x) {
		i--
	}
	return g.codes[i]
}

// decoded is what a sample becomes after encoding and decoding.
func (g *g711) decoded(x int16) int16 {
	out, _ := media.DecodeG711(g.codec, nil, []byte{g.encode(x)})
	return out[0]
}

func (g *g711) payload(signal func(n int64) int16, from int64, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = g.encode(signal(from + int64(i)))
	}
	return p
}

func rtpPacket(pt uint8, seq uint16, ts, ssrc uint32, payload []byte) []byte {
	p := make([]byte, 12, 12+len(payload))
	p[0] = 0x80
	p[1] = pt
	binary.BigEndian.PutUint16(p[2:], seq)
	binary.BigEndian.PutUint32(p[4:], ts)
	binary.BigEndian.PutUint32(p[8:], ssrc)
	return append(p, payload...)
}

func tone(freq, amp float64) func(int64) int16 {
	return func(n int64) int16 {
		return int16(amp * math.Sin(2*math.Pi*freq*float64(n)/sampleRate))
	}
}

// wavFile is a parsed recording.
type wavFile struct{ left, right []int16 }

func (w wavFile) frames() int { return len(w.left) }

// readWAV checks a finished recording is the canonical stereo 8 kHz 16-bit
// PCM WAV with consistent sizes, and returns its channels.
func readWAV(t *testing.T, path string) wavFile {
	t.Helper()
	x := readPCM(t, path, 2)
	var w wavFile
	for i := 0; i < len(x); i += 2 {
		w.left = append(w.left, x[i])
		w.right = append(w.right, x[i+1])
	}
	return w
}

// readPCM checks a finished file is the canonical 8 kHz 16-bit PCM WAV of
// nch channels with consistent sizes, and returns its samples, interleaved.
func readPCM(t *testing.T, path string, nch int) []int16 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" || string(b[12:16]) != "fmt " || string(b[36:40]) != "data" {
		t.Fatalf("%s: not a canonical WAV header: % x", path, b[:min(len(b), 44)])
	}
	le16 := func(o int) int { return int(binary.LittleEndian.Uint16(b[o:])) }
	le32 := func(o int) int { return int(binary.LittleEndian.Uint32(b[o:])) }
	if le32(16) != 16 || le16(20) != 1 || le16(22) != nch || le32(24) != 8000 || le32(28) != 16000*nch || le16(32) != 2*nch || le16(34) != 16 {
		t.Fatalf("%s: fmt is not PCM %d ch 8 kHz 16-bit: % x", path, nch, b[12:36])
	}
	data := le32(40)
	if le32(4) != 36+data || 44+data != len(b) || data%(2*nch) != 0 {
		t.Fatalf("%s: RIFF size %d, data size %d, file size %d: inconsistent", path, le32(4), data, len(b))
	}
	var x []int16
	for o := 44; o < len(b); o += 2 {
		x = append(x, int16(binary.LittleEndian.Uint16(b[o:])))
	}
	return x
}

// readJSON reads a recording's sidecar as a generic map, to check its shape
// as well as its values.
func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	return readFields(t, path, "call_id", "tracking_number", "source", "agent", "consent", "started_at", "ended_at", "duration_ms", "sha256", "path", "partial", "paused")
}

// readFields reads a sidecar as a generic map, checking it has exactly the
// fields want.
func readFields(t *testing.T, path string, want ...string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: fields %v, want %v", path, got, want)
	}
	return m
}

// wantSidecar reports the fields of the sidecar m that are not as in want.
func wantSidecar(t *testing.T, m, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if m[k] != w {
			t.Errorf("sidecar %s = %v, want %v", k, m[k], w)
		}
	}
}

func pausedJSON(m map[string]any) [][2]float64 {
	var out [][2]float64
	for _, p := range m["paused"].([]any) {
		o := p.(map[string]any)
		out = append(out, [2]float64{o["from_ms"].(float64), o["to_ms"].(float64)})
	}
	return out
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// goertzel is the power of x at freq.
func goertzel(x []int16, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/sampleRate)
	var s1, s2 float64
	for _, v := range x {
		s0 := float64(v) + k*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - k*s1*s2
}

// firstAbove is the first frame at or after from whose magnitude exceeds
// level, or -1.
func firstAbove(x []int16, from int, level int16) int {
	for i := from; i < len(x); i++ {
		if x[i] > level || x[i] < -level {
			return i
		}
	}
	return -1
}

func allZero(x []int16) bool {
	for _, v := range x {
		if v != 0 {
			return false
		}
	}
	return true
}

// files lists what is under dir, relative, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			if info.IsDir() {
				rel += "/"
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hasPart(names []string) bool {
	for _, n := range names {
		if strings.HasSuffix(n, ".part") || strings.HasSuffix(n, ".tmp") {
			return true
		}
	}
	return false
}

type atomicBool struct {
	mu sync.Mutex
	v  bool
}

func (a *atomicBool) flip() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.v = !a.v
	return a.v
}

// finishing is a recording or a voicemail.
type finishing[R any] interface{ Finish() (R, error) }

// secondLong is what start begins, with the clock at at, finished a
// second later.
func secondLong[R any, F finishing[R]](t *testing.T, c *clock, at time.Time, start func() F) R {
	t.Helper()
	c.Set(at)
	x := start()
	c.Set(at.Add(time.Second))
	res, err := x.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// mustStart starts a recording or fails the test.
func mustStart(t *testing.T, s *Store, meta Meta) *Recording {
	t.Helper()
	r, err := s.Start(meta)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
