package config

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads, expands and validates the configuration file at path. On
// failure the error is an Errors listing every problem found.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read config: %v", err)}}
	}
	return LoadBytes(path, data, os.LookupEnv)
}

// LoadBytes is Load on data already read from path; path names the file in
// problems and anchors relative paths. env looks up ${NAME} variables (nil
// means the process environment), so tests do not depend on the real one.
func LoadBytes(path string, data []byte, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	l := &loader{file: path, env: env, prompts: map[string]promptFile{}, recordUses: map[string]recordUse{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		l.syntaxError(err, data)
		return nil, l.problems
	}
	var root *yaml.Node
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = resolve(doc.Content[0])
	}
	c := l.config(root)
	if len(l.problems) > 0 {
		return nil, l.problems.sorted()
	}
	return c, nil
}

// loader collects problems while walking one file; it lives for one Load
// call only, so concurrent loads (a SIGHUP reload during a check) share
// nothing.
type loader struct {
	file     string
	env      func(string) (string, bool)
	problems Errors
	// checks run once every section is read: references between sections
	// (a number's flow, a flow's queue) can only be resolved then.
	checks []func()
	// prompts are the prompt files read so far, by absolute path or
	// builtin:NAME, so a file named by several steps is read and encoded
	// once and its steps share one Prompt.
	prompts map[string]promptFile
	// recordUses are the first record value of each mode, in file order:
	// a default consent prompt is loaded only for a mode in use, and its
	// problems are reported there.
	recordUses map[string]recordUse
}

func (l *loader) problem(n *yaml.Node, format string, args ...any) {
	p := Problem{File: l.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	if p.Line == 0 {
		p.Line, p.Col = 1, 1
	}
	l.problems = append(l.problems, p)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

func (l *loader) syntaxError(err error, data []byte) {
	p := Problem{File: l.file, Line: 1, Col: 1}
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		if parserProblem(msg) {
			p.Line++
		}
		// At the end of a file without a final newline, yaml.v3 puts the
		// end one line further down, a line the file does not have.
		p.Line = min(p.Line, lineCount(data))
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	p.Msg = "YAML syntax error: " + msg
	l.problems = append(l.problems, p)
}

// lineCount is how many lines yaml.v3 sees in data: it breaks lines at LF,
// CR, CRLF and the Unicode NEL, LS and PS.
func lineCount(data []byte) int {
	n := 1
	for i, c := range data {
		if c == '\n' || c == '\r' && (i+1 == len(data) || data[i+1] != '\n') {
			n++
		}
	}
	for _, br := range []string{"\u0085", "\u2028", "\u2029"} {
		n += bytes.Count(data, []byte(br))
	}
	return n
}

// parserProblem tells yaml.v3 parser errors from scanner errors: v3.0.1
// reports the line of parser errors 0-based and of scanner errors 1-based.
// The column is not exposed at all, so syntax errors point at column 1.
func parserProblem(msg string) bool {
	switch msg {
	case "did not find expected <stream-start>",
		"did not find expected <document start>",
		"did not find expected node content",
		"did not find expected '-' indicator",
		"did not find expected key",
		"did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
		"found undefined tag handle",
		"found duplicate %YAML directive",
		"found duplicate %TAG directive",
		"found incompatible YAML document":
		return true
	}
	return false
}

// resolve follows aliases so *anchor references read like the anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// describe names what a node is, for "must be X, got Y" messages.
func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a map"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Tag == "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// in places where a key sits, for "unknown key ... in X" messages.
func in(where string) string {
	if where == "" {
		return "at the top level"
	}
	return "in " + where
}

type pair struct{ k, v *yaml.Node }

// pairs returns the entries of the mapping n, reporting duplicate and
// non-scalar keys. A null node (an empty section) has no entries; anything
// else that is not a mapping is a problem, and ok is false.
func (l *loader) pairs(n *yaml.Node, where string) (ps []pair, ok bool) {
	n = resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		what := where
		if what == "" {
			what = "the file"
		}
		l.problem(n, "%s must be a map (key: value), got %s", what, describe(n))
		return nil, false
	}
	seen := map[string]*yaml.Node{}
	var merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			l.problem(k, "keys must be plain names, got %s %s", describe(k), in(where))
			continue
		}
		if k.Tag == "!!merge" {
			merged = append(merged, l.mergePairs(v, where)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			l.problem(k, "duplicate key %q %s (first on line %d)", k.Value, in(where), first.Line)
			continue
		}
		seen[k.Value] = k
		ps = append(ps, pair{k, v})
	}
	// Explicit keys override the ones merged in with <<, as YAML specifies.
	for _, p := range merged {
		if _, dup := seen[p.k.Value]; !dup {
			seen[p.k.Value] = p.k
			ps = append(ps, p)
		}
	}
	return ps, true
}

func (l *loader) mergePairs(v *yaml.Node, where string) []pair {
	var out []pair
	switch v.Kind {
	case yaml.MappingNode:
		ps, _ := l.pairs(v, where)
		out = ps
	case yaml.SequenceNode:
		for _, m := range v.Content {
			ps, _ := l.pairs(m, where)
			out = append(out, ps...)
		}
	default:
		l.problem(v, "<< must merge a map %s, got %s", in(where), describe(v))
	}
	return out
}

// key is one key a mapping may hold. A key with a nil parse is part of the
// reference configuration but not implemented by this version: it is
// reported as "not supported yet" rather than unknown, so operators know
// their file is right and the binary is behind. Supporting it later is
// giving it a parse function.
type key struct {
	name  string
	parse func(k, v *yaml.Node)
	hint  string // appended to the "not supported yet" message
}

// fields walks the mapping n, dispatching each entry to its key.
func (l *loader) fields(n *yaml.Node, where string, keys []key) bool {
	ps, ok := l.pairs(n, where)
	for _, p := range ps {
		l.field(p, where, keys)
	}
	return ok
}

func (l *loader) field(p pair, where string, keys []key) {
	for _, k := range keys {
		if k.name != p.k.Value {
			continue
		}
		if k.parse != nil {
			k.parse(p.k, p.v)
			return
		}
		msg := fmt.Sprintf("key %q is not supported yet", k.name)
		if where == "" {
			msg = fmt.Sprintf("section %q is not supported yet", k.name)
		} else {
			msg = where + ": " + msg
		}
		if k.hint != "" {
			msg += " " + k.hint
		}
		l.problem(p.k, "%s", msg)
		return
	}
	var known []string
	for _, k := range keys {
		if k.parse != nil {
			known = append(known, k.name)
		}
	}
	l.problem(p.k, "unknown key %q %s (known: %s)", p.k.Value, in(where), strings.Join(known, ", "))
}

var envRef = regexp.MustCompile(`\$\{([^}]*)\}`)
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces ${NAME} in a scalar by the environment. Secrets are meant
// to come from the environment, so an unset variable is an error rather than
// silently becoming an empty password.
func (l *loader) expand(n *yaml.Node) (string, bool) {
	ok := true
	out := envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		name := ref[2 : len(ref)-1]
		if !envName.MatchString(name) {
			l.problem(n, "%s is not a valid variable reference (NAME is letters, digits and _, not starting with a digit)", ref)
			ok = false
			return ref
		}
		v, set := l.env(name)
		if !set {
			l.problem(n, "%s is not set", ref)
			ok = false
		}
		return v
	})
	return out, ok
}

// str reads a scalar as a string after ${VAR} expansion. present is false
// for a null value (the key written without a value), which callers treat
// as absent; ok is false when a problem was reported.
func (l *loader) str(v *yaml.Node, label string) (s string, present, ok bool) {
	v = resolve(v)
	if isNull(v) {
		return "", false, true
	}
	if v.Kind != yaml.ScalarNode {
		l.problem(v, "%s must be a single value, got %s", label, describe(v))
		return "", true, false
	}
	s, ok = l.expand(v)
	return s, true, ok
}

// nonNegInt reads a whole number ≥ 0; ${VAR} may supply it, so the text is
// parsed rather than trusting the YAML tag.
func (l *loader) nonNegInt(v *yaml.Node, label string) (int, bool) {
	s, present, ok := l.str(v, label)
	if !present || !ok {
		return 0, ok
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		l.problem(v, "%s must be a whole number of 0 or more, got %q", label, s)
		return 0, false
	}
	return n, true
}

// list returns the items of a sequence, or reports a problem.
func (l *loader) list(v *yaml.Node, label string) ([]*yaml.Node, bool) {
	v = resolve(v)
	if isNull(v) {
		return nil, true
	}
	if v.Kind != yaml.SequenceNode {
		l.problem(v, "%s must be a list, got %s", label, describe(v))
		return nil, false
	}
	items := make([]*yaml.Node, len(v.Content))
	for i, it := range v.Content {
		items[i] = resolve(it)
	}
	return items, true
}
