package config

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// maxAskTimeout bounds the wait for the consent key, as maxMenuTimeout
// bounds a menu's: past it, a typo ("50s" for "5s") is more likely than
// intent, and the caller waits in silence.
const maxAskTimeout = time.Minute

// recordUse is a record value that asks for a mode, and what holds it.
type recordUse struct {
	v     *yaml.Node
	where string
}

// consentKeys says which consent prompts the file gives, so a default is
// not loaded in place of one that was given and failed.
type consentKeys struct{ announce, ask bool }

// record reads the record mode of a flow or number (where); "" when it is
// not given or a problem was reported.
func (l *loader) record(v *yaml.Node, where string) string {
	s, present, ok := l.str(v, where+" record")
	if !present || !ok {
		return ""
	}
	switch s {
	case RecordOff, RecordAnnounce, RecordAsk:
	default:
		l.problem(v, "%s record must be %s, %s or %s, got %q", where, RecordOff, RecordAnnounce, RecordAsk, s)
		return ""
	}
	if _, seen := l.recordUses[s]; !seen {
		l.recordUses[s] = recordUse{v: v, where: where}
	}
	return s
}

func (l *loader) recording(n *yaml.Node, r *Recording) consentKeys {
	var given consentKeys
	l.fields(n, "recording", []key{
		{name: "retention", parse: func(_, v *yaml.Node) {
			if d, ok := l.duration(v, "recording retention"); ok {
				r.Retention = d
			}
		}},
		{name: "consent", parse: func(_, v *yaml.Node) { given = l.consent(v, r) }},
	})
	return given
}

func (l *loader) consent(n *yaml.Node, r *Recording) consentKeys {
	const where = "recording consent"
	var given consentKeys
	prompt := func(dst **Prompt, set *bool, name string) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			// Left empty, the key reads as absent: the default plays.
			if isNull(resolve(v)) {
				return
			}
			*set = true
			*dst = l.prompt(v, where+" "+name)
		}
	}
	l.fields(n, where, []key{
		{name: "announce_prompt", parse: prompt(&r.AnnouncePrompt, &given.announce, "announce_prompt")},
		{name: "ask_prompt", parse: prompt(&r.AskPrompt, &given.ask, "ask_prompt")},
		{name: "accept_digit", parse: func(k, v *yaml.Node) {
			s, present, ok := l.str(v, where+" accept_digit")
			switch {
			case !ok:
			case !present:
				// An unquoted # starts a comment and leaves the key empty;
				// the default would silently take its place.
				l.problem(k, `%s accept_digit needs a key: 0-9, "*" or "#" (quote "*" and "#")`, where)
			case !menuKey(s):
				l.problem(v, `%s accept_digit must be one key of the phone: 0-9, "*" or "#", got %q`, where, s)
			default:
				r.AcceptDigit = s[0]
			}
		}},
		{name: "timeout", parse: func(_, v *yaml.Node) {
			d, ok := l.duration(v, where+" timeout")
			switch {
			case !ok:
			case d == 0:
				l.problem(v, "%s timeout must be more than 0", where)
			case d > maxAskTimeout:
				l.problem(v, "%s timeout must be at most %ds: the caller waits in silence this long for a key", where, int(maxAskTimeout/time.Second))
			default:
				r.AskTimeout = d
			}
		}},
	})
	return given
}

// defaultConsent loads the default prompt of each consent mode in use whose
// prompt the file does not give, so record: ask works without a recording
// section. Modes nobody uses load nothing.
func (l *loader) defaultConsent(r *Recording, given consentKeys) {
	for _, d := range []struct {
		mode, key, path string
		given           bool
		dst             **Prompt
	}{
		{RecordAnnounce, "announce_prompt", DefaultAnnouncePrompt, given.announce, &r.AnnouncePrompt},
		{RecordAsk, "ask_prompt", DefaultAskPrompt, given.ask, &r.AskPrompt},
	} {
		use, used := l.recordUses[d.mode]
		if !used || d.given {
			continue
		}
		label := fmt.Sprintf("%s record %s plays the default recording consent %s", use.where, d.mode, d.key)
		*d.dst = l.promptAt(use.v, d.path, label)
	}
}
