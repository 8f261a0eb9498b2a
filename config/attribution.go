package config

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxClickIDs bounds the click ids the edge reads, built-in ones
// included: each can become a key of a call's visitor record, and a list
// longer than this is more likely a paste gone wrong than networks in use.
const MaxClickIDs = 32

// maxClickIDName bounds a click id's name, which is also a key of the
// `visitor` object of call events.
const maxClickIDName = 64

// Attribution is the `attribution` section: how the web visit that held a
// DNI pool number gives a call to it its source and medium. Campaign and
// keyword are always the visit's utm_campaign and utm_term. The first of
// these decides the source and medium:
//
//  1. utm_source, with utm_medium; lacking utm_medium, the medium of the
//     visit's click id if it has one. When UTMFirst is false a visit with a
//     click id skips this step.
//  2. the visit's click id: the first of ClickIDs the visit carries gives
//     source and medium. utm_medium, when given, replaces the medium unless
//     UTMFirst is false (then the network's tagging is trusted whole).
//  3. the referrer, with utm_medium replacing the medium when given: none,
//     or the site itself (the landing page's host), is Direct; a host of
//     Referrals (the longest that matches) is its source and medium; a
//     SearchEngines name among the host's labels (not the last, and not a
//     mail. host) is that name/organic; any other host is HOST/referral.
//     Hosts are compared in lower case without a leading "www.".
type Attribution struct {
	// ClickIDs are in precedence order: the built-in ones first, in the
	// order gclid, gbraid, wbraid, msclkid, fbclid (an override keeps its
	// place, a removed one is left out), then those the file adds, in the
	// order written. The order only matters for a landing URL that
	// carries two click ids, which a redirect chain can produce.
	ClickIDs []ClickID
	// SearchEngines are host labels, lower case, like "google" for
	// www.google.co.uk; empty counts no referrer as organic.
	SearchEngines []string
	// Referrals are in the order written; each matches its host and the
	// host's subdomains.
	Referrals []Referral
	// Direct is the source and medium of a visit nobody referred.
	Direct Channel
	// UTMFirst is whether utm_source wins over a click id.
	UTMFirst bool
}

// Channel is a source and a medium, both set.
type Channel struct {
	Source, Medium string
}

// ClickID is a URL parameter an ad network tags its clicks with, and the
// channel a visit carrying it came from.
type ClickID struct {
	// Param is the parameter's name, case-sensitive as URLs are.
	Param string
	Channel
}

// Referral is a referrer host with a channel of its own, such as a
// partner site.
type Referral struct {
	// Host is lower case, without a leading "www.".
	Host string
	Channel
}

// DefaultAttribution is what applies without an attribution section: the
// rules analytics tools apply, so call reports match web reports. Each
// call returns a fresh value the caller may change.
func DefaultAttribution() Attribution {
	google := Channel{Source: "google", Medium: "cpc"}
	return Attribution{
		ClickIDs: []ClickID{
			{Param: "gclid", Channel: google},
			{Param: "gbraid", Channel: google},
			{Param: "wbraid", Channel: google},
			{Param: "msclkid", Channel: Channel{Source: "bing", Medium: "cpc"}},
			// Meta adds fbclid to organic shares too, but untagged ad
			// clicks are what operators look for in it; tagged ones
			// have utm_source, which wins.
			{Param: "fbclid", Channel: Channel{Source: "facebook", Medium: "paid_social"}},
		},
		SearchEngines: []string{"google", "bing", "duckduckgo", "yahoo", "baidu", "yandex", "ecosia"},
		Direct:        Channel{Source: "direct", Medium: "none"},
		UTMFirst:      true,
	}
}

// attribution reads the section over the defaults: click_ids add to and
// override them, search_engines replaces their list.
func (l *loader) attribution(n *yaml.Node) *Attribution {
	a := DefaultAttribution()
	l.fields(n, "attribution", []key{
		{name: "click_ids", parse: func(k, v *yaml.Node) { a.ClickIDs = l.clickIDs(k, v, a.ClickIDs) }},
		{name: "search_engines", parse: func(_, v *yaml.Node) {
			if engines, ok := l.searchEngines(v); ok {
				a.SearchEngines = engines
			}
		}},
		{name: "referrals", parse: func(_, v *yaml.Node) { a.Referrals = l.referrals(v) }},
		{name: "direct", parse: func(k, v *yaml.Node) {
			if isNull(resolve(v)) {
				return
			}
			if ch, ok := l.channel(k, v, "attribution direct", "{source: direct, medium: none}"); ok {
				a.Direct = ch
			}
		}},
		{name: "utm_first", parse: func(_, v *yaml.Node) {
			if b, set := l.boolean(v, "attribution utm_first"); set {
				a.UTMFirst = b
			}
		}},
	})
	return &a
}

// clickIDs reads click_ids over base. `NAME: false` takes a built-in one
// out, for operators who would rather see such visits by their referrer.
func (l *loader) clickIDs(section, v *yaml.Node, base []ClickID) []ClickID {
	const where = "attribution click_ids"
	out := slices.Clone(base)
	builtin := map[string]bool{}
	// folded holds each name by its lower case, so a name differing from
	// another only in case, most likely a typo, is reported.
	folded := map[string]*yaml.Node{}
	for _, c := range base {
		builtin[c.Param] = true
		folded[strings.ToLower(c.Param)] = &yaml.Node{Value: c.Param}
	}
	l.entries(v, where, func(name string, k, v *yaml.Node) {
		if msg := clickIDNameProblem(name); msg != "" {
			l.problem(k, "click id %q %s", name, msg)
			return
		}
		if prev := folded[strings.ToLower(name)]; prev != nil && prev.Value != name {
			if prev.Line == 0 {
				l.problem(k, "click id %q differs from the built-in %q only in case: URL parameters are case-sensitive, so it would not match %s", name, prev.Value, prev.Value)
			} else {
				l.problem(k, "click id %q differs from %q (line %d) only in case: URL parameters are case-sensitive, keep the one the ads use", name, prev.Value, prev.Line)
			}
			return
		}
		folded[strings.ToLower(name)] = k
		i := slices.IndexFunc(out, func(c ClickID) bool { return c.Param == name })
		if isFalse(v) {
			if !builtin[name] || i < 0 {
				l.problem(v, "click id %q: false takes out a built-in click id (%s), and %q is not one", name, clickIDList(base), name)
				return
			}
			out = slices.Delete(out, i, i+1)
			return
		}
		ch, ok := l.channel(k, v, fmt.Sprintf("click id %q", name), "{source: tiktok, medium: paid_social}")
		if !ok {
			return
		}
		if i >= 0 {
			out[i].Channel = ch
		} else {
			out = append(out, ClickID{Param: name, Channel: ch})
		}
	})
	if len(out) > MaxClickIDs {
		l.problem(section, "%s makes %d click ids, more than %d: each can become a key of a call's visitor record", where, len(out), MaxClickIDs)
	}
	return out
}

func clickIDList(ids []ClickID) string {
	names := make([]string, len(ids))
	for i, c := range ids {
		names[i] = c.Param
	}
	return strings.Join(names, ", ")
}

// clickIDNameProblem says why name cannot be a click id, "" when it can.
// Names are keys of the call's `visitor` object next to its other fields,
// so those are refused as well as the utm parameters.
func clickIDNameProblem(name string) string {
	switch lower := strings.ToLower(name); {
	case !plainParamName(name):
		return fmt.Sprintf("is not a plain URL parameter name: letters, digits, '_' and '-', starting with a letter, at most %d", maxClickIDName)
	case strings.HasPrefix(lower, "utm_"):
		return "is a utm parameter, which is read anyway: utm_source and utm_medium name the source themselves"
	case lower == "referrer" || lower == "landing_page" || lower == "first_seen":
		return "is a field of the call's visitor record, not a URL parameter"
	}
	return ""
}

func plainParamName(s string) bool {
	if s == "" || len(s) > maxClickIDName || !isLetter(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isFalse is a YAML false written as such; a quoted "false" is a string.
func isFalse(v *yaml.Node) bool {
	v = resolve(v)
	return v != nil && v.Kind == yaml.ScalarNode && v.Tag == "!!bool" && strings.EqualFold(v.Value, "false")
}

// searchEngines reads the list that replaces the default one; ok is false
// when it is not given or is no list, so the default stays.
func (l *loader) searchEngines(v *yaml.Node) ([]string, bool) {
	const where = "attribution search_engines"
	if isNull(resolve(v)) {
		return nil, false
	}
	items, ok := l.list(v, where)
	if !ok {
		return nil, false
	}
	// Not nil: an empty list is a choice, no referrer is organic.
	out := []string{}
	seen := map[string]*yaml.Node{}
	for _, it := range items {
		txt, present, ok := l.str(it, where)
		if !ok {
			continue
		}
		name := strings.ToLower(strings.TrimSpace(txt))
		switch {
		case !present || name == "":
			l.problem(it, "%s has an empty entry", where)
			continue
		case strings.Contains(name, "."):
			l.problem(it, "%s: %q is a host, not an engine's name: give the label its hosts share, like google, which matches www.google.co.uk and google.de", where, txt)
			continue
		case !validLabel(name):
			l.problem(it, "%s: %q is not a host label (letters, digits and '-'), like google or duckduckgo", where, txt)
			continue
		}
		if first, dup := seen[name]; dup {
			l.problem(it, "%s lists %q twice (first on line %d)", where, name, first.Line)
			continue
		}
		seen[name] = it
		out = append(out, name)
	}
	return out, true
}

// validLabel is one label of a host name.
func validLabel(s string) bool { return !strings.ContainsAny(s, ".:") && validHost(s) }

func (l *loader) referrals(v *yaml.Node) []Referral {
	const where = "attribution referrals"
	var out []Referral
	seen := map[string]*yaml.Node{}
	l.entries(v, where, func(raw string, k, v *yaml.Node) {
		host, msg := referralHost(raw)
		if msg != "" {
			l.problem(k, "referral %q %s", raw, msg)
			return
		}
		if first, dup := seen[host]; dup {
			l.problem(k, "referral %q is the same host as %q (line %d): referrers are matched in lower case without www.", raw, first.Value, first.Line)
			return
		}
		seen[host] = k
		ch, ok := l.channel(k, v, fmt.Sprintf("referral %q", raw), "{source: partner, medium: affiliate}")
		if ok {
			out = append(out, Referral{Host: host, Channel: ch})
		}
	})
	return out
}

// referralHost is the host a referrals key matches, lower case and
// without "www.", which referrers are compared without.
func referralHost(raw string) (host, problem string) {
	h := strings.ToLower(strings.TrimSpace(raw))
	if strings.ContainsAny(h, "/?#@:") {
		return "", "is not a host: write the host alone, like partner.example.com (its subdomains match too)"
	}
	h = strings.TrimPrefix(h, "www.")
	if !validHost(h) {
		return "", "is not a host name, like partner.example.com"
	}
	return h, ""
}

// channel reads {source, medium}, both required: a call without a medium
// falls out of every channel report.
func (l *loader) channel(k, v *yaml.Node, where, example string) (Channel, bool) {
	var ch Channel
	var sourceNode, mediumNode *yaml.Node
	// valid is false once a value failed to expand: it is reported
	// already and must not also read as missing.
	valid := true
	str := func(dst *string, node **yaml.Node, name string) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			s, present, ok := l.str(v, where+" "+name)
			valid = valid && ok
			if present {
				*dst, *node = strings.TrimSpace(s), v
			}
		}
	}
	if !l.fields(v, where, []key{
		{name: "source", parse: str(&ch.Source, &sourceNode, "source")},
		{name: "medium", parse: str(&ch.Medium, &mediumNode, "medium")},
	}) || !valid {
		return ch, false
	}
	if sourceNode == nil && mediumNode == nil {
		l.problem(k, "%s needs a source and a medium, like %s", where, example)
		return ch, false
	}
	ok := true
	for _, f := range []struct {
		name, value string
		node        *yaml.Node
	}{{"source", ch.Source, sourceNode}, {"medium", ch.Medium, mediumNode}} {
		switch {
		case f.node == nil:
			l.problem(k, "%s needs a %s, like %s", where, f.name, example)
			ok = false
		case f.value == "":
			l.problem(f.node, "%s %s must not be empty", where, f.name)
			ok = false
		}
	}
	return ch, ok
}

// boolean reads true or false; set is false when the value is left out or
// a problem was reported.
func (l *loader) boolean(v *yaml.Node, label string) (b, set bool) {
	s, present, ok := l.str(v, label)
	if !present || !ok {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	l.problem(v, "%s must be true or false, got %q", label, s)
	return false, false
}
