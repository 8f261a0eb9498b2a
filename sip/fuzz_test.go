package sip

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/routing"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// FuzzDatagram takes arbitrary bytes the way the edge takes a UDP
// datagram: readFilter's checks, then sipgo's parser, then the handler
// sipgo would call, with a transaction that only keeps the responses.
// Nothing may panic, and whatever is sent back must be a SIP response
// sipgo itself can read, with a code the edge means to send.
//
// Run it with: go test -run '^$' -fuzz '^FuzzDatagram$' -fuzztime 60s ./sip/
func FuzzDatagram(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "test", "e2e", "testdata", "rfc4475", "*", "*.dat"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no RFC 4475 seeds: %v", err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range rawSeeds() {
		f.Add([]byte(seed))
	}

	e := fuzzEdge(f)
	byMethod, other := e.handlers()
	f.Fuzz(func(t *testing.T, data []byte) {
		code, reason := e.checkMessage(data)
		if code != 0 {
			if res := statelessResponse(e.parser, data, code, reason); res != nil {
				checkResponse(t, res, code)
			}
			return
		}
		if reason != "" {
			return // a response sipgo cannot parse, dropped
		}
		msg, err := e.parser.ParseSIP(data)
		if err != nil {
			t.Fatalf("checkMessage passed what sipgo cannot parse: %v", err)
		}
		req, ok := msg.(*sipmsg.Request)
		if !ok {
			return // responses go to client transactions, not here
		}
		if req.Via() == nil || req.CSeq() == nil {
			return // sipgo cannot key it to a transaction, and answers it itself
		}
		req.SetTransport("UDP")
		req.SetSource("127.0.0.1:5060")
		h, ok := byMethod[req.Method]
		if !ok {
			h = other
		}
		tx := &recordingTx{}
		h(req, tx)
		for _, res := range tx.sent() {
			checkResponse(t, []byte(res.String()), res.StatusCode)
		}
	})
}

// checkResponse fails t unless raw is a response sipgo parses, with code,
// one the edge sends (1xx, 200 or an error), and what ties it to its
// request.
func checkResponse(t *testing.T, raw []byte, code int) {
	t.Helper()
	msg, err := sipmsg.NewParser().ParseSIP(raw)
	if err != nil {
		t.Fatalf("response is not SIP: %v\n%q", err, raw)
	}
	res, ok := msg.(*sipmsg.Response)
	if !ok {
		t.Fatalf("response parses as a request:\n%q", raw)
	}
	if res.StatusCode != code || !(code < 200 || code == 200 || code >= 400 && code < 600) {
		t.Fatalf("response code %d (want %d, 1xx, 200, 4xx or 5xx):\n%q", res.StatusCode, code, raw)
	}
	if res.Via() == nil || res.CallID() == nil || res.CSeq() == nil {
		t.Fatalf("response lacks Via, Call-ID or CSeq:\n%q", raw)
	}
}

// fuzzEdge is an edge that is never started: a trunk of all of loopback,
// and no tracking number, so that no request gets as far as a call.
func fuzzEdge(f *testing.F) *Edge {
	cfg := &config.Config{
		SIP: config.SIP{Advertise: "127.0.0.1"},
		Trunks: map[string]*config.Trunk{
			"carrier": {Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		},
	}
	e, err := New(Options{
		Config: cfg,
		Router: routing.NewRouter(routing.NewTable(cfg), call.SystemClock{}),
		Clock:  call.SystemClock{},
		Log:    zerolog.Nop(),
		NewID:  func() string { return "fuzz" },
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = e.Close() })
	return e
}

// rawSeeds are requests of the kind test/e2e/raw_test.go writes by hand.
func rawSeeds() []string {
	head := func(method, uri, extra string) string {
		return method + " " + uri + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-raw-1;rport\r\n" +
			"From: \"Jane Caller\" <sip:+15551234567@127.0.0.1:5070>;tag=raw1\r\n" +
			"To: <" + uri + ">" + "\r\n" +
			"Call-ID: e2e-raw-1@127.0.0.1\r\n" +
			"CSeq: 1 " + method + "\r\n" +
			"Contact: <sip:+15551234567@127.0.0.1:5070;transport=udp>\r\n" +
			"Max-Forwards: 70\r\n" + extra
	}
	sdp := "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 9 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
	withBody := func(method, uri, body string) string {
		return head(method, uri, "Content-Type: application/sdp\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n") + body
	}
	empty := func(method, uri string) string { return head(method, uri, "Content-Length: 0\r\n\r\n") }
	number := "sip:15550100001@127.0.0.1:5060"
	return []string{
		withBody("INVITE", number, sdp),
		withBody("INVITE", "sip:15559999999@127.0.0.1:5060", sdp),
		strings.Replace(withBody("INVITE", number, sdp), "Max-Forwards: 70", "Max-Forwards: 0", 1),
		strings.Replace(empty("OPTIONS", "sip:127.0.0.1:5060"), "CSeq: 1 OPTIONS", "CSeq: 1 INVITE", 1),
		strings.Replace(empty("OPTIONS", "sip:127.0.0.1:5060"), "Call-ID: e2e-raw-1@127.0.0.1\r\n", "", 1),
		strings.Replace(empty("BYE", number), "To: <"+number+">", "To: <"+number+">;tag=nosuchtag", 1),
		empty("CANCEL", number),
		empty("REGISTER", "sip:127.0.0.1:5060"),
		empty("INFO", number),
	}
}

// recordingTx is a server transaction that keeps what is sent on it.
type recordingTx struct {
	mu        sync.Mutex
	responses []*sipmsg.Response
}

func (tx *recordingTx) Respond(res *sipmsg.Response) error {
	tx.mu.Lock()
	tx.responses = append(tx.responses, res)
	tx.mu.Unlock()
	return nil
}

func (tx *recordingTx) sent() []*sipmsg.Response {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.responses
}

func (tx *recordingTx) Terminate()                            {}
func (tx *recordingTx) OnTerminate(sipmsg.FnTxTerminate) bool { return true }
func (tx *recordingTx) Done() <-chan struct{} {
	done := make(chan struct{})
	close(done)
	return done
}
func (tx *recordingTx) Err() error                      { return nil }
func (tx *recordingTx) Acks() <-chan *sipmsg.Request    { return nil }
func (tx *recordingTx) OnCancel(sipmsg.FnTxCancel) bool { return true }
