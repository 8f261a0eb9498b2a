package softphone

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/media"
	"github.com/coder/websocket"
	"github.com/rs/zerolog"
)

func testConfig(tokens map[string]string) *config.Config {
	cfg := &config.Config{Agents: map[string]*config.Agent{
		"carol": {ID: "carol", Name: "Carol", SIP: &config.AgentSIP{Contact: "sip:carol@127.0.0.1:5090"}},
	}}
	for id, tok := range tokens {
		cfg.Agents[id] = &config.Agent{ID: id, Name: strings.ToUpper(id[:1]) + id[1:], WebRTC: &config.AgentWebRTC{Token: tok}}
	}
	return cfg
}

type testHub struct {
	*Hub
	url   string
	ports *media.Ports
}

func newTestHub(t *testing.T, opts Options) *testHub {
	t.Helper()
	ports, err := media.NewPorts(netip.MustParseAddr("127.0.0.1"), 42000, 42199)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Config == nil {
		opts.Config = testConfig(map[string]string{"alice": "alice-secret", "bob": "bob-secret"})
	}
	opts.Ports = ports
	opts.Address = netip.MustParseAddr("127.0.0.1")
	opts.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	h := New(opts)
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return &testHub{Hub: h, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/softphone/ws", ports: ports}
}

// page is a test's side of a softphone socket.
type page struct {
	t    *testing.T
	conn *websocket.Conn
}

func (th *testHub) open(t *testing.T) *page {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, th.url, nil)
	if err != nil {
		t.Fatalf("dial softphone socket: %v", err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &page{t: t, conn: conn}
}

func (p *page) send(m map[string]any) {
	p.t.Helper()
	b, _ := json.Marshal(m)
	p.sendRaw(string(b))
}

func (p *page) sendRaw(s string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.conn.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// next reads the next message, failing after 5 s.
func (p *page) next() message {
	p.t.Helper()
	m, err := p.read(5 * time.Second)
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return m
}

func (p *page) read(d time.Duration) (message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, data, err := p.conn.Read(ctx)
	if err != nil {
		return message{}, err
	}
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		p.t.Fatalf("edge sent something that is not a message: %q", data)
	}
	return m, nil
}

// expect reads until a message of type typ, failing on an error message of
// another kind.
func (p *page) expect(typ string) message {
	p.t.Helper()
	for {
		m := p.next()
		if m.Type == typ {
			return m
		}
		if m.Type == "error" {
			p.t.Fatalf("want %s, got error %s: %s", typ, m.Code, m.Message)
		}
	}
}

// closed waits for the edge to close the socket and returns its status.
func (p *page) closed() websocket.StatusCode {
	p.t.Helper()
	for {
		_, err := p.read(5 * time.Second)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				p.t.Fatal("the edge did not close the socket")
			}
			return websocket.CloseStatus(err)
		}
	}
}

func (th *testHub) login(t *testing.T, agent, token string) *page {
	t.Helper()
	p := th.open(t)
	p.send(map[string]any{"type": "login", "agent": agent, "token": token})
	if w := p.expect("welcome"); w.Agent != agent {
		t.Fatalf("welcome for %q, want %q", w.Agent, agent)
	}
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLoginRefusesWrongTokenAndUnknownAgent(t *testing.T) {
	th := newTestHub(t, Options{})
	for _, tc := range []struct{ agent, token string }{
		{"alice", "wrong"},
		{"alice", ""},
		{"mallory", "alice-secret"},
		{"carol", ""}, // a SIP agent has no softphone login
	} {
		p := th.open(t)
		p.send(map[string]any{"type": "login", "agent": tc.agent, "token": tc.token})
		m := p.next()
		if m.Type != "error" || m.Code != errBadLogin || m.Message != "unknown agent or wrong token" {
			t.Errorf("%s/%q: got %+v, want bad_login", tc.agent, tc.token, m)
		}
		if st := p.closed(); st != closeBadLogin {
			t.Errorf("%s: close status %v, want %v", tc.agent, st, closeBadLogin)
		}
	}
	if th.Available("alice") {
		t.Error("a refused login made alice available")
	}
}

func TestLoginLimiterSlowsGuessing(t *testing.T) {
	th := newTestHub(t, Options{})
	for range maxLoginFailures {
		p := th.open(t)
		p.send(map[string]any{"type": "login", "agent": "alice", "token": "guess"})
		p.closed()
	}
	p := th.open(t)
	p.send(map[string]any{"type": "login", "agent": "alice", "token": "alice-secret"})
	m := p.next()
	if m.Code != errBadLogin || !strings.Contains(m.Message, "too many failed logins") {
		t.Fatalf("after %d failures the right token got %+v, want a refusal", maxLoginFailures, m)
	}
}

func TestPresenceAndAvailability(t *testing.T) {
	th := newTestHub(t, Options{Grace: 300 * time.Millisecond})
	if !th.Available("carol") {
		t.Fatal("a SIP agent must always be offered calls")
	}
	if th.Available("alice") {
		t.Fatal("alice is available before logging in")
	}
	p := th.open(t)
	p.send(map[string]any{"type": "login", "agent": "alice", "token": "alice-secret"})
	w := p.expect("welcome")
	if w.Name != "Alice" || w.Presence != Away {
		t.Fatalf("welcome = %+v, want name Alice, presence away", w)
	}
	if th.Available("alice") {
		t.Fatal("logged in but away, yet available")
	}
	p.send(map[string]any{"type": "presence", "status": "available"})
	if m := p.expect("presence"); m.Status != Available {
		t.Fatalf("presence reply %+v", m)
	}
	if !th.Available("alice") {
		t.Fatal("alice chose available but is not")
	}
	if s := th.Stats(); s.Connected != 1 || s.Available != 1 {
		t.Fatalf("stats %+v", s)
	}

	// The page drops: not offered calls at once, but back within the
	// grace period it is available again without choosing it.
	_ = p.conn.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "alice unavailable after her page closed", func() bool { return !th.Available("alice") })
	p = th.open(t)
	p.send(map[string]any{"type": "login", "agent": "alice", "token": "alice-secret"})
	if w := p.expect("welcome"); w.Presence != Available {
		t.Fatalf("back within the grace period: presence %q, want available", w.Presence)
	}
	if !th.Available("alice") {
		t.Fatal("alice not available after coming back")
	}

	// Gone longer than the grace period: away.
	_ = p.conn.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "alice unavailable", func() bool { return !th.Available("alice") })
	time.Sleep(500 * time.Millisecond)
	p = th.open(t)
	p.send(map[string]any{"type": "login", "agent": "alice", "token": "alice-secret"})
	if w := p.expect("welcome"); w.Presence != Away {
		t.Fatalf("back after the grace period: presence %q, want away", w.Presence)
	}
}

func TestBadMessagesGetErrorsAndKeepTheSocket(t *testing.T) {
	th := newTestHub(t, Options{})
	p := th.open(t)
	p.send(map[string]any{"type": "presence", "status": "available", "id": "m1"})
	if m := p.next(); m.Code != errNotLoggedIn || m.Ref != "m1" {
		t.Fatalf("before login: %+v, want not_logged_in with ref m1", m)
	}
	p.send(map[string]any{"type": "login", "agent": "alice", "token": "alice-secret"})
	p.expect("welcome")
	for _, tc := range []struct {
		raw, code string
	}{
		{`{not json`, errBadMessage},
		{`{"type":"presence","status":42}`, errBadMessage},
		{`{"type":"presence","status":"sleeping","id":"x"}`, errBadMessage},
		{`{"type":"launch-rockets"}`, errUnknownType},
		{`{"type":"answer","sdp":"v=0"}`, errBadMessage},
		{`{"type":"answer","call_id":"nope","sdp":"v=0"}`, errUnknownCall},
		{`{"type":"hangup","call_id":"nope"}`, errUnknownCall},
		{`{"type":"dtmf","call_id":"nope","digits":"1"}`, errUnknownCall},
		{`{"type":"login","agent":"alice","token":"alice-secret"}`, errBadMessage},
		{`[1,2,3]`, errBadMessage},
		{`{"type":"ping","pad":"` + strings.Repeat("x", maxMessage) + `"}`, errTooLarge},
	} {
		p.sendRaw(tc.raw)
		m := p.next()
		if m.Type != "error" || m.Code != tc.code || m.Message == "" {
			t.Errorf("%s: got %+v, want error %s with a message", tc.raw, m, tc.code)
		}
	}
	p.send(map[string]any{"type": "ping"})
	if m := p.next(); m.Type != "pong" {
		t.Fatalf("after bad messages the socket does not answer: %+v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.conn.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3})
	if m := p.next(); m.Code != errBadMessage {
		t.Fatalf("binary frame: %+v", m)
	}
}

func TestSecondLoginReplacesTheFirst(t *testing.T) {
	th := newTestHub(t, Options{})
	first := th.login(t, "alice", "alice-secret")
	second := th.login(t, "alice", "alice-secret")
	m := first.next()
	if m.Code != errReplaced {
		t.Fatalf("first page got %+v, want replaced", m)
	}
	if st := first.closed(); st != closeEnded {
		t.Fatalf("first page closed with %v", st)
	}
	second.send(map[string]any{"type": "presence", "status": "available"})
	second.expect("presence")
	if !th.Available("alice") {
		t.Fatal("the second page does not hold alice's presence")
	}
}

func TestReloadLogsOutChangedTokens(t *testing.T) {
	th := newTestHub(t, Options{})
	alice := th.login(t, "alice", "alice-secret")
	bob := th.login(t, "bob", "bob-secret")
	th.Reload(testConfig(map[string]string{"alice": "new-secret", "bob": "bob-secret"}))
	if m := alice.next(); m.Code != errLoggedOut {
		t.Fatalf("alice got %+v, want logged_out", m)
	}
	alice.closed()
	bob.send(map[string]any{"type": "ping"})
	if m := bob.next(); m.Type != "pong" {
		t.Fatalf("bob, whose token did not change, got %+v", m)
	}
	p := th.open(t)
	p.send(map[string]any{"type": "login", "agent": "alice", "token": "alice-secret"})
	if m := p.next(); m.Code != errBadLogin {
		t.Fatalf("old token after reload: %+v", m)
	}
	th.login(t, "alice", "new-secret")
}

func TestDeadPageIsDroppedByPings(t *testing.T) {
	th := newTestHub(t, Options{PingInterval: 100 * time.Millisecond, Grace: time.Hour})
	p := th.login(t, "alice", "alice-secret")
	p.send(map[string]any{"type": "presence", "status": "available"})
	p.expect("presence")
	// A page that stops reading never answers pings (pongs are sent by
	// the reader in this client).
	waitFor(t, "the unresponsive page dropped", func() bool { return !th.Available("alice") })
}

func TestPageServedWithSecurityHeaders(t *testing.T) {
	th := newTestHub(t, Options{})
	srv := httptest.NewServer(th.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/softphone/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /softphone/: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options"} {
		if res.Header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}
	for _, f := range []string{"app.js", "style.css"} {
		r, err := http.Get(srv.URL + "/softphone/" + f)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Errorf("GET /softphone/%s: %d", f, r.StatusCode)
		}
	}
	// A socket from another site's page is refused: the browser would
	// send the agent's credentials with it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, res2, err := websocket.Dial(ctx, th.url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil {
		t.Fatal("cross-origin socket accepted")
	}
	if res2 != nil && res2.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin socket: %d, want 403", res2.StatusCode)
	}
}
