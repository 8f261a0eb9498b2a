package ops

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestDashboardServed(t *testing.T) {
	mux := http.NewServeMux()
	registerDashboard(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(body)
	}

	res, _ := get("/dashboard")
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/dashboard/" {
		t.Errorf("GET /dashboard: %d to %q, want a redirect to /dashboard/", res.StatusCode, res.Header.Get("Location"))
	}

	var page string
	for _, f := range []struct{ path, contentType string }{
		{"/dashboard/", "text/html"},
		{"/dashboard/dashboard.js", "text/javascript"},
		{"/dashboard/dashboard.css", "text/css"},
		{"/dashboard/icon.svg", "image/svg+xml"},
	} {
		res, body := get(f.path)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", f.path, res.StatusCode)
			continue
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, f.contentType) {
			t.Errorf("GET %s: Content-Type %q, want %s", f.path, ct, f.contentType)
		}
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self';", "style-src 'self';", "connect-src 'self';", "media-src 'self' blob:"} {
			if !strings.Contains(csp+";", want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", f.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-") {
			t.Errorf("GET %s: Content-Security-Policy %q allows unsafe sources", f.path, csp)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", f.path, got)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", f.path, got)
		}
		if f.path == "/dashboard/" {
			page = body
		}
	}

	// The CSP forbids inline scripts, styles and handlers: the browser
	// would refuse them, so the page must have none.
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]`),
		regexp.MustCompile(`(?i)<style[\s>]`),
		regexp.MustCompile(`(?i)\sstyle\s*=`),
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
		regexp.MustCompile(`(?i)javascript:`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("the page has inline code or style: %q", m)
		}
	}
	// Everything the page loads is its own.
	for _, m := range regexp.MustCompile(`(?i)\s(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(page, -1) {
		ref := m[1]
		if strings.Contains(ref, ":") || strings.HasPrefix(ref, "//") {
			t.Errorf("the page loads %q from elsewhere", ref)
			continue
		}
		if res, _ := get("/dashboard/" + ref); res.StatusCode != http.StatusOK {
			t.Errorf("the page loads %q: %d", ref, res.StatusCode)
		}
	}
	// The ids the script looks up are in the page.
	for _, id := range []string{"signin", "token", "signin-error", "app", "range", "live", "sign-out", "totals", "sources", "heatmap", "agents", "calls", "download-csv", "export-google-ads"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("the page lacks #%s", id)
		}
	}
}

// TestDashboardScriptEscapes keeps data from the API out of markup: calls
// carry text from callers and web visitors.
func TestDashboardScriptEscapes(t *testing.T) {
	js, err := dashboardFiles.ReadFile("dashboard/dashboard.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(string(js), bad) {
			t.Errorf("dashboard.js uses %s", bad)
		}
	}
}
