package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/dni"
	"github.com/callsign/callsign/routing"
	"github.com/rs/zerolog"
)

// landingPage shows the pool's default number in the ways sites write it:
// international, national with parentheses and dashes, in a tel: link, and
// in a popup that appears 2 s after the load.
const landingPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Acme Plumbing</title>
<script src="/dni.js" data-pool="website" async></script></head>
<body>
<p id="intl">Call us on +1 555 010 0000 today.</p>
<p id="national">Or (555) 010-0000 from the US.</p>
<p><a id="tel" href="tel:+15550100000">Tap to call +1-555-010-0000</a></p>
<p id="other">Our fax is +1 555 010 9999.</p>
<script>
setTimeout(function () {
  var d = document.createElement('div');
  d.id = 'popup';
  d.innerHTML = 'Questions? <a id="poptel" href="tel:5550100000">555.010.0000</a>';
  document.body.appendChild(d);
}, 2000);
</script>
</body></html>`

// testPools gives each new visitor the next number of +1 555 010 0100..
// and keeps the visits for the test to look at.
type testPools struct {
	mu     sync.Mutex
	held   map[string]string
	visits map[string]routing.Visit
}

func (p *testPools) Assign(pool, visitor string, v routing.Visit) (dni.Assignment, error) {
	if pool != "website" {
		return dni.Assignment{}, dni.ErrUnknownPool
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.held[visitor]
	if !ok {
		n = fmt.Sprintf("+155501001%02d", len(p.held))
		p.held[visitor] = n
	}
	p.visits[visitor] = v
	return dni.Assignment{Number: n, Replace: "+15550100000", Heartbeat: 5 * time.Second}, nil
}

func (p *testPools) Heartbeat(pool, visitor string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.held[visitor]
	return ok
}

// serveLanding serves page at /landing on a loopback port, and dniHandler
// (if any) at /dni.js and /dni/, as a site with the edge behind it; it
// returns the site's base URL.
func serveLanding(t *testing.T, page string, dniHandler http.Handler) string {
	t.Helper()
	mux := http.NewServeMux()
	if dniHandler != nil {
		mux.Handle("/dni.js", dniHandler)
		mux.Handle("/dni/", dniHandler)
	}
	mux.HandleFunc("/landing", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestDNIScript: dni.js in Chromium swaps the default number for the
// visitor's everywhere the page shows it, keeping the page's formatting,
// in tel: links and in content added later; leaves other numbers alone;
// reports the landing URL's attribution; and a second visitor (another
// browser context) gets another number.
func TestDNIScript(t *testing.T) {
	t.Parallel()
	pools := &testPools{held: map[string]string{}, visits: map[string]routing.Visit{}}
	base := serveLanding(t, landingPage, dni.Handler(pools, zerolog.Nop()))

	b := startBrowser(t, "")
	first := b.open("first", base+"/landing?utm_source=newsletter&utm_campaign=nov&gclid=TEST123")
	want := map[string]string{
		"#intl":     "Call us on +1 555 010 0100 today.",
		"#national": "Or (555) 010-0100 from the US.",
		"#tel":      "Tap to call +1-555-010-0100",
		"#other":    "Our fax is +1 555 010 9999.",
	}
	waitText := func(p *tab, sel, text string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := p.text(sel)
			if got == text {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s shows %q, want %q", p.name, sel, got, text)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for sel, text := range want {
		waitText(first, sel, text)
	}
	var href string
	first.eval(`return document.querySelector('#tel').getAttribute('href')`, &href)
	if href != "tel:+15550100100" {
		t.Errorf("tel: link %q, want tel:+15550100100", href)
	}
	first.waitVisible("#popup", 5*time.Second)
	waitText(first, "#poptel", "555.010.0100")
	first.eval(`return document.querySelector('#poptel').getAttribute('href')`, &href)
	if href != "tel:+15550100100" {
		t.Errorf("popup's tel: link %q, want tel:+15550100100", href)
	}

	second := b.open("second", base+"/landing")
	waitText(second, "#intl", "Call us on +1 555 010 0101 today.")

	pools.mu.Lock()
	defer pools.mu.Unlock()
	var found bool
	for id, v := range pools.visits {
		if pools.held[id] == "+15550100100" {
			found = true
			if v.UTMSource != "newsletter" || v.UTMCampaign != "nov" || v.GCLID != "TEST123" || !strings.Contains(v.LandingPage, "/landing?") {
				t.Errorf("the first visit reached the edge as %+v", v)
			}
		}
	}
	if !found || len(pools.held) != 2 {
		t.Errorf("visitors held %v, want two, the first with +15550100100", pools.held)
	}
}

// TestDNICall: a visitor lands on a page from a newsletter link with a
// gclid; the page includes the edge's dni.js, which shows the visitor a
// pool number of its own (another visitor gets another). sipp calls that
// number, and the visit travels on: the call's events carry the pool, the
// visit and the attribution derived from it; the call log lists it in
// /api/calls and its CSV; the Google Ads export turns the gclid into a
// conversion; and the dashboard, open in Chromium, shows the call when it
// ends. Then the edge restarts: the second visitor still holds its
// number, so a call to it is still attributed to that visit, and the
// same caller is no longer a first-time caller.
func TestDNICall(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	// Carol hangs up after 2 s of talk; the caller waits for that, the
	// recording notice included.
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-bye.xml", Calls: 2, Timeout: 120 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
		// Recorded, so the dashboard has a recording to offer.
		Record: "announce",
		Pools: `  website:
    numbers: ["+1 555 010 0100..+1 555 010 0119"]
    replace: "+1 555 010 0000"
    overflow: "+1 555 010 0199"
    hold: 30m
    flow: main`,
	})
	page := strings.Replace(landingPage, `src="/dni.js"`, fmt.Sprintf(`src="http://127.0.0.1:%d/dni.js"`, e.httpPort), 1)
	site := serveLanding(t, page, nil)

	b := startBrowser(t, "")
	shown := func(p *tab) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var href string
			p.eval(`return document.querySelector('#tel').getAttribute('href')`, &href)
			if href != "tel:+15550100000" {
				return strings.TrimPrefix(href, "tel:")
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still the default number 10s after the load: %s", p.name, p.text("body"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	first := b.open("visitor1", site+"/landing?utm_source=newsletter&utm_campaign=nov&gclid=TEST123")
	number := shown(first)
	second := b.open("visitor2", site+"/landing")
	number2 := shown(second)
	if number2 == number {
		t.Fatalf("two visitors were shown the same number %s", number)
	}
	for _, n := range []string{number, number2} {
		if !strings.HasPrefix(n, "+155501001") {
			t.Fatalf("shown %q, not a number of the pool", n)
		}
	}

	// The sales manager has the dashboard open before the call.
	dash := openDashboard(t, b, e)

	call := func(to string) (string, map[string][]event) {
		t.Helper()
		c := startSipp(t, "carrier", sippOpts{
			Scenario: "carrier-wait-bye.xml",
			Remote:   e.sipTarget(),
			Service:  strings.TrimPrefix(to, "+"),
			Calls:    1,
			Timeout:  40 * time.Second,
		})
		c.succeed(t, 45*time.Second)
		evs := e.events.callEvents(t, c.callID, eventDeadline)
		return one(t, evs, "call.started").str("call_id"), evs
	}
	callID, evs := call(number)
	for _, name := range []string{"call.started", "call.completed"} {
		ev := one(t, evs, name)
		wantFields(t, ev, map[string]string{
			"tracking_number": number, "pool": "website", "source": "newsletter", "campaign": "nov",
		})
		v, ok := ev.Fields["visitor"].(map[string]any)
		if !ok || v["gclid"] != "TEST123" || v["utm_source"] != "newsletter" || !strings.Contains(fmt.Sprint(v["landing_page"]), "/landing?") {
			t.Errorf("%s: visitor %v, want the first visit's gclid, utm_source and landing page", name, ev.Fields["visitor"])
		}
		if ev.Fields["first_call"] != true {
			t.Errorf("%s: first_call %v, want true: the caller never called before", name, ev.Fields["first_call"])
		}
	}

	// The dashboard shows the call as it ends, without a reload.
	row := dash.waitCall(callID)
	for _, want := range []string{"newsletter", "nov", "TEST123", "Carol", "Play"} {
		if !strings.Contains(row, want) {
			t.Errorf("dashboard row of the call %q lacks %q", row, want)
		}
	}
	dash.wantText("#sources", "newsletter")
	dash.noConsoleErrors()
	dash.tab.screenshotPage(filepath.Join(screenshotDir(t), "dashboard.png"))
	// Its recording plays in the page, fetched with the token.
	dash.tab.click(fmt.Sprintf(`#calls [data-call-id="%s"] .play`, callID))
	dash.tab.waitVisible("#calls tr.player-row audio", 10*time.Second)
	var audio struct {
		Src      string  `json:"src"`
		Duration float64 `json:"duration"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		dash.tab.eval(`const a = document.querySelector('#calls tr.player-row audio');
			return {src: a.src, duration: isFinite(a.duration) ? a.duration : 0}`, &audio)
		if audio.Duration > 0 || time.Now().After(deadline) {
			break
		}
	}
	if !strings.HasPrefix(audio.Src, "blob:") || audio.Duration < 1 {
		t.Errorf("the dashboard's player: %+v, want the call's recording (about 2 s) from a blob", audio)
	}

	// The call log has it, with its visit, for the API and its exports.
	// The store writes in the background, a moment after the call ends.
	var calls struct {
		Calls []map[string]any `json:"calls"`
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		calls = adminJSON[struct {
			Calls []map[string]any `json:"calls"`
		}](t, e, "/api/calls?tracking_number="+url.QueryEscape(number))
		if len(calls.Calls) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(calls.Calls) != 1 || calls.Calls[0]["call_id"] != callID {
		t.Fatalf("/api/calls for %s: %v, want the call %s", number, calls.Calls, callID)
	}
	got := calls.Calls[0]
	if v, _ := got["visitor"].(map[string]any); v["gclid"] != "TEST123" || got["source"] != "newsletter" ||
		got["campaign"] != "nov" || got["outcome"] != "answered" || got["first_call"] != true || got["agent"] != "carol" {
		t.Errorf("/api/calls: %v", got)
	}
	if u, _ := got["recording_url"].(string); u == "" {
		t.Errorf("/api/calls: no recording_url for the recorded call: %v", got)
	} else if wav := adminText(t, e, u); !strings.HasPrefix(wav, "RIFF") || len(wav) < 8000 {
		t.Errorf("GET %s: %d bytes, not the call's WAV recording", u, len(wav))
	}
	if csv := adminText(t, e, "/api/calls?format=csv&source=newsletter"); !strings.Contains(csv, callID) || !strings.Contains(csv, "TEST123") {
		t.Errorf("calls CSV lacks the call:\n%s", csv)
	}
	ads := adminText(t, e, "/api/exports/google-ads.csv?conversion_name=Phone+call&value=120&currency=EUR")
	if !regexp.MustCompile(`(?m)^TEST123,Phone call,\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+0000,120,EUR\r$`).MatchString(ads) {
		t.Errorf("Google Ads export has no conversion for gclid TEST123:\n%s", ads)
	}
	sources := adminJSON[struct {
		Sources []map[string]any `json:"sources"`
	}](t, e, "/api/reports/sources")
	if len(sources.Sources) != 1 || sources.Sources[0]["source"] != "newsletter" || sources.Sources[0]["answered"] != 1.0 ||
		sources.Sources[0]["first_time_callers"] != 1.0 {
		t.Errorf("sources report: %v", sources.Sources)
	}
	if code, _ := httpGet(t, e, "/api/calls", "wrong-token"); code != http.StatusUnauthorized {
		t.Errorf("/api/calls with a wrong token: %d, want 401", code)
	}

	// A restart keeps who holds which number: the second visitor's
	// number still stands for its visit.
	e.stop(t)
	e.restart(t)
	e.events.reconnected(t)
	callID2, evs2 := call(number2)
	agent.succeed(t, 10*time.Second)
	started := one(t, evs2, "call.started")
	wantFields(t, started, map[string]string{"tracking_number": number2, "pool": "website", "source": "direct"})
	if v, ok := started.Fields["visitor"].(map[string]any); !ok || v["landing_page"] != site+"/landing" {
		t.Errorf("after the restart: visitor %v, want the second visit", started.Fields["visitor"])
	}
	if started.Fields["first_call"] != false {
		t.Errorf("the caller's second call: first_call %v, want false", started.Fields["first_call"])
	}
	// The dashboard got through the restart: the stream came back.
	dash.waitCall(callID2)
}

// TestPoolPressure: visitors take every number of a small pool through
// the edge's session endpoint; passing 75% publishes pool.pressure, the
// next visitor is shown the overflow number, /metrics counts it all, and
// a call to the overflow number is attributed to the pool, not to a
// visitor.
func TestPoolPressure(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 60 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
		Pools: `  website:
    numbers: ["+1 555 010 0100..+1 555 010 0103"]
    replace: "+1 555 010 0000"
    overflow: "+1 555 010 0199"
    hold: 30m
    flow: main
    source: website
    medium: overflow`,
	})
	session := func(visitor string) (number string, overflow bool) {
		t.Helper()
		body := fmt.Sprintf(`{"pool":"website","visitor":%q,"landing":"https://shop.example/?utm_source=ads","referrer":""}`, visitor)
		res, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/dni/v1/session", e.httpPort), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var got struct {
			Number   string `json:"number"`
			Overflow bool   `json:"overflow"`
		}
		if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("session for %s: %d %v", visitor, res.StatusCode, err)
		}
		return got.Number, got.Overflow
	}
	seen := map[string]bool{}
	for i := range 4 {
		n, overflow := session(fmt.Sprintf("visitor-%08d", i))
		if overflow || seen[n] {
			t.Fatalf("visitor %d: %s (overflow %v), want a pool number of its own", i, n, overflow)
		}
		seen[n] = true
	}
	pressure := e.events.wait(t, "pool.pressure", nil, eventDeadline)
	if pressure.str("pool") != "website" || pressure.Fields["numbers"] != 4.0 || pressure.Fields["held"].(float64) < 3 {
		t.Errorf("pool.pressure: %s", pressure)
	}
	n, overflow := session("visitor-late-0001")
	if !overflow || n != "+15550100199" {
		t.Fatalf("fifth visitor: %s (overflow %v), want the overflow number", n, overflow)
	}
	m := e.metrics(t)
	for name, want := range map[string]float64{
		`callsign_pool_numbers{pool="website"}`:        4,
		`callsign_pool_held{pool="website"}`:           4,
		`callsign_pool_overflow_total{pool="website"}`: 1,
	} {
		if m[name] != want {
			t.Errorf("/metrics %s = %v, want %v", name, m[name], want)
		}
	}
	if got := e.events.find("pool.pressure", nil); len(got) != 1 {
		t.Errorf("%d pool.pressure events, want 1: the pool crossed 75%% once", len(got))
	}

	c := startSipp(t, "carrier", sippOpts{
		Scenario: "carrier-answered.xml",
		Remote:   e.sipTarget(),
		Service:  "15550100199",
		Calls:    1,
		Timeout:  40 * time.Second,
	})
	c.succeed(t, 45*time.Second)
	started := one(t, e.events.callEvents(t, c.callID, eventDeadline), "call.started")
	wantFields(t, started, map[string]string{"tracking_number": "+15550100199", "pool": "website", "source": "website", "medium": "overflow"})
	if v, ok := started.Fields["visitor"]; ok {
		t.Errorf("a call to the overflow number carries visitor %v; no visit holds that number", v)
	}
}
