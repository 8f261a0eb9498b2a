package events

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func testMessage(i int, size int) *message {
	return &message{
		subject: "callsign.call.completed",
		id:      fmt.Sprintf("%026d", i),
		data:    bytes.Repeat([]byte{'x'}, size),
	}
}

// pipeline runs the writer goroutine of o the way a Publisher does.
type pipeline struct {
	queue chan *message
	stop  chan struct{}
	done  chan struct{}
}

func startWriter(o *outbox) *pipeline {
	p := &pipeline{queue: make(chan *message, queueSize), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		runWriter(p.queue, p.stop, o)
	}()
	return p
}

func (p *pipeline) close() {
	close(p.stop)
	<-p.done
}

// consume takes n events off o as the publisher would, acking each.
func consume(t testing.TB, o *outbox, n int, within time.Duration) []*message {
	t.Helper()
	deadline := time.Now().Add(within)
	var got []*message
	for len(got) < n {
		m, err := o.next()
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			if time.Now().After(deadline) {
				t.Fatalf("got %d events of %d", len(got), n)
			}
			select {
			case <-o.kick:
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		o.done(m)
		got = append(got, m)
	}
	return got
}

func checkIDs(t *testing.T, got []*message, from int) {
	t.Helper()
	for i, m := range got {
		if want := fmt.Sprintf("%026d", from+i); m.id != want || m.subject != "callsign.call.completed" || len(m.data) != 500 {
			t.Fatalf("event %d: id %s subject %s len %d, want id %s", i, m.id, m.subject, len(m.data), want)
		}
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	s, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Segments roll at segmentSize, go once read and acked, and a restart
// resumes exactly after the last ack.
func TestOutboxSegmentsAndResume(t *testing.T) {
	dir := t.TempDir()
	log := zerolog.New(zerolog.NewTestWriter(t))
	const total = 30000 // ~15 MB: four segments
	o := openOutbox(dir, log)
	w := startWriter(o)
	for i := range total {
		w.queue <- testMessage(i, 500)
	}
	got := consume(t, o, total/2, 10*time.Second)
	checkIDs(t, got, 0)
	w.close()
	if n := len(segFiles(t, dir)); n < 2 || n > 3 {
		t.Errorf("%d segments left with half of ~15 MB acked", n)
	}
	if q := o.queued(); q != total/2 {
		t.Errorf("queued %d, want %d", q, total/2)
	}
	o.close(true)

	o = openOutbox(dir, log)
	if q := o.queued(); q != total/2 {
		t.Errorf("after restart: queued %d, want %d", q, total/2)
	}
	w = startWriter(o)
	w.queue <- testMessage(total, 500)
	got = consume(t, o, total/2+1, 10*time.Second)
	checkIDs(t, got, total/2)
	w.close()
	if m, err := o.next(); m != nil || err != nil {
		t.Errorf("more after everything: %v %v", m, err)
	}
	o.close(true)
	if s := segFiles(t, dir); len(s) != 0 {
		t.Errorf("segments left: %v", s)
	}

	// The acked position survives an empty outbox: new segments number on.
	o = openOutbox(dir, log)
	if o.nextNum < 5 {
		t.Errorf("next segment %d would sort before acked ones", o.nextNum)
	}
	o.close(true)
}

func TestRecordRoundTripAndDamage(t *testing.T) {
	m := &message{subject: "p.call.started", id: "01KAQ4X1ZP6V2N8R3M5T7W9Y0B", data: []byte(`{"a":1}`)}
	b := appendRecord(nil, m)
	got, n, st := decodeRecord(b)
	if st != recordOK || n != len(b) || got.subject != m.subject || got.id != m.id || string(got.data) != string(m.data) {
		t.Fatalf("round trip: %v %d %+v", st, n, got)
	}
	for cut := range len(b) {
		if _, _, st := decodeRecord(b[:cut]); st != recordShort {
			t.Errorf("cut at %d: %v", cut, st)
		}
	}
	for i := range b {
		d := slices.Clone(b)
		d[i] ^= 0x40
		if _, _, st := decodeRecord(d); st == recordOK {
			t.Errorf("flipped byte %d decodes", i)
		}
	}
}

func TestReadAcked(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		content []byte
		ok      bool
	}{
		"empty":   {nil, true},
		"short":   {[]byte("12345"), false},
		"long":    {bytes.Repeat([]byte{1}, 64), false},
		"bad crc": {make([]byte, ackedSize), false},
	}
	for name, c := range cases {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, c.content, 0o640); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = readAcked(f)
		f.Close()
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// BenchmarkOutbox measures events/s through the outbox alone (queue,
// group-committed append and fsync, read back, ack), with ~500-byte
// events as the edge's.
func BenchmarkOutbox(b *testing.B) {
	o := openOutbox(b.TempDir(), zerolog.Nop())
	defer o.close(true)
	w := startWriter(o)
	defer w.close()
	msgs := make([]*message, 1024)
	for i := range msgs {
		msgs[i] = testMessage(i, 500)
	}
	b.ResetTimer()
	go func() {
		for i := range b.N {
			w.queue <- msgs[i%len(msgs)]
		}
	}()
	consume(b, o, b.N, time.Minute)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/float64(max(o.fsyncs.Load(), 1)), "events/fsync")
}

// BenchmarkOutboxPaced offers events at the edge's peak (6000/s, ~1500
// calls/s) and reports how long each waits from queueing to being readable
// by the publisher, and the fsyncs that costs.
func BenchmarkOutboxPaced(b *testing.B) {
	const rate = 6000
	o := openOutbox(b.TempDir(), zerolog.Nop())
	defer o.close(true)
	w := startWriter(o)
	defer w.close()
	sent := make([]time.Time, b.N)
	b.ResetTimer()
	go func() {
		begin := time.Now()
		for i := range b.N {
			if d := time.Until(begin.Add(time.Duration(i) * time.Second / rate)); d > 0 {
				time.Sleep(d)
			}
			sent[i] = time.Now()
			w.queue <- testMessage(i, 500)
		}
	}()
	lat := make([]time.Duration, 0, b.N)
	for len(lat) < b.N {
		m, err := o.next()
		if err != nil {
			b.Fatal(err)
		}
		if m == nil {
			<-o.kick
			continue
		}
		i, _ := strconv.Atoi(m.id)
		lat = append(lat, time.Since(sent[i]))
		o.done(m)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(o.fsyncs.Load())/b.Elapsed().Seconds(), "fsyncs/s")
}
