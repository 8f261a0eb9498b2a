package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"text/template"
	"time"
)

// carrierScript is a caller that goes through a flow: what it offers, what
// it presses and how, and how the call ends. It becomes a sipp scenario.
type carrierScript struct {
	// Payloads is the m=audio format list, e.g. "8 101"; RTPMaps are its
	// a=rtpmap values, e.g. "101 telephone-event/8000".
	Payloads string
	RTPMaps  []string
	Steps    []carrierStep
	// ByeAfter, if set, is how long after the last step the caller hangs
	// up; otherwise it waits for the edge's BYE.
	ByeAfter time.Duration
}

// carrierStep is one thing the caller does after the ACK, after Pause.
type carrierStep struct {
	Pause time.Duration
	// PCAP is a capture sipp plays towards the edge: RTP DTMF or audio.
	PCAP string
	// InfoType and InfoBody make a SIP INFO; InfoWant is the response it
	// must get.
	InfoType, InfoBody string
	InfoWant           int
	// Request makes another request within the dialog (REFER, a
	// re-INVITE, ...) with Headers, Contact (the caller's own if empty)
	// and Body of ContentType; Want is the final response it must get,
	// which a re-INVITE's 2xx has ACKed.
	Request, Contact, Body, ContentType string
	Headers                             []string
	Want                                int
}

var carrierScenario = template.Must(template.New("carrier").Funcs(template.FuncMap{
	"ms":  func(d time.Duration) int64 { return d.Milliseconds() },
	"add": func(a, b int) int { return a + b },
}).Parse(`<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="carrier-ivr">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Jane Caller" <sip:+15551234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:+15551234567@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=carrier 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {{.Payloads}}
{{- range .RTPMaps}}
      a=rtpmap:{{.}}
{{- end}}
      a=sendrecv

    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>

  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "Jane Caller" <sip:+15551234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:+15551234567@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
{{range $i, $s := .Steps}}
{{- if $s.Pause}}
  <pause milliseconds="{{ms $s.Pause}}"/>
{{- end}}
{{- if $s.PCAP}}
  <nop>
    <action>
      <exec play_pcap_audio="{{$s.PCAP}}"/>
    </action>
  </nop>
{{- end}}
{{- if $s.Request}}
  <send retrans="500">
    <![CDATA[

      {{$s.Request}} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "Jane Caller" <sip:+15551234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {{add $i 2}} {{$s.Request}}
      Contact: {{if $s.Contact}}{{$s.Contact}}{{else}}<sip:+15551234567@[local_ip]:[local_port]>{{end}}
      Max-Forwards: 70
{{- range $s.Headers}}
      {{.}}
{{- end}}
{{- if $s.Body}}
      Content-Type: {{$s.ContentType}}
{{- end}}
      Content-Length: [len]

{{$s.Body}}
    ]]>
  </send>
{{- if eq $s.Request "INVITE"}}
  <recv response="100" optional="true"/>
{{- end}}
  <recv response="{{$s.Want}}"/>
{{- if and (eq $s.Request "INVITE") (lt $s.Want 300)}}
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "Jane Caller" <sip:+15551234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {{add $i 2}} ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
{{- end}}
{{- end}}
{{end}}
{{- if .ByeAfter}}
  <pause milliseconds="{{ms .ByeAfter}}"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "Jane Caller" <sip:+15551234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 90 BYE
      Contact: <sip:+15551234567@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
{{- else}}
  <recv request="BYE" crlf="true"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
{{- end}}
</scenario>
`))

// writeCarrierScenario writes the script as a sipp scenario in the test's
// temp dir and returns its path.
func writeCarrierScenario(t *testing.T, s carrierScript) string {
	t.Helper()
	// An INFO is a request within the dialog like any other.
	s.Steps = slices.Clone(s.Steps)
	for i, st := range s.Steps {
		if st.InfoType != "" {
			st.Request, st.ContentType, st.Body, st.Want = "INFO", st.InfoType, st.InfoBody, st.InfoWant
			s.Steps[i] = st
		}
	}
	var b bytes.Buffer
	if err := carrierScenario.Execute(&b, s); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "carrier-ivr.xml")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// offerPCMA offers PCMA and telephone-event on the number sipp's DTMF
// captures use; the agents' sipp answers PCMA too.
func offerPCMA() (string, []string) {
	return "8 101", []string{"8 PCMA/8000", "101 telephone-event/8000"}
}

// dtmfPCAP is sipp's RFC 4733 capture of one key.
func dtmfPCAP(key string) string {
	name := key
	switch key {
	case "#":
		name = "pound"
	case "*":
		name = "star"
	}
	return "/usr/share/sip-tester/dtmf_2833_" + name + ".pcap"
}

// writeTonePCAP writes a capture of PCMU RTP, 20 ms per packet, that
// carries the in-band DTMF tones of key for toneMs between silences, for a
// caller that did not offer telephone-event.
func writeTonePCAP(t *testing.T, key byte, toneMs int) string {
	t.Helper()
	rows := map[byte][2]float64{
		'1': {697, 1209}, '2': {697, 1336}, '3': {697, 1477},
		'4': {770, 1209}, '5': {770, 1336}, '6': {770, 1477},
		'7': {852, 1209}, '8': {852, 1336}, '9': {852, 1477},
		'*': {941, 1209}, '0': {941, 1336}, '#': {941, 1477},
	}
	f, ok := rows[key]
	if !ok {
		t.Fatalf("no DTMF key %q", key)
	}
	const rate = 8000
	silence := 200 * rate / 1000
	tone := toneMs * rate / 1000
	n := silence + tone + silence
	n = (n + 159) / 160 * 160
	pcm := make([]int16, n)
	// Each frequency at about -7 dBm0, a usual level for a phone.
	amp := 0.22 * 32767
	for i := range tone {
		x := float64(i) / rate
		v := amp*math.Sin(2*math.Pi*f[0]*x) + amp*math.Sin(2*math.Pi*f[1]*x)
		pcm[silence+i] = int16(v)
	}

	return writeRTPPCAP(t, "dtmf-inband.pcap", 0, pcm)
}

// writeSinePCAP writes a capture of G.711 RTP (pt 0 PCMU or 8 PCMA), 20 ms
// per packet, carrying a sine of hz at about -10 dBm0 for ms.
func writeSinePCAP(t *testing.T, pt byte, hz float64, ms int) string {
	t.Helper()
	n := ms * 8
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(0.3 * 32767 * math.Sin(2*math.Pi*hz*float64(i)/8000))
	}
	return writeRTPPCAP(t, fmt.Sprintf("sine-%g.pcap", hz), pt, pcm)
}

// writeRTPPCAP writes pcm as G.711 RTP packets of 20 ms into a capture
// sipp's play_pcap_audio plays, with the timing of a real sender.
func writeRTPPCAP(t *testing.T, name string, pt byte, pcm []int16) string {
	t.Helper()
	if len(pcm)%160 != 0 {
		pcm = append(pcm, make([]int16, 160-len(pcm)%160)...)
	}
	encode := linearToPCMU
	if pt == 8 {
		encode = linearToPCMA
	}
	var pc bytes.Buffer
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], 1) // Ethernet
	pc.Write(hdr)
	start := time.Unix(1_700_000_000, 0)
	for k := 0; k*160 < len(pcm); k++ {
		rtp := make([]byte, 12+160)
		rtp[0] = 0x80
		rtp[1] = pt
		if k == 0 {
			rtp[1] |= 0x80
		}
		binary.BigEndian.PutUint16(rtp[2:], uint16(1000+k))
		binary.BigEndian.PutUint32(rtp[4:], uint32(160*k))
		binary.BigEndian.PutUint32(rtp[8:], 0x5eed0001)
		for i := range 160 {
			rtp[12+i] = encode(pcm[k*160+i])
		}
		frame := udpFrame(rtp, 6000, 6002)
		rec := make([]byte, 16)
		at := start.Add(time.Duration(k) * 20 * time.Millisecond)
		binary.LittleEndian.PutUint32(rec[0:], uint32(at.Unix()))
		binary.LittleEndian.PutUint32(rec[4:], uint32(at.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(frame)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(frame)))
		pc.Write(rec)
		pc.Write(frame)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, pc.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// udpFrame wraps a payload in Ethernet, IPv4 and UDP headers from
// 127.0.0.1 to 127.0.0.1, which is what sipp's pcap player reads.
func udpFrame(payload []byte, srcPort, dstPort uint16) []byte {
	f := make([]byte, 14+20+8+len(payload))
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:], []byte{127, 0, 0, 1})
	copy(ip[16:], []byte{127, 0, 0, 1})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], srcPort)
	binary.BigEndian.PutUint16(udp[2:], dstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload)
	return f
}

// linearToPCMA is G.711 A-law encoding, written out here for the same
// reason as linearToPCMU.
func linearToPCMA(x int16) byte {
	v := int(x)
	mask := 0xd5
	if v < 0 {
		mask = 0x55
		v = -v - 1
	}
	v >>= 3
	seg := 0
	for lim := 0x1f; v > lim && seg < 8; lim = lim<<1 | 1 {
		seg++
	}
	if seg >= 8 {
		return byte(0x7f ^ mask)
	}
	a := seg << 4
	if seg < 2 {
		a |= (v >> 1) & 0x0f
	} else {
		a |= (v >> seg) & 0x0f
	}
	return byte(a ^ mask)
}

// linearToPCMU is G.711 mu-law encoding, written out here so that the
// capture does not depend on the code under test.
func linearToPCMU(x int16) byte {
	const bias, clip = 0x84, 32635
	v := int(x)
	sign := 0
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, clip) + bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}
