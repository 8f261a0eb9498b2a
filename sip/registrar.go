package sip

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callsign/callsign/call"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/rs/zerolog"
)

const (
	realm = "callsign"
	// nonces are accepted this long after they were issued
	nonceLife = 5 * time.Minute
	// bounds on the registration interval a phone may ask for
	minExpires     = 60
	maxExpires     = 3600
	defaultExpires = 3600
)

// Registrar keeps where agents' SIP phones registered, after digest
// authentication against the passwords of the configuration.
type Registrar struct {
	secret []byte // signs nonces, so no nonce needs to be stored
	clock  call.Clock
	log    zerolog.Logger

	mu       sync.Mutex
	bindings map[string]binding // by username
}

type binding struct {
	contact sipmsg.Uri
	source  netip.Addr // where the REGISTER came from
	// flow is the far end (host:port) of the TCP or TLS connection the
	// REGISTER came on: requests to the phone go back on it (RFC 5626's
	// flow), since a phone behind NAT or one without a server
	// certificate cannot take a connection from the edge.
	flow, flowTransport string
	expires             time.Time
}

func newRegistrar(secret []byte, clock call.Clock, log zerolog.Logger) *Registrar {
	return &Registrar{secret: secret, clock: clock, log: log, bindings: map[string]binding{}}
}

// Lookup is the contact a user registered, while the registration holds.
func (r *Registrar) Lookup(username string) (sipmsg.Uri, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.bindings[username]
	if !ok {
		return sipmsg.Uri{}, false
	}
	if !r.clock.Now().Before(b.expires) {
		delete(r.bindings, username)
		return sipmsg.Uri{}, false
	}
	return b.contact, true
}

// Flow is where requests to username's phone are sent, and on which
// transport, when it registered over a connection; ok is false for a
// phone to be reached at its Contact.
func (r *Registrar) Flow(username string) (dest, transport string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, found := r.bindings[username]
	if !found || b.flow == "" {
		return "", "", false
	}
	return b.flow, b.flowTransport, true
}

// nonce is issue time and randomness, signed together with the address
// it is given to: a nonce is good only from there, so that nonces
// gathered from one address cannot feed guesses sent from many.
func (r *Registrar) nonce(src netip.Addr) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(r.clock.Now().Unix()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:]) + hex.EncodeToString(r.sign(b[:], src))
}

func (r *Registrar) sign(b []byte, src netip.Addr) []byte {
	mac := hmac.New(sha256.New, r.secret)
	mac.Write(b)
	ip := src.As16()
	mac.Write(ip[:])
	return mac.Sum(nil)[:16]
}

// checkNonce says whether the edge issued n to src, and whether it is
// still fresh.
func (r *Registrar) checkNonce(n string, src netip.Addr) (valid, fresh bool) {
	raw, err := hex.DecodeString(n)
	if err != nil || len(raw) != 32 {
		return false, false
	}
	if !hmac.Equal(r.sign(raw[:16], src), raw[16:]) {
		return false, false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0)
	return true, r.clock.Now().Sub(issued) < nonceLife
}

// challenges are the WWW-Authenticate headers of a 401: one per
// algorithm, in the order given (the preferred first: RFC 8760 2.4 has a
// phone take the first it supports), with one nonce.
func (r *Registrar) challenges(algorithms []string, src netip.Addr, stale bool) []sipmsg.Header {
	nonce := r.nonce(src)
	hs := make([]sipmsg.Header, 0, len(algorithms))
	for _, alg := range algorithms {
		v := fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=%s, qop="auth"`, realm, nonce, alg)
		if stale {
			v += ", stale=true"
		}
		hs = append(hs, sipmsg.NewHeader("WWW-Authenticate", v))
	}
	return hs
}

// digestHash is the hash of a digest algorithm, nil for one the registrar
// does not take. No algorithm named is MD5 (RFC 2617 3.2.1); the -sess
// variants are not offered, so not taken.
func digestHash(algorithm string) func() hash.Hash {
	switch {
	case algorithm == "" || strings.EqualFold(algorithm, "MD5"):
		return md5.New
	case strings.EqualFold(algorithm, "SHA-256"):
		return sha256.New
	}
	return nil
}

func hexsum(h func() hash.Hash, parts ...string) string {
	d := h()
	d.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(d.Sum(nil))
}

func md5hex(parts ...string) string { return hexsum(md5.New, parts...) }

// verify checks a digest response against the password, in constant time
// for responses of the expected length.
func verify(creds *digest.Credentials, method, password string) bool {
	h := digestHash(creds.Algorithm)
	if h == nil {
		return false
	}
	ha1 := hexsum(h, creds.Username, realm, password)
	ha2 := hexsum(h, method, creds.URI)
	var want string
	if creds.QOP == "" {
		want = hexsum(h, ha1, creds.Nonce, ha2)
	} else {
		want = hexsum(h, ha1, creds.Nonce, fmt.Sprintf("%08x", creds.Nc), creds.Cnonce, creds.QOP, ha2)
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(creds.Response))) == 1
}

// boundFrom says whether username's registration holds and came from src.
func (r *Registrar) boundFrom(username string, src netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.bindings[username]
	return ok && b.source == src && r.clock.Now().Before(b.expires)
}

// unknownPassword stands in for the password of a username that has
// none, so that such a request costs what a wrong password does.
const unknownPassword = "\x00 no such user"

func (e *Edge) onRegister(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if maxForwardsExhausted(req) {
		e.respond(tx, req, 483, "Too Many Hops")
		return
	}
	r := e.registrar
	to := req.To()
	if to == nil {
		e.respond(tx, req, 400, "Missing To")
		return
	}
	src, _ := sourceAddr(req)
	username := to.Address.User
	h := req.GetHeader("Authorization")
	if h == nil {
		e.respond(tx, req, 401, "Unauthorized", r.challenges(e.guard.opts.DigestAlgorithms, src, false)...)
		return
	}
	creds, err := digest.ParseCredentials(h.Value())
	if err != nil || creds.Username != username || creds.Realm != realm || digestHash(creds.Algorithm) == nil {
		e.respond(tx, req, 401, "Unauthorized", r.challenges(e.guard.opts.DigestAlgorithms, src, false)...)
		return
	}
	valid, fresh := r.checkNonce(creds.Nonce, src)
	if !valid {
		e.respond(tx, req, 401, "Unauthorized", r.challenges(e.guard.opts.DigestAlgorithms, src, false)...)
		return
	}
	// A locked out source or username gets what a wrong password gets,
	// whatever its credentials: the guesser learns nothing from the
	// answers once locked out, and nothing tells a lockout of a username
	// that exists from one that does not.
	if e.guard.registerLocked(src, username, r.boundFrom(username, src)) {
		e.respond(tx, req, 403, "Forbidden")
		return
	}
	password, known := "", false
	for _, a := range e.settings.Load().cfg.Agents {
		if a.SIP != nil && a.SIP.Username == username && a.SIP.Username != "" && a.SIP.Password != "" {
			password, known = a.SIP.Password, true
			break
		}
	}
	if !known {
		password = unknownPassword
	}
	if ok := verify(creds, string(req.Method), password); !ok || !known {
		// The same answer for an unknown user and a wrong password, so
		// the edge does not tell which usernames exist.
		e.log.Info().Str("username", username).Str("source", req.Source()).Msg("registration refused: bad credentials")
		bySource, byUser := e.guard.registerFailed(src, username)
		g := e.guard.opts
		if bySource {
			e.log.Warn().Str("source", src.String()).Int("failures", g.RegisterFailures).
				Str("locked_for", g.RegisterLockout.String()).
				Msg("registrations from this source locked out after failed attempts")
		}
		if byUser {
			e.log.Warn().Str("username", username).Int("failures", g.RegisterFailures).
				Str("locked_for", g.RegisterLockout.String()).
				Msg("registrations of this username locked out after failed attempts")
		}
		e.respond(tx, req, 403, "Forbidden")
		return
	}
	if !fresh {
		e.respond(tx, req, 401, "Unauthorized", r.challenges(e.guard.opts.DigestAlgorithms, src, true)...)
		return
	}
	e.guard.registerSucceeded(src, username)

	contact := req.Contact()
	expires := defaultExpires
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			expires = n
		}
	}
	if contact != nil {
		if v, ok := contact.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				expires = n
			}
		}
	}
	if contact == nil {
		// A query: answer with the current binding.
		if uri, ok := r.Lookup(username); ok {
			e.respond(tx, req, 200, "OK", &sipmsg.ContactHeader{Address: uri})
			return
		}
		e.respond(tx, req, 200, "OK")
		return
	}
	if expires == 0 || contact.Address.Wildcard {
		r.mu.Lock()
		delete(r.bindings, username)
		r.mu.Unlock()
		e.log.Info().Str("username", username).Msg("phone unregistered")
		e.respond(tx, req, 200, "OK", sipmsg.NewHeader("Expires", "0"))
		return
	}
	if expires < minExpires {
		e.respond(tx, req, 423, "Interval Too Brief", sipmsg.NewHeader("Min-Expires", strconv.Itoa(minExpires)))
		return
	}
	expires = min(expires, maxExpires)
	uri := contact.Address
	r.mu.Lock()
	b := binding{contact: uri, source: src, expires: r.clock.Now().Add(time.Duration(expires) * time.Second)}
	if t := sipmsg.NetworkToUpper(req.Transport()); t == "TCP" || t == "TLS" {
		b.flow, b.flowTransport = req.Source(), t
	}
	r.bindings[username] = b
	r.mu.Unlock()
	e.log.Info().Str("username", username).Str("contact", uri.String()).Int("expires", expires).Msg("phone registered")
	c := &sipmsg.ContactHeader{Address: uri, Params: sipmsg.HeaderParams{{K: "expires", V: strconv.Itoa(expires)}}}
	e.respond(tx, req, 200, "OK", c, sipmsg.NewHeader("Expires", strconv.Itoa(expires)))
}
