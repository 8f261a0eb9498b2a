package sip

import (
	"testing"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/icholy/digest"
	"github.com/rs/zerolog"
)

type fixedClock struct{ now time.Time }

func (c *fixedClock) Now() time.Time { return c.now }
func (c *fixedClock) AfterFunc(time.Duration, func()) call.Timer {
	panic("registrar tests set no timers")
}

func TestNonces(t *testing.T) {
	clock := &fixedClock{now: time.Unix(1_800_000_000, 0)}
	r := newRegistrar([]byte("secret"), clock, zerolog.Nop())
	n := r.nonce()
	if valid, fresh := r.checkNonce(n); !valid || !fresh {
		t.Fatalf("own nonce: valid=%v fresh=%v", valid, fresh)
	}
	if n2 := r.nonce(); n2 == n {
		t.Fatal("two nonces are equal")
	}
	tampered := []byte(n)
	tampered[3] ^= 1
	if valid, _ := r.checkNonce(string(tampered)); valid {
		t.Fatal("a tampered nonce is accepted")
	}
	other := newRegistrar([]byte("another secret"), clock, zerolog.Nop())
	if valid, _ := other.checkNonce(n); valid {
		t.Fatal("a nonce of another edge is accepted")
	}
	if valid, _ := r.checkNonce("not hex"); valid {
		t.Fatal("garbage is accepted as a nonce")
	}
	clock.now = clock.now.Add(nonceLife + time.Second)
	if valid, fresh := r.checkNonce(n); !valid || fresh {
		t.Fatalf("old nonce: valid=%v fresh=%v, want valid and stale", valid, fresh)
	}
}

func TestVerifyDigest(t *testing.T) {
	chal := &digest.Challenge{Realm: realm, Nonce: "abc", Algorithm: "MD5", QOP: []string{"auth"}}
	creds, err := digest.Digest(chal, digest.Options{
		Method: "REGISTER", URI: "sip:127.0.0.1", Username: "bob", Password: "bob-secret", Count: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !verify(creds, "REGISTER", "bob-secret") {
		t.Fatal("right password refused")
	}
	if verify(creds, "REGISTER", "wrong") {
		t.Fatal("wrong password accepted")
	}
	// RFC 2069 style, without qop.
	plain := &digest.Credentials{Username: "bob", Realm: realm, Nonce: "abc", URI: "sip:127.0.0.1"}
	plain.Response = md5hex(md5hex("bob", realm, "bob-secret"), "abc", md5hex("REGISTER", "sip:127.0.0.1"))
	if !verify(plain, "REGISTER", "bob-secret") {
		t.Fatal("digest without qop refused")
	}
}
