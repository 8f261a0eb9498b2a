package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
)

func testPool(name string, size int, hold time.Duration) config.Pool {
	p := config.Pool{Name: name, Replace: "+15550100000", Overflow: fmt.Sprintf("+1555019%04d", len(name)), Hold: hold, Flow: "main"}
	for i := range size {
		p.Numbers = append(p.Numbers, fmt.Sprintf("+1555%02d%05d", len(name), i))
	}
	return p
}

type pressureLog struct {
	mu     sync.Mutex
	events []string
}

func (l *pressureLog) record(pool string, held, total int) {
	l.mu.Lock()
	l.events = append(l.events, fmt.Sprintf("%s %d/%d", pool, held, total))
	l.mu.Unlock()
}

func (l *pressureLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func mustAssign(t *testing.T, m *Pools, pool, visitor string, now time.Time) (string, bool) {
	t.Helper()
	n, overflow, err := m.Assign(pool, visitor, Visit{UTMSource: visitor}, now)
	if err != nil {
		t.Fatalf("Assign(%s, %s): %v", pool, visitor, err)
	}
	return n, overflow
}

func TestPoolSameVisitorSameNumber(t *testing.T) {
	m := NewPools([]config.Pool{testPool("web", 4, 30*time.Minute)}, newClock(), nil)
	a, _ := mustAssign(t, m, "web", "alice", noon)
	b, _ := mustAssign(t, m, "web", "bob", noon.Add(time.Second))
	if a == b {
		t.Fatalf("alice and bob share %s", a)
	}
	again, overflow := mustAssign(t, m, "web", "alice", noon.Add(20*time.Minute))
	if again != a || overflow {
		t.Errorf("alice again got %s (overflow %v), want %s", again, overflow, a)
	}
	// Heartbeats keep the number past the first hold.
	for at := 30 * time.Minute; at <= 2*time.Hour; at += 25 * time.Minute {
		if !m.Heartbeat("web", "alice", noon.Add(at)) {
			t.Fatalf("heartbeat at +%s lost the number", at)
		}
	}
	if n, _ := mustAssign(t, m, "web", "alice", noon.Add(2*time.Hour+10*time.Minute)); n != a {
		t.Errorf("after heartbeats alice got %s, want %s", n, a)
	}
	if m.Heartbeat("web", "carol", noon) || m.Heartbeat("nope", "alice", noon) {
		t.Error("heartbeat of a visitor without a number, or of an unknown pool, succeeded")
	}
}

func TestPoolErrors(t *testing.T) {
	m := NewPools([]config.Pool{testPool("web", 2, time.Minute)}, newClock(), nil)
	if _, _, err := m.Assign("shop", "alice", Visit{}, noon); !errors.Is(err, ErrUnknownPool) {
		t.Errorf("unknown pool: %v", err)
	}
	if _, _, err := m.Assign("web", "", Visit{}, noon); !errors.Is(err, ErrNoVisitor) {
		t.Errorf("empty visitor: %v", err)
	}
	if held, total := m.Pressure("shop"); held != 0 || total != 0 {
		t.Errorf("unknown pool pressure %d/%d", held, total)
	}
}

func TestPoolHoldExpiry(t *testing.T) {
	clock := newClock()
	m := NewPools([]config.Pool{testPool("web", 2, 30*time.Minute)}, clock, nil)
	a, _ := mustAssign(t, m, "web", "alice", noon)
	b, _ := mustAssign(t, m, "web", "bob", noon.Add(10*time.Minute))
	if n, overflow := mustAssign(t, m, "web", "carol", noon.Add(29*time.Minute)); !overflow || n != "+15550190003" {
		t.Fatalf("carol got %s overflow %v, want the overflow number", n, overflow)
	}
	// Alice's hold ends at +30m exactly; her number is carol's then.
	if n, overflow := mustAssign(t, m, "web", "carol", noon.Add(30*time.Minute)); overflow || n != a {
		t.Fatalf("carol got %s overflow %v, want alice's %s", n, overflow, a)
	}
	if m.Heartbeat("web", "alice", noon.Add(31*time.Minute)) {
		t.Error("alice's heartbeat after her hold ended succeeded")
	}
	clock.Advance(45 * time.Minute)
	if held, total := m.Pressure("web"); held != 1 || total != 2 {
		t.Errorf("pressure at +45m = %d/%d, want bob gone, carol held: 1/2", held, total)
	}
	if n := m.Sweep(noon.Add(time.Hour)); n != 1 {
		t.Errorf("sweep released %d, want carol's", n)
	}
	_ = b
}

func TestPoolPrefersLongestFree(t *testing.T) {
	m := NewPools([]config.Pool{testPool("web", 3, 10*time.Minute)}, newClock(), nil)
	n1, _ := mustAssign(t, m, "web", "v1", noon)
	n2, _ := mustAssign(t, m, "web", "v2", noon.Add(time.Minute))
	// v1 ends at +10m, v2 at +11m; the third number was never used.
	n, _ := mustAssign(t, m, "web", "v3", noon.Add(12*time.Minute))
	if n == n1 || n == n2 {
		t.Fatalf("v3 got %s, a number just released, while one was never used", n)
	}
	if n, _ := mustAssign(t, m, "web", "v4", noon.Add(12*time.Minute)); n != n1 {
		t.Errorf("v4 got %s, want %s, free since +10m", n, n1)
	}
	if n, _ := mustAssign(t, m, "web", "v5", noon.Add(12*time.Minute)); n != n2 {
		t.Errorf("v5 got %s, want %s, free since +11m", n, n2)
	}
}

func TestPoolExhaustionAndPressure(t *testing.T) {
	var log pressureLog
	clock := newClock()
	m := NewPools([]config.Pool{testPool("web", 8, 30*time.Minute)}, clock, log.record)
	for i := range 5 {
		mustAssign(t, m, "web", fmt.Sprint("v", i), noon)
	}
	if got := log.get(); len(got) != 0 {
		t.Fatalf("pressure at 5/8: %v", got)
	}
	mustAssign(t, m, "web", "v5", noon) // 6/8 = 75%
	if got := log.get(); !reflect.DeepEqual(got, []string{"web 6/8"}) {
		t.Fatalf("pressure events %v, want one at 6/8", got)
	}
	mustAssign(t, m, "web", "v6", noon)
	mustAssign(t, m, "web", "v7", noon)
	for i := 8; i < 11; i++ {
		n, overflow := mustAssign(t, m, "web", fmt.Sprint("v", i), noon)
		if !overflow || n != "+15550190003" {
			t.Fatalf("visitor %d got %s overflow %v, want the overflow number", i, n, overflow)
		}
	}
	if got := m.Overflows("web"); got != 3 {
		t.Errorf("Overflows = %d, want 3", got)
	}
	if held, total := m.Pressure("web"); held != 8 || total != 8 {
		t.Errorf("Pressure = %d/%d", held, total)
	}
	if got := log.get(); len(got) != 1 {
		t.Fatalf("pressure repeated while above: %v", got)
	}
	// Everyone leaves; use falls below 75%, and the next crossing is
	// told again.
	m.Sweep(noon.Add(time.Hour))
	for i := range 6 {
		mustAssign(t, m, "web", fmt.Sprint("w", i), noon.Add(time.Hour))
	}
	if got := log.get(); !reflect.DeepEqual(got, []string{"web 6/8", "web 6/8"}) {
		t.Errorf("pressure events %v, want a second one after falling below", got)
	}
}

// The callback runs without the lock, so it may ask the manager.
func TestPoolPressureCallbackMayCallBack(t *testing.T) {
	var m *Pools
	var seen []int
	m = NewPools([]config.Pool{testPool("web", 4, time.Minute)}, newClock(), func(pool string, _, _ int) {
		held, _ := m.Pressure(pool)
		seen = append(seen, held)
	})
	for i := range 3 {
		mustAssign(t, m, "web", fmt.Sprint("v", i), noon)
	}
	if !reflect.DeepEqual(seen, []int{3}) {
		t.Errorf("callback saw %v", seen)
	}
}

func TestPoolLookup(t *testing.T) {
	m := NewPools([]config.Pool{testPool("web", 1, 30*time.Minute)}, newClock(), nil)
	aliceVisit := Visit{GCLID: "abc", LandingPage: "https://example.com/offer", FirstSeen: noon.Add(-time.Minute)}
	n, _, _ := m.Assign("web", "alice", aliceVisit, noon)
	if _, _, err := m.Assign("web", "bob", Visit{UTMSource: "news"}, noon.Add(40*time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		at      time.Duration
		visitor string
	}{
		{-time.Second, ""},
		{0, "alice"},
		{29 * time.Minute, "alice"},
		{30 * time.Minute, ""}, // alice's hold ended, bob not yet there
		{39 * time.Minute, ""},
		{40 * time.Minute, "bob"},
		{69 * time.Minute, "bob"},
		{70 * time.Minute, ""},
	} {
		b, ok := m.Lookup(n, noon.Add(tt.at))
		if ok != (tt.visitor != "") || b.Visitor != tt.visitor {
			t.Errorf("Lookup at +%s = %q %v, want %q", tt.at, b.Visitor, ok, tt.visitor)
		}
		if b.Visitor == "alice" && (!reflect.DeepEqual(b.Visit, aliceVisit) || b.Pool != "web" || b.Number != n) {
			t.Errorf("alice's binding %+v", b)
		}
	}
	if _, ok := m.Lookup("+15550100001", noon); ok {
		t.Error("a number of no pool was found")
	}
	if pool, overflow, ok := m.PoolOf(n); pool != "web" || overflow || !ok {
		t.Errorf("PoolOf(number) = %q %v %v", pool, overflow, ok)
	}
	if pool, overflow, ok := m.PoolOf("+15550190003"); pool != "web" || !overflow || !ok {
		t.Errorf("PoolOf(overflow) = %q %v %v", pool, overflow, ok)
	}
	if _, _, ok := m.PoolOf("+15550100001"); ok {
		t.Error("PoolOf found a number of no pool")
	}
}

func TestAttribution(t *testing.T) {
	for _, tt := range []struct {
		name                              string
		v                                 Visit
		source, medium, campaign, keyword string
	}{
		{"utm", Visit{UTMSource: "newsletter", UTMMedium: "email", UTMCampaign: "may", UTMTerm: "plumber", Referrer: "https://www.google.com/"},
			"newsletter", "email", "may", "plumber"},
		{"utm beats click id", Visit{UTMSource: "adwords", UTMMedium: "ppc", GCLID: "x"}, "adwords", "ppc", "", ""},
		{"utm source with a click id lends the medium", Visit{UTMSource: "adwords", GCLID: "x"}, "adwords", "cpc", "", ""},
		{"utm source alone", Visit{UTMSource: "flyer"}, "flyer", "", "", ""},
		{"gclid", Visit{GCLID: "x", UTMCampaign: "spring", UTMTerm: "boiler", Referrer: "https://www.google.com/"}, "google", "cpc", "spring", "boiler"},
		{"gbraid", Visit{GBRAID: "x"}, "google", "cpc", "", ""},
		{"wbraid", Visit{WBRAID: "x"}, "google", "cpc", "", ""},
		{"msclkid", Visit{MSCLKID: "x"}, "bing", "cpc", "", ""},
		{"fbclid", Visit{FBCLID: "x", Referrer: "https://l.facebook.com/"}, "facebook", "paid_social", "", ""},
		{"gclid beats fbclid", Visit{FBCLID: "x", GCLID: "y"}, "google", "cpc", "", ""},
		{"google", Visit{Referrer: "https://www.google.com/"}, "google", "organic", "", ""},
		{"google country", Visit{Referrer: "https://www.google.co.uk/search?q=x"}, "google", "organic", "", ""},
		{"bing", Visit{Referrer: "https://cn.bing.com/search?q=x"}, "bing", "organic", "", ""},
		{"duckduckgo", Visit{Referrer: "https://duckduckgo.com/"}, "duckduckgo", "organic", "", ""},
		{"yahoo", Visit{Referrer: "https://search.yahoo.com/"}, "yahoo", "organic", "", ""},
		{"baidu", Visit{Referrer: "https://www.baidu.com/link?url=x"}, "baidu", "organic", "", ""},
		{"yandex", Visit{Referrer: "https://yandex.ru/"}, "yandex", "organic", "", ""},
		{"ecosia", Visit{Referrer: "https://www.ecosia.org/"}, "ecosia", "organic", "", ""},
		{"search engine case and port", Visit{Referrer: "HTTPS://WWW.GOOGLE.DE:443/"}, "google", "organic", "", ""},
		{"webmail is no search", Visit{Referrer: "https://mail.google.com/"}, "mail.google.com", "referral", "", ""},
		{"engine name as a tld-less host part only", Visit{Referrer: "https://bing.example.com/"}, "bing", "organic", "", ""},
		{"not an engine", Visit{Referrer: "https://googleblog.example.org/post"}, "googleblog.example.org", "referral", "", ""},
		{"referral", Visit{Referrer: "https://www.news.example.org/story"}, "news.example.org", "referral", "", ""},
		{"referral without scheme", Visit{Referrer: "blog.example.net/post"}, "blog.example.net", "referral", "", ""},
		{"self referral", Visit{Referrer: "https://example.com/a", LandingPage: "https://www.example.com/b"}, "direct", "none", "", ""},
		{"direct", Visit{}, "direct", "none", "", ""},
		{"direct with campaign", Visit{UTMCampaign: "x"}, "direct", "none", "x", ""},
		{"utm medium alone", Visit{UTMMedium: "print"}, "direct", "print", "", ""},
		{"landing page query", Visit{LandingPage: "https://example.com/?utm_source=fb&utm_medium=social&utm_campaign=c&utm_term=k"},
			"fb", "social", "c", "k"},
		{"landing page gclid", Visit{LandingPage: "https://example.com/?gclid=abc", Referrer: "https://www.google.com/"}, "google", "cpc", "", ""},
		{"fields beat landing page", Visit{UTMSource: "a", LandingPage: "https://example.com/?utm_source=b"}, "a", "", "", ""},
		{"bad referrer", Visit{Referrer: "::::"}, "direct", "none", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, m, c, k := tt.v.Attribution()
			if s != tt.source || m != tt.medium || c != tt.campaign || k != tt.keyword {
				t.Errorf("got %q/%q/%q/%q, want %q/%q/%q/%q", s, m, c, k, tt.source, tt.medium, tt.campaign, tt.keyword)
			}
		})
	}
}

func TestPoolSnapshotRestore(t *testing.T) {
	clock := newClock()
	pools := []config.Pool{testPool("web", 3, 30*time.Minute), testPool("shop", 2, time.Hour)}
	m := NewPools(pools, clock, nil)
	v := Visit{UTMSource: "google", GCLID: "abc", FirstSeen: noon}
	mustAssign(t, m, "web", "alice", noon.Add(-40*time.Minute)) // gone by noon
	m.Assign("web", "bob", v, noon.Add(-10*time.Minute))
	m.Assign("shop", "carol", v, noon.Add(-5*time.Minute))
	snap := m.Snapshot()
	if len(snap) != 2 || snap[0].Pool != "shop" || snap[1].Visitor != "bob" || !reflect.DeepEqual(snap[1].Visit, v) {
		t.Fatalf("Snapshot = %+v", snap)
	}
	data, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var back []Binding
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"gclid":"abc"`) || strings.Contains(string(data), "utm_medium") {
		t.Errorf("JSON %s", data)
	}

	var log pressureLog
	fresh := NewPools(pools, clock, log.record)
	// Restored at +25m: carol (until +55m) stays, bob (until +20m) is
	// dropped, and a binding for a number of no pool is too.
	extra := Binding{Pool: "web", Number: "+15550100999", Visitor: "dave", Until: noon.Add(time.Hour)}
	if n := fresh.Restore(append(back, extra), noon.Add(25*time.Minute)); n != 1 {
		t.Fatalf("Restore kept %d, want 1", n)
	}
	b, ok := fresh.Lookup(snap[0].Number, noon.Add(30*time.Minute))
	if !ok || b.Visitor != "carol" || !b.Until.Equal(snap[0].Until) || !b.Since.Equal(snap[0].Since) {
		t.Errorf("restored binding %+v %v, want %+v", b, ok, snap[0])
	}
	if !fresh.Heartbeat("shop", "carol", noon.Add(30*time.Minute)) {
		t.Error("restored visitor has no number")
	}
	if n, _ := mustAssign(t, fresh, "shop", "carol", noon.Add(31*time.Minute)); n != snap[0].Number {
		t.Errorf("restored carol got %s, want %s", n, snap[0].Number)
	}
	// A restored number is not handed to someone else.
	if n, _ := mustAssign(t, fresh, "shop", "erin", noon.Add(31*time.Minute)); n == snap[0].Number {
		t.Errorf("erin got carol's number")
	}
	if got := log.get(); !reflect.DeepEqual(got, []string{"shop 2/2"}) {
		t.Errorf("pressure %v", got)
	}
	// A hold beyond the pool's is cut to it; a taken number or visitor is
	// not restored twice.
	long := Binding{Pool: "web", Number: "+15550300001", Visitor: "frank", Since: noon, Until: noon.Add(48 * time.Hour)}
	dupNumber := Binding{Pool: "web", Number: "+15550300001", Visitor: "gina", Since: noon, Until: noon.Add(time.Hour)}
	dupVisitor := Binding{Pool: "web", Number: "+15550300002", Visitor: "frank", Since: noon, Until: noon.Add(time.Hour)}
	wrongPool := Binding{Pool: "shop", Number: "+15550300000", Visitor: "hal", Since: noon, Until: noon.Add(time.Hour)}
	if n := fresh.Restore([]Binding{long, dupNumber, dupVisitor, wrongPool}, noon); n != 1 {
		t.Errorf("Restore kept %d, want 1", n)
	}
	if b, _ := fresh.Lookup("+15550300001", noon); !b.Until.Equal(noon.Add(30 * time.Minute)) {
		t.Errorf("long hold restored until %s", b.Until)
	}
}

func TestPoolApplyKeepsBindings(t *testing.T) {
	clock := newClock()
	web := testPool("web", 3, 30*time.Minute)
	m := NewPools([]config.Pool{web}, clock, nil)
	n0, _ := mustAssign(t, m, "web", "alice", noon)
	n1, _ := mustAssign(t, m, "web", "bob", noon)
	mustAssign(t, m, "web", "carol", noon)
	mustAssign(t, m, "web", "dave", noon) // overflow
	// The reload drops alice's number and adds two.
	web.Numbers = append(web.Numbers[1:], "+15550300100", "+15550300101")
	web.Hold = time.Hour
	m.Apply([]config.Pool{web})
	if _, ok := m.Lookup(n0, noon); ok {
		t.Error("a number no longer in the pool still has a binding")
	}
	if b, ok := m.Lookup(n1, noon.Add(time.Minute)); !ok || b.Visitor != "bob" {
		t.Errorf("bob's binding lost: %+v", b)
	}
	if m.Heartbeat("web", "alice", noon.Add(time.Minute)) {
		t.Error("alice kept a number that left the pool")
	}
	if n, _ := mustAssign(t, m, "web", "bob", noon.Add(time.Minute)); n != n1 {
		t.Errorf("bob got %s after the reload, want %s", n, n1)
	}
	if held, total := m.Pressure("web"); held != 2 || total != 4 {
		t.Errorf("pressure %d/%d, want 2/4", held, total)
	}
	if got := m.Overflows("web"); got != 1 {
		t.Errorf("overflow count %d lost on reload", got)
	}
	// The new hold applies from the next heartbeat.
	m.Heartbeat("web", "bob", noon.Add(2*time.Minute))
	if b, _ := m.Lookup(n1, noon.Add(time.Hour)); b.Visitor != "bob" {
		t.Error("the new hold was not applied")
	}
	// A pool removed drops its bindings.
	m.Apply(nil)
	if _, ok := m.Lookup(n1, noon.Add(3*time.Minute)); ok {
		t.Error("a removed pool kept its bindings")
	}
}

// Many goroutines assigning, heartbeating and looking up at once must
// never give one number to two visitors, nor two numbers to one visitor.
func TestPoolConcurrentAssign(t *testing.T) {
	const size, workers, visitors = 50, 16, 40
	clock := newClock()
	var log pressureLog
	m := NewPools([]config.Pool{testPool("web", size, 30*time.Minute)}, clock, log.record)

	// First round, all at noon: exactly size visitors get numbers, each
	// its own, the rest the overflow, even when one visitor asks from
	// several goroutines.
	var mu sync.Mutex
	got := map[string]string{} // visitor → number
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range visitors {
				// Workers w and w+1 share visitors: the same visitor
				// asks from two goroutines.
				id := fmt.Sprintf("v%d-%d", w/2, i)
				n, overflow, err := m.Assign("web", id, Visit{}, noon)
				if err != nil {
					t.Error(err)
					return
				}
				if overflow {
					continue
				}
				mu.Lock()
				if prev, ok := got[id]; ok && prev != n {
					t.Errorf("visitor %s got %s and %s", id, prev, n)
				}
				got[id] = n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	owner := map[string]string{}
	for id, n := range got {
		if o, dup := owner[n]; dup {
			t.Fatalf("number %s given to %s and %s", n, o, id)
		}
		owner[n] = id
	}
	if len(owner) != size {
		t.Fatalf("%d numbers given, want all %d", len(owner), size)
	}
	if got := log.get(); len(got) != 1 {
		t.Errorf("pressure told %d times: %v", len(got), got)
	}

	// Second round with time moving: holds end and numbers change hands
	// while others heartbeat and look up.
	var now sync.Mutex
	at := noon
	tick := func() time.Time {
		now.Lock()
		defer now.Unlock()
		at = at.Add(time.Minute)
		return at
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				id := fmt.Sprintf("r%d-%d", w, i%70)
				ts := tick()
				switch i % 3 {
				case 0:
					m.Assign("web", id, Visit{}, ts)
				case 1:
					m.Heartbeat("web", id, ts)
				default:
					m.Lookup(fmt.Sprintf("+155503%05d", i%size), ts)
					m.Pressure("web")
				}
			}
		}()
	}
	wg.Wait()
	snap := m.Snapshot()
	numbers, ids := map[string]bool{}, map[string]bool{}
	for _, b := range snap {
		if numbers[b.Number] || ids[b.Visitor] {
			t.Fatalf("snapshot binds a number or visitor twice: %+v", b)
		}
		numbers[b.Number], ids[b.Visitor] = true, true
	}
	if held, total := m.Pressure("web"); held > total || total != size {
		t.Errorf("pressure %d/%d", held, total)
	}
}

func TestVisitBounded(t *testing.T) {
	m := NewPools([]config.Pool{testPool("web", 1, time.Minute)}, newClock(), nil)
	long := strings.Repeat("é", maxVisitField) // 2 bytes each
	n, _, err := m.Assign("web", long, Visit{Referrer: "x" + long}, noon)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Lookup(n, noon)
	if len(b.Visitor) > maxVisitField || len(b.Visit.Referrer) > maxVisitField {
		t.Errorf("kept %d and %d bytes", len(b.Visitor), len(b.Visit.Referrer))
	}
	if !strings.HasPrefix(b.Visit.Referrer, "xé") || !strings.HasSuffix(b.Visit.Referrer, "é") {
		t.Errorf("referrer cut mid-character: ...%q", b.Visit.Referrer[len(b.Visit.Referrer)-3:])
	}
	if !m.Heartbeat("web", long, noon) {
		t.Error("the long visitor id does not find its number")
	}
}
