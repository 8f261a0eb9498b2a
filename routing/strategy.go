package routing

import (
	"cmp"
	"iter"
	"slices"
	"time"

	"github.com/callsign/callsign/config"
)

// Strategies of a queue, as config.Queue.Strategy names them. Any other,
// the empty one included, is round-robin.
const (
	roundRobin  = "round-robin"
	longestIdle = "longest-idle"
	fewestCalls = "fewest-calls"
	ringAll     = "ring-all"
)

// DefaultPriority is the priority of an agent its queue gives none.
const DefaultPriority = 1

// Order yields, for one call of q, the groups of agents to ring at the
// same time, in the order the call tries them.
//
// Agents are tried by priority tier, the lowest number first, so a tier
// is only reached once every agent of the tiers before it was tried;
// Acquire turns away those that cannot take the call. Within a tier the
// queue's strategy decides:
//
//   - round-robin: one agent per group, each call of the queue starting
//     one agent further than the one before;
//   - longest-idle: one agent per group, agents that had no call since
//     the edge started first (taking turns), then the one that became
//     free longest ago;
//   - fewest-calls: one agent per group, fewest calls answered today
//     first, then longest idle, then the queue's order;
//   - ring-all: the whole tier as one group.
//
// A tier is arranged when the call reaches it, on the agents' state then,
// as ringing the tiers before may have taken minutes. The groups are the
// call's own; they share nothing with q.
func (r *Router) Order(q *config.Queue) iter.Seq[[]string] {
	tiers := tiers(q)
	if len(tiers) == 0 {
		return func(func([]string) bool) {}
	}
	r.mu.Lock()
	turn := r.turns[q.Name]
	r.turns[q.Name] = turn + 1
	r.mu.Unlock()
	strategy := q.Strategy
	return func(yield func([]string) bool) {
		for _, tier := range tiers {
			if strategy == ringAll {
				if !yield(tier) {
					return
				}
				continue
			}
			order := r.arrange(strategy, tier, turn)
			for i := range order {
				if !yield(order[i : i+1 : i+1]) {
					return
				}
			}
		}
	}
}

// tiers groups q's agents by priority, lowest first, each tier in the
// queue's order.
func tiers(q *config.Queue) [][]string {
	priority := func(agent string) int {
		if p, ok := q.Priority[agent]; ok {
			return p
		}
		return DefaultPriority
	}
	agents := slices.Clone(q.Agents)
	slices.SortStableFunc(agents, func(a, b string) int { return cmp.Compare(priority(a), priority(b)) })
	var out [][]string
	for i := 0; i < len(agents); {
		j := i + 1
		for j < len(agents) && priority(agents[j]) == priority(agents[i]) {
			j++
		}
		out = append(out, agents[i:j:j])
		i = j
	}
	return out
}

// arrange orders one tier for the turn-th call of its queue.
func (r *Router) arrange(strategy string, tier []string, turn uint64) []string {
	if strategy != longestIdle && strategy != fewestCalls {
		return rotate(tier, turn)
	}
	type candidate struct {
		id       string
		answered int
		freeAt   time.Time
	}
	now := r.clock.Now()
	today := dayOf(now)
	cands := make([]candidate, len(tier))
	r.mu.Lock()
	for i, id := range tier {
		cands[i].id = id
		if a := r.agents[id]; a != nil {
			if a.counted == today {
				cands[i].answered = a.answered
			}
			cands[i].freeAt = a.freeAt
		}
	}
	r.mu.Unlock()

	if strategy == longestIdle {
		// Without taking turns, a fresh edge would ring the first agent
		// of the list first for every call until someone answered.
		var never []string
		for _, c := range cands {
			if c.freeAt.IsZero() {
				never = append(never, c.id)
			}
		}
		order := rotate(never, turn)
		slices.SortStableFunc(cands, func(x, y candidate) int { return x.freeAt.Compare(y.freeAt) })
		for _, c := range cands {
			if !c.freeAt.IsZero() {
				order = append(order, c.id)
			}
		}
		return order
	}
	slices.SortStableFunc(cands, func(x, y candidate) int {
		if c := cmp.Compare(x.answered, y.answered); c != 0 {
			return c
		}
		return longerIdle(x.freeAt, y.freeAt)
	})
	order := make([]string, len(cands))
	for i, c := range cands {
		order[i] = c.id
	}
	return order
}

// rotate is a copy of agents starting turn places further.
func rotate(agents []string, turn uint64) []string {
	if len(agents) == 0 {
		return nil
	}
	start := int(turn % uint64(len(agents)))
	return append(slices.Clone(agents[start:]), agents[:start]...)
}

// longerIdle orders agents by the time they became free, those that never
// had a call first.
func longerIdle(x, y time.Time) int {
	switch {
	case x.IsZero() && y.IsZero():
		return 0
	case x.IsZero():
		return -1
	case y.IsZero():
		return 1
	}
	return x.Compare(y)
}
