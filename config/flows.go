package config

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Bounds of a menu. A longer timeout leaves a caller in silence, more
// retries keep one going round the same prompt; past these, a typo ("50s"
// for "5s") is more likely than intent.
const (
	maxMenuTimeout = time.Minute
	maxMenuRetries = 10
)

// course is where a step sends the call, as far as the checks on the shape
// of a flow need to know: which steps are reached, and whether the flow
// ever lets the call reach a queue or a hangup.
type course struct {
	// next is true when the call goes on to the following step.
	next bool
	// ends is true when the call may reach a queue or be hung up here.
	// A step whose problems were already reported counts as ending, so
	// that it does not also read as part of a loop.
	ends bool
	// flows are the flows the call may be sent on to, in file order.
	flows []string
	// stop says what ends the flow here ("menu", "queue step"), for the
	// message about the steps written after it; empty when not known.
	stop string
}

// flowCourse is how a flow ends: the course of its first step that does
// not go on to the next one.
type flowCourse struct {
	key *yaml.Node
	course
}

func (l *loader) flows(n *yaml.Node, c *Config) {
	courses := map[string]flowCourse{}
	l.entries(n, "flows", func(name string, k, v *yaml.Node) {
		f := &Flow{Name: name, Record: RecordOff}
		c.Flows[name] = f
		where := fmt.Sprintf("flow %q", name)
		stepsSeen := 0
		// A flow whose steps could not be read was reported; it must not
		// also be blamed for loops it may not have.
		end := course{ends: true}
		l.fields(v, where, []key{
			{name: "record", parse: func(_, v *yaml.Node) {
				if mode := l.record(v, where); mode != "" {
					f.Record = mode
				}
			}},
			{name: "steps", parse: func(_, v *yaml.Node) {
				items, ok := l.list(v, where+" steps")
				if !ok {
					stepsSeen = -1
					return
				}
				stepsSeen = len(items)
				end = l.steps(items, where, f, c)
			}},
		})
		if stepsSeen == 0 {
			l.problem(k, "%s has no steps: give at least one, like steps: [{queue: NAME}]", where)
		}
		courses[name] = flowCourse{key: k, course: end}
	})
	l.checks = append(l.checks, func() { l.loops(courses) })
}

// steps reads the steps of a flow and returns how the flow ends.
func (l *loader) steps(items []*yaml.Node, where string, f *Flow, c *Config) course {
	// Steps that all go on end the flow: the call is hung up after the
	// last prompt.
	end := course{ends: true}
	decided := false
	stopAt, stop := -1, ""
	for i, it := range items {
		sc := l.step(it, fmt.Sprintf("%s step %d", where, i+1), f, c)
		if !decided && !sc.next {
			end, decided = sc, true
		}
		if stopAt < 0 && sc.stop != "" {
			stopAt, stop = i, sc.stop
		}
	}
	if stopAt >= 0 && stopAt+1 < len(items) {
		why := "the menu before it always leads elsewhere"
		if stop == "queue step" {
			why = "the queue step before it ends the flow"
		}
		first, last := stopAt+2, len(items)
		if first == last {
			l.problem(items[stopAt+1], "%s step %d is never reached: %s", where, first, why)
		} else {
			why = strings.Replace(why, "before it", "before them", 1)
			l.problem(items[stopAt+1], "%s steps %d to %d are never reached: %s", where, first, last, why)
		}
	}
	return end
}

func (l *loader) step(n *yaml.Node, where string, f *Flow, c *Config) course {
	var step Step
	var menu course
	keys := []key{
		{name: "queue", parse: func(_, v *yaml.Node) {
			q, present, ok := l.str(v, where+" queue")
			if !ok {
				return
			}
			if !present || q == "" {
				l.problem(v, "%s: queue needs a queue name", where)
				return
			}
			step.Queue = q
			flow := f.Name
			l.checks = append(l.checks, func() {
				if _, ok := c.Queues[q]; !ok {
					l.problem(v, "flow %q names queue %q, which is not defined", flow, q)
				}
			})
		}},
		{name: "play", parse: func(_, v *yaml.Node) {
			step.Play = l.prompt(v, where+" play")
		}},
		{name: "menu", parse: func(k, v *yaml.Node) {
			step.Menu, menu = l.menu(k, v, where+" menu", c)
		}},
	}
	unknown := course{ends: true}
	ps, ok := l.pairs(n, where)
	if !ok {
		return unknown
	}
	if len(ps) == 0 {
		l.problem(n, "%s is empty: a step is one action, like {queue: NAME}", where)
		return unknown
	}
	if len(ps) > 1 {
		l.problem(ps[1].k, "%s has both %q and %q: a step is one action, write each as its own step", where, ps[0].k.Value, ps[1].k.Value)
	}
	for _, p := range ps {
		l.field(p, where, keys)
	}
	if step != (Step{}) {
		f.Steps = append(f.Steps, step)
	}
	if len(ps) > 1 {
		return unknown
	}
	switch ps[0].k.Value {
	case "play":
		return course{next: true}
	case "queue":
		return course{ends: true, stop: "queue step"}
	case "menu":
		return menu
	}
	return unknown
}

// menu reads a menu step. Its course ends the flow; the call may reach a
// queue or a hangup from it unless every choice, default included, leads
// to another flow.
func (l *loader) menu(k, v *yaml.Node, where string, c *Config) (*Menu, course) {
	m := &Menu{Timeout: DefaultMenuTimeout, Retries: DefaultMenuRetries}
	// uncertain: a choice could not be read, so where the menu leads is
	// not known; it was reported and counts as ending.
	uncertain := false
	var choices []Action
	var def *Action
	if isNull(resolve(v)) {
		l.problem(k, "%s needs a prompt and options, like menu: {prompt: prompts/sales-menu.wav, options: {\"1\": {queue: NAME}}}", where)
		return m, course{ends: true, stop: "menu"}
	}
	promptSeen, optionsSeen := false, false
	if !l.fields(v, where, []key{
		{name: "prompt", parse: func(_, v *yaml.Node) {
			promptSeen = true
			m.Prompt = l.prompt(v, where+" prompt")
		}},
		{name: "timeout", parse: func(_, v *yaml.Node) {
			d, ok := l.duration(v, where+" timeout")
			switch {
			case !ok:
			case d == 0:
				l.problem(v, "%s timeout must be more than 0", where)
			case d > maxMenuTimeout:
				l.problem(v, "%s timeout must be at most %ds: the caller waits in silence this long on each try", where, int(maxMenuTimeout/time.Second))
			default:
				m.Timeout = d
			}
		}},
		{name: "retries", parse: func(_, v *yaml.Node) {
			if isNull(resolve(v)) {
				return
			}
			n, ok := l.nonNegInt(v, where+" retries")
			switch {
			case !ok:
			case n > maxMenuRetries:
				l.problem(v, "%s retries must be at most %d, got %d", where, maxMenuRetries, n)
			default:
				m.Retries = n
			}
		}},
		{name: "options", parse: func(k, v *yaml.Node) {
			optionsSeen = true
			ps, ok := l.pairs(v, where+" options")
			if !ok {
				uncertain = true
				return
			}
			if len(ps) == 0 {
				at := v
				if isNull(resolve(v)) {
					at = k
				}
				l.problem(at, "%s options is empty: give at least one, like options: {\"1\": {queue: NAME}}", where)
				uncertain = true
				return
			}
			m.Options = make(map[byte]Action, len(ps))
			for _, p := range ps {
				digit := p.k.Value
				if !menuKey(digit) {
					l.problem(p.k, "%s option %q must be one key of the phone: 0-9, \"*\" or \"#\"", where, digit)
					uncertain = true
				}
				a, ok := l.action(p.k, p.v, fmt.Sprintf("%s option %q", where, digit), c)
				if !ok {
					uncertain = true
				}
				if ok && menuKey(digit) {
					m.Options[digit[0]] = a
					choices = append(choices, a)
				}
			}
		}},
		{name: "default", parse: func(k, v *yaml.Node) {
			if isNull(resolve(v)) {
				return
			}
			a, ok := l.action(k, v, where+" default", c)
			if !ok {
				uncertain = true
				return
			}
			def = &a
		}},
		{name: "invalid_prompt", parse: func(_, v *yaml.Node) {
			if isNull(resolve(v)) {
				return
			}
			m.InvalidPrompt = l.prompt(v, where+" invalid_prompt")
		}},
	}) {
		return m, course{ends: true, stop: "menu"}
	}
	if !promptSeen {
		l.problem(k, "%s has no prompt: give prompt: FILE.wav, what the caller hears before pressing a key", where)
	}
	if !optionsSeen {
		l.problem(k, "%s has no options: give at least one, like options: {\"1\": {queue: NAME}}", where)
		uncertain = true
	}
	m.Default = def
	// Without a default, a caller who presses nothing is hung up once the
	// retries are used up.
	sc := course{ends: uncertain || def == nil, stop: "menu"}
	if def != nil {
		choices = append(choices, *def)
	}
	for _, a := range choices {
		if a.Flow != "" {
			sc.flows = append(sc.flows, a.Flow)
		} else {
			sc.ends = true
		}
	}
	return m, sc
}

func menuKey(s string) bool {
	return len(s) == 1 && (s[0] >= '0' && s[0] <= '9' || s[0] == '*' || s[0] == '#')
}

// action reads where a menu choice leads. ok is false when a problem was
// reported, references to other sections aside: they are checked once
// every section is read.
func (l *loader) action(k, v *yaml.Node, where string, c *Config) (a Action, ok bool) {
	before := len(l.problems)
	ref := func(dst *string, what string, defined func(string) bool) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			name, present, ok := l.str(v, where+" "+what)
			if !ok {
				return
			}
			if !present || name == "" {
				l.problem(v, "%s: %s needs a %s name", where, what, what)
				return
			}
			*dst = name
			l.checks = append(l.checks, func() {
				if !defined(name) {
					l.problem(v, "%s names %s %q, which is not defined", where, what, name)
				}
			})
		}
	}
	keys := []key{
		{name: "queue", parse: ref(&a.Queue, "queue", func(q string) bool { _, ok := c.Queues[q]; return ok })},
		{name: "flow", parse: ref(&a.Flow, "flow", func(f string) bool { _, ok := c.Flows[f]; return ok })},
		{name: "hangup", parse: func(_, v *yaml.Node) {
			// Read as text, not by the YAML tag: ${VAR} may supply it.
			s, _, ok := l.str(v, where+" hangup")
			if !ok {
				return
			}
			switch strings.ToLower(strings.TrimSpace(s)) {
			case "true":
				a.Hangup = true
			case "false":
				l.problem(v, "%s: hangup: false leads nowhere: remove it and give queue or flow, or write hangup: true", where)
			default:
				l.problem(v, "%s hangup must be true, got %q", where, s)
			}
		}},
	}
	if r := resolve(v); r.Kind == yaml.ScalarNode && !isNull(r) {
		// "1": sales is the likely slip; the general "must be a map"
		// would not say which keys the map takes.
		l.problem(v, "%s must be {queue: NAME}, {flow: NAME} or {hangup: true}, got %s", where, describe(r))
		return a, false
	}
	ps, ok := l.pairs(v, where)
	if !ok {
		return a, false
	}
	if len(ps) == 0 {
		at := v
		if isNull(resolve(v)) {
			at = k
		}
		l.problem(at, "%s is empty: give one of queue: NAME, flow: NAME or hangup: true", where)
		return a, false
	}
	if len(ps) > 1 {
		l.problem(ps[1].k, "%s has both %q and %q: a choice leads to one place, give one of queue, flow or hangup", where, ps[0].k.Value, ps[1].k.Value)
	}
	for _, p := range ps {
		l.field(p, where, keys)
	}
	return a, len(l.problems) == before
}

// loops reports the flows a caller can never leave: each ends in a menu
// whose every choice, default included, leads to a flow that does the same.
// It runs once every flow is read, as flows lead to each other in any order.
func (l *loader) loops(courses map[string]flowCourse) {
	ends := map[string]bool{}
	for name, fc := range courses {
		ends[name] = fc.ends
	}
	for changed := true; changed; {
		changed = false
		for name, fc := range courses {
			if ends[name] {
				continue
			}
			for _, to := range fc.flows {
				// A flow that is not defined was reported as such; it
				// must not also make a loop.
				if _, defined := courses[to]; !defined || ends[to] {
					ends[name], changed = true, true
					break
				}
			}
		}
	}
	names := make([]string, 0, len(courses))
	for name := range courses {
		if !ends[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		// Every flow this one leads to loops too, so following the first
		// choice of each comes back round to a flow already on the path.
		path := []string{name}
		seen := map[string]bool{name: true}
		for cur := name; len(courses[cur].flows) > 0; {
			cur = courses[cur].flows[0]
			path = append(path, cur)
			if seen[cur] {
				break
			}
			seen[cur] = true
		}
		l.problem(courses[name].key, "flow %q never reaches a queue or a hangup: every choice of its menu, default included, goes round %s; lead one to a queue or to hangup: true",
			name, strings.Join(path, " → "))
	}
}
