package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	// DefaultPoolHold keeps a number with its visitor for a typical
	// browsing session: long enough to read a page and pick up the
	// phone, short enough that a small pool serves a busy site.
	DefaultPoolHold = 30 * time.Minute
	// MaxPoolRange bounds one "FIRST..LAST" range. A slipped digit in
	// LAST would otherwise claim thousands of numbers the operator does
	// not own, and any call to them would be routed.
	MaxPoolRange = 10000
)

// poolEntry is one entry of a pool's numbers list and what it expands to,
// kept so later checks can point at the entry that holds a number.
type poolEntry struct {
	node    *yaml.Node
	numbers []string
}

// poolOwner is where a pool number was first listed.
type poolOwner struct {
	pool string
	node *yaml.Node
}

func (l *loader) pools(n *yaml.Node, c *Config) {
	// owners and overflows are complete once the section is read, which
	// is before the checks that use them run.
	owners := map[string]poolOwner{}
	overflows := map[string]poolOwner{}
	l.entries(n, "pools", func(name string, k, v *yaml.Node) {
		p := &Pool{Name: name, Hold: DefaultPoolHold}
		c.Pools[name] = p
		where := fmt.Sprintf("pool %q", name)
		var numbersNode, replaceNode, overflowNode, flowNode *yaml.Node
		var entries []poolEntry
		// valid is false once a value failed to expand (an unset ${VAR}):
		// it is reported already and must not also read as missing.
		valid := true
		number := func(dst *string, node **yaml.Node, key string) func(_, v *yaml.Node) {
			return func(_, v *yaml.Node) {
				txt, present, ok := l.str(v, where+" "+key)
				valid = valid && ok
				if !present || !ok {
					return
				}
				*node = v
				e164, err := NormalizeNumber(txt)
				if err != nil {
					l.problem(v, "%s %s %q: %v", where, key, txt, err)
					return
				}
				*dst = e164
			}
		}
		str := func(dst *string, key string) func(_, v *yaml.Node) {
			return func(_, v *yaml.Node) {
				if s, _, ok := l.str(v, where+" "+key); ok {
					*dst = s
				}
			}
		}
		if !l.fields(v, where, []key{
			{name: "numbers", parse: func(_, v *yaml.Node) {
				numbersNode = v
				entries = l.poolNumbers(v, where)
			}},
			{name: "replace", parse: number(&p.Replace, &replaceNode, "replace")},
			{name: "overflow", parse: number(&p.Overflow, &overflowNode, "overflow")},
			{name: "hold", parse: func(_, v *yaml.Node) {
				d, ok := l.duration(v, where+" hold")
				if !ok {
					return
				}
				if d == 0 {
					l.problem(v, "%s hold must be more than 0: a number is held this long after the visitor's last heartbeat", where)
					return
				}
				p.Hold = d
			}},
			{name: "flow", parse: func(_, v *yaml.Node) {
				var ok bool
				flowNode = v
				p.Flow, _, ok = l.str(v, where+" flow")
				valid = valid && ok
			}},
			{name: "source", parse: str(&p.Source, "source")},
			{name: "medium", parse: str(&p.Medium, "medium")},
			{name: "campaign", parse: str(&p.Campaign, "campaign")},
		}) {
			return
		}
		p.Numbers = l.claimPoolNumbers(name, where, entries, owners)
		if valid {
			l.poolRequired(k, where, p, numbersNode, replaceNode, overflowNode, flowNode)
		}
		if o, shared := overflows[p.Overflow]; shared && p.Overflow != "" {
			l.problem(overflowNode, "%s overflow %s is also the overflow of pool %q (line %d): its calls could not be told apart", where, p.Overflow, o.pool, o.node.Line)
		} else if p.Overflow != "" {
			overflows[p.Overflow] = poolOwner{pool: name, node: overflowNode}
		}
		l.checks = append(l.checks, func() { l.poolConflicts(c, p, where, entries, owners, replaceNode, overflowNode, flowNode) })
	})
}

// poolRequired reports the keys a pool cannot do without.
func (l *loader) poolRequired(k *yaml.Node, where string, p *Pool, numbersNode, replaceNode, overflowNode, flowNode *yaml.Node) {
	switch {
	case numbersNode == nil:
		l.problem(k, "%s has no numbers: list them, like numbers: [\"+1 555 010 0100..+1 555 010 0119\"]", where)
	case isNull(resolve(numbersNode)) || resolve(numbersNode).Kind == yaml.SequenceNode && len(resolve(numbersNode).Content) == 0:
		l.problem(numbersNode, "%s numbers is empty: list the numbers shown to visitors", where)
	}
	if replaceNode == nil {
		l.problem(k, "%s has no replace: give the number the site shows by default, which dni.js swaps for a pool number", where)
	}
	if overflowNode == nil {
		l.problem(k, "%s has no overflow: give the number shown when every pool number is held", where)
	}
	if flowNode == nil || p.Flow == "" {
		at := k
		if flowNode != nil {
			at = flowNode
		}
		l.problem(at, "%s has no flow: say which flow its calls run", where)
	}
}

// poolNumbers reads a pool's numbers list, expanding ranges. Entries with
// problems are reported and left out.
func (l *loader) poolNumbers(v *yaml.Node, where string) []poolEntry {
	items, ok := l.list(v, where+" numbers")
	if !ok {
		return nil
	}
	var out []poolEntry
	for _, it := range items {
		txt, present, ok := l.str(it, where+" numbers")
		if !ok {
			continue
		}
		if !present {
			l.problem(it, "%s numbers has an empty entry", where)
			continue
		}
		nums, err := ExpandNumbers(txt)
		if err != nil {
			l.problem(it, "%s numbers %q: %v", where, txt, err)
			continue
		}
		out = append(out, poolEntry{node: it, numbers: nums})
	}
	return out
}

// claimPoolNumbers keeps the numbers of entries that are in no earlier
// entry or pool. A clash is reported once per entry, since one range can
// overlap by thousands of numbers.
func (l *loader) claimPoolNumbers(name, where string, entries []poolEntry, owners map[string]poolOwner) []string {
	var nums []string
	for _, e := range entries {
		var first string
		var firstOwner poolOwner
		clashes := 0
		for _, num := range e.numbers {
			if o, taken := owners[num]; taken {
				if clashes == 0 {
					first, firstOwner = num, o
				}
				clashes++
				continue
			}
			owners[num] = poolOwner{pool: name, node: e.node}
			nums = append(nums, num)
		}
		if clashes == 0 {
			continue
		}
		more := ""
		if clashes > 1 {
			more = fmt.Sprintf(" (and %d more)", clashes-1)
		}
		if firstOwner.pool == name {
			l.problem(e.node, "%s lists %s twice%s (first on line %d)", where, first, more, firstOwner.node.Line)
		} else {
			l.problem(e.node, "%s: %s%s is also in pool %q (line %d): pools must not overlap", where, first, more, firstOwner.pool, firstOwner.node.Line)
		}
	}
	return nums
}

// poolConflicts runs once every section is read: a pool's numbers, replace
// and overflow must not be claimed by static numbers or other pools, or a
// call to them could not be attributed.
func (l *loader) poolConflicts(c *Config, p *Pool, where string, entries []poolEntry, owners map[string]poolOwner, replaceNode, overflowNode, flowNode *yaml.Node) {
	for _, e := range entries {
		for _, num := range e.numbers {
			if _, static := c.Numbers[num]; static {
				l.problem(e.node, "%s: %s is also a tracking number under numbers: a number is static or in a pool, not both", where, num)
				break
			}
		}
	}
	if p.Overflow != "" {
		if o, taken := owners[p.Overflow]; taken && o.pool == p.Name {
			l.problem(overflowNode, "%s overflow %s is one of its own numbers: the overflow is shown when every pool number is held, so it must be another number", where, p.Overflow)
		} else if taken {
			l.problem(overflowNode, "%s overflow %s is a number of pool %q: the overflow is shown when every pool number is held, so it must be another number", where, p.Overflow, o.pool)
		} else if _, static := c.Numbers[p.Overflow]; static {
			l.problem(overflowNode, "%s overflow %s is also a tracking number under numbers: its calls would have two attributions", where, p.Overflow)
		}
	}
	if p.Replace != "" {
		if o, taken := owners[p.Replace]; taken {
			l.problem(replaceNode, "%s replace %s is a number of pool %q: the number shown by default cannot be one held by visitors", where, p.Replace, o.pool)
		}
	}
	if p.Flow != "" {
		if _, ok := c.Flows[p.Flow]; !ok {
			l.problem(flowNode, "%s names flow %q, which is not defined", where, p.Flow)
		}
	}
}

// ExpandNumbers reads one entry of a pool's numbers: a number, or a range
// "FIRST..LAST" of numbers of the same length, both included, returned in
// E.164 in ascending order.
func ExpandNumbers(s string) ([]string, error) {
	// Cut before normalizing: dots are separators inside a number.
	a, b, isRange := strings.Cut(s, "..")
	if !isRange {
		n, err := NormalizeNumber(s)
		if err != nil {
			return nil, err
		}
		return []string{n}, nil
	}
	first, err := NormalizeNumber(a)
	if err != nil {
		return nil, fmt.Errorf("range start %q: %w", strings.TrimSpace(a), err)
	}
	last, err := NormalizeNumber(b)
	if err != nil {
		return nil, fmt.Errorf("range end %q: %w", strings.TrimSpace(b), err)
	}
	if len(first) != len(last) {
		return nil, fmt.Errorf("range ends %s and %s differ in length: give both in full", first, last)
	}
	// At most 15 digits: they fit a uint64.
	lo, _ := strconv.ParseUint(first[1:], 10, 64)
	hi, _ := strconv.ParseUint(last[1:], 10, 64)
	switch {
	case lo > hi:
		return nil, fmt.Errorf("range start %s is after its end %s", first, last)
	case hi-lo >= MaxPoolRange:
		return nil, fmt.Errorf("range of %d numbers is longer than %d: split it, or check its end", hi-lo+1, MaxPoolRange)
	}
	out := make([]string, 0, hi-lo+1)
	for n := lo; n <= hi; n++ {
		// Same length at both ends, so every number between has it too.
		out = append(out, "+"+strconv.FormatUint(n, 10))
	}
	return out, nil
}

// poolNumberCount is how many numbers the pools hold in all.
func (c *Config) poolNumberCount() int {
	n := 0
	for _, p := range c.Pools {
		n += len(p.Numbers)
	}
	return n
}
