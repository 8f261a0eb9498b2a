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
	expires time.Time
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

// nonce is issue time and randomness, signed.
func (r *Registrar) nonce() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(r.clock.Now().Unix()))
	_, _ = rand.Read(b[8:])
	mac := hmac.New(sha256.New, r.secret)
	mac.Write(b[:])
	return hex.EncodeToString(b[:]) + hex.EncodeToString(mac.Sum(nil)[:16])
}

// checkNonce says whether the edge issued n, and whether it is still fresh.
func (r *Registrar) checkNonce(n string) (valid, fresh bool) {
	raw, err := hex.DecodeString(n)
	if err != nil || len(raw) != 32 {
		return false, false
	}
	mac := hmac.New(sha256.New, r.secret)
	mac.Write(raw[:16])
	if !hmac.Equal(mac.Sum(nil)[:16], raw[16:]) {
		return false, false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0)
	return true, r.clock.Now().Sub(issued) < nonceLife
}

func (r *Registrar) challenge(stale bool) sipmsg.Header {
	v := fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=MD5, qop="auth"`, realm, r.nonce())
	if stale {
		v += ", stale=true"
	}
	return sipmsg.NewHeader("WWW-Authenticate", v)
}

func md5hex(parts ...string) string {
	sum := md5.Sum([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(sum[:])
}

// verify checks a digest response against the password.
func verify(creds *digest.Credentials, method, password string) bool {
	ha1 := md5hex(creds.Username, realm, password)
	ha2 := md5hex(method, creds.URI)
	var want string
	if creds.QOP == "" {
		want = md5hex(ha1, creds.Nonce, ha2)
	} else {
		want = md5hex(ha1, creds.Nonce, fmt.Sprintf("%08x", creds.Nc), creds.Cnonce, creds.QOP, ha2)
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(creds.Response))) == 1
}

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
	username := to.Address.User
	h := req.GetHeader("Authorization")
	if h == nil {
		e.respond(tx, req, 401, "Unauthorized", r.challenge(false))
		return
	}
	creds, err := digest.ParseCredentials(h.Value())
	if err != nil || creds.Username != username || creds.Realm != realm {
		e.respond(tx, req, 401, "Unauthorized", r.challenge(false))
		return
	}
	valid, fresh := r.checkNonce(creds.Nonce)
	if !valid {
		e.respond(tx, req, 401, "Unauthorized", r.challenge(false))
		return
	}
	var password string
	for _, a := range e.settings.Load().cfg.Agents {
		if a.SIP != nil && a.SIP.Username == username && a.SIP.Username != "" {
			password = a.SIP.Password
			break
		}
	}
	if password == "" || !verify(creds, string(req.Method), password) {
		// The same answer for an unknown user and a wrong password, so
		// the edge does not tell which usernames exist.
		e.log.Info().Str("username", username).Str("source", req.Source()).Msg("registration refused: bad credentials")
		e.respond(tx, req, 403, "Forbidden")
		return
	}
	if !fresh {
		e.respond(tx, req, 401, "Unauthorized", r.challenge(true))
		return
	}

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
	r.bindings[username] = binding{contact: uri, expires: r.clock.Now().Add(time.Duration(expires) * time.Second)}
	r.mu.Unlock()
	e.log.Info().Str("username", username).Str("contact", uri.String()).Int("expires", expires).Msg("phone registered")
	c := &sipmsg.ContactHeader{Address: uri, Params: sipmsg.HeaderParams{{K: "expires", V: strconv.Itoa(expires)}}}
	e.respond(tx, req, 200, "OK", c, sipmsg.NewHeader("Expires", strconv.Itoa(expires)))
}
