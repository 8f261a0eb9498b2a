package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const adminToken = "e2e-admin-token"

// dashboard is the /dashboard/ page in a browser tab, signed in.
type dashboard struct {
	t   *testing.T
	b   *browser
	tab *tab
}

// openDashboard opens the edge's dashboard at a laptop's size and signs
// in with the admin token, as a sales manager would.
func openDashboard(t *testing.T, b *browser, e *edge) *dashboard {
	t.Helper()
	p := b.openSized("dashboard", fmt.Sprintf("http://127.0.0.1:%d/dashboard/", e.httpPort), 1280, 900)
	p.waitVisible("#token", 10*time.Second)
	p.fill("#token", adminToken)
	p.click("#open")
	p.waitVisible("#app", 10*time.Second)
	p.waitVisible(`#live[data-state="live"]`, 10*time.Second)
	return &dashboard{t: t, b: b, tab: p}
}

// waitCall waits for the call's row among the latest calls and returns
// its text.
func (d *dashboard) waitCall(callID string) string {
	d.t.Helper()
	sel := fmt.Sprintf(`#calls [data-call-id="%s"]`, callID)
	d.tab.waitVisible(sel, 30*time.Second)
	return d.tab.text(sel)
}

func (d *dashboard) wantText(sel, want string) {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := d.tab.text(sel)
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			d.t.Errorf("dashboard %s: %q, want it to show %q", sel, got, want)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// noConsoleErrors fails the test on anything the page logged as an error
// (a CSP violation, a script exception, a failed request).
func (d *dashboard) noConsoleErrors() {
	d.t.Helper()
	for _, line := range strings.Split(d.b.log.String(), "\n") {
		if strings.HasPrefix(line, "[dashboard] error:") || strings.HasPrefix(line, "[dashboard] page error:") {
			d.t.Errorf("dashboard console: %s", line)
		}
	}
}

// httpGet is a GET of the edge's HTTP API with token as the admin token.
func httpGet(t *testing.T, e *edge, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", e.httpPort, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return res.StatusCode, string(body)
}

// adminText is the body of a GET that must succeed.
func adminText(t *testing.T, e *edge, path string) string {
	t.Helper()
	code, body := httpGet(t, e, path, adminToken)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return body
}

// adminJSON decodes the body of a GET that must succeed.
func adminJSON[T any](t *testing.T, e *edge, path string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(adminText(t, e, path)), &v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return v
}
