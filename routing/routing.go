// Package routing knows which marketing source each tracking number stands
// for, and which agents answer which queue.
package routing

import (
	"iter"
	"sync"
	"sync/atomic"

	"github.com/callsign/callsign/config"
)

// Attribution is what a tracking number stands for.
type Attribution struct {
	Number   string
	Source   string
	Medium   string
	Campaign string
	Keyword  string
	Flow     *config.Flow
	// Record is the number's own record mode, which overrides its
	// flows'; empty when it has none.
	Record string
}

// Table is an immutable view of one configuration's numbers, flows and
// queues. A reload builds a new Table; calls keep the one they started with.
type Table struct {
	numbers   map[string]Attribution
	queues    map[string]*config.Queue
	flows     map[string]*config.Flow
	recording *config.Recording
}

// NewTable indexes cfg, which Load has already validated.
func NewTable(cfg *config.Config) *Table {
	t := &Table{
		numbers:   make(map[string]Attribution, len(cfg.Numbers)),
		queues:    cfg.Queues,
		flows:     cfg.Flows,
		recording: &cfg.Recording,
	}
	for e164, n := range cfg.Numbers {
		a := Attribution{
			Number: e164, Source: n.Source, Medium: n.Medium,
			Campaign: n.Campaign, Keyword: n.Keyword, Flow: cfg.Flows[n.Flow], Record: n.Record,
		}
		t.numbers[e164] = a
	}
	return t
}

// Lookup finds the attribution of an E.164 number.
func (t *Table) Lookup(e164 string) (Attribution, bool) {
	a, ok := t.numbers[e164]
	return a, ok
}

// Router picks agents for queues. Agent state outlives reloads, so it
// lives here rather than in a Table.
type Router struct {
	table atomic.Pointer[Table]

	// present says whether an agent can be offered calls at all; nil
	// means every agent can.
	present atomic.Pointer[func(agent string) bool]

	mu     sync.Mutex
	busy   map[string]bool
	cursor map[string]int // next round-robin start, by queue
}

// NewRouter routes with t until the next Swap.
func NewRouter(t *Table) *Router {
	r := &Router{busy: map[string]bool{}, cursor: map[string]int{}}
	r.table.Store(t)
	return r
}

// Table is the table in force.
func (r *Router) Table() *Table { return r.table.Load() }

// Swap puts a new table in force; calls in progress are unaffected.
func (r *Router) Swap(t *Table) { r.table.Store(t) }

// Queue finds a queue of the table in force.
func (r *Router) Queue(name string) (*config.Queue, bool) {
	q, ok := r.table.Load().queues[name]
	return q, ok
}

// Recording is the recording settings in force: the consent prompts.
func (r *Router) Recording() *config.Recording { return r.table.Load().recording }

// Flow finds a flow of the table in force, for a menu that leads to one.
func (r *Router) Flow(name string) (*config.Flow, bool) {
	f, ok := r.table.Load().flows[name]
	return f, ok
}

// Order is the round-robin order of q for one call: each call starts one
// agent further than the previous call of the same queue. It copies
// nothing, as queues may be long and calls many.
func (r *Router) Order(q *config.Queue) iter.Seq[string] {
	agents := q.Agents
	n := len(agents)
	if n == 0 {
		return func(func(string) bool) {}
	}
	r.mu.Lock()
	start := r.cursor[q.Name] % n
	r.cursor[q.Name] = start + 1
	r.mu.Unlock()
	return func(yield func(string) bool) {
		for i := range n {
			if !yield(agents[(start+i)%n]) {
				return
			}
		}
	}
}

// SetPresence tells the router which agents are there to take calls: a
// softphone agent whose browser is closed, or who chose to be away, is
// not offered any.
func (r *Router) SetPresence(present func(agent string) bool) { r.present.Store(&present) }

// Acquire marks agent as offered a call; false if it already has one or
// is not present.
func (r *Router) Acquire(agent string) bool {
	if p := r.present.Load(); p != nil && !(*p)(agent) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy[agent] {
		return false
	}
	r.busy[agent] = true
	return true
}

// Release makes agent available again.
func (r *Router) Release(agent string) {
	r.mu.Lock()
	delete(r.busy, agent)
	r.mu.Unlock()
}

// Busy reports whether agent is offered or on a call.
func (r *Router) Busy(agent string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy[agent]
}
