package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/ops"
	"github.com/rs/zerolog"
)

// writeCert writes a self-signed certificate for 127.0.0.1 named cn, and
// its key, as PEM files.
func writeCert(t *testing.T, dir, cn string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "edge.crt"), filepath.Join(dir, "edge.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// TestHTTPSCertificateReloads: with http.tls the listener speaks https
// only (TLS 1.2 or later), and a reload serves a renewed certificate
// without a restart.
func TestHTTPSCertificateReloads(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, first := writeCert(t, dir, "first")
	cfg := &config.Config{HTTP: config.HTTP{TLS: &config.TLSFiles{Cert: certFile, Key: keyFile}}}
	c := &certificate{name: "http tls", files: func(c *config.Config) *config.TLSFiles { return c.HTTP.TLS }}
	tlsConf, err := c.config(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	addr, err := ops.Serve(ctx, "127.0.0.1:0", tlsConf, h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + addr.String() + "/"

	get := func(trust *x509.Certificate, maxVersion uint16) (*http.Response, error) {
		pool := x509.NewCertPool()
		pool.AddCert(trust)
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: maxVersion},
		}}
		return client.Get(url)
	}
	res, err := get(first, 0)
	if err != nil {
		t.Fatalf("https with the first certificate: %v", err)
	}
	res.Body.Close()
	if _, err := get(first, tls.VersionTLS11); err == nil {
		t.Error("TLS 1.1 was accepted")
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if res, err := plain.Get("http://" + addr.String() + "/"); err == nil && res.StatusCode == http.StatusOK {
		t.Error("plain http was served on the https listener")
	}

	_, _, second := writeCert(t, dir, "second")
	if err := c.reload(cfg); err != nil {
		t.Fatal(err)
	}
	res, err = get(second, 0)
	if err != nil {
		t.Fatalf("https after the reload, trusting the renewed certificate: %v", err)
	}
	if cn := res.TLS.PeerCertificates[0].Subject.CommonName; cn != "second" {
		t.Errorf("after the reload the listener shows %q", cn)
	}
	res.Body.Close()
}
