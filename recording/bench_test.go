package recording

import (
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkPacket is the tap's cost on the relay's reader goroutine, in
// steady state: the writer takes the inbox every 40 packets (200 ms of a
// call), as its tick does, and leaves the buffers behind for reuse.
func BenchmarkPacket(b *testing.B) {
	c := newClock()
	s := openStore(b, b.TempDir(), c)
	r := startHeld(b, s, Meta{CallID: "01JBENCH", StartedAt: c.Now()})
	pkt := rtpPacket(0, 1, 0, 1, make([]byte, 160))
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for i := 0; b.Loop(); i++ {
		r.Packet(i&1 == 0, pkt)
		if i%40 == 39 {
			r.mu.Lock()
			r.in.buf, r.in.pkts = r.in.buf[:0], r.in.pkts[:0]
			r.mu.Unlock()
		}
	}
}

// BenchmarkPacketFlood taps as fast as it can with the writer running, far
// beyond any call's 100 packets a second: the inbox grows between the
// writer's turns, and what that costs is in B/op.
func BenchmarkPacketFlood(b *testing.B) {
	s, err := Open(b.TempDir(), zerolog.Nop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	r, err := s.Start(Meta{CallID: "01JBENCH"})
	if err != nil {
		b.Fatal(err)
	}
	pkt := rtpPacket(0, 1, 0, 1, make([]byte, 160))
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for i := 0; b.Loop(); i++ {
		r.Packet(i&1 == 0, pkt)
	}
	b.StopTimer()
	if _, err := r.Finish(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPacketParallel has both directions tapping at once, as the two
// reader goroutines of a bridge do, in steady state as BenchmarkPacket.
func BenchmarkPacketParallel(b *testing.B) {
	c := newClock()
	s := openStore(b, b.TempDir(), c)
	r := startHeld(b, s, Meta{CallID: "01JBENCHP", StartedAt: c.Now()})
	b.ReportAllocs()
	b.SetParallelism(1)
	var dir atomicBool
	b.RunParallel(func(pb *testing.PB) {
		caller := dir.flip()
		pkt := rtpPacket(0, 1, 0, 1, make([]byte, 160))
		for i := 0; pb.Next(); i++ {
			r.Packet(caller, pkt)
			if i%40 == 39 {
				r.mu.Lock()
				r.in.buf, r.in.pkts = r.in.buf[:0], r.in.pkts[:0]
				r.mu.Unlock()
			}
		}
	})
}

// BenchmarkCall is the writer's cost for a call: 3 s of both sides,
// decoded, placed and written, per op.
func BenchmarkCall(b *testing.B) {
	c := newClock()
	s := openStore(b, b.TempDir(), c)
	mu := newG711(b, "PCMU")
	caller := leg{g: mu, ssrc: 1, signal: tone(400, 8000)}
	agent := leg{g: mu, ssrc: 2, signal: tone(1000, 8000)}
	var pc, pa [150][]byte
	for j := range 150 {
		pc[j], pa[j] = caller.packet(j), agent.packet(j)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		start := c.Now()
		r, err := s.Start(Meta{CallID: "01JCALL" + time.Duration(i).String()})
		if err != nil {
			b.Fatal(err)
		}
		for j := range 150 {
			c.Set(start.Add(time.Duration(j) * ptime))
			r.Packet(true, pc[j])
			r.Packet(false, pa[j])
		}
		c.Set(start.Add(3 * time.Second))
		if _, err := r.Finish(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVoicemail is the writer's cost for a voicemail: 3 s of the
// caller, decoded, placed and written, per op.
func BenchmarkVoicemail(b *testing.B) {
	c := newClock()
	vs := openVoicemail(b, b.TempDir(), c)
	caller := leg{g: newG711(b, "PCMU"), ssrc: 1, signal: tone(400, 8000)}
	var pc [150][]byte
	for j := range 150 {
		pc[j] = caller.packet(j)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		start := c.Now()
		v, err := vs.Start(VoicemailMeta{CallID: "01JVM" + time.Duration(i).String()})
		if err != nil {
			b.Fatal(err)
		}
		for j := range 150 {
			c.Set(start.Add(time.Duration(j) * ptime))
			v.Packet(pc[j])
		}
		c.Set(start.Add(3 * time.Second))
		if _, err := v.Finish(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriter is the writer goroutine's own cost per 20 ms of audio,
// without the disk: a packet of each channel decoded and placed, and every
// 200 ms the window written and committed, as a step does.
func BenchmarkWriter(b *testing.B) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	mu := newG711(b, "PCMU")
	caller := leg{g: mu, ssrc: 1, signal: tone(400, 8000)}
	agent := leg{g: mu, ssrc: 2, signal: tone(1000, 8000)}
	const n = 1000 // packets of each side, 20 s
	var pc, pa [n][]byte
	for j := range n {
		pc[j], pa[j] = caller.packet(j), agent.packet(j)
	}
	for _, nch := range []int{2, 1} {
		b.Run(fmt.Sprintf("channels=%d", nch), func(b *testing.B) {
			var w writer
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				j := i % n
				if j == 0 {
					// A new call, in the buffers of the last.
					w = writer{nch: nch, maxFrames: pcmMaxFrames(nch), dirty: math.MaxInt64, win: w.win[:0], pcm: w.pcm, out: w.out}
				}
				at := time.Duration(j) * ptime
				w.take(true, pc[j], at)
				if nch == 2 {
					w.take(false, pa[j], at)
				}
				if j%10 == 9 {
					if err := w.write(devNull); err != nil {
						b.Fatal(err)
					}
					w.commit(posOf(at - window))
				}
			}
		})
	}
}
