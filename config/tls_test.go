package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a self-signed certificate and its key into dir.
func writePair(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "edge.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("edge.crt", "CERTIFICATE", der)
	write("edge.key", "EC PRIVATE KEY", kder)
}

func TestSIPTLS(t *testing.T) {
	dir := t.TempDir()
	writePair(t, dir)
	cfg, err := loadSIPSection(t, dir, `sip:
  listen: [udp://127.0.0.1:5060, tls://127.0.0.1:5061]
  tls: {cert: edge.crt, key: edge.key}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Listen{
		{Transport: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:5060")},
		{Transport: "tls", Addr: netip.MustParseAddrPort("127.0.0.1:5061")},
	}
	if len(cfg.SIP.Listen) != 2 || cfg.SIP.Listen[0] != want[0] || cfg.SIP.Listen[1] != want[1] {
		t.Errorf("listen %+v, want %+v", cfg.SIP.Listen, want)
	}
	if cfg.SIP.TLS == nil || cfg.SIP.TLS.Cert != filepath.Join(dir, "edge.crt") || cfg.SIP.TLS.Key != filepath.Join(dir, "edge.key") {
		t.Errorf("sip tls %+v, want the pair in %s, as absolute paths", cfg.SIP.TLS, dir)
	}
}

func TestDigestAlgorithms(t *testing.T) {
	cfg, err := loadSIPSection(t, t.TempDir(), `sip:
  digest_algorithms: [sha-256, MD5]
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.SIP.DigestAlgorithms; len(got) != 2 || got[0] != "SHA-256" || got[1] != "MD5" {
		t.Errorf("digest algorithms %q, want [SHA-256 MD5]", got)
	}
}

// loadSIPSection loads, from dir, a configuration of sip (a whole `sip:`
// section) and the least else a valid file needs.
func loadSIPSection(t *testing.T, dir, sip string) (*Config, error) {
	t.Helper()
	path := filepath.Join(dir, "callsign.yaml")
	body := sip + `trunks:
  carrier: {allow: [192.0.2.0/24]}
numbers:
  "+1 555 010 0001": {flow: sales}
flows:
  sales:
    steps:
      - queue: sales
queues:
  sales: {agents: [bob]}
agents:
  bob:
    sip: {username: bob, password: secret}
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return load(t, path, nil)
}
