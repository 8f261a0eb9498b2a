package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// trackingNumber is the one number every test calls; its attribution is
// what the events must carry.
const (
	trackingNumber = "+15550100001"
	dialedUser     = "15550100001"
	unknownUser    = "15559999999"
	callerNumber   = "+15551234567"
	callerName     = "Jane Caller"
	numberSource   = "google-ads"
	numberMedium   = "cpc"
	numberCampaign = "spring-sale"
	numberKeyword  = "plumber"
	flowName       = "main"
	queueName      = "main"
)

// edgeConfig is what a test varies in the edge's configuration; the rest
// (ports, storage, the number and its flow) the harness fills in.
type edgeConfig struct {
	TrunkAllow []string
	Queue      queueConfig
	Agents     []agentConfig
	// MediaTimeout is media.timeout; 30s when empty.
	MediaTimeout string
	// ServeArgs are extra flags of `callsign serve`, e.g. -drain-timeout.
	ServeArgs []string
	// Flows, if set, is the body of the flows section (indented by two
	// spaces); by default flow main is one step, queue main.
	Flows string
	// Support, if set, are the agents of a second queue, support, for
	// menus to lead to.
	Support []string
	// Record is the record mode of the default flow main.
	Record string
	// Recording, if set, is the body of the recording section (indented
	// by two spaces).
	Recording string
	// Pools, if set, is the body of the pools section (indented by two
	// spaces).
	Pools string
	// TLS adds a tls:// listener (edge.tlsPort) with a self-signed
	// certificate for 127.0.0.1 (edge.certFile).
	TLS bool
	// BeforeStart, if set, runs with the storage directory before the
	// edge starts, to leave files there as an earlier run would have.
	BeforeStart func(storageDir string)
	// NATSPort, if set, is the port of a NATS server on 127.0.0.1 that the
	// test runs (and may stop): the edge publishes there instead of
	// running its own embedded server.
	NATSPort int
}

type queueConfig struct {
	RingTimeout string
	MaxWait     string
	Agents      []string
	// Strategy is round-robin when empty.
	Strategy string
	// Extra are more keys of queue main, each line indented by four
	// spaces.
	Extra string
}

type agentConfig struct {
	ID       string
	Name     string
	Contact  string // fixed contact, or
	Username string // a phone that registers
	Password string
	Token    string // or the browser softphone
}

var configTemplate = template.Must(template.New("callsign.yaml").Parse(`# written by the e2e harness
sip:
  listen:
    - udp://127.0.0.1:{{.SIPPort}}
    - tcp://127.0.0.1:{{.SIPPort}}
{{- if .Cfg.TLS}}
    - tls://127.0.0.1:{{.TLSPort}}
  tls: {cert: {{.CertFile}}, key: {{.KeyFile}}}
{{- end}}
  advertise: 127.0.0.1

media:
  address: 127.0.0.1
  rtp_ports: {{.RTPLow}}-{{.RTPHigh}}
  timeout: {{.Cfg.MediaTimeout}}

http:
  listen: 127.0.0.1:{{.HTTPPort}}
  admin_token: e2e-admin-token

events:
{{- if .Cfg.NATSPort}}
  nats: nats://127.0.0.1:{{.NATSPort}}
  subject_prefix: callsign
{{- else}}
  nats: embedded
  subject_prefix: callsign
  embedded_listen: 127.0.0.1:{{.NATSPort}}
{{- end}}

storage:
  dir: {{.StorageDir}}

trunks:
  carrier:
    allow: [{{range $i, $a := .Cfg.TrunkAllow}}{{if $i}}, {{end}}{{$a}}{{end}}]
    max_calls: 50
    cps: 50

numbers:
  "+1 555 010 0001": {source: google-ads, medium: cpc, campaign: spring-sale, keyword: plumber, flow: main}
{{- if .Cfg.Pools}}

pools:
{{.Cfg.Pools}}
{{- end}}

flows:
{{- if .Cfg.Flows}}
{{.Cfg.Flows}}
{{- else}}
  main:
{{- if .Cfg.Record}}
    record: {{.Cfg.Record}}
{{- end}}
    steps:
      - queue: main
{{- end}}
{{- if .Cfg.Recording}}

recording:
{{.Cfg.Recording}}
{{- end}}

queues:
  main:
    strategy: {{or .Cfg.Queue.Strategy "round-robin"}}
    ring_timeout: {{.Cfg.Queue.RingTimeout}}
{{- if .Cfg.Queue.Extra}}
{{.Cfg.Queue.Extra}}
{{- end}}
{{- if .Cfg.Queue.MaxWait}}
    max_wait: {{.Cfg.Queue.MaxWait}}
{{- end}}
    agents: [{{range $i, $a := .Cfg.Queue.Agents}}{{if $i}}, {{end}}{{$a}}{{end}}]
{{- if .Cfg.Support}}
  support:
    strategy: round-robin
    ring_timeout: 10s
    agents: [{{range $i, $a := .Cfg.Support}}{{if $i}}, {{end}}{{$a}}{{end}}]
{{- end}}

agents:
{{- range .Cfg.Agents}}
  {{.ID}}:
    name: {{.Name}}
{{- if .Token}}
    webrtc: {token: "{{.Token}}"}
{{- else if .Contact}}
    sip: {contact: "{{.Contact}}"}
{{- else}}
    sip: {username: {{.Username}}, password: "{{.Password}}"}
{{- end}}
{{- end}}
`))

// edge is one callsign process started for one test.
type edge struct {
	dir             string
	configPath      string
	sipPort         int
	tlsPort         int
	certFile        string // the tls:// listener's certificate, PEM
	httpPort        int
	natsPort        int
	rtpLow, rtpHigh int
	cmd             *exec.Cmd
	exited          chan struct{}
	exitErr         error
	exitedAt        time.Time // set before exited is closed
	log             *syncBuffer
	events          *eventLog
	serveArgs       []string
}

// launch starts `callsign serve` on the edge's configuration; its output
// goes to edge.log (appended to, across restarts) and to e.log.
func (e *edge) launch(t *testing.T) {
	t.Helper()
	logFile, err := os.OpenFile(filepath.Join(e.dir, "edge.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	e.exited = make(chan struct{})
	e.exitErr = nil
	e.cmd = exec.Command(edgeBinary, append([]string{"serve", "-c", e.configPath}, e.serveArgs...)...)
	e.cmd.Dir = e.dir
	e.cmd.Stdout = io.MultiWriter(logFile, e.log)
	e.cmd.Stderr = io.MultiWriter(logFile, e.log)
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start edge: %v", err)
	}
	cmd, exited := e.cmd, e.exited
	go func() {
		e.exitErr = cmd.Wait()
		e.exitedAt = time.Now()
		logFile.Close()
		close(exited)
	}()
}

// storageDir is the edge's storage.dir.
func (e *edge) storageDir() string { return filepath.Join(e.dir, "data") }

// kill9 kills the edge as a crash would: no drain, no cleanup.
func (e *edge) kill9(t *testing.T) {
	t.Helper()
	_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-e.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("edge still running 10s after SIGKILL")
	}
}

// restart starts the edge again on the same configuration and storage,
// and waits until it is ready.
func (e *edge) restart(t *testing.T) {
	t.Helper()
	e.launch(t)
	e.waitReady(t, 20*time.Second)
}

// sipTarget is the host:port sipp sends to.
func (e *edge) sipTarget() string { return fmt.Sprintf("127.0.0.1:%d", e.sipPort) }

func (e *edge) inRTPRange(port int) bool { return port >= e.rtpLow && port <= e.rtpHigh }

// startEdge writes the configuration, starts `callsign serve`, waits for
// /readyz and subscribes to its events. Everything is torn down when the
// test ends; the edge's log is printed when the test failed.
func startEdge(t *testing.T, cfg edgeConfig) *edge {
	t.Helper()
	requireEdge(t)
	if len(cfg.TrunkAllow) == 0 {
		cfg.TrunkAllow = []string{"127.0.0.1/32"}
	}
	if cfg.Queue.RingTimeout == "" {
		cfg.Queue.RingTimeout = "20s"
	}
	if cfg.MediaTimeout == "" {
		cfg.MediaTimeout = "30s"
	}

	e := &edge{
		dir:      t.TempDir(),
		sipPort:  freePort(t),
		httpPort: freePort(t),
		natsPort: freePort(t),
		exited:   make(chan struct{}),
		log:      &syncBuffer{},
	}
	if cfg.NATSPort != 0 {
		e.natsPort = cfg.NATSPort
	}
	// 40 ports: room for both legs of a handful of calls, and an odd
	// neighbour for each even port an edge might use for RTCP.
	e.rtpLow = freePorts(t, 40)
	e.rtpHigh = e.rtpLow + 39

	var keyFile string
	if cfg.TLS {
		e.tlsPort = freePort(t)
		e.certFile, keyFile = writeCertificate(t, e.dir)
	}
	var buf bytes.Buffer
	err := configTemplate.Execute(&buf, map[string]any{
		"TLSPort":    e.tlsPort,
		"CertFile":   e.certFile,
		"KeyFile":    keyFile,
		"SIPPort":    e.sipPort,
		"HTTPPort":   e.httpPort,
		"NATSPort":   e.natsPort,
		"RTPLow":     e.rtpLow,
		"RTPHigh":    e.rtpHigh,
		"StorageDir": e.storageDir(),
		"Cfg":        cfg,
	})
	if err != nil {
		t.Fatalf("config template: %v", err)
	}
	e.configPath = filepath.Join(e.dir, "callsign.yaml")
	if err := os.WriteFile(e.configPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	if cfg.BeforeStart != nil {
		cfg.BeforeStart(e.storageDir())
	}
	e.serveArgs = cfg.ServeArgs
	e.launch(t)
	t.Cleanup(func() {
		e.stop(t)
		if t.Failed() {
			t.Logf("edge config %s:\n%s", e.configPath, buf.String())
			t.Logf("edge log (%s):\n%s", filepath.Join(e.dir, "edge.log"), tail(e.log.String(), 300))
		}
	})

	e.waitReady(t, 20*time.Second)
	e.events = subscribeEvents(t, e)
	return e
}

// stop sends SIGTERM (the edge drains, and with no call in progress it
// should leave at once), then kills the process group after a bound.
func (e *edge) stop(t *testing.T) {
	select {
	case <-e.exited:
		return
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
		var exitErr *exec.ExitError
		if e.exitErr != nil && !errors.As(e.exitErr, &exitErr) {
			t.Errorf("edge: %v", e.exitErr)
		} else if e.exitErr != nil {
			t.Errorf("edge exited with %v after SIGTERM; want 0", e.exitErr)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("edge did not exit within 10s of SIGTERM; killing it")
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		<-e.exited
	}
}

func (e *edge) waitReady(t *testing.T, within time.Duration) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", e.httpPort)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	last := "no answer"
	for {
		select {
		case <-e.exited:
			t.Fatalf("edge exited before it was ready (%v); log:\n%s", e.exitErr, tail(e.log.String(), 100))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("GET %s not 200 within %s (last: %s)", url, within, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer the process's output goroutines and the
// test may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = append([]string{fmt.Sprintf("... (%d earlier lines)", len(all)-lines)}, all[len(all)-lines:]...)
	}
	return strings.Join(all, "\n")
}
