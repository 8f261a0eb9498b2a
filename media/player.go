package media

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// PacketWriter sends one RTP packet to the far end. It must not keep pkt
// after returning: the player reuses the buffer for the next packet. An
// error ends playback, so a writer should fail only when the leg is gone
// and swallow transient send errors as a lost packet.
type PacketWriter interface {
	WriteRTP(pkt []byte) error
}

// RTPStream is the sending state of one RTP stream (RFC 3550): what the next
// packet's header will carry. Prompts played in a row on the same stream,
// and media relayed after them, continue one sequence and timeline, so a
// phone's jitter buffer never sees the stream restart. It is not safe for
// concurrent use; a playing prompt owns it until Play returns.
type RTPStream struct {
	SSRC uint32
	Seq  uint16 // sequence number of the next packet
	TS   uint32 // RTP timestamp of the next packet, 8 kHz units

	// due is when the next packet is due, so that the next Play after a
	// previous one continues its pacing or, after a pause, moves TS
	// over the silence. Zero until a packet has been paced.
	due time.Time
}

// NewRTPStream returns a stream with a random SSRC, sequence number and
// timestamp, as RFC 3550 asks so that streams are told apart and
// known-plaintext attacks on SRTP are harder.
func NewRTPStream() *RTPStream {
	return &RTPStream{SSRC: rand.Uint32(), Seq: uint16(rand.Uint32()), TS: rand.Uint32()}
}

// Next builds the packet carrying payload into buf, reusing buf's storage
// when it has room for the 12-byte header and the payload (so a caller that
// keeps one buffer allocates nothing), and advances the stream: the
// sequence number by 1, the timestamp by len(payload), which is the sample
// count for G.711.
func (s *RTPStream) Next(buf, payload []byte, pt uint8, marker bool) []byte {
	n := 12 + len(payload)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	buf[0] = 0x80 // version 2, no padding, extension or CSRCs
	buf[1] = pt & 0x7f
	if marker {
		buf[1] |= 0x80
	}
	binary.BigEndian.PutUint16(buf[2:4], s.Seq)
	binary.BigEndian.PutUint32(buf[4:8], s.TS)
	binary.BigEndian.PutUint32(buf[8:12], s.SSRC)
	copy(buf[12:], payload)
	s.Seq++
	s.TS += uint32(len(payload))
	return buf
}

// Clock is the time source for pacing; tests substitute a fake one. A
// stream remembers times from the clock it was played with, so every Play
// on one stream must use the same clock.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) ClockTimer
}

// ClockTimer is the part of *time.Timer that pacing uses, with Go 1.23
// semantics: after Reset or Stop, no stale value is received from C.
type ClockTimer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
}

// SystemClock is the real, monotonic clock.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) ClockTimer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time   { return t.t.C }
func (t systemTimer) Reset(d time.Duration) { t.t.Reset(d) }
func (t systemTimer) Stop()                 { t.t.Stop() }

// ErrPlaybackStopped is what a Playback's Wait returns after Stop.
var ErrPlaybackStopped = errors.New("media: playback stopped")

// playMaxLate is how far behind schedule pacing may fall (a stalled
// process, an overloaded host) before it stops catching up: bursting more
// than a few frames would overflow the far end's jitter buffer, so instead
// the talkspurt restarts now, with the timestamp moved over the gap.
const playMaxLate = 3 * promptPtime

// Play sends prompt on stream through w, one packet every 20 ms, and
// returns when the last packet has been sent (nil), ctx is done
// (ctx.Err()), or w fails (its error). clock nil means SystemClock.
//
// Packet n of the playback is due at start + n×20 ms, computed from the
// start rather than from the previous packet, so scheduling delays never
// accumulate into drift. The start is when the stream's previous playback
// left off if that was less than 60 ms ago, so consecutive prompts form
// one continuous talkspurt; otherwise it is now, the timestamp moves over
// the silence and the first packet has the marker bit set (RFC 3551).
func Play(ctx context.Context, stream *RTPStream, prompt *Prompt, w PacketWriter, clock Clock) error {
	return play(ctx, nil, stream, prompt, w, clock)
}

// play waits with one timer re-armed for each packet's absolute due time,
// not a time.Ticker: a ticker silently drops ticks when its reader is late,
// which would lose frames from the schedule instead of catching up on them.
func play(ctx context.Context, stop <-chan struct{}, s *RTPStream, p *Prompt, w PacketWriter, clock Clock) error {
	if clock == nil {
		clock = systemClock{}
	}
	pt := p.PayloadType()
	buf := make([]byte, 12+promptFrameLen)
	var timer ClockTimer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	marker := s.due.IsZero()
	if marker {
		s.due = clock.Now()
	}
	for i := range p.Frames() {
		now := clock.Now()
		if wait := s.due.Sub(now); wait > 0 {
			if timer == nil {
				timer = clock.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C():
			case <-ctx.Done():
				return ctx.Err()
			case <-stop:
				return ErrPlaybackStopped
			}
			// The wake-up itself can be late, e.g. the process was
			// stopped or starved while waiting.
			now = clock.Now()
		} else {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-stop:
				return ErrPlaybackStopped
			default:
			}
		}
		if late := now.Sub(s.due); late >= playMaxLate {
			s.TS += uint32(late / (time.Second / promptRate))
			s.due = now
			marker = true
		}
		pkt := s.Next(buf, p.Frame(i), pt, marker)
		marker = false
		s.due = s.due.Add(promptPtime)
		if err := w.WriteRTP(pkt); err != nil {
			return err
		}
	}
	return nil
}

// Playback is a prompt playing in its own goroutine, so that the caller can
// listen for DTMF meanwhile and barge in with Stop.
type Playback struct {
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	err      error
}

// StartPlay is Play in a new goroutine. The stream belongs to the playback
// until Wait or Stop has returned.
func StartPlay(ctx context.Context, stream *RTPStream, prompt *Prompt, w PacketWriter, clock Clock) *Playback {
	pb := &Playback{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(pb.done)
		pb.err = play(ctx, pb.stop, stream, prompt, w, clock)
	}()
	return pb
}

// Done is closed when the playback has ended, however it ended.
func (pb *Playback) Done() <-chan struct{} { return pb.done }

// Wait waits for the playback to end and returns how it ended: nil when the
// whole prompt was sent, ErrPlaybackStopped, the context's error, or the
// PacketWriter's.
func (pb *Playback) Wait() error {
	<-pb.done
	return pb.err
}

// Stop ends the playback (barge-in) and returns once no packet is being or
// will be sent, at most one packet write after the call: the player waits
// between packets in a select that Stop interrupts. The stream then holds
// the state to continue from. Stop is idempotent and returns what Wait does.
func (pb *Playback) Stop() error {
	pb.stopOnce.Do(func() { close(pb.stop) })
	return pb.Wait()
}
