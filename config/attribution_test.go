package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// attrBase is the least a file needs to load, so each test's lines start
// at line 3.
const attrBase = "trunks:\n  carrier: {allow: [127.0.0.1]}\n"

func loadAttribution(t *testing.T, section string, env map[string]string) (*Config, error) {
	t.Helper()
	return LoadBytes("attr.yaml", []byte(attrBase+section), envOf(env))
}

func TestAttributionAbsent(t *testing.T) {
	c, err := loadAttribution(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Attribution != nil {
		t.Errorf("no section gave %+v, want nil (the defaults)", c.Attribution)
	}
	// The reference configuration has none either, and keeps loading.
	ref := mustLoad(t, "testdata/reference.yaml", map[string]string{"CALLSIGN_ADMIN_TOKEN": "t", "BOB_SIP_PASSWORD": "p", "ALICE_TOKEN": "a"})
	if ref.Attribution != nil {
		t.Errorf("reference: %+v", ref.Attribution)
	}
}

func TestDefaultAttribution(t *testing.T) {
	a := DefaultAttribution()
	google := Channel{"google", "cpc"}
	want := Attribution{
		ClickIDs: []ClickID{
			{"gclid", google}, {"gbraid", google}, {"wbraid", google},
			{"msclkid", Channel{"bing", "cpc"}}, {"fbclid", Channel{"facebook", "paid_social"}},
		},
		SearchEngines: []string{"google", "bing", "duckduckgo", "yahoo", "baidu", "yandex", "ecosia"},
		Direct:        Channel{"direct", "none"},
		UTMFirst:      true,
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("got %+v", a)
	}
	// Each call is a value of its own: changing one changes no other.
	a.ClickIDs[0].Source, a.SearchEngines[0] = "changed", "changed"
	if b := DefaultAttribution(); !reflect.DeepEqual(b, want) {
		t.Errorf("a change to one default reached the next: %+v", b)
	}
}

func TestAttributionSection(t *testing.T) {
	c, err := loadAttribution(t, `
attribution:
  click_ids:
    gclid:   {source: google,   medium: cpc}
    msclkid: {source: microsoft, medium: ppc}
    fbclid:  false
    ttclid:  {source: tiktok,   medium: paid_social}
    ScCid:   {source: "  snapchat ", medium: "${SOCIAL}"}
  search_engines: [google, Bing, duckduckgo, yahoo, ecosia, baidu, yandex, kagi]
  referrals:
    partner.example.com: {source: partner, medium: affiliate}
    WWW.Deals.Example.NET: {source: deals, medium: affiliate}
    news.google.com: {source: google_news, medium: referral}
  direct: {source: (direct), medium: (none)}
  utm_first: ${UTM_FIRST}
`, map[string]string{"SOCIAL": "paid_social", "UTM_FIRST": "false"})
	if err != nil {
		t.Fatal(err)
	}
	google := Channel{"google", "cpc"}
	want := &Attribution{
		ClickIDs: []ClickID{
			{"gclid", google}, {"gbraid", google}, {"wbraid", google},
			{"msclkid", Channel{"microsoft", "ppc"}},
			{"ttclid", Channel{"tiktok", "paid_social"}}, {"ScCid", Channel{"snapchat", "paid_social"}},
		},
		SearchEngines: []string{"google", "bing", "duckduckgo", "yahoo", "ecosia", "baidu", "yandex", "kagi"},
		Referrals: []Referral{
			{"partner.example.com", Channel{"partner", "affiliate"}},
			{"deals.example.net", Channel{"deals", "affiliate"}},
			{"news.google.com", Channel{"google_news", "referral"}},
		},
		Direct:   Channel{"(direct)", "(none)"},
		UTMFirst: false,
	}
	if !reflect.DeepEqual(c.Attribution, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c.Attribution, want)
	}
}

func TestAttributionPartial(t *testing.T) {
	for _, tt := range []struct {
		name, section string
		change        func(*Attribution)
	}{
		{"empty section", "attribution:\n", func(*Attribution) {}},
		{"empty keys keep their defaults", "attribution: {click_ids: , search_engines: , referrals: , direct: , utm_first: }\n", func(*Attribution) {}},
		{"no search engines", "attribution: {search_engines: []}\n", func(a *Attribution) { a.SearchEngines = []string{} }},
		{"utm_first true", "attribution: {utm_first: true}\n", func(*Attribution) {}},
		{"utm_first false", "attribution: {utm_first: false}\n", func(a *Attribution) { a.UTMFirst = false }},
		{"an override keeps its place", "attribution: {click_ids: {gbraid: {source: youtube, medium: video}}}\n", func(a *Attribution) {
			a.ClickIDs[1].Channel = Channel{"youtube", "video"}
		}},
		{"anchors and merges", "attribution:\n  direct: &d {source: direct, medium: none}\n  referrals: {partner.example.com: {<<: *d, source: partner}}\n", func(a *Attribution) {
			a.Referrals = []Referral{{"partner.example.com", Channel{"partner", "none"}}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadAttribution(t, tt.section, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := DefaultAttribution()
			tt.change(&want)
			if !reflect.DeepEqual(c.Attribution, &want) {
				t.Errorf("got\n%+v\nwant\n%+v", c.Attribution, &want)
			}
		})
	}
}

func TestAttributionProblems(t *testing.T) {
	for _, tt := range []struct {
		name, section string
		want          []string // without the "attr.yaml:" prefix
	}{
		{"not a map", "attribution: [click_ids]\n", []string{
			`3:14: attribution must be a map (key: value), got a list`,
		}},
		{"unknown keys", `
attribution:
  utm_frist: true
  click_ids:
    ttclid: {source: tiktok, medum: paid_social}
  direct: {source: direct, medium: none, campaign: x}
`, []string{
			`5:3: unknown key "utm_frist" in attribution (known: click_ids, search_engines, referrals, direct, utm_first)`,
			`7:5: click id "ttclid" needs a medium, like {source: tiktok, medium: paid_social}`,
			`7:30: unknown key "medum" in click id "ttclid" (known: source, medium)`,
			`8:42: unknown key "campaign" in attribution direct (known: source, medium)`,
		}},
		{"click id names", `
attribution:
  click_ids:
    "tt clid": {source: tiktok, medium: paid_social}
    1clid: {source: x, medium: y}
    "a/b": {source: x, medium: y}
    utm_id: {source: x, medium: y}
    UTM_Source: {source: x, medium: y}
    referrer: {source: x, medium: y}
    landing_page: {source: x, medium: y}
    "": {source: x, medium: y}
    ` + strings.Repeat("x", 65) + `: {source: x, medium: y}
`, []string{
			`6:5: click id "tt clid" is not a plain URL parameter name: letters, digits, '_' and '-', starting with a letter, at most 64`,
			`7:5: click id "1clid" is not a plain URL parameter name: letters, digits, '_' and '-', starting with a letter, at most 64`,
			`8:5: click id "a/b" is not a plain URL parameter name: letters, digits, '_' and '-', starting with a letter, at most 64`,
			`9:5: click id "utm_id" is a utm parameter, which is read anyway: utm_source and utm_medium name the source themselves`,
			`10:5: click id "UTM_Source" is a utm parameter, which is read anyway: utm_source and utm_medium name the source themselves`,
			`11:5: click id "referrer" is a field of the call's visitor record, not a URL parameter`,
			`12:5: click id "landing_page" is a field of the call's visitor record, not a URL parameter`,
			`13:5: empty name in attribution click_ids`,
			`14:5: click id "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" is not a plain URL parameter name: letters, digits, '_' and '-', starting with a letter, at most 64`,
		}},
		{"click ids differing in case", `
attribution:
  click_ids:
    GCLID: {source: google, medium: cpc}
    ScCid: {source: snapchat, medium: paid_social}
    sccid: {source: snapchat, medium: paid_social}
`, []string{
			`6:5: click id "GCLID" differs from the built-in "gclid" only in case: URL parameters are case-sensitive, so it would not match gclid`,
			`8:5: click id "sccid" differs from "ScCid" (line 7) only in case: URL parameters are case-sensitive, keep the one the ads use`,
		}},
		{"duplicate click id", `
attribution:
  click_ids:
    ttclid: {source: tiktok, medium: paid_social}
    ttclid: {source: tiktok, medium: cpc}
`, []string{
			`7:5: duplicate key "ttclid" in attribution click_ids (first on line 6)`,
		}},
		{"click id channels", `
attribution:
  click_ids:
    a: {source: "", medium: cpc}
    b: {source: x}
    c: {medium: y}
    d: {source: "  ", medium: " "}
    e: tiktok
    f:
    g: {}
    h: {source: "${UNSET}", medium: cpc}
    i: false
    j: "false"
    fbclid: true
`, []string{
			`6:17: click id "a" source must not be empty`,
			`7:5: click id "b" needs a medium, like {source: tiktok, medium: paid_social}`,
			`8:5: click id "c" needs a source, like {source: tiktok, medium: paid_social}`,
			`9:17: click id "d" source must not be empty`,
			`9:31: click id "d" medium must not be empty`,
			`10:8: click id "e" must be a map (key: value), got the string "tiktok"`,
			`11:5: click id "f" needs a source and a medium, like {source: tiktok, medium: paid_social}`,
			`12:5: click id "g" needs a source and a medium, like {source: tiktok, medium: paid_social}`,
			`13:17: ${UNSET} is not set`,
			`14:8: click id "i": false takes out a built-in click id (gclid, gbraid, wbraid, msclkid, fbclid), and "i" is not one`,
			`15:8: click id "j" must be a map (key: value), got the string "false"`,
			`16:13: click id "fbclid" must be a map (key: value), got "true"`,
		}},
		{"too many click ids", "attribution:\n  click_ids:\n" + manyClickIDs(28), []string{
			`4:3: attribution click_ids makes 33 click ids, more than 32: each can become a key of a call's visitor record`,
		}},
		{"search engines", `
attribution:
  search_engines: [google.com, "", "goo gle", -bing, bing, Bing, "${UNSET}", [x]]
`, []string{
			`5:20: attribution search_engines: "google.com" is a host, not an engine's name: give the label its hosts share, like google, which matches www.google.co.uk and google.de`,
			`5:32: attribution search_engines has an empty entry`,
			`5:36: attribution search_engines: "goo gle" is not a host label (letters, digits and '-'), like google or duckduckgo`,
			`5:47: attribution search_engines: "-bing" is not a host label (letters, digits and '-'), like google or duckduckgo`,
			`5:60: attribution search_engines lists "bing" twice (first on line 5)`,
			`5:66: ${UNSET} is not set`,
			`5:78: attribution search_engines must be a single value, got a list`,
		}},
		{"search engines not a list", "attribution: {search_engines: google}\n", []string{
			`3:31: attribution search_engines must be a list, got the string "google"`,
		}},
		{"referrals", `
attribution:
  referrals:
    https://partner.example.com/: {source: partner, medium: affiliate}
    partner.example.com:8080: {source: partner, medium: affiliate}
    partner.example.com/path: {source: partner, medium: affiliate}
    bad_host!: {source: x, medium: y}
    www.: {source: x, medium: y}
    www.partner.example.com: {source: partner, medium: affiliate}
    Partner.Example.com: {source: partner, medium: affiliate}
    shop.example.com: {source: "", medium: y}
    list.example.com: [x]
`, []string{
			`6:5: referral "https://partner.example.com/" is not a host: write the host alone, like partner.example.com (its subdomains match too)`,
			`7:5: referral "partner.example.com:8080" is not a host: write the host alone, like partner.example.com (its subdomains match too)`,
			`8:5: referral "partner.example.com/path" is not a host: write the host alone, like partner.example.com (its subdomains match too)`,
			`9:5: referral "bad_host!" is not a host name, like partner.example.com`,
			`10:5: referral "www." is not a host name, like partner.example.com`,
			`12:5: referral "Partner.Example.com" is the same host as "www.partner.example.com" (line 11): referrers are matched in lower case without www.`,
			`13:32: referral "shop.example.com" source must not be empty`,
			`14:23: referral "list.example.com" must be a map (key: value), got a list`,
		}},
		{"direct", `
attribution:
  direct: {source: direct}
`, []string{
			`5:3: attribution direct needs a medium, like {source: direct, medium: none}`,
		}},
		{"direct not a map", "attribution: {direct: none}\n", []string{
			`3:23: attribution direct must be a map (key: value), got the string "none"`,
		}},
		{"utm_first", "attribution: {utm_first: yes}\n", []string{
			`3:26: attribution utm_first must be true or false, got "yes"`,
		}},
		{"utm_first list", "attribution: {utm_first: [true]}\n", []string{
			`3:26: attribution utm_first must be a single value, got a list`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadAttribution(t, tt.section, nil)
			if err == nil {
				t.Fatalf("loaded without problems: %+v", c.Attribution)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T: %v", err, err)
			}
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = "attr.yaml:" + w
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// manyClickIDs is n click ids, lines of a click_ids map.
func manyClickIDs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "    c%d: {source: s, medium: m}\n", i)
	}
	return b.String()
}

func TestAttributionClickIDLimit(t *testing.T) {
	c, err := loadAttribution(t, "attribution:\n  click_ids:\n"+manyClickIDs(MaxClickIDs-5), nil)
	if err != nil {
		t.Fatalf("%d click ids with the built-in ones: %v", MaxClickIDs, err)
	}
	if n := len(c.Attribution.ClickIDs); n != MaxClickIDs {
		t.Errorf("%d click ids", n)
	}
	// Taking a built-in one out makes room for another.
	if _, err := loadAttribution(t, "attribution:\n  click_ids:\n    fbclid: false\n"+manyClickIDs(MaxClickIDs-4), nil); err != nil {
		t.Error(err)
	}
}

// FuzzAttribution loads attribution sections of any text: each either
// loads into rules routing can rely on, or fails with positioned problems.
func FuzzAttribution(f *testing.F) {
	f.Add("attribution:\n  click_ids:\n    ttclid: {source: tiktok, medium: paid_social}\n    fbclid: false\n")
	f.Add("attribution: {search_engines: [google, kagi], referrals: {partner.example.com: {source: p, medium: m}}}\n")
	f.Add("attribution: {direct: {source: d, medium: n}, utm_first: false}\n")
	f.Add("attribution: {click_ids: {GCLID: {source: g, medium: c}, gclid: false}}\n")
	f.Fuzz(func(t *testing.T, section string) {
		c, err := LoadBytes("attr.yaml", []byte(attrBase+section), envOf(nil))
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T", err)
			}
			for _, p := range errs {
				if p.Line < 1 || p.Col < 1 {
					t.Fatalf("unpositioned problem %v", p)
				}
			}
			return
		}
		a := c.Attribution
		if a == nil {
			return
		}
		if len(a.ClickIDs) > MaxClickIDs {
			t.Fatalf("%d click ids", len(a.ClickIDs))
		}
		seen := map[string]bool{}
		for _, id := range a.ClickIDs {
			if !plainParamName(id.Param) || seen[strings.ToLower(id.Param)] || id.Source == "" || id.Medium == "" {
				t.Fatalf("click id %+v", id)
			}
			seen[strings.ToLower(id.Param)] = true
		}
		for _, r := range a.Referrals {
			if r.Host == "" || r.Host != strings.ToLower(r.Host) || strings.HasPrefix(r.Host, "www.") || r.Source == "" || r.Medium == "" {
				t.Fatalf("referral %+v", r)
			}
		}
		for _, e := range a.SearchEngines {
			if !validLabel(e) || e != strings.ToLower(e) {
				t.Fatalf("search engine %q", e)
			}
		}
		if a.Direct.Source == "" || a.Direct.Medium == "" {
			t.Fatalf("direct %+v", a.Direct)
		}
	})
}
