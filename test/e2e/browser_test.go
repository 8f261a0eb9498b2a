package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// browser is headless Chromium, driven through test/browser/driver.mjs
// (Playwright): each method is one command, answered before it returns.
type browser struct {
	t *testing.T
	// kind is chromium or firefox.
	kind   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	log    *syncBuffer
	mu     sync.Mutex
	nextID int
}

type driverReply struct {
	ID    int             `json:"id"`
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value"`
	Error string          `json:"error"`
}

// startBrowser starts Chromium. fakeAudio, if set, is a WAV file its fake
// microphone plays in a loop.
func startBrowser(t *testing.T, fakeAudio string) *browser {
	t.Helper()
	requireTools(t, "node", "chromium")
	return startDriver(t, "chromium", "playwright-core", "FAKE_AUDIO="+fakeAudio)
}

// startFirefox starts Firefox ESR, whose fake microphone plays a tone of
// toneHz.
func startFirefox(t *testing.T, toneHz int) *browser {
	t.Helper()
	requireTools(t, "node", "firefox-esr")
	return startDriver(t, "firefox", "puppeteer-core", fmt.Sprintf("FAKE_TONE_HZ=%d", toneHz))
}

// startDriver runs test/browser/driver.mjs with the browser kind, which
// needs the npm module lib.
func startDriver(t *testing.T, kind, lib string, env ...string) *browser {
	t.Helper()
	dir, err := filepath.Abs("../browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", lib)); err != nil {
		t.Fatalf("%s is not installed in test/browser: run `make test`, which installs it (%v)", lib, err)
	}
	cmd := exec.Command("node", filepath.Join(dir, "driver.mjs"))
	cmd.Env = append(append(os.Environ(), "BROWSER="+kind), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, kind: kind, cmd: cmd, stdin: stdin, lines: make(chan string, 16), log: &syncBuffer{}}
	cmd.Stderr = b.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the browser driver: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			b.lines <- sc.Text()
		}
		close(b.lines)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("browser log:\n%s", tail(b.log.String(), 80))
		}
	})
	if r := b.reply(0, 60*time.Second); !r.OK {
		t.Fatalf("browser did not start: %s", r.Error)
	}
	return b
}

func (b *browser) reply(id int, within time.Duration) driverReply {
	b.t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-b.lines:
			if !ok {
				b.t.Fatalf("the browser driver exited:\n%s", tail(b.log.String(), 40))
			}
			var r driverReply
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				b.t.Fatalf("browser driver said %q", line)
			}
			if r.ID == id {
				return r
			}
		case <-timer.C:
			b.t.Fatalf("browser driver did not answer command %d within %s:\n%s", id, within, tail(b.log.String(), 40))
		}
	}
}

// do runs one command and returns its reply; a failed command is returned,
// not fatal, for the callers that expect one.
func (b *browser) do(cmd map[string]any) driverReply {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextID++
	cmd["id"] = b.nextID
	data, _ := json.Marshal(cmd)
	if _, err := fmt.Fprintf(b.stdin, "%s\n", data); err != nil {
		b.t.Fatalf("write to the browser driver: %v", err)
	}
	return b.reply(b.nextID, 90*time.Second)
}

// must runs a command that has to succeed.
func (b *browser) must(what string, cmd map[string]any) json.RawMessage {
	b.t.Helper()
	r := b.do(cmd)
	if !r.OK {
		b.t.Fatalf("%s: %s", what, r.Error)
	}
	return r.Value
}

// tab is one page of the browser, in its own context.
type tab struct {
	b    *browser
	name string
}

func (b *browser) open(name, url string) *tab {
	b.t.Helper()
	b.must("open "+url, map[string]any{"op": "newPage", "page": name, "url": url})
	return &tab{b: b, name: name}
}

// openSized is open with a viewport of width×height CSS pixels.
func (b *browser) openSized(name, url string, width, height int) *tab {
	b.t.Helper()
	b.must("open "+url, map[string]any{"op": "newPage", "page": name, "url": url, "width": width, "height": height})
	return &tab{b: b, name: name}
}

func (p *tab) op(op string, kv ...any) map[string]any {
	m := map[string]any{"op": op, "page": p.name}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func (p *tab) click(sel string) {
	p.b.t.Helper()
	p.b.must(p.name+": click "+sel, p.op("click", "selector", sel))
}

func (p *tab) fill(sel, value string) {
	p.b.t.Helper()
	p.b.must(p.name+": fill "+sel, p.op("fill", "selector", sel, "value", value))
}

func (p *tab) selectOption(sel, value string) {
	p.b.t.Helper()
	p.b.must(p.name+": select "+sel, p.op("select", "selector", sel, "value", value))
}

func (p *tab) waitVisible(sel string, within time.Duration) {
	p.b.t.Helper()
	p.b.must(p.name+": wait for "+sel, p.op("waitVisible", "selector", sel, "timeout", within.Milliseconds()))
}

func (p *tab) waitHidden(sel string, within time.Duration) {
	p.b.t.Helper()
	p.b.must(p.name+": wait for "+sel+" to hide", p.op("waitHidden", "selector", sel, "timeout", within.Milliseconds()))
}

func (p *tab) text(sel string) string {
	p.b.t.Helper()
	var s string
	if err := json.Unmarshal(p.b.must(p.name+": text of "+sel, p.op("text", "selector", sel)), &s); err != nil {
		p.b.t.Fatal(err)
	}
	return strings.TrimSpace(s)
}

// eval runs the body of an async function in the page and decodes what it
// returns into out.
func (p *tab) eval(expr string, out any) {
	p.b.t.Helper()
	v := p.b.must(p.name+": eval", p.op("eval", "expr", expr))
	if out != nil {
		if err := json.Unmarshal(v, out); err != nil {
			p.b.t.Fatalf("eval result %s: %v", v, err)
		}
	}
}

func (p *tab) screenshot(path string) {
	p.b.t.Helper()
	p.b.must(p.name+": screenshot", p.op("screenshot", "path", path))
}

// screenshotPage is screenshot of the whole page, not only the viewport.
func (p *tab) screenshotPage(path string) {
	p.b.t.Helper()
	p.b.must(p.name+": screenshot", p.op("screenshot", "path", path, "fullPage", true))
}

func (p *tab) close() {
	p.b.t.Helper()
	p.b.must(p.name+": close", p.op("closePage"))
}
