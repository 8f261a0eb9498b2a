// Package routing knows which marketing source each tracking number stands
// for, which agents answer which queue, and in what order they are offered
// each call.
package routing

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

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
	// Pool is the DNI pool of a pool number; Visit the web visit that
	// held the number when the call came, if one did.
	Pool  string
	Visit *Visit
}

// Table is an immutable view of one configuration's numbers, flows and
// queues. A reload builds a new Table; calls keep the one they started with.
type Table struct {
	numbers   map[string]Attribution
	queues    map[string]*config.Queue
	flows     map[string]*config.Flow
	pools     map[string]*config.Pool
	recording *config.Recording
	// attribution are the rules pool numbers' calls are attributed by.
	attribution *AttributionRules
	// agents are the ids of the configured agents and of every queue
	// member, sorted, so Agents lists someone a queue names even before
	// their first call.
	agents []string
	// names are the configured agents' names, by id.
	names map[string]string
}

// NewTable indexes cfg, which Load has already validated.
func NewTable(cfg *config.Config) *Table {
	t := &Table{
		numbers:   make(map[string]Attribution, len(cfg.Numbers)),
		queues:    cfg.Queues,
		flows:     cfg.Flows,
		pools:     cfg.Pools,
		recording: &cfg.Recording,
		// A reload's rules apply to the calls that come after it, visits
		// made before it included.
		attribution: NewAttributionRules(cfg.Attribution),
	}
	for e164, n := range cfg.Numbers {
		a := Attribution{
			Number: e164, Source: n.Source, Medium: n.Medium,
			Campaign: n.Campaign, Keyword: n.Keyword, Flow: cfg.Flows[n.Flow], Record: n.Record,
		}
		t.numbers[e164] = a
	}
	t.names = make(map[string]string, len(cfg.Agents))
	for id, a := range cfg.Agents {
		t.agents = append(t.agents, id)
		t.names[id] = a.Name
	}
	for _, q := range cfg.Queues {
		t.agents = append(t.agents, q.Agents...)
	}
	slices.Sort(t.agents)
	t.agents = slices.Compact(t.agents)
	return t
}

// PoolNames are the configured DNI pools' names, sorted.
func (t *Table) PoolNames() []string {
	names := make([]string, 0, len(t.pools))
	for name := range t.pools {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Pool is a configured DNI pool, nil for one the table does not know.
func (t *Table) Pool(name string) *config.Pool { return t.pools[name] }

// AttributionRules are the rules calls to pool numbers are attributed
// by.
func (t *Table) AttributionRules() *AttributionRules { return t.attribution }

// AgentName is an agent's name, "" for one the table does not know.
func (t *Table) AgentName(id string) string { return t.names[id] }

// Lookup finds the attribution of an E.164 number.
func (t *Table) Lookup(e164 string) (Attribution, bool) {
	a, ok := t.numbers[e164]
	return a, ok
}

// Router picks agents for queues. Agent state and counters outlive
// reloads, so they live here rather than in a Table.
//
// One mutex guards every agent and every queue's rotation: deciding that
// an agent is free and marking it ringing must be one step, and calls of
// different queues compete for the same agents. Nothing slow runs under
// it; in particular the presence hook is called outside it, as it may
// take locks of its own.
type Router struct {
	table atomic.Pointer[Table]
	clock Clock

	// present says whether an agent can be offered calls at all; nil
	// means every agent can.
	present atomic.Pointer[func(agent string) bool]

	// pools holds the DNI pools' numbers, if any are configured.
	pools atomic.Pointer[Pools]

	mu     sync.Mutex
	agents map[string]*agent
	turns  map[string]uint64 // calls ordered so far, by queue
}

// SetPools gives the router the pool manager whose numbers Attribute
// knows.
func (r *Router) SetPools(p *Pools) { r.pools.Store(p) }

// Attribute finds what a call to an E.164 number stands for: a tracking
// number's configured attribution, or for a pool number the visit that
// held it at `at` (by the visit's own utm parameters, click ids and
// referrer, under the attribution rules of the table in force), else the
// pool's defaults. The visit returned has the configured click ids it
// carries in ClickIDs.
func (r *Router) Attribute(e164 string, at time.Time) (Attribution, bool) {
	t := r.Table()
	if a, ok := t.Lookup(e164); ok {
		return a, true
	}
	p := r.pools.Load()
	if p == nil {
		return Attribution{}, false
	}
	name, _, ok := p.PoolOf(e164)
	pc := t.pools[name]
	if !ok || pc == nil {
		return Attribution{}, false
	}
	a := Attribution{
		Number: e164, Pool: name, Source: pc.Source, Medium: pc.Medium, Campaign: pc.Campaign,
		Flow: t.flows[pc.Flow],
	}
	if b, ok := p.Lookup(e164, at); ok {
		v := t.attribution.WithClickIDs(b.Visit)
		a.Source, a.Medium, a.Campaign, a.Keyword = v.AttributionBy(t.attribution)
		a.Visit = &v
	}
	return a, true
}

// NewRouter routes with t until the next Swap. A nil clock is the real
// one.
func NewRouter(t *Table, clock Clock) *Router {
	if clock == nil {
		clock = systemClock{}
	}
	r := &Router{clock: clock, agents: map[string]*agent{}, turns: map[string]uint64{}}
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

// SetPresence tells the router which agents are there to take calls: a
// softphone agent whose browser is closed, or who chose to be away, is
// not offered any.
func (r *Router) SetPresence(present func(agent string) bool) { r.present.Store(&present) }

func (r *Router) isPresent(agent string) bool {
	p := r.present.Load()
	return p == nil || (*p)(agent)
}
