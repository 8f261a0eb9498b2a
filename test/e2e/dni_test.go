package e2e

import (
	"fmt"
	"net"
	"net/http"
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

// TestDNIScript: dni.js in Chromium swaps the default number for the
// visitor's everywhere the page shows it, keeping the page's formatting,
// in tel: links and in content added later; leaves other numbers alone;
// reports the landing URL's attribution; and a second visitor (another
// browser context) gets another number.
func TestDNIScript(t *testing.T) {
	t.Parallel()
	pools := &testPools{held: map[string]string{}, visits: map[string]routing.Visit{}}
	mux := http.NewServeMux()
	mux.Handle("/dni.js", dni.Handler(pools, zerolog.Nop()))
	mux.Handle("/dni/", dni.Handler(pools, zerolog.Nop()))
	mux.HandleFunc("/landing", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(landingPage))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + ln.Addr().String()

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

// TestDNICall: a visitor's click id travels from a landing page, through
// a phone call, into the call's events. Chromium opens a page that
// includes the edge's dni.js with utm parameters and a gclid; the number
// it is shown is a pool number of its own (another visitor gets another);
// sipp calls that number; the call's events carry the pool, the visit and
// the attribution derived from it.
func TestDNICall(t *testing.T) {
	t.Parallel()
	requireEdge(t)
	agent := startSipp(t, "carol", sippOpts{Scenario: "agent-answer.xml", Calls: 1, Timeout: 60 * time.Second})
	e := startEdge(t, edgeConfig{
		Queue:  queueConfig{RingTimeout: "10s", MaxWait: "20s", Agents: []string{"carol"}},
		Agents: []agentConfig{fixedAgent("carol", "Carol", agent)},
		Pools: `  website:
    numbers: ["+1 555 010 0100..+1 555 010 0119"]
    replace: "+1 555 010 0000"
    overflow: "+1 555 010 0199"
    hold: 30m
    flow: main`,
	})
	page := strings.Replace(landingPage, `src="/dni.js"`, fmt.Sprintf(`src="http://127.0.0.1:%d/dni.js"`, e.httpPort), 1)
	mux := http.NewServeMux()
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
	site := "http://" + ln.Addr().String()

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
	if other := shown(second); other == number {
		t.Fatalf("two visitors were shown the same number %s", number)
	}
	if !strings.HasPrefix(number, "+155501001") {
		t.Fatalf("shown %q, not a number of the pool", number)
	}

	c := startSipp(t, "carrier", sippOpts{
		Scenario: "carrier-answered.xml",
		Remote:   e.sipTarget(),
		Service:  strings.TrimPrefix(number, "+"),
		Calls:    1,
		Timeout:  40 * time.Second,
	})
	c.succeed(t, 45*time.Second)
	agent.succeed(t, 10*time.Second)
	evs := e.events.callEvents(t, c.callID, eventDeadline)
	for _, name := range []string{"call.started", "call.completed"} {
		ev := one(t, evs, name)
		wantFields(t, ev, map[string]string{
			"tracking_number": number, "pool": "website", "source": "newsletter", "campaign": "nov",
		})
		v, ok := ev.Fields["visitor"].(map[string]any)
		if !ok || v["gclid"] != "TEST123" || v["utm_source"] != "newsletter" || !strings.Contains(fmt.Sprint(v["landing_page"]), "/landing?") {
			t.Errorf("%s: visitor %v, want the first visit's gclid, utm_source and landing page", name, ev.Fields["visitor"])
		}
	}
}
