package media

import (
	"errors"
	"fmt"
)

// The ways a DTMFReceiver reports a digit came, as its callback's via.
const (
	DTMFViaRFC4733 = "rfc4733"
	DTMFViaInband  = "inband"
)

// dtmfChunk is how many samples DTMFReceiver decodes at a time: one 20 ms
// frame, so that a packet of any size needs no more than a fixed buffer.
const dtmfChunk = promptFrameLen

// DTMFReceiver is a Receiver that reports the caller's key presses, for an
// IVR listening on a leg that is not bridged. It listens one way only,
// chosen by what the call negotiated: with telephone-event, the RFC 4733
// packets, and the audio is not analysed (a phone that sends events usually
// mutes the tones, and one that does not would otherwise press each key
// twice); without, the G.711 audio, for tones.
//
// Only keys of the 12-key pad are reported; A-D are not, as no IVR menu
// offers them and a phone that has them is not what callers use.
//
// A DTMFReceiver is for one leg at a time; it is not safe for concurrent use
// otherwise. Feeding it does not allocate.
type DTMFReceiver struct {
	tePT    uint8
	audioPT uint8
	codec   g711Codec
	onDigit func(digit byte, via string)

	events EventDetector
	tones  ToneDetector
	ssrc   uint32 // of the audio the tone detector has heard
	heard  bool

	pcm    [dtmfChunk]int16
	digits [4]byte
}

// NewDTMFReceiver returns a receiver for a leg whose audio codec is codec
// ("PCMU" or "PCMA", any case) and whose RFC 4733 telephone-event payload
// type is tePT, 0 when none was negotiated. The codec matters only for
// in-band detection, so with a tePT any codec name is accepted.
//
// onDigit is called with each key, '0'-'9', '*' or '#', and via
// DTMFViaRFC4733 or DTMFViaInband. It runs on the leg's reader goroutine,
// like Receiver.ReceiveRTP, so it must return at once (typically a
// non-blocking send on a channel) and must not call SetReceiver on the leg.
func NewDTMFReceiver(codec string, tePT uint8, onDigit func(digit byte, via string)) (*DTMFReceiver, error) {
	if onDigit == nil {
		return nil, errors.New("media: DTMF receiver without a digit callback")
	}
	if tePT > 127 {
		return nil, fmt.Errorf("media: telephone-event payload type %d out of range", tePT)
	}
	r := &DTMFReceiver{tePT: tePT, onDigit: onDigit}
	if tePT != 0 {
		return r, nil
	}
	c, ok := lookupG711Codec(codec)
	if !ok {
		return nil, fmt.Errorf("media: in-band DTMF needs PCMU or PCMA audio, not %q", codec)
	}
	r.codec, r.audioPT = c, c.pt
	return r, nil
}

// ReceiveRTP examines one RTP packet of the leg.
func (r *DTMFReceiver) ReceiveRTP(pkt []byte) {
	if len(pkt) < 12 {
		return
	}
	pt := pkt[1] & 0x7f
	if r.tePT != 0 {
		if pt != r.tePT {
			return
		}
		if d, ok := r.events.Feed(pkt); ok && IsKeypadDigit(d) {
			r.onDigit(d, DTMFViaRFC4733)
		}
		return
	}
	if pt != r.audioPT {
		// Comfort noise and anything else that is not the audio.
		return
	}
	payload, _, _, ssrc, ok := rtpPayload(pkt)
	if !ok {
		return
	}
	if r.heard && ssrc != r.ssrc {
		// Another source (the phone moved its media): its audio does
		// not continue the previous one's in the analysis window.
		r.tones.Reset()
	}
	r.ssrc, r.heard = ssrc, true
	for len(payload) > 0 {
		n := min(len(payload), dtmfChunk)
		pcm := decodeG711(r.codec, r.pcm[:0], payload[:n])
		payload = payload[n:]
		for _, d := range r.tones.Feed(r.digits[:0], pcm) {
			if IsKeypadDigit(d) {
				r.onDigit(d, DTMFViaInband)
			}
		}
	}
}
