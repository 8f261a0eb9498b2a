package sip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/routing"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// published keeps the events an edge's calls publish.
type published struct {
	mu     sync.Mutex
	events []string
	recs   []call.Record
}

func (p *published) Publish(event string, _ time.Time, rec call.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, event)
	p.recs = append(p.recs, rec)
}

func (p *published) get(event string) (call.Record, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, ev := range p.events {
		if ev == event {
			return p.recs[i], true
		}
	}
	return call.Record{}, false
}

// lockedBuffer is a log the call's goroutines may write at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

// cancelledTx is the transaction of an INVITE its caller cancelled while
// it was being admitted: the call starts, and ends at once.
type cancelledTx struct{ recordingTx }

func (*cancelledTx) OnCancel(sipmsg.FnTxCancel) bool { return false }

const admissionYAML = `
sip:
  listen: [udp://127.0.0.1:5060]
  advertise: 127.0.0.1
trunks:
  carrier:
    allow: [127.0.0.0/8]
numbers:
  "+15550100001": {source: test, flow: main}
flows:
  main:
    steps:
      - queue: main
queues:
  main:
    ring_timeout: 10s
    agents: [bob]
agents:
  bob:
    name: Bob
    sip: {username: bob, password: bob-secret}
`

// admitCall takes one INVITE through the edge's admission, with opts'
// FirstCall, and returns what the call published and logged and what
// went back to the carrier.
func admitCall(t *testing.T, firstCall func(string, time.Time) *bool) (*published, *lockedBuffer, []*sipmsg.Response) {
	t.Helper()
	cfg, err := config.LoadBytes("callsign.yaml", []byte(admissionYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	// Away from other packages' test ranges, and from other runs'.
	base := 44000 + (os.Getpid()%20)*100
	ports, err := media.NewPorts(netip.MustParseAddr("127.0.0.1"), base, base+99)
	if err != nil {
		t.Fatal(err)
	}
	clk := &stepClock{now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	pub := &published{}
	tx := &cancelledTx{}
	if lookup := firstCall; lookup != nil {
		firstCall = func(caller string, at time.Time) *bool {
			if sent := tx.sent(); len(sent) != 1 || sent[0].StatusCode != 100 {
				t.Errorf("first-call lookup with %v sent to the carrier, want the 100 Trying before it", sent)
			}
			if caller != "+15551234567" || !at.Equal(clk.Now()) {
				t.Errorf("first-call lookup for %q at %v, want +15551234567 at %v", caller, at, clk.Now())
			}
			return lookup(caller, at)
		}
	}
	log := &lockedBuffer{}
	e, err := New(Options{
		Config:    cfg,
		Router:    routing.NewRouter(routing.NewTable(cfg), clk),
		Ports:     ports,
		Publisher: pub,
		Clock:     clk,
		Log:       zerolog.New(log),
		NewID:     func() string { return "01JADMITTED" },
		FirstCall: firstCall,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })

	sdp := "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	raw := "INVITE sip:15550100001@127.0.0.1:5060 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-first\r\n" +
		"From: <sip:+15551234567@127.0.0.1>;tag=1\r\nTo: <sip:15550100001@127.0.0.1>\r\n" +
		"Call-ID: first@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:c@127.0.0.1:5070>\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: " + fmt.Sprint(len(sdp)) + "\r\n\r\n" + sdp
	msg, err := sipmsg.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	req := msg.(*sipmsg.Request)
	req.SetSource("127.0.0.1:5070")
	req.SetTransport("UDP")
	e.onInvite(req, tx)
	if _, ok := pub.get(call.EventCompleted); !ok {
		t.Fatalf("the call published %v, want it to have ended", pub.events)
	}
	return pub, log, tx.sent()
}

// TestFirstCallAtStart: what the first-call lookup says is in call.started
// and the call's first log line; unknown stays out of both.
func TestFirstCallAtStart(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name   string
		lookup func(string, time.Time) *bool
		want   *bool
	}{
		{"first", func(string, time.Time) *bool { return &yes }, &yes},
		{"not first", func(string, time.Time) *bool { return &no }, &no},
		{"unknown", func(string, time.Time) *bool { return nil }, nil},
		{"no lookup", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, log, _ := admitCall(t, tc.lookup)
			started, ok := pub.get(call.EventStarted)
			if !ok {
				t.Fatalf("no call.started in %v", pub.events)
			}
			switch {
			case tc.want == nil && started.FirstCall != nil:
				t.Errorf("call.started has first_call %v, want it absent", *started.FirstCall)
			case tc.want != nil && (started.FirstCall == nil || *started.FirstCall != *tc.want):
				t.Errorf("call.started has first_call %v, want %v", started.FirstCall, *tc.want)
			}
			if completed, _ := pub.get(call.EventCompleted); (completed.FirstCall == nil) != (tc.want == nil) {
				t.Errorf("call.completed lost or gained first_call: %v", completed.FirstCall)
			}

			var line map[string]any
			for _, l := range log.lines() {
				if strings.Contains(l, `"call started"`) {
					if err := json.Unmarshal([]byte(l), &line); err != nil {
						t.Fatal(err)
					}
				}
			}
			if line == nil {
				t.Fatalf("no call started line in\n%s", strings.Join(log.lines(), "\n"))
			}
			if line["call_id"] != "01JADMITTED" {
				t.Errorf("call started line without the call's call_id: %v", line)
			}
			got, present := line["first_call"]
			switch {
			case tc.want == nil && present:
				t.Errorf("call started line has first_call %v, want none", got)
			case tc.want != nil && got != *tc.want:
				t.Errorf("call started line has first_call %v, want %v", got, *tc.want)
			}
		})
	}
}
