package media

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// SDP errors. Every error of ParseSDP and Negotiate wraps one of these; all
// but ErrInvalidSDP describe a well-formed offer we cannot accept (SIP 488),
// ErrInvalidSDP a broken body (400 or 488 at the SIP layer's choice).
var (
	ErrInvalidSDP         = errors.New("media: invalid SDP")
	ErrNoAudio            = errors.New("media: no usable audio stream in SDP")
	ErrUnsupportedProfile = errors.New("media: unsupported media profile")
	ErrNoCommonCodec      = errors.New("media: no common codec")
)

// Codec is one payload format of an audio m-line.
type Codec struct {
	PT   uint8
	Name string // as written in the SDP (encoding names are case-insensitive)
	Rate int
}

// Offer is the audio part of a peer's SDP, offer or answer.
type Offer struct {
	Addr             netip.AddrPort // c= address with the m=audio port
	Codecs           []Codec        // in the peer's order of preference
	TelephoneEvent   uint8          // RFC 4733 payload type, 0 if absent
	TelephoneEventOK bool
	Ptime            int    // milliseconds, 0 if absent
	Direction        string // sendrecv, sendonly, recvonly or inactive
}

// staticCodec returns the RFC 3551 static audio types a peer may use without
// an rtpmap line. A switch rather than a map keeps the package free of
// mutable globals.
func staticCodec(pt uint8) (Codec, bool) {
	var name string
	switch pt {
	case 0:
		name = "PCMU"
	case 3:
		name = "GSM"
	case 4:
		name = "G723"
	case 8:
		name = "PCMA"
	case 9:
		name = "G722" // clock rate 8000 by RFC 3551's historic error
	case 13:
		name = "CN"
	case 18:
		name = "G729"
	default:
		return Codec{}, false
	}
	return Codec{PT: pt, Name: name, Rate: 8000}, true
}

// ParseSDP extracts the first active audio stream of an SDP body.
func ParseSDP(body []byte) (*Offer, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	var md *sdp.MediaDescription
	sawAudio := false
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		sawAudio = true
		// Port 0 marks a rejected or disabled stream; look for another.
		if m.MediaName.Port.Value != 0 {
			md = m
			break
		}
	}
	switch {
	case !sawAudio:
		return nil, fmt.Errorf("%w: no m=audio line", ErrNoAudio)
	case md == nil:
		return nil, fmt.Errorf("%w: audio stream has port 0", ErrNoAudio)
	}

	proto := strings.Join(md.MediaName.Protos, "/")
	if proto != "RTP/AVP" {
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedProfile, proto)
	}
	port := md.MediaName.Port.Value
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("%w: audio port %d", ErrInvalidSDP, port)
	}

	ci := md.ConnectionInformation
	if ci == nil {
		ci = sd.ConnectionInformation
	}
	if ci == nil || ci.Address == nil || ci.Address.Address == "" {
		return nil, fmt.Errorf("%w: missing connection address", ErrInvalidSDP)
	}
	if ci.NetworkType != "IN" || (ci.AddressType != "IP4" && ci.AddressType != "IP6") {
		return nil, fmt.Errorf("%w: connection type %s %s", ErrInvalidSDP, ci.NetworkType, ci.AddressType)
	}
	addr, err := netip.ParseAddr(ci.Address.Address)
	if err != nil || addr.Zone() != "" {
		// FQDNs are legal in c= but would need DNS during call setup. A
		// zone is not legal, and would let the peer pick the edge's
		// interface for the media.
		return nil, fmt.Errorf("%w: connection address %q", ErrInvalidSDP, ci.Address.Address)
	}
	if addr.Is4() != (ci.AddressType == "IP4") {
		return nil, fmt.Errorf("%w: address %s is not %s", ErrInvalidSDP, addr, ci.AddressType)
	}

	o := &Offer{
		Addr:      netip.AddrPortFrom(addr, uint16(port)),
		Codecs:    make([]Codec, 0, len(md.MediaName.Formats)),
		Direction: "sendrecv",
	}

	rtpmap := rtpmapOf(md)
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 8)
		if err != nil || pt > 127 {
			return nil, fmt.Errorf("%w: payload type %q", ErrInvalidSDP, f)
		}
		c, ok := rtpmap[uint8(pt)]
		if !ok {
			c, ok = staticCodec(uint8(pt))
		}
		if !ok {
			// Unknown dynamic type without rtpmap: keep it so the order
			// stays intact, it just never matches a supported name.
			c = Codec{PT: uint8(pt)}
		}
		o.Codecs = append(o.Codecs, c)
		if strings.EqualFold(c.Name, "telephone-event") && c.Rate == 8000 && !o.TelephoneEventOK {
			o.TelephoneEvent, o.TelephoneEventOK = c.PT, true
		}
	}

	if v, ok := attr(md, &sd, "ptime"); ok {
		// ptime may be fractional ("20.0"); the integer part is enough.
		if i := strings.IndexByte(v, '.'); i >= 0 {
			v = v[:i]
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
			o.Ptime = n
		}
	}
	if d, ok := direction(md.Attributes); ok {
		o.Direction = d
	} else if d, ok := direction(sd.Attributes); ok {
		o.Direction = d
	}
	return o, nil
}

// parseRtpmap parses "<pt> <name>/<rate>[/<channels>]".
func parseRtpmap(v string) (Codec, bool) {
	ptStr, enc, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return Codec{}, false
	}
	pt, err := strconv.ParseUint(ptStr, 10, 8)
	if err != nil || pt > 127 {
		return Codec{}, false
	}
	name, rest, ok := strings.Cut(strings.TrimSpace(enc), "/")
	if !ok || name == "" {
		return Codec{}, false
	}
	rateStr, _, _ := strings.Cut(rest, "/")
	rate, err := strconv.Atoi(rateStr)
	if err != nil || rate <= 0 {
		return Codec{}, false
	}
	return Codec{PT: uint8(pt), Name: name, Rate: rate}, true
}

// attr looks an attribute up at media level first, then at session level.
func attr(md *sdp.MediaDescription, sd *sdp.SessionDescription, key string) (string, bool) {
	if v, ok := md.Attribute(key); ok {
		return v, true
	}
	return sd.Attribute(key)
}

func direction(attrs []sdp.Attribute) (string, bool) {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key, true
		}
	}
	return "", false
}

// Negotiate picks the first codec in the offer's order whose encoding name
// is in supported, as an RFC 3264 answerer should: the offerer's preference
// wins, supported only filters.
func Negotiate(offer *Offer, supported []string) (Codec, error) {
	for _, c := range offer.Codecs {
		if c.Name == "" {
			continue
		}
		for _, s := range supported {
			if strings.EqualFold(c.Name, s) {
				return c, nil
			}
		}
	}
	return Codec{}, ErrNoCommonCodec
}

// BuildSDP writes an RFC 4566 session description with one sendrecv audio
// stream on local, offering or answering codecs in the given order, plus
// RFC 4733 telephone-event on tePT unless it is 0. ptime 0 omits a=ptime.
// sessID and version go to the o= line; the version must grow with every
// changed description sent in the same dialog.
func BuildSDP(local netip.AddrPort, sessID, version uint64, codecs []Codec, tePT uint8, ptime int) []byte {
	addr := local.Addr().Unmap().WithZone("")
	ipv := "IP4"
	if addr.Is6() {
		ipv = "IP6"
	}
	as := addr.String()

	b := make([]byte, 0, 256)
	b = append(b, "v=0\r\no=callsign "...)
	b = strconv.AppendUint(b, sessID, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, version, 10)
	b = append(b, " IN "...)
	b = append(b, ipv...)
	b = append(b, ' ')
	b = append(b, as...)
	b = append(b, "\r\ns=callsign\r\nc=IN "...)
	b = append(b, ipv...)
	b = append(b, ' ')
	b = append(b, as...)
	b = append(b, "\r\nt=0 0\r\nm=audio "...)
	b = strconv.AppendUint(b, uint64(local.Port()), 10)
	b = append(b, " RTP/AVP"...)

	// A codec list that already carries telephone-event on tePT must not
	// list the type twice.
	teListed := false
	for _, c := range codecs {
		if tePT != 0 && c.PT == tePT {
			teListed = true
		}
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(c.PT), 10)
	}
	if tePT != 0 && !teListed {
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(tePT), 10)
	}
	b = append(b, "\r\n"...)

	for _, c := range codecs {
		if tePT != 0 && c.PT == tePT {
			continue
		}
		name, rate := c.Name, c.Rate
		if name == "" {
			if s, ok := staticCodec(c.PT); ok {
				name = s.Name
			}
		}
		if rate == 0 {
			rate = 8000
		}
		b = appendRtpmap(b, c.PT, name, rate)
	}
	if tePT != 0 {
		b = appendRtpmap(b, tePT, "telephone-event", 8000)
		b = append(b, "a=fmtp:"...)
		b = strconv.AppendUint(b, uint64(tePT), 10)
		b = append(b, " 0-16\r\n"...)
	}
	if ptime > 0 {
		b = append(b, "a=ptime:"...)
		b = strconv.AppendInt(b, int64(ptime), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "a=sendrecv\r\n"...)
	return b
}

func appendRtpmap(b []byte, pt uint8, name string, rate int) []byte {
	if name == "" {
		// An unnamed dynamic type cannot be described; leave it bare.
		return b
	}
	b = append(b, "a=rtpmap:"...)
	b = strconv.AppendUint(b, uint64(pt), 10)
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(rate), 10)
	return append(b, "\r\n"...)
}

// rtpmapOf is the a=rtpmap lines of a media description, by payload type.
func rtpmapOf(md *sdp.MediaDescription) map[uint8]Codec {
	rtpmap := make(map[uint8]Codec, len(md.MediaName.Formats))
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		if c, ok := parseRtpmap(a.Value); ok {
			rtpmap[c.PT] = c
		}
	}
	return rtpmap
}
