package routing

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
)

// loadAttribution reads an attribution section the way the edge does.
func loadAttribution(t *testing.T, section string) *config.Attribution {
	t.Helper()
	cfg, err := config.LoadBytes("attr.yaml", []byte("trunks: {carrier: {allow: [127.0.0.1]}}\n"+section), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Attribution
}

const customSection = `
attribution:
  click_ids:
    msclkid: {source: microsoft, medium: ppc}
    fbclid:  false
    ttclid:  {source: tiktok,   medium: paid_social}
    ScCid:   {source: snapchat, medium: paid_social}
  search_engines: [google, kagi]
  referrals:
    partner.example.com: {source: partner, medium: affiliate}
    example.com:         {source: example, medium: referral}
    news.google.com:     {source: google_news, medium: referral}
  direct: {source: (direct), medium: (none)}
`

type attributionCase struct {
	name                              string
	v                                 Visit
	source, medium, campaign, keyword string
}

func checkAttribution(t *testing.T, r *AttributionRules, cases []attributionCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			s, m, c, k := tt.v.AttributionBy(r)
			if s != tt.source || m != tt.medium || c != tt.campaign || k != tt.keyword {
				t.Errorf("got %q/%q/%q/%q, want %q/%q/%q/%q", s, m, c, k, tt.source, tt.medium, tt.campaign, tt.keyword)
			}
		})
	}
}

// The rules an empty or absent section makes are the built-in ones.
func TestAttributionDefaultRules(t *testing.T) {
	visits := []Visit{
		{UTMSource: "a", GCLID: "x"}, {GBRAID: "x", FBCLID: "y"}, {MSCLKID: "x", UTMMedium: "m"},
		{Referrer: "https://www.google.co.uk/"}, {Referrer: "https://mail.yahoo.com/"},
		{Referrer: "https://example.org/", LandingPage: "https://shop.example/?fbclid=1&ttclid=2"},
		{LandingPage: "https://shop.example/?ttclid=2", Referrer: "https://www.tiktok.com/"}, {},
	}
	for _, section := range []string{"", "attribution:\n", "attribution: {click_ids: {}, utm_first: true}\n"} {
		var r *AttributionRules
		if a := loadAttribution(t, section); a != nil || section != "" {
			r = NewAttributionRules(a)
		}
		for _, v := range visits {
			s1, m1, c1, k1 := v.Attribution()
			s2, m2, c2, k2 := v.AttributionBy(r)
			if s1 != s2 || m1 != m2 || c1 != c2 || k1 != k2 {
				t.Errorf("section %q, visit %+v: %s/%s/%s/%s, default %s/%s/%s/%s", section, v, s2, m2, c2, k2, s1, m1, c1, k1)
			}
		}
	}
	if got := (*AttributionRules)(nil).WithClickIDs(Visit{LandingPage: "https://x.example/?ttclid=1"}); got.ClickIDs != nil {
		t.Errorf("default rules read %v", got.ClickIDs)
	}
}

func TestAttributionCustomRules(t *testing.T) {
	r := NewAttributionRules(loadAttribution(t, customSection))
	checkAttribution(t, r, []attributionCase{
		{"added click id", Visit{ClickIDs: map[string]string{"ttclid": "x"}, UTMCampaign: "c", UTMTerm: "k"}, "tiktok", "paid_social", "c", "k"},
		{"added click id on the landing page", Visit{LandingPage: "https://shop.example/?ttclid=x", Referrer: "https://www.tiktok.com/"}, "tiktok", "paid_social", "", ""},
		{"click id names are case-sensitive", Visit{LandingPage: "https://shop.example/?sccid=x&TTCLID=y"}, "(direct)", "(none)", "", ""},
		{"mixed-case click id", Visit{LandingPage: "https://shop.example/?ScCid=x"}, "snapchat", "paid_social", "", ""},
		{"built-in click ids first", Visit{GCLID: "x", ClickIDs: map[string]string{"ttclid": "y"}}, "google", "cpc", "", ""},
		{"then those added in the order written", Visit{ClickIDs: map[string]string{"ScCid": "x", "ttclid": "y"}}, "tiktok", "paid_social", "", ""},
		{"overridden click id", Visit{MSCLKID: "x"}, "microsoft", "ppc", "", ""},
		{"overridden click id keeps its place", Visit{MSCLKID: "x", ClickIDs: map[string]string{"ttclid": "y"}}, "microsoft", "ppc", "", ""},
		{"click id taken out", Visit{FBCLID: "x", Referrer: "https://l.facebook.com/"}, "l.facebook.com", "referral", "", ""},
		{"utm first", Visit{UTMSource: "tt", UTMMedium: "video", ClickIDs: map[string]string{"ttclid": "x"}}, "tt", "video", "", ""},
		{"utm source with an added click id lends the medium", Visit{UTMSource: "tt", ClickIDs: map[string]string{"ttclid": "x"}}, "tt", "paid_social", "", ""},
		{"utm medium over a click id's", Visit{UTMMedium: "video", ClickIDs: map[string]string{"ttclid": "x"}}, "tiktok", "video", "", ""},
		{"search engine added", Visit{Referrer: "https://kagi.com/search?q=x"}, "kagi", "organic", "", ""},
		{"search engine no longer listed", Visit{Referrer: "https://www.bing.com/search?q=x"}, "bing.com", "referral", "", ""},
		{"search engine still listed", Visit{Referrer: "https://www.google.de/"}, "google", "organic", "", ""},
		{"referral host", Visit{Referrer: "https://partner.example.com/deal"}, "partner", "affiliate", "", ""},
		{"referral subdomain", Visit{Referrer: "https://WWW.Shop.Partner.Example.com:8443/"}, "partner", "affiliate", "", ""},
		{"shorter referral host", Visit{Referrer: "https://notpartner.example.com/"}, "example", "referral", "", ""},
		{"referral host is not a prefix", Visit{Referrer: "https://partner.example.com.evil.net/"}, "partner.example.com.evil.net", "referral", "", ""},
		{"referral before search engine", Visit{Referrer: "https://news.google.com/articles/x"}, "google_news", "referral", "", ""},
		{"referral with utm medium", Visit{Referrer: "https://partner.example.com/", UTMMedium: "email"}, "partner", "email", "", ""},
		{"webmail", Visit{Referrer: "https://mail.google.com/"}, "mail.google.com", "referral", "", ""},
		{"direct", Visit{UTMCampaign: "c"}, "(direct)", "(none)", "c", ""},
		{"self referral", Visit{Referrer: "https://example.com/a", LandingPage: "https://www.example.com/b"}, "(direct)", "(none)", "", ""},
		{"direct with utm medium", Visit{UTMMedium: "print"}, "(direct)", "print", "", ""},
		{"bad referrer", Visit{Referrer: "::::"}, "(direct)", "(none)", "", ""},
	})
}

func TestAttributionClickIDsWin(t *testing.T) {
	r := NewAttributionRules(loadAttribution(t, customSection+"  utm_first: false\n"))
	checkAttribution(t, r, []attributionCase{
		{"click id over utm", Visit{UTMSource: "newsletter", UTMMedium: "email", UTMCampaign: "may", UTMTerm: "k", GCLID: "x"}, "google", "cpc", "may", "k"},
		{"added click id over utm", Visit{UTMSource: "newsletter", LandingPage: "https://shop.example/?ttclid=x&utm_medium=email"}, "tiktok", "paid_social", "", ""},
		{"click id's medium over utm medium", Visit{UTMMedium: "email", MSCLKID: "x"}, "microsoft", "ppc", "", ""},
		{"utm without a click id", Visit{UTMSource: "newsletter", UTMMedium: "email", Referrer: "https://kagi.com/"}, "newsletter", "email", "", ""},
		{"utm source alone", Visit{UTMSource: "flyer"}, "flyer", "", "", ""},
		{"referrer with utm medium", Visit{UTMMedium: "email", Referrer: "https://partner.example.com/"}, "partner", "email", "", ""},
	})
}

// Rules built from a Config made by hand (not by Load) still compare hosts
// as referrers are compared.
func TestAttributionRulesNormalizeHosts(t *testing.T) {
	a := config.DefaultAttribution()
	a.Referrals = []config.Referral{{Host: "WWW.Partner.Example", Channel: config.Channel{Source: "p", Medium: "m"}}}
	checkAttribution(t, NewAttributionRules(&a), []attributionCase{
		{"partner", Visit{Referrer: "https://partner.example/"}, "p", "m", "", ""},
	})
}

func TestWithClickIDs(t *testing.T) {
	r := NewAttributionRules(loadAttribution(t, customSection))
	own := map[string]string{"ttclid": "kept"}
	v := Visit{LandingPage: "https://shop.example/?ttclid=new&ScCid=+s1+&gclid=g&other=o", ClickIDs: own}
	got := r.WithClickIDs(v)
	if want := map[string]string{"ttclid": "kept", "ScCid": "s1"}; !reflect.DeepEqual(got.ClickIDs, want) {
		t.Errorf("ClickIDs %v, want %v", got.ClickIDs, want)
	}
	if got.GCLID != "" {
		t.Error("a click id with a field of its own was filled: the visit is kept as reported")
	}
	if len(own) != 1 {
		t.Errorf("the visit's own map was written: %v", own)
	}
	if got := r.WithClickIDs(Visit{LandingPage: "https://shop.example/?gclid=g"}); got.ClickIDs != nil {
		t.Errorf("a map was made for nothing: %v", got.ClickIDs)
	}
}

func poolRouter(t *testing.T) (*Router, *Pools, *config.Config) {
	t.Helper()
	cfg := testConfig()
	web := testPool("web", 2, 30*time.Minute)
	web.Source, web.Medium, web.Campaign = "website", "dni", "overflow"
	cfg.Pools = map[string]*config.Pool{"web": &web}
	r, clock := newTestRouter(cfg)
	p := NewPools([]config.Pool{web}, clock, nil)
	r.SetPools(p)
	return r, p, cfg
}

// A reload's rules decide the calls after it, for visits made before it
// too; a call already attributed keeps what it got.
func TestAttributeFollowsReload(t *testing.T) {
	r, pools, cfg := poolRouter(t)
	visit := Visit{LandingPage: "https://shop.example/?ttclid=T1&utm_campaign=spring", Referrer: "https://www.tiktok.com/"}
	n, _, err := pools.Assign("web", "alice", visit, noon)
	if err != nil {
		t.Fatal(err)
	}
	attribute := func() Attribution {
		t.Helper()
		a, ok := r.Attribute(n, noon.Add(time.Minute))
		if !ok || a.Pool != "web" || a.Visit == nil || a.Flow != cfg.Flows["main"] {
			t.Fatalf("Attribute(%s) = %+v %v", n, a, ok)
		}
		return a
	}

	before := attribute()
	if before.Source != "tiktok.com" || before.Medium != "referral" || before.Campaign != "spring" || before.Visit.ClickIDs != nil {
		t.Errorf("default rules: %s/%s/%s %v", before.Source, before.Medium, before.Campaign, before.Visit.ClickIDs)
	}

	reloaded := *cfg
	reloaded.Attribution = loadAttribution(t, customSection)
	r.Swap(NewTable(&reloaded))
	after := attribute()
	if after.Source != "tiktok" || after.Medium != "paid_social" || after.Campaign != "spring" ||
		!reflect.DeepEqual(after.Visit.ClickIDs, map[string]string{"ttclid": "T1"}) {
		t.Errorf("reloaded rules: %s/%s/%s %v", after.Source, after.Medium, after.Campaign, after.Visit.ClickIDs)
	}
	if before.Source != "tiktok.com" || before.Visit.ClickIDs != nil {
		t.Error("the reload changed an attribution already made")
	}
	if b, _ := pools.Lookup(n, noon); b.Visit.ClickIDs != nil {
		t.Errorf("attributing wrote into the kept visit: %v", b.Visit.ClickIDs)
	}

	r.Swap(NewTable(cfg))
	if again := attribute(); again.Source != "tiktok.com" || again.Visit.ClickIDs != nil {
		t.Errorf("back to the defaults: %s %v", again.Source, again.Visit.ClickIDs)
	}

	// Numbers no visit holds, and static numbers, are not the rules'.
	r.Swap(NewTable(&reloaded))
	if a, ok := r.Attribute(web2(cfg), noon); !ok || a.Source != "website" || a.Medium != "dni" || a.Visit != nil {
		t.Errorf("unheld pool number: %+v %v", a, ok)
	}
	if a, ok := r.Attribute("+15550100001", noon); !ok || a.Source != "google" || a.Campaign != "spring" {
		t.Errorf("static number: %+v %v", a, ok)
	}
}

// web2 is the pool number alice was not given.
func web2(cfg *config.Config) string { return cfg.Pools["web"].Numbers[1] }

// Calls attributed while reloads swap the rules each get one table's
// rules whole, and never share a map with the kept visit.
func TestAttributeConcurrentReload(t *testing.T) {
	r, pools, cfg := poolRouter(t)
	n, _, _ := pools.Assign("web", "alice", Visit{LandingPage: "https://shop.example/?ttclid=T1"}, noon)
	custom := *cfg
	custom.Attribution = loadAttribution(t, customSection)
	tables := []*Table{NewTable(cfg), NewTable(&custom)}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if w == 0 {
					r.Swap(tables[i%2])
					continue
				}
				a, _ := r.Attribute(n, noon)
				switch a.Source {
				case "tiktok":
					a.Visit.ClickIDs["seen"] = "yes" // each call's own map
				case "(direct)", "direct":
				default:
					t.Errorf("source %q", a.Source)
				}
				if (a.Source == "tiktok") != (a.Visit.ClickIDs != nil) {
					t.Errorf("source %q with click ids %v", a.Source, a.Visit.ClickIDs)
				}
			}
		}()
	}
	wg.Wait()
}

func TestVisitClickIDsBoundedAndCopied(t *testing.T) {
	m := NewPools([]config.Pool{testPool("web", 1, time.Minute)}, newClock(), nil)
	ids := map[string]string{
		"ttclid": strings.Repeat("é", maxVisitField), "": "x", strings.Repeat("k", maxClickIDName+1): "x",
		"empty": "", "gclid": "shadows a field", "referrer": "shadows a field",
	}
	for i := range config.MaxClickIDs + 10 {
		ids["z"+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	n, _, err := m.Assign("web", "alice", Visit{ClickIDs: ids}, noon)
	if err != nil {
		t.Fatal(err)
	}
	ids["ttclid"] = "changed"
	b, _ := m.Lookup(n, noon)
	got := b.Visit.ClickIDs
	if len(got) != config.MaxClickIDs {
		t.Errorf("kept %d click ids, want %d", len(got), config.MaxClickIDs)
	}
	if v := got["ttclid"]; len(v) > maxVisitField || !strings.HasPrefix(v, "é") {
		t.Errorf("ttclid kept as %d bytes %.8q", len(v), v)
	}
	for _, name := range []string{"", strings.Repeat("k", maxClickIDName+1), "empty", "gclid", "referrer"} {
		if _, ok := got[name]; ok {
			t.Errorf("kept %.10q", name)
		}
	}
	// In name order: "ttclid" and the first of the z... names.
	if _, ok := got["zab"]; !ok {
		t.Errorf("kept %v", got)
	}
	if n, _, _ := m.Assign("web", "bob", Visit{ClickIDs: map[string]string{"x": ""}}, noon.Add(time.Hour)); n == "" {
		t.Fatal("no number for bob")
	}
	if b, _ := m.Lookup(n, noon.Add(time.Hour)); b.Visit.ClickIDs != nil {
		t.Errorf("an empty map was kept: %v", b.Visit.ClickIDs)
	}
}

func TestVisitJSON(t *testing.T) {
	v := Visit{UTMSource: "tiktok", GCLID: "g", FirstSeen: noon.UTC(), ClickIDs: map[string]string{"ttclid": "T1", "ScCid": "S1"}}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"utm_source":"tiktok","gclid":"g","first_seen":"2025-06-11T`
	if !strings.HasPrefix(string(data), want) || !strings.HasSuffix(string(data), `,"ScCid":"S1","ttclid":"T1"}`) {
		t.Errorf("JSON %s", data)
	}
	var back Visit
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !back.FirstSeen.Equal(v.FirstSeen) || !reflect.DeepEqual(back.ClickIDs, v.ClickIDs) || back.GCLID != "g" {
		t.Errorf("back %+v", back)
	}

	for _, tt := range []struct {
		v    Visit
		json string
	}{
		{Visit{}, `{}`},
		{Visit{ClickIDs: map[string]string{"ttclid": "T1"}}, `{"ttclid":"T1"}`},
		{Visit{ClickIDs: map[string]string{"gclid": "shadow", "x": ""}}, `{}`},
	} {
		if data, err := json.Marshal(tt.v); err != nil || string(data) != tt.json {
			t.Errorf("%+v: %s %v, want %s", tt.v, data, err, tt.json)
		}
	}
	// A binding saved before click ids were configured reads as it did;
	// members of other types are not click ids.
	var old Binding
	if err := json.Unmarshal([]byte(`{"pool":"web","visit":{"gclid":"g","n":1,"o":{"a":"b"},"e":""}}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Visit.GCLID != "g" || old.Visit.ClickIDs != nil {
		t.Errorf("old binding %+v", old.Visit)
	}
}

// visitField names exactly the JSON names of Visit's fields.
func TestVisitFieldNames(t *testing.T) {
	typ := reflect.TypeFor[Visit]()
	n := 0
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		n++
		if !visitField(name) {
			t.Errorf("%s is not known to visitField", name)
		}
	}
	if n != 13 {
		t.Errorf("Visit has %d JSON fields: update visitField and this count", n)
	}
}
