package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCertificate writes a self-signed certificate for 127.0.0.1 and its
// key into dir; RSA, which every TLS stack the peers use speaks.
func writeCertificate(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "callsign e2e"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		// Its own CA, so that peers can trust it as the one anchor.
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "edge.crt"), filepath.Join(dir, "edge.key")
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certFile, "CERTIFICATE", der)
	write(keyFile, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	return certFile, keyFile
}

// TestTLSCarrier: a carrier's call over SIP over TLS is answered like one
// over UDP, the agent's hang-up reaches the carrier on its TLS
// connection, and the listener refuses what is not TLS 1.2+ with strong
// ciphers. The carrier is baresip (libre over OpenSSL), which verifies
// the edge's certificate against the one the test made.
func TestTLSCarrier(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	requireTools(t, "baresip")
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-bye.xml", Calls: 1, Timeout: 40 * time.Second})
	e := startEdge(t, edgeConfig{
		TLS:    true,
		Queue:  queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
	})
	tlsTarget := fmt.Sprintf("127.0.0.1:%d", e.tlsPort)

	// Weak or old clients are refused at the handshake.
	for _, c := range []struct {
		name string
		conf *tls.Config
	}{
		{"TLS 1.1", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}},
		{"TLS 1.2 with CBC ciphers only", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA}}},
	} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsTarget, c.conf)
		if err == nil {
			t.Errorf("%s: handshake with the edge succeeded (%s, %s), want it refused", c.name,
				tls.VersionName(conn.ConnectionState().Version), tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
			conn.Close()
		} else {
			t.Logf("%s refused: %v", c.name, err)
		}
	}
	// A modern client gets the certificate the config names.
	pool := x509.NewCertPool()
	pemBytes, err := os.ReadFile(e.certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pemBytes)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsTarget,
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2 handshake verifying the configured certificate: %v", err)
	}
	t.Logf("TLS 1.2 client got %s", tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
	conn.Close()

	// Nothing reaches SIP over plain TCP on the TLS port.
	raw, err := net.DialTimeout("tcp", tlsTarget, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = raw.Write([]byte("OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKplain\r\n" +
		"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:edge@127.0.0.1>\r\nCall-ID: plain-on-tls\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"))
	_ = raw.SetReadDeadline(time.Now().Add(3 * time.Second))
	if b, err := io.ReadAll(raw); strings.Contains(string(b), "SIP/2.0 200") {
		t.Errorf("plain SIP on the TLS port was answered: %q (%v)", b, err)
	}
	raw.Close()

	caller := startBaresipCaller(t, e.certFile, fmt.Sprintf("sip:%s@%s;transport=tls", dialedUser, tlsTarget))
	var completed event
	deadline := time.Now().Add(30 * time.Second)
	for {
		if evs := e.events.find("call.completed", nil); len(evs) > 0 {
			completed = evs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call.completed within 30s of baresip dialing over TLS; baresip:\n%s", caller.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	agent.succeed(t, 10*time.Second)
	wantFields(t, completed, map[string]string{"agent": "carol", "outcome": "answered", "hangup_by": "agent"})
	wantMs(t, completed, "talk_ms", 1500, 10000)
	// The agent hung up: the carrier hears of it by the edge's BYE on
	// the carrier's TLS connection, not by giving up.
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(caller.out.String(), "terminated") {
		if time.Now().After(deadline) {
			t.Fatalf("baresip's call still up 10s after the agent hung up: the edge's BYE did not reach it over TLS:\n%s", caller.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := caller.out.String(); !strings.Contains(out, "Call established") {
		t.Errorf("baresip never had the call established over TLS:\n%s", out)
	}
}

// startBaresipCaller starts baresip as a carrier that dials target once,
// over TLS, trusting only caFile.
func startBaresipCaller(t *testing.T, caFile, target string) *baresipProc {
	t.Helper()
	p := &baresipProc{dir: t.TempDir(), sipPort: freePort(t), rtpPort: mediaPort(t), out: &syncBuffer{}, done: make(chan struct{})}
	source := filepath.Join(p.dir, "say.wav")
	writeToneWAV(t, source, 440, 5*time.Second)
	cfg := fmt.Sprintf(`poll_method		poll
sip_listen		127.0.0.1:%d
sip_cafile		%s
rtp_ports		%d-%d
audio_source		aufile,%s
audio_player		aufile,%s
audio_alert		aufile,%s
audio_srate		8000
audio_channels		1
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module_app		account.so
module_app		menu.so
`, p.sipPort, caFile, p.rtpPort, p.rtpPort+1, source, filepath.Join(p.dir, "heard.wav"), filepath.Join(p.dir, "alert.wav"))
	account := fmt.Sprintf("<sip:%s@127.0.0.1;transport=tls>;regint=0;audio_codecs=PCMU,PCMA\n", callerNumber)
	p.launch(t, cfg, account, "-e", "/dial "+target, "-t", "25")
	return p
}

// TestTLSPhone: a phone that registers over TLS (baresip, with no
// certificate of its own, as phones have) is rung on the connection it
// registered on, answers, and hears the caller.
func TestTLSPhone(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	requireTools(t, "baresip")
	e := startEdge(t, edgeConfig{
		TLS:    true,
		Queue:  queueConfig{RingTimeout: "5s", MaxWait: "10s", Agents: []string{"bob"}},
		Agents: []agentConfig{{ID: "bob", Name: "Bob", Username: "bob", Password: bobPassword}},
	})
	phone := startBaresipAt(t, fmt.Sprintf("127.0.0.1:%d", e.tlsPort), ";transport=tls", e.certFile)
	phone.waitRegistered(t, e, 15*time.Second)
	if !strings.Contains(e.log.String(), "transport=tls") {
		t.Errorf("bob's registration does not show a TLS contact:\n%s", tail(e.log.String(), 20))
	}

	carrierMedia := mediaPort(t)
	rtp := startCapture(t, carrierMedia, phone.rtpPort)
	c := carrierOn(t, e, "carrier", "carrier-answered.xml", carrierMedia)
	c.succeed(t, 45*time.Second)
	pkts := rtp.packets(t)
	wantRTPThroughEdge(t, e, pkts, "carrier", c.mediaPort, phone.rtpPort)
	wantRTPThroughEdge(t, e, pkts, "baresip", phone.rtpPort, c.mediaPort)

	evs := e.events.callEvents(t, c.callID, eventDeadline)
	wantFields(t, one(t, evs, "call.completed"), map[string]string{
		"agent": "bob", "outcome": "answered", "hangup_by": "caller",
	})
	// The caller's BYE reached the phone on its connection too.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(phone.out.String(), "terminated") {
		if time.Now().After(deadline) {
			t.Fatalf("baresip's call still up 10s after the caller hung up:\n%s", phone.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
