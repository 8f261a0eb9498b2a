package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBaresipPhone: a real softphone, baresip, registers with digest auth
// and answers (auto-answer) the call the edge rings it with; audio goes
// both ways through the edge, and what baresip hears is the caller's.
func TestBaresipPhone(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	requireTools(t, "baresip")
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "5s", MaxWait: "10s", Agents: []string{"bob"}},
		Agents: []agentConfig{{ID: "bob", Name: "Bob", Username: "bob", Password: bobPassword}},
	})
	phone := startBaresip(t, e)
	phone.waitRegistered(t, e, 15*time.Second)

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

	// baresip's sndfile module dumps the audio it decoded to a WAV file:
	// the caller's speech (g711a.pcap), not silence.
	phone.stop(t)
	dumps, _ := filepath.Glob(filepath.Join(phone.heard, "*dec*.wav"))
	if len(dumps) != 1 {
		entries, _ := os.ReadDir(phone.heard)
		t.Fatalf("want one dump of decoded audio from baresip, got %v (dir: %v)", dumps, entries)
	}
	rms := wavRMS(t, dumps[0])
	t.Logf("baresip heard audio of RMS %.0f", rms)
	if rms < 100 {
		t.Errorf("baresip heard silence (RMS %.0f) instead of the caller", rms)
	}
}

type baresipProc struct {
	dir     string
	sipPort int
	rtpPort int
	heard   string
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
}

func startBaresip(t *testing.T, e *edge) *baresipProc {
	t.Helper()
	return startBaresipAt(t, e.sipTarget(), "", "")
}

// startBaresipAt starts baresip registering bob at registrar (host:port);
// uriParams are added to the account's URI (";transport=tls"), and
// caFile, if set, is the one certificate it trusts.
func startBaresipAt(t *testing.T, registrar, uriParams, caFile string) *baresipProc {
	t.Helper()
	p := &baresipProc{dir: t.TempDir(), sipPort: freePort(t), rtpPort: mediaPort(t), out: &syncBuffer{}, done: make(chan struct{})}
	p.heard = filepath.Join(p.dir, "heard")
	if err := os.Mkdir(p.heard, 0o700); err != nil {
		t.Fatal(err)
	}
	source := filepath.Join(p.dir, "say.wav")
	writeToneWAV(t, source, 440, 5*time.Second)
	ca := ""
	if caFile != "" {
		ca = "sip_cafile\t\t" + caFile + "\n"
	}
	cfg := fmt.Sprintf(`poll_method		poll
sip_listen		127.0.0.1:%d
rtp_ports		%d-%d
snd_path		%s
audio_source		aufile,%s
audio_alert		aufile,%s
audio_srate		8000
audio_channels		1
%smodule_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			sndfile.so
module_app		account.so
module_app		menu.so
`, p.sipPort, p.rtpPort, p.rtpPort+1, p.heard, source, filepath.Join(p.dir, "alert.wav"), ca)
	account := fmt.Sprintf("<sip:bob@%s%s>;auth_pass=%s;answermode=auto;regint=600;audio_codecs=PCMA,PCMU\n",
		registrar, uriParams, bobPassword)
	p.launch(t, cfg, account)
	return p
}

// launch writes baresip's config and accounts files into p.dir and starts
// it there with args; it is stopped when the test ends.
func (p *baresipProc) launch(t *testing.T, cfg, accounts string, args ...string) {
	t.Helper()
	for name, body := range map[string]string{"config": cfg, "accounts": accounts} {
		if err := os.WriteFile(filepath.Join(p.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p.cmd = exec.Command("baresip", append([]string{"-f", p.dir}, args...)...)
	p.cmd.Dir = p.dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start baresip: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("baresip output:\n%s", p.out.String())
		}
	})
}

// waitRegistered waits for the edge to log bob's registration.
func (p *baresipProc) waitRegistered(t *testing.T, e *edge, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(e.log.String(), `"username":"bob"`) || !strings.Contains(e.log.String(), "phone registered") {
		select {
		case <-p.done:
			t.Fatalf("baresip exited before registering:\n%s", p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip not registered within %s:\n%s", within, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends baresip; its audio player finishes the WAV file on the way out.
func (p *baresipProc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// writeToneWAV writes a mono 8 kHz PCM16 WAV of a sine tone.
func writeToneWAV(t *testing.T, path string, hz float64, d time.Duration) {
	t.Helper()
	n := int(d.Seconds() * 8000)
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(36+2*n))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(8000), uint32(16000), uint16(2), uint16(16)} {
		_ = binary.Write(&b, le, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(2*n))
	for i := range n {
		_ = binary.Write(&b, le, int16(8000*math.Sin(2*math.Pi*hz*float64(i)/8000)))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// wavRMS is the RMS of the 16-bit samples of a WAV file's data chunk.
func wavRMS(t *testing.T, path string) float64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("baresip wrote no audio file: %v", err)
	}
	i := bytes.Index(data, []byte("data"))
	if i < 0 || len(data) < i+8 {
		t.Fatalf("%s is not a WAV file with data", path)
	}
	pcm := data[i+8:]
	if len(pcm) < 2*8000 {
		t.Fatalf("baresip heard only %d bytes of audio", len(pcm))
	}
	var sum float64
	for j := 0; j+1 < len(pcm); j += 2 {
		s := float64(int16(binary.LittleEndian.Uint16(pcm[j:])))
		sum += s * s
	}
	return math.Sqrt(sum / float64(len(pcm)/2))
}
