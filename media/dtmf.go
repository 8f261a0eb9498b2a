package media

// DTMF digits reach the edge three ways, and each way has its receiver here:
// RFC 4733 telephone-event packets (EventDetector), SIP INFO bodies
// (ParseDTMFInfo) and in-band tones in the audio itself (ToneDetector). All
// three report a key as one byte of the same alphabet, "0"-"9", '*', '#' and
// 'A'-'D', so that an IVR does not care which way a digit came. A-D are
// reported, not dropped: the in-band detector has to recognise them anyway to
// avoid mistaking them for another key, and whether an A is meaningful is the
// menu's business, not the receiver's (IsKeypadDigit tells them apart).

// dtmfEventDigits maps RFC 4733 event codes 0-15 to their keys. Codes 16 and
// above (flash and the non-DTMF events) are not keys.
const dtmfEventDigits = "0123456789*#ABCD"

// IsKeypadDigit reports whether d is a key of a telephone's 12-key pad
// (0-9, * and #), as opposed to A-D, which only a few military and
// test phones have.
func IsKeypadDigit(d byte) bool {
	return d >= '0' && d <= '9' || d == '*' || d == '#'
}

// EventDetector reports the digits carried by RFC 4733 telephone-event RTP
// packets of one stream. The caller feeds it only packets of the negotiated
// telephone-event payload type; it does not look at the payload type.
//
// The zero value is ready to use. An EventDetector is not safe for concurrent
// use; a call's receive path owns it.
type EventDetector struct {
	started bool   // an event has been seen since the last Reset
	ssrc    uint32 // of the current event
	ts      uint32 // RTP timestamp of the current event (or of its last segment)
	event   uint8  // event code of the current event
	ended   bool   // an End packet of the current event has been seen
	maxDur  uint16 // largest duration seen in the current event's segment
	prevTS  uint32 // timestamp of the event before the current one
	hasPrev bool
}

const (
	// eventStaleWindow bounds how far back an RTP timestamp counts as "an
	// earlier event arriving late" rather than a sender whose clock jumped
	// back: 2^19 ticks is 65 s at 8 kHz. A late packet of an event that has
	// already been replaced must not report its digit a second time, yet a
	// peer that restarts its timestamps without changing SSRC must not be
	// muted for hours.
	eventStaleWindow = 1 << 19
	// eventSegmentSlack is how far below 0xFFFF a segment's duration may
	// stop, and how far past it the next segment may start, for the two to
	// be one long-held key (RFC 4733 2.5.1.3): senders round segments to
	// their packet interval, and the last packets of a segment can be lost.
	eventSegmentSlack = 1600
)

// Feed examines one RTP packet of the telephone-event payload type and
// returns the digit it announces, if this packet is the first one seen of a
// new key press. Malformed packets (not RTP version 2, truncated headers, a
// payload shorter than 4 bytes) are ignored.
//
// A press is reported at the first packet seen of the event, not at its End:
// that is what lets a caller barge into a prompt without waiting for the key
// to be released, and nothing is gained by waiting since the event code does
// not change during an event. Duplicates are recognised by the RTP timestamp,
// which RFC 4733 keeps for every packet of an event (the three End
// retransmissions included) and advances for each new one. The Marker bit
// is deliberately not needed: some senders never set it, and its packet may
// be the one that was lost.
func (d *EventDetector) Feed(pkt []byte) (digit byte, ok bool) {
	payload, marker, ts, ssrc, valid := rtpPayload(pkt)
	if !valid || len(payload) < 4 {
		return 0, false
	}
	event := payload[0]
	end := payload[1]&0x80 != 0
	dur := uint16(payload[2])<<8 | uint16(payload[3])

	if d.started && ssrc == d.ssrc {
		if ts == d.ts {
			// Another packet of the current event.
			if end {
				d.ended = true
			}
			d.maxDur = max(d.maxDur, dur)
			return 0, false
		}
		if d.hasPrev && ts == d.prevTS {
			// A late packet of the event just before.
			return 0, false
		}
		if back := d.ts - ts; back < eventStaleWindow && !marker {
			// A reordered or late packet of an event already replaced.
			// A Marker on an earlier timestamp is a new event from a
			// sender that replays recorded events (sipp's captures do).
			return 0, false
		}
		if !marker && !d.ended && event == d.event && d.maxDur >= 0xFFFF-eventSegmentSlack &&
			ts-d.ts <= 0xFFFF+eventSegmentSlack {
			// The next segment of a key held longer than the duration field
			// can count (8 s at 8 kHz): the same press, not a new one.
			d.ts, d.maxDur, d.ended = ts, dur, end
			return 0, false
		}
	}
	if d.started && ssrc == d.ssrc {
		d.prevTS, d.hasPrev = d.ts, true
	} else {
		d.hasPrev = false
	}
	d.started, d.ssrc, d.ts, d.event, d.ended, d.maxDur = true, ssrc, ts, event, end, dur
	if int(event) < len(dtmfEventDigits) {
		return dtmfEventDigits[event], true
	}
	// Flash and non-DTMF events still replace the current event, so a
	// digit pressed after them counts, but they are not keys.
	return 0, false
}

// Reset forgets the current event, e.g. when the stream is re-negotiated.
func (d *EventDetector) Reset() { *d = EventDetector{} }

// rtpPayload splits a packet into its payload and the header fields the
// detectors need. It accepts CSRC lists, header extensions and padding, and
// rejects anything whose lengths do not add up rather than guessing.
func rtpPayload(pkt []byte) (payload []byte, marker bool, ts, ssrc uint32, ok bool) {
	if len(pkt) < 12 || pkt[0]>>6 != 2 {
		return nil, false, 0, 0, false
	}
	off := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 {
		if len(pkt) < off+4 {
			return nil, false, 0, 0, false
		}
		off += 4 + 4*(int(pkt[off+2])<<8|int(pkt[off+3]))
	}
	end := len(pkt)
	if pkt[0]&0x20 != 0 {
		pad := int(pkt[end-1])
		if pad == 0 {
			return nil, false, 0, 0, false
		}
		end -= pad
	}
	if off > end {
		return nil, false, 0, 0, false
	}
	ts = uint32(pkt[4])<<24 | uint32(pkt[5])<<16 | uint32(pkt[6])<<8 | uint32(pkt[7])
	ssrc = uint32(pkt[8])<<24 | uint32(pkt[9])<<16 | uint32(pkt[10])<<8 | uint32(pkt[11])
	return pkt[off:end], pkt[1]&0x80 != 0, ts, ssrc, true
}
