package dni

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/routing"
	"github.com/rs/zerolog"
)

// fakePools gives each new visitor the next number and remembers it.
type fakePools struct {
	mu     sync.Mutex
	held   map[string]string
	visits map[string]routing.Visit
	next   int
}

func newFakePools() *fakePools {
	return &fakePools{held: map[string]string{}, visits: map[string]routing.Visit{}}
}

func (f *fakePools) Assign(pool, visitor string, v routing.Visit) (Assignment, error) {
	if pool != "website" {
		return Assignment{}, ErrUnknownPool
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.held[visitor]
	if !ok {
		n = "+1555010010" + string(rune('0'+f.next))
		f.next++
		f.held[visitor] = n
	}
	f.visits[visitor] = v
	return Assignment{Number: n, Replace: "+15550100000", Heartbeat: 10 * time.Second}, nil
}

func (f *fakePools) Heartbeat(pool, visitor string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.held[visitor]
	return pool == "website" && ok
}

func do(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
}

func TestSession(t *testing.T) {
	p := newFakePools()
	h := Handler(p, zerolog.Nop())
	body := `{"pool":"website","visitor":"v1234567890","landing":"https://shop.example/?utm_source=newsletter&utm_campaign=nov&gclid=TEST123","referrer":"https://www.google.com/"}`
	rec := do(t, h, http.MethodPost, "/dni/v1/session", body)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"number":"+15550100100"`) ||
		!strings.Contains(rec.Body.String(), `"replace":"+15550100000"`) || !strings.Contains(rec.Body.String(), `"heartbeat_ms":10000`) {
		t.Fatalf("session: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("session headers: %v", rec.Header())
	}
	v := p.visits["v1234567890"]
	if v.UTMSource != "newsletter" || v.UTMCampaign != "nov" || v.GCLID != "TEST123" || v.Referrer != "https://www.google.com/" ||
		!strings.HasPrefix(v.LandingPage, "https://shop.example/") {
		t.Errorf("visit read as %+v", v)
	}
	// The same visitor keeps its number; another gets another.
	if rec := do(t, h, http.MethodPost, "/dni/v1/session", body); !strings.Contains(rec.Body.String(), "+15550100100") {
		t.Errorf("same visitor again: %s", rec.Body)
	}
	other := strings.Replace(body, "v1234567890", "w1234567890", 1)
	if rec := do(t, h, http.MethodPost, "/dni/v1/session", other); !strings.Contains(rec.Body.String(), "+15550100101") {
		t.Errorf("another visitor: %s", rec.Body)
	}
}

func TestSessionRefusesBadInput(t *testing.T) {
	h := Handler(newFakePools(), zerolog.Nop())
	for name, c := range map[string]struct {
		method, body string
		code         int
	}{
		"GET":           {http.MethodGet, "", http.StatusMethodNotAllowed},
		"not JSON":      {http.MethodPost, "pool=website", http.StatusBadRequest},
		"short visitor": {http.MethodPost, `{"pool":"website","visitor":"v1"}`, http.StatusBadRequest},
		"odd visitor":   {http.MethodPost, `{"pool":"website","visitor":"v1234567890<script>"}`, http.StatusBadRequest},
		"bad pool":      {http.MethodPost, `{"pool":"a b","visitor":"v1234567890"}`, http.StatusBadRequest},
		"unknown pool":  {http.MethodPost, `{"pool":"billboards","visitor":"v1234567890"}`, http.StatusNotFound},
		"huge body":     {http.MethodPost, `{"pool":"website","visitor":"v1234567890","landing":"` + strings.Repeat("x", 9000) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		if rec := do(t, h, c.method, "/dni/v1/session", c.body); rec.Code != c.code || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("%s: %d %s, want %d with an error", name, rec.Code, rec.Body, c.code)
		}
	}
	// A landing URL that is no http(s) URL costs the visitor nothing but
	// its attribution.
	if v := visitOf("javascript:alert(1)?utm_source=x", "data:text/html,hi"); !reflect.DeepEqual(v, routing.Visit{}) {
		t.Errorf("visit of junk URLs: %+v", v)
	}
}

func TestPreflightAndHeartbeat(t *testing.T) {
	p := newFakePools()
	h := Handler(p, zerolog.Nop())
	rec := do(t, h, http.MethodOptions, "/dni/v1/session", "")
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Methods") != "POST" {
		t.Errorf("preflight: %d %v", rec.Code, rec.Header())
	}
	hb := `{"pool":"website","visitor":"v1234567890"}`
	if rec := do(t, h, http.MethodPost, "/dni/v1/heartbeat", hb); rec.Code != http.StatusNotFound {
		t.Errorf("heartbeat before a session: %d, want 404 (the script asks again)", rec.Code)
	}
	do(t, h, http.MethodPost, "/dni/v1/session", hb)
	if rec := do(t, h, http.MethodPost, "/dni/v1/heartbeat", hb); rec.Code != http.StatusNoContent {
		t.Errorf("heartbeat: %d %s", rec.Code, rec.Body)
	}
}

func TestScript(t *testing.T) {
	h := Handler(newFakePools(), zerolog.Nop())
	rec := do(t, h, http.MethodGet, "/dni.js", "")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") ||
		!strings.Contains(rec.Body.String(), "MutationObserver") {
		t.Fatalf("/dni.js: %d %v", rec.Code, rec.Header())
	}
	// Small: no framework, a few kB.
	if n := rec.Body.Len(); n > 10<<10 {
		t.Errorf("dni.js is %d bytes", n)
	}
}

// A click id the edge's configuration adds reaches the call's attribution
// through the landing URL, which the script sends whole; neither the
// script nor the session endpoint needs to know its name.
func TestSessionCarriesConfiguredClickIDs(t *testing.T) {
	p := newFakePools()
	h := Handler(p, zerolog.Nop())
	body := `{"pool":"website","visitor":"v1234567890","landing":"https://shop.example/offer?ttclid=E.C.P.v3&utm_campaign=spring#top","referrer":"https://www.tiktok.com/"}`
	if rec := do(t, h, http.MethodPost, "/dni/v1/session", body); rec.Code != 200 {
		t.Fatalf("session: %d %s", rec.Code, rec.Body)
	}
	v := p.visits["v1234567890"]
	if v.LandingPage != "https://shop.example/offer?ttclid=E.C.P.v3&utm_campaign=spring#top" {
		t.Fatalf("landing page kept as %q", v.LandingPage)
	}
	a := config.DefaultAttribution()
	a.ClickIDs = append(a.ClickIDs, config.ClickID{Param: "ttclid", Channel: config.Channel{Source: "tiktok", Medium: "paid_social"}})
	rules := routing.NewAttributionRules(&a)
	v = rules.WithClickIDs(v)
	if source, medium, campaign, _ := v.AttributionBy(rules); source != "tiktok" || medium != "paid_social" || campaign != "spring" {
		t.Errorf("attributed to %s/%s/%s", source, medium, campaign)
	}
	if v.ClickIDs["ttclid"] != "E.C.P.v3" {
		t.Errorf("click ids %v", v.ClickIDs)
	}
	// Without the click id configured, the referrer decides.
	if source, medium, _, _ := p.visits["v1234567890"].Attribution(); source != "tiktok.com" || medium != "referral" {
		t.Errorf("default rules: %s/%s", source, medium)
	}
}
