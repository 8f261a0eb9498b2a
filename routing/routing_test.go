package routing

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
)

// fakeClock is a clock tests move by hand. With step set, every reading
// also moves it on by step, for tests whose calls run on their own
// goroutines and cannot be advanced between steps.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

// noon is a local time far from midnight and from daylight-saving
// changes, so only tests that mean to cross a day do.
var noon = time.Date(2025, time.June, 11, 12, 0, 0, 0, time.Local)

func newClock() *fakeClock { return &fakeClock{now: noon} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testConfig() *config.Config {
	flows := map[string]*config.Flow{
		"main":    {Name: "main", Steps: []config.Step{{Queue: "sales"}}},
		"support": {Name: "support", Steps: []config.Step{{Queue: "support"}}},
	}
	return &config.Config{
		Numbers: map[string]*config.Number{
			"+15550100001": {E164: "+15550100001", Source: "google", Medium: "cpc", Campaign: "spring", Keyword: "plumber", Flow: "main"},
			"+15550100002": {E164: "+15550100002", Source: "billboard", Flow: "support", Record: config.RecordAnnounce},
		},
		Flows: flows,
		Queues: map[string]*config.Queue{
			"sales":   {Name: "sales", Strategy: "round-robin", RingTimeout: 15 * time.Second, Agents: []string{"alice", "bob", "carol"}},
			"support": {Name: "support", Strategy: "round-robin", RingTimeout: 20 * time.Second, Agents: []string{"bob", "dave"}},
			"empty":   {Name: "empty", Strategy: "round-robin"},
		},
		Agents: map[string]*config.Agent{
			"alice": {ID: "alice"}, "bob": {ID: "bob"}, "carol": {ID: "carol"}, "dave": {ID: "dave"},
			// In no queue yet, still an agent of the edge.
			"erin": {ID: "erin"},
		},
	}
}

func newTestRouter(cfg *config.Config) (*Router, *fakeClock) {
	clock := newClock()
	return NewRouter(NewTable(cfg), clock), clock
}

func TestLookup(t *testing.T) {
	cfg := testConfig()
	tbl := NewTable(cfg)
	for _, tc := range []struct {
		number string
		ok     bool
		want   Attribution
	}{
		{"+15550100001", true, Attribution{Number: "+15550100001", Source: "google", Medium: "cpc", Campaign: "spring", Keyword: "plumber", Flow: cfg.Flows["main"]}},
		// A number's own record mode travels with it; its flow's stays on
		// the flow, for the call to apply where the flow leads.
		{"+15550100002", true, Attribution{Number: "+15550100002", Source: "billboard", Flow: cfg.Flows["support"], Record: config.RecordAnnounce}},
		// Lookup takes the E.164 form only; normalising is the caller's job.
		{"15550100001", false, Attribution{}},
		{"+15550109999", false, Attribution{}},
		{"", false, Attribution{}},
	} {
		t.Run(tc.number, func(t *testing.T) {
			got, ok := tbl.Lookup(tc.number)
			if ok != tc.ok || got != tc.want {
				t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", tc.number, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestQueue(t *testing.T) {
	r, _ := newTestRouter(testConfig())
	if q, ok := r.Queue("sales"); !ok || q.Name != "sales" || len(q.Agents) != 3 {
		t.Errorf("Queue(sales) = %+v, %v", q, ok)
	}
	if q, ok := r.Queue("nope"); ok || q != nil {
		t.Errorf("Queue(nope) = %+v, %v; want nothing", q, ok)
	}
}

func TestNilClockIsRealTime(t *testing.T) {
	r := NewRouter(NewTable(testConfig()), nil)
	if !r.Acquire("alice") {
		t.Fatal("Acquire(alice) failed on a fresh router")
	}
	r.Answered("alice")
	r.Release("alice", 0)
	got := r.Agents()[0]
	if got.ID != "alice" || got.State != StateAvailable || got.Answered != 1 {
		t.Errorf("alice after a call = %+v", got)
	}
	if since := time.Since(got.LastCallEnded); since < 0 || since > time.Minute {
		t.Errorf("LastCallEnded = %v, not about now", got.LastCallEnded)
	}
}

// Agent state outlives a reload: an agent on a call before SIGHUP is still
// on it after, and calls keep the queue they started with.
func TestSwapKeepsBusyAgents(t *testing.T) {
	cfg := testConfig()
	old := NewTable(cfg)
	r := NewRouter(old, newClock())
	oldSales, _ := r.Queue("sales")
	if !r.Acquire("alice") {
		t.Fatal("Acquire(alice) failed on a fresh router")
	}
	r.Answered("alice")

	cfg2 := testConfig()
	cfg2.Queues["sales"] = &config.Queue{Name: "sales", Agents: []string{"alice", "zoe"}}
	delete(cfg2.Numbers, "+15550100002")
	fresh := NewTable(cfg2)
	r.Swap(fresh)

	if r.Table() != fresh {
		t.Error("Table() is not the swapped-in table")
	}
	if r.state("alice") != StateBusy || r.Acquire("alice") {
		t.Error("alice, on a call before the reload, became free after it")
	}
	if !r.Acquire("zoe") {
		t.Error("a new agent cannot be acquired after the reload")
	}
	if q, _ := r.Queue("sales"); !slices.Equal(q.Agents, []string{"alice", "zoe"}) {
		t.Errorf("Queue(sales) after reload has %v", q.Agents)
	}
	if !slices.Equal(oldSales.Agents, []string{"alice", "bob", "carol"}) {
		t.Errorf("the queue a call started with changed under it: %v", oldSales.Agents)
	}
	if _, ok := old.Lookup("+15550100002"); !ok {
		t.Error("the old table lost a number")
	}
	if _, ok := r.Table().Lookup("+15550100002"); ok {
		t.Error("a number removed by the reload is still routed")
	}
	r.Release("alice", 0)
	if !r.Acquire("alice") {
		t.Error("alice cannot be acquired once released after the reload")
	}
	if got := r.Agents()[0]; got.ID != "alice" || got.Answered != 1 || got.Offered != 2 {
		t.Errorf("alice's counters after the reload: %+v", got)
	}
}
