package media

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(strings.TrimLeft(s, "\n"), "\n", "\r\n"))
}

// sippOffer is what sipp's uac_pcap scenario sends.
const sippOfferText = `
v=0
o=user1 53655765 2353687637 IN IP4 127.0.1.1
s=-
c=IN IP4 127.0.1.1
t=0 0
m=audio 6000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-11,16
a=ptime:20
`

func TestParseSippOffer(t *testing.T) {
	o, err := ParseSDP(crlf(sippOfferText))
	if err != nil {
		t.Fatal(err)
	}
	want := &Offer{
		Addr: netip.MustParseAddrPort("127.0.1.1:6000"),
		Codecs: []Codec{
			{0, "PCMU", 8000}, {8, "PCMA", 8000}, {101, "telephone-event", 8000},
		},
		TelephoneEvent:   101,
		TelephoneEventOK: true,
		Ptime:            20,
		Direction:        "sendrecv",
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got %+v\nwant %+v", o, want)
	}
	c, err := Negotiate(o, []string{"PCMA", "PCMU"})
	if err != nil || c.PT != 0 {
		t.Fatalf("Negotiate = %+v, %v; want offerer's first choice PCMU", c, err)
	}
}

func TestParseStaticWithoutRtpmapAndMediaLevel(t *testing.T) {
	o, err := ParseSDP(crlf(`
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=video 0 RTP/AVP 31
m=audio 0 RTP/AVP 0
m=audio 49170 RTP/AVP 8 0 13
c=IN IP4 198.51.100.7
a=sendonly
`))
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != netip.MustParseAddrPort("198.51.100.7:49170") {
		t.Fatalf("addr %v: media-level c= or port-0 skipping wrong", o.Addr)
	}
	if want := []Codec{{8, "PCMA", 8000}, {0, "PCMU", 8000}, {13, "CN", 8000}}; !reflect.DeepEqual(o.Codecs, want) {
		t.Fatalf("codecs %+v", o.Codecs)
	}
	if o.TelephoneEventOK || o.Ptime != 0 || o.Direction != "sendonly" {
		t.Fatalf("offer %+v", o)
	}
}

func TestG729OnlyHasNoCommonCodec(t *testing.T) {
	o, err := ParseSDP(crlf(`
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 4000 RTP/AVP 18
a=fmtp:18 annexb=no
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Codecs) != 1 || o.Codecs[0].Name != "G729" {
		t.Fatalf("codecs %+v", o.Codecs)
	}
	if _, err := Negotiate(o, []string{"PCMU", "PCMA"}); !errors.Is(err, ErrNoCommonCodec) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseSDPErrors(t *testing.T) {
	head := "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\n"
	cases := []struct {
		name, body string
		want       error
	}{
		{"garbage", "hello", ErrInvalidSDP},
		{"no audio", head + "c=IN IP4 192.0.2.1\nt=0 0\nm=video 5000 RTP/AVP 31\n", ErrNoAudio},
		{"port 0", head + "c=IN IP4 192.0.2.1\nt=0 0\nm=audio 0 RTP/AVP 0\n", ErrNoAudio},
		{"no c=", head + "t=0 0\nm=audio 5000 RTP/AVP 0\n", ErrInvalidSDP},
		{"savp", head + "c=IN IP4 192.0.2.1\nt=0 0\nm=audio 5000 RTP/SAVP 0\n", ErrUnsupportedProfile},
		{"fqdn", head + "c=IN IP4 media.example.com\nt=0 0\nm=audio 5000 RTP/AVP 0\n", ErrInvalidSDP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSDP(crlf(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBuildSDP(t *testing.T) {
	got := string(BuildSDP(netip.MustParseAddrPort("203.0.113.5:20000"), 42, 1,
		[]Codec{{0, "PCMU", 8000}}, 101, 20))
	want := string(crlf(`
v=0
o=callsign 42 1 IN IP4 203.0.113.5
s=callsign
c=IN IP4 203.0.113.5
t=0 0
m=audio 20000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
`))
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestBuildParseRoundTrip(t *testing.T) {
	for _, local := range []string{"203.0.113.5:20002", "[2001:db8::5]:20004"} {
		ap := netip.MustParseAddrPort(local)
		codecs := []Codec{{8, "PCMA", 8000}, {0, "PCMU", 8000}}
		body := BuildSDP(ap, 7, 3, codecs, 96, 30)
		if strings.Contains(local, "[") != strings.Contains(string(body), "IN IP6 2001:db8::5") {
			t.Fatalf("address family wrong:\n%s", body)
		}
		o, err := ParseSDP(body)
		if err != nil {
			t.Fatalf("%s: %v\n%s", local, err, body)
		}
		want := &Offer{
			Addr:             ap,
			Codecs:           append(codecs, Codec{96, "telephone-event", 8000}),
			TelephoneEvent:   96,
			TelephoneEventOK: true,
			Ptime:            30,
			Direction:        "sendrecv",
		}
		if !reflect.DeepEqual(o, want) {
			t.Fatalf("%s: got %+v\nwant %+v", local, o, want)
		}
	}
}

func BenchmarkParseSDP(b *testing.B) {
	body := crlf(sippOfferText)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSDP(body); err != nil {
			b.Fatal(err)
		}
	}
}
