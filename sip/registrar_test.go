package sip

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/routing"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/rs/zerolog"
)

type fixedClock struct{ now time.Time }

func (c *fixedClock) Now() time.Time { return c.now }
func (c *fixedClock) AfterFunc(time.Duration, func()) call.Timer {
	panic("registrar tests set no timers")
}

var (
	srcA = netip.MustParseAddr("192.0.2.1")
	srcB = netip.MustParseAddr("192.0.2.2")
)

func TestNonces(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	r := newRegistrar([]byte("secret"), clock, zerolog.Nop())
	n := r.nonce(srcA)
	if valid, fresh := r.checkNonce(n, srcA); !valid || !fresh {
		t.Fatalf("own nonce: valid=%v fresh=%v", valid, fresh)
	}
	if valid, _ := r.checkNonce(n, srcB); valid {
		t.Fatal("a nonce given to one address is accepted from another")
	}
	if n2 := r.nonce(srcA); n2 == n {
		t.Fatal("two nonces are equal")
	}
	tampered := []byte(n)
	tampered[3] ^= 1
	if valid, _ := r.checkNonce(string(tampered), srcA); valid {
		t.Fatal("a tampered nonce is accepted")
	}
	other := newRegistrar([]byte("another secret"), clock, zerolog.Nop())
	if valid, _ := other.checkNonce(n, srcA); valid {
		t.Fatal("a nonce of another edge is accepted")
	}
	if valid, _ := r.checkNonce("not hex", srcA); valid {
		t.Fatal("garbage is accepted as a nonce")
	}
	clock.now = clock.now.Add(nonceLife + time.Second)
	if valid, fresh := r.checkNonce(n, srcA); !valid || fresh {
		t.Fatalf("old nonce: valid=%v fresh=%v, want valid and stale", valid, fresh)
	}
}

func TestVerifyDigest(t *testing.T) {
	for _, alg := range []string{"MD5", "SHA-256", "sha-256", ""} {
		chal := &digest.Challenge{Realm: realm, Nonce: "abc", Algorithm: alg, QOP: []string{"auth"}}
		creds, err := digest.Digest(chal, digest.Options{
			Method: "REGISTER", URI: "sip:127.0.0.1", Username: "bob", Password: "bob-secret", Count: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !verify(creds, "REGISTER", "bob-secret") {
			t.Errorf("algorithm %q: right password refused", alg)
		}
		if verify(creds, "REGISTER", "wrong") {
			t.Errorf("algorithm %q: wrong password accepted", alg)
		}
		creds.Response = strings.ToUpper(creds.Response)
		if !verify(creds, "REGISTER", "bob-secret") {
			t.Errorf("algorithm %q: a response in upper-case hex refused", alg)
		}
	}
	// A SHA-256 response presented as MD5, or the other way round, and
	// algorithms the registrar does not offer.
	chal := &digest.Challenge{Realm: realm, Nonce: "abc", Algorithm: "SHA-256", QOP: []string{"auth"}}
	creds, _ := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:127.0.0.1", Username: "bob", Password: "bob-secret", Count: 1})
	creds.Algorithm = "MD5"
	if verify(creds, "REGISTER", "bob-secret") {
		t.Error("a SHA-256 response checked as MD5 is accepted")
	}
	for _, alg := range []string{"SHA-512-256", "MD5-sess", "SHA-256-sess", "nonsense"} {
		chal := &digest.Challenge{Realm: realm, Nonce: "abc", Algorithm: "MD5", QOP: []string{"auth"}}
		creds, _ := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:127.0.0.1", Username: "bob", Password: "bob-secret", Count: 1})
		creds.Algorithm = alg
		if verify(creds, "REGISTER", "bob-secret") {
			t.Errorf("algorithm %q accepted", alg)
		}
	}
	// RFC 2069 style, without qop.
	plain := &digest.Credentials{Username: "bob", Realm: realm, Nonce: "abc", URI: "sip:127.0.0.1"}
	plain.Response = md5hex(md5hex("bob", realm, "bob-secret"), "abc", md5hex("REGISTER", "sip:127.0.0.1"))
	if !verify(plain, "REGISTER", "bob-secret") {
		t.Fatal("digest without qop refused")
	}
}

const registrarYAML = `
sip:
  listen: [udp://127.0.0.1:5060]
  advertise: 127.0.0.1
trunks:
  carrier:
    allow: [10.0.0.0/8]
    cps: 1
numbers:
  "+15550100001": {source: test, flow: main}
flows:
  main:
    steps:
      - queue: main
queues:
  main:
    ring_timeout: 10s
    agents: [bob, alice]
agents:
  bob:
    name: Bob
    sip: {username: bob, password: bob-secret}
  alice:
    name: Alice
    sip: {username: alice, password: alice-secret}
`

// testEdge is an edge that is never started, on registrarYAML, with its
// log in log and its time from clock.
func testEdge(t testing.TB, clock *fixedClock, guard GuardOptions, log *bytes.Buffer) *Edge {
	t.Helper()
	cfg, err := config.LoadBytes("callsign.yaml", []byte(registrarYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	logger := zerolog.Nop()
	if log != nil {
		logger = zerolog.New(log).Level(zerolog.DebugLevel)
	}
	e, err := New(Options{
		Config: cfg,
		Router: routing.NewRouter(routing.NewTable(cfg), call.SystemClock{}),
		Clock:  clock,
		Log:    logger,
		NewID:  func() string { return "test" },
		Guard:  guard,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// phone sends REGISTERs from one address, the way a phone does: without
// credentials, then with the answer to the challenge.
type phone struct {
	t    *testing.T
	e    *Edge
	src  netip.Addr
	user string
	seq  int
	// alg is the challenge the phone answers ("" for the first offered).
	alg string
}

func (p *phone) send(auth string) *sipmsg.Response {
	p.t.Helper()
	p.seq++
	raw := fmt.Sprintf("REGISTER sip:127.0.0.1 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %[1]s:5060;branch=z9hG4bK-%[3]d\r\n"+
		"From: <sip:%[2]s@127.0.0.1>;tag=t%[3]d\r\n"+
		"To: <sip:%[2]s@127.0.0.1>\r\n"+
		"Call-ID: reg-%[2]s-%[1]s@test\r\n"+
		"CSeq: %[3]d REGISTER\r\n"+
		"Contact: <sip:%[2]s@%[1]s:5060>\r\n"+
		"Max-Forwards: 70\r\nExpires: 600\r\n", p.src, p.user, p.seq)
	if auth != "" {
		raw += "Authorization: " + auth + "\r\n"
	}
	raw += "Content-Length: 0\r\n\r\n"
	msg, err := sipmsg.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		p.t.Fatal(err)
	}
	req := msg.(*sipmsg.Request)
	req.SetSource(netip.AddrPortFrom(p.src, 5060).String())
	req.SetTransport("UDP")
	byMethod, _ := p.e.handlers()
	tx := &recordingTx{}
	byMethod[sipmsg.REGISTER](req, tx)
	sent := tx.sent()
	if len(sent) != 1 {
		p.t.Fatalf("REGISTER got %d responses, want 1", len(sent))
	}
	return sent[0]
}

// answer is the Authorization for a challenge of res, with password.
func (p *phone) answer(res *sipmsg.Response, password string) string {
	p.t.Helper()
	chal := p.challenge(res)
	creds, err := digest.Digest(chal, digest.Options{
		Method: "REGISTER", URI: "sip:127.0.0.1", Username: p.user, Password: password, Count: 1,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return creds.String()
}

func (p *phone) challenge(res *sipmsg.Response) *digest.Challenge {
	p.t.Helper()
	if res.StatusCode != 401 {
		p.t.Fatalf("got %d %s, want a 401 challenge", res.StatusCode, res.Reason)
	}
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		c, err := digest.ParseChallenge(h.Value())
		if err != nil {
			p.t.Fatalf("challenge %q: %v", h.Value(), err)
		}
		if p.alg == "" || strings.EqualFold(c.Algorithm, p.alg) {
			return c
		}
	}
	p.t.Fatalf("no %s challenge in\n%s", p.alg, res)
	return nil
}

// register runs the whole exchange and returns the final response.
func (p *phone) register(password string) *sipmsg.Response {
	p.t.Helper()
	return p.send(p.answer(p.send(""), password))
}

func wantCode(t *testing.T, what string, res *sipmsg.Response, code int) {
	t.Helper()
	if res.StatusCode != code {
		t.Fatalf("%s: got %d %s, want %d", what, res.StatusCode, res.Reason, code)
	}
}

func TestRegisterChallenges(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}

	t.Run("default: MD5", func(t *testing.T) {
		e := testEdge(t, clock, GuardOptions{}, nil)
		res := (&phone{t: t, e: e, src: srcA, user: "bob"}).send("")
		hs := res.GetHeaders("WWW-Authenticate")
		if len(hs) != 1 || !strings.Contains(hs[0].Value(), "algorithm=MD5") {
			t.Fatalf("challenges %v, want one, MD5", hs)
		}
		p := &phone{t: t, e: e, src: srcA, user: "bob"}
		wantCode(t, "MD5", p.register("bob-secret"), 200)
	})

	t.Run("SHA-256 and MD5", func(t *testing.T) {
		e := testEdge(t, clock, GuardOptions{DigestAlgorithms: []string{"SHA-256", "MD5"}}, nil)
		res := (&phone{t: t, e: e, src: srcA, user: "bob"}).send("")
		hs := res.GetHeaders("WWW-Authenticate")
		if len(hs) != 2 {
			t.Fatalf("%d challenges, want 2:\n%s", len(hs), res)
		}
		var nonces []string
		for i, alg := range []string{"SHA-256", "MD5"} {
			c, err := digest.ParseChallenge(hs[i].Value())
			if err != nil {
				t.Fatal(err)
			}
			if c.Algorithm != alg || c.Realm != realm || !c.SupportsQOP("auth") || c.Stale {
				t.Errorf("challenge %d: %q, want algorithm %s, realm, qop auth, not stale", i, hs[i].Value(), alg)
			}
			nonces = append(nonces, c.Nonce)
		}
		if nonces[0] != nonces[1] {
			t.Errorf("the challenges have nonces %q and %q, want one", nonces[0], nonces[1])
		}
		for _, alg := range []string{"SHA-256", "MD5"} {
			p := &phone{t: t, e: e, src: srcA, user: "bob", alg: alg}
			wantCode(t, alg, p.register("bob-secret"), 200)
			wantCode(t, alg+", wrong password", p.register("wrong"), 403)
		}
		if uri, ok := e.registrar.Lookup("bob"); !ok || uri.Host != srcA.String() {
			t.Fatalf("bob's binding: %v %v", uri, ok)
		}
	})
}

// TestRegisterStale: a correctly signed nonce that has expired, with the
// right password, gets a new challenge marked stale, so that the phone
// answers it without asking its user; with a wrong password it is a
// refusal like any other.
func TestRegisterStale(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	e := testEdge(t, clock, GuardOptions{DigestAlgorithms: []string{"SHA-256", "MD5"}}, nil)
	for _, alg := range []string{"SHA-256", "MD5"} {
		p := &phone{t: t, e: e, src: srcA, user: "bob", alg: alg}
		res := p.send("")
		right, wrong := p.answer(res, "bob-secret"), p.answer(res, "wrong")
		clock.now = clock.now.Add(nonceLife + time.Second)
		res = p.send(right)
		wantCode(t, alg+": right password, expired nonce", res, 401)
		hs := res.GetHeaders("WWW-Authenticate")
		if len(hs) != 2 {
			t.Fatalf("%d challenges, want 2", len(hs))
		}
		for _, h := range hs {
			if c, err := digest.ParseChallenge(h.Value()); err != nil || !c.Stale {
				t.Errorf("%s: challenge %q not stale", alg, h.Value())
			}
		}
		wantCode(t, alg+": answer to the stale challenge", p.send(p.answer(res, "bob-secret")), 200)
		wantCode(t, alg+": wrong password, expired nonce", p.send(wrong), 403)
	}
}

// TestRegisterNonceFromElsewhere: a nonce answered from another address
// than the one it was given to is no nonce of the edge's: a fresh
// challenge, not a refusal, and no failure counted.
func TestRegisterNonceFromElsewhere(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	e := testEdge(t, clock, GuardOptions{}, nil)
	a := &phone{t: t, e: e, src: srcA, user: "bob"}
	b := &phone{t: t, e: e, src: srcB, user: "bob"}
	for range 10 {
		res := b.send(a.answer(a.send(""), "wrong"))
		wantCode(t, "a nonce of A's from B", res, 401)
		if c := b.challenge(res); c.Stale {
			t.Fatal("a nonce of another address answered stale")
		}
	}
	wantCode(t, "B, after ten foreign nonces", b.register("bob-secret"), 200)
}

// TestRegisterLockout: five failures within ten minutes from a source, or
// for a username, refuse that source's and that username's registrations
// for fifteen minutes, the right password included, with the answer a
// wrong password gets; others go on registering.
func TestRegisterLockout(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	var log bytes.Buffer
	e := testEdge(t, clock, GuardOptions{}, &log)
	attacker := &phone{t: t, e: e, src: srcA, user: "bob"}
	var refusals []*sipmsg.Response
	for i := range 5 {
		res := attacker.register(fmt.Sprintf("guess-%d", i))
		wantCode(t, "a wrong password", res, 403)
		refusals = append(refusals, res)
		clock.now = clock.now.Add(time.Minute)
	}
	locked := attacker.register("bob-secret")
	wantCode(t, "the right password from the locked out source", locked, 403)
	if locked.Reason != refusals[0].Reason || len(locked.Headers()) != len(refusals[0].Headers()) {
		t.Errorf("a lockout answers %q with %d headers, a wrong password %q with %d",
			locked.Reason, len(locked.Headers()), refusals[0].Reason, len(refusals[0].Headers()))
	}
	if _, ok := e.registrar.Lookup("bob"); ok {
		t.Fatal("bob registered while locked out")
	}
	// The username, from elsewhere.
	wantCode(t, "bob's right password from another source", (&phone{t: t, e: e, src: srcB, user: "bob"}).register("bob-secret"), 403)
	// The source, for another username.
	wantCode(t, "alice's right password from the locked out source", (&phone{t: t, e: e, src: srcA, user: "alice"}).register("alice-secret"), 403)
	// Another username from another source.
	wantCode(t, "alice from another source", (&phone{t: t, e: e, src: srcB, user: "alice"}).register("alice-secret"), 200)
	var counts [2]uint64
	e.RegisterLockouts(func(by string, n uint64) {
		counts[map[string]int{"source": 0, "username": 1}[by]] = n
	})
	if counts != [2]uint64{1, 1} {
		t.Errorf("lockouts by source, username: %v, want [1 1]", counts)
	}
	if n := strings.Count(log.String(), "locked out after failed attempts"); n != 2 {
		t.Errorf("%d lockout lines in the log, want 2 (one per lockout, not per attempt):\n%s", n, log.String())
	}

	clock.now = clock.now.Add(DefaultGuard().RegisterLockout)
	wantCode(t, "bob once the lockout is over", attacker.register("bob-secret"), 200)
}

// TestRegisterLockoutUnknownUser: a username that does not exist is
// locked out the same way, with the same answers, so that the lockout
// does not tell which usernames exist.
func TestRegisterLockoutUnknownUser(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	e := testEdge(t, clock, GuardOptions{}, nil)
	known := &phone{t: t, e: e, src: srcA, user: "bob"}
	unknown := &phone{t: t, e: e, src: srcB, user: "mallory"}
	for i := range 6 {
		k, u := known.register("wrong"), unknown.register("wrong")
		if k.StatusCode != u.StatusCode || k.Reason != u.Reason || len(k.Headers()) != len(u.Headers()) {
			t.Fatalf("attempt %d: known username %d %s (%d headers), unknown %d %s (%d headers)",
				i+1, k.StatusCode, k.Reason, len(k.Headers()), u.StatusCode, u.Reason, len(u.Headers()))
		}
	}
	var locked uint64
	e.RegisterLockouts(func(_ string, n uint64) { locked += n })
	if locked != 4 {
		t.Fatalf("%d lockouts, want 4: both sources and both usernames", locked)
	}
}

// TestRegisterLockoutSparesTheRegisteredPhone: guessing a registered
// username's password from elsewhere locks the username out everywhere
// but where its phone registered from, which keeps renewing.
func TestRegisterLockoutSparesTheRegisteredPhone(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	e := testEdge(t, clock, GuardOptions{}, nil)
	bob := &phone{t: t, e: e, src: srcA, user: "bob"}
	wantCode(t, "bob's phone", bob.register("bob-secret"), 200)
	for _, src := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5"} {
		p := &phone{t: t, e: e, src: netip.MustParseAddr(src), user: "bob"}
		wantCode(t, "a guess", p.register("guess"), 403)
	}
	wantCode(t, "bob's right password from a new address", (&phone{t: t, e: e, src: srcB, user: "bob"}).register("bob-secret"), 403)
	clock.now = clock.now.Add(5 * time.Minute)
	wantCode(t, "bob's phone renewing", bob.register("bob-secret"), 200)
}

// TestRegisterFailuresWindow: failures further apart than the window do
// not add up, and a success forgets them.
func TestRegisterFailuresWindow(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	e := testEdge(t, clock, GuardOptions{}, nil)
	p := &phone{t: t, e: e, src: srcA, user: "bob"}
	for range 4 {
		wantCode(t, "a typo", p.register("typo"), 403)
	}
	clock.now = clock.now.Add(DefaultGuard().RegisterWindow)
	for range 4 {
		wantCode(t, "a typo, ten minutes later", p.register("typo"), 403)
	}
	wantCode(t, "the right password", p.register("bob-secret"), 200)
	for range 4 {
		wantCode(t, "a typo after a success", p.register("typo"), 403)
	}
	wantCode(t, "the right password again", p.register("bob-secret"), 200)
}

// TestRegisterLogsNoSecrets: whatever happens to a registration, no log
// line carries the password, its hash or the response computed from it.
func TestRegisterLogsNoSecrets(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	var log bytes.Buffer
	e := testEdge(t, clock, GuardOptions{DigestAlgorithms: []string{"SHA-256", "MD5"}}, &log)
	var secrets []string
	for _, alg := range []string{"SHA-256", "MD5"} {
		p := &phone{t: t, e: e, src: srcA, user: "bob", alg: alg}
		for _, pw := range []string{"bob-secret", "wrong-secret"} {
			auth := p.answer(p.send(""), pw)
			creds, err := digest.ParseCredentials(auth)
			if err != nil {
				t.Fatal(err)
			}
			h := digestHash(alg)
			secrets = append(secrets, pw, creds.Response, hexsum(h, "bob", realm, pw))
			p.send(auth)
		}
		clock.now = clock.now.Add(nonceLife + time.Second) // and a stale one
		p.send(p.answer(p.send(""), "bob-secret"))
	}
	for range 6 {
		(&phone{t: t, e: e, src: srcB, user: "bob"}).register("wrong-secret")
	}
	if log.Len() == 0 {
		t.Fatal("nothing logged: the test sees nothing")
	}
	for _, s := range secrets {
		if strings.Contains(log.String(), s) {
			t.Errorf("the log holds %q:\n%s", s, log.String())
		}
	}
}
