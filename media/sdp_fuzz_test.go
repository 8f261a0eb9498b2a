package media

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

// sdpSeeds are the SDP bodies of the unit tests, and a browser's answer.
func sdpSeeds() []string {
	head := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
	return []string{
		string(crlf(sippOfferText)),
		head + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=video 0 RTP/AVP 31\r\nm=audio 0 RTP/AVP 0\r\nm=audio 49170 RTP/AVP 8 0 13\r\nc=IN IP4 198.51.100.7\r\na=sendonly\r\n",
		head + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=fmtp:18 annexb=no\r\n",
		head + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/SAVP 0\r\n",
		head + "c=IN IP4 media.example.com\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
		head + "c=IN IP6 2001:db8::5\r\nt=0 0\r\nm=audio 5000 RTP/AVP 96 0\r\na=rtpmap:96 telephone-event/8000\r\na=ptime:20.0\r\na=inactive\r\n",
		string(BuildSDP(netip.MustParseAddrPort("[2001:db8::5]:20004"), 7, 3, []Codec{{8, "PCMA", 8000}, {0, "PCMU", 8000}}, 96, 30)),
		browserAnswerText,
		"hello",
	}
}

// browserAnswerText is what Chrome answers to a peer's offer of PCMU and
// telephone-event.
const browserAnswerText = "v=0\r\n" +
	"o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n" +
	"s=-\r\n" +
	"t=0 0\r\n" +
	"a=group:BUNDLE 0\r\n" +
	"a=msid-semantic: WMS\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 0 101\r\n" +
	"c=IN IP4 0.0.0.0\r\n" +
	"a=rtcp:9 IN IP4 0.0.0.0\r\n" +
	"a=ice-ufrag:Yx3b\r\n" +
	"a=ice-pwd:pXyFbk0ysiyXvGm1cGl8uH2M\r\n" +
	"a=ice-options:trickle\r\n" +
	"a=fingerprint:sha-256 4C:33:9E:CE:2B:3A:F4:05:8E:3E:22:5C:1D:11:B3:41:7C:8B:56:52:5B:41:3B:E6:0F:9B:B5:50:22:2E:0C:95\r\n" +
	"a=setup:active\r\n" +
	"a=mid:0\r\n" +
	"a=sendrecv\r\n" +
	"a=rtcp-mux\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n"

// FuzzParseSDP parses bodies of any bytes as a peer's offer. An offer taken
// has a usable address, payload types below 128 and a telephone-event
// that is one of its codecs; an offer refused says why with one of the
// package's errors; and BuildSDP of what was taken parses back the same.
func FuzzParseSDP(f *testing.F) {
	for _, s := range sdpSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		o, err := ParseSDP(body)
		if err != nil {
			if o != nil {
				t.Fatalf("%q: an offer and an error", body)
			}
			if !errors.Is(err, ErrInvalidSDP) && !errors.Is(err, ErrNoAudio) &&
				!errors.Is(err, ErrUnsupportedProfile) {
				t.Fatalf("%q: error %v is none of the package's", body, err)
			}
			return
		}
		a := o.Addr.Addr()
		if !o.Addr.IsValid() || o.Addr.Port() == 0 || a.Zone() != "" {
			t.Fatalf("%q: address %v", body, o.Addr)
		}
		teFound := false
		for _, c := range o.Codecs {
			if c.PT > 127 {
				t.Fatalf("%q: payload type %d", body, c.PT)
			}
			if c.Name != "" && c.Rate <= 0 {
				t.Fatalf("%q: codec %+v without a rate", body, c)
			}
			if o.TelephoneEventOK && c.PT == o.TelephoneEvent && strings.EqualFold(c.Name, "telephone-event") && c.Rate == 8000 {
				teFound = true
			}
		}
		if o.TelephoneEventOK != teFound || !o.TelephoneEventOK && o.TelephoneEvent != 0 {
			t.Fatalf("%q: telephone-event %d %v not among the codecs %+v", body, o.TelephoneEvent, o.TelephoneEventOK, o.Codecs)
		}
		switch o.Direction {
		case "sendrecv", "sendonly", "recvonly", "inactive":
		default:
			t.Fatalf("%q: direction %q", body, o.Direction)
		}
		if o.Ptime < 0 {
			t.Fatalf("%q: ptime %d", body, o.Ptime)
		}
		if c, err := Negotiate(o, []string{"PCMU", "PCMA"}); err == nil && !strings.EqualFold(c.Name, "PCMU") && !strings.EqualFold(c.Name, "PCMA") {
			t.Fatalf("%q: negotiated %+v", body, c)
		}

		// What the edge would answer with these codecs must read back as
		// the same stream. The edge only answers with a codec it
		// negotiated, whose name is a token; other names are not written.
		for _, c := range o.Codecs {
			if strings.ContainsFunc(c.Name, func(r rune) bool { return r <= ' ' || r == '/' || r >= 0x7f }) {
				return
			}
		}
		var te uint8
		if o.TelephoneEventOK {
			te = o.TelephoneEvent
		}
		rebuilt := BuildSDP(o.Addr, 1, 1, o.Codecs, te, o.Ptime)
		o2, err := ParseSDP(rebuilt)
		if err != nil {
			t.Fatalf("%q: BuildSDP of the offer does not parse: %v\n%s", body, err, rebuilt)
		}
		want := *o
		// BuildSDP writes a mapped IPv4 address as IPv4.
		if a.Is4In6() {
			want.Addr = netip.AddrPortFrom(a.Unmap(), o.Addr.Port())
		}
		want.Direction = "sendrecv"
		want.Codecs = slices.Clone(o.Codecs)
		for i, c := range want.Codecs {
			if te != 0 && c.PT == te {
				// BuildSDP names the telephone-event type itself.
				want.Codecs[i].Name = "telephone-event"
			}
		}
		if !reflect.DeepEqual(o2, &want) {
			t.Fatalf("%q: round trip through\n%s\ngives %+v\nwant %+v", body, rebuilt, o2, &want)
		}
	})
}

// FuzzCheckAnswer checks browser answers of any bytes against an offer of
// PCMU or PCMA and perhaps telephone-event, as Peer.SetAnswer does before
// pion sees them. An answer accepted has an audio stream that takes the
// offered codec on its payload type, and keeps telephone-event only on the
// offered type; one refused says why with one of the package's errors.
func FuzzCheckAnswer(f *testing.F) {
	for _, s := range sdpSeeds() {
		f.Add(s, uint8(0), false, uint8(101))
	}
	f.Add(browserAnswerText, uint8(0), false, uint8(0))
	f.Add(strings.ReplaceAll(browserAnswerText, "PCMU", "PCMA"), uint8(8), true, uint8(101))
	f.Add(strings.ReplaceAll(browserAnswerText, " 0 101", " 111"), uint8(0), false, uint8(101))
	f.Fuzz(func(t *testing.T, answer string, audioPT uint8, pcma bool, te uint8) {
		codec, _ := lookupG711Codec("PCMU")
		if pcma {
			codec, _ = lookupG711Codec("PCMA")
		}
		// Only what NewPeer allows: the static type or a dynamic one, and
		// a free dynamic type for telephone-event.
		if audioPT != codec.pt && (audioPT < 96 || audioPT > 127) {
			audioPT = codec.pt
		}
		if te != 0 && (te < 96 || te > 127 || te == audioPT) {
			te = 0
		}
		got, err := checkAnswer(answer, audioPT, codec.name, te)
		if err != nil {
			if !errors.Is(err, ErrInvalidSDP) && !errors.Is(err, ErrNoAudio) && !errors.Is(err, ErrNoCommonCodec) {
				t.Fatalf("%q: error %v is none of the package's", answer, err)
			}
			return
		}
		if got != 0 && got != te {
			t.Fatalf("%q: telephone-event %d accepted, %d offered", answer, got, te)
		}
		var sd sdp.SessionDescription
		if err := sd.Unmarshal([]byte(answer)); err != nil {
			t.Fatalf("%q: accepted, yet it does not parse: %v", answer, err)
		}
		var md *sdp.MediaDescription
		for _, m := range sd.MediaDescriptions {
			if m.MediaName.Media == "audio" {
				md = m
				break
			}
		}
		if md == nil || md.MediaName.Port.Value == 0 {
			t.Fatalf("%q: accepted without an audio stream", answer)
		}
		found := false
		for _, f := range md.MediaName.Formats {
			n, err := strconv.ParseUint(f, 10, 8)
			found = found || err == nil && n == uint64(audioPT)
		}
		if !found {
			t.Fatalf("%q: accepted without payload type %d", answer, audioPT)
		}
	})
}
