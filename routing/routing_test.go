package routing

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
)

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
	}
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
	r := NewRouter(NewTable(testConfig()))
	if q, ok := r.Queue("sales"); !ok || q.Name != "sales" || len(q.Agents) != 3 {
		t.Errorf("Queue(sales) = %+v, %v", q, ok)
	}
	if q, ok := r.Queue("nope"); ok || q != nil {
		t.Errorf("Queue(nope) = %+v, %v; want nothing", q, ok)
	}
}

func TestOrderRotatesPerCallPerQueue(t *testing.T) {
	r := NewRouter(NewTable(testConfig()))
	sales, _ := r.Queue("sales")
	support, _ := r.Queue("support")
	for i, step := range []struct {
		q    *config.Queue
		want []string
	}{
		{sales, []string{"alice", "bob", "carol"}},
		{sales, []string{"bob", "carol", "alice"}},
		// Another queue has its own rotation, and does not move sales'.
		{support, []string{"bob", "dave"}},
		{sales, []string{"carol", "alice", "bob"}},
		{support, []string{"dave", "bob"}},
		{sales, []string{"alice", "bob", "carol"}},
		{support, []string{"bob", "dave"}},
	} {
		if got := slices.Collect(r.Order(step.q)); !slices.Equal(got, step.want) {
			t.Errorf("call %d to %s: order %v, want %v", i+1, step.q.Name, got, step.want)
		}
	}
	if got := sales.Agents; !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Errorf("Order changed the queue's own agents: %v", got)
	}
}

func TestOrderOfEmptyQueue(t *testing.T) {
	r := NewRouter(NewTable(testConfig()))
	q, _ := r.Queue("empty")
	if got := slices.Collect(r.Order(q)); len(got) != 0 {
		t.Errorf("Order(empty) = %v", got)
	}
}

// Each call must start at a different agent even when calls arrive at once.
func TestOrderConcurrentCallsSpreadEvenly(t *testing.T) {
	r := NewRouter(NewTable(testConfig()))
	q, _ := r.Queue("sales")
	const calls = 300
	firsts := make(chan string, calls)
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			o := slices.Collect(r.Order(q))
			if len(o) != 3 {
				t.Errorf("order %v", o)
				return
			}
			firsts <- o[0]
		})
	}
	wg.Wait()
	close(firsts)
	count := map[string]int{}
	for a := range firsts {
		count[a]++
	}
	for _, a := range q.Agents {
		if count[a] != calls/3 {
			t.Errorf("%s rung first by %d calls, want %d (%v)", a, count[a], calls/3, count)
		}
	}
}

// A reload that shrinks a queue must still give every call all its agents.
func TestOrderAfterReloadShrinksQueue(t *testing.T) {
	cfg := testConfig()
	r := NewRouter(NewTable(cfg))
	q, _ := r.Queue("sales")
	r.Order(q)
	r.Order(q)

	cfg2 := testConfig()
	cfg2.Queues["sales"] = &config.Queue{Name: "sales", Agents: []string{"erin", "frank"}}
	r.Swap(NewTable(cfg2))
	q2, _ := r.Queue("sales")
	for range 4 {
		got := slices.Collect(r.Order(q2))
		sorted := slices.Sorted(slices.Values(got))
		if !slices.Equal(sorted, []string{"erin", "frank"}) {
			t.Fatalf("order after reload %v, want erin and frank", got)
		}
	}
}

func TestAcquireRelease(t *testing.T) {
	r := NewRouter(NewTable(testConfig()))
	steps := []struct {
		op    string
		agent string
		want  bool // Acquire's result, or Busy afterwards
	}{
		{"busy", "alice", false},
		{"acquire", "alice", true},
		{"busy", "alice", true},
		{"acquire", "alice", false}, // never two calls at once
		{"acquire", "bob", true},    // others unaffected
		{"release", "alice", false},
		{"busy", "bob", true},
		{"acquire", "alice", true},
		{"release", "carol", false}, // releasing a free agent is harmless
		{"acquire", "carol", true},
	}
	for i, s := range steps {
		var got bool
		switch s.op {
		case "acquire":
			got = r.Acquire(s.agent)
		case "release":
			r.Release(s.agent)
			got = r.Busy(s.agent)
		case "busy":
			got = r.Busy(s.agent)
		}
		if got != s.want {
			t.Errorf("step %d %s(%s) = %v, want %v", i, s.op, s.agent, got, s.want)
		}
	}
}

func TestConcurrentAcquireGivesEachAgentOnce(t *testing.T) {
	r := NewRouter(NewTable(testConfig()))
	agents := make([]string, 20)
	for i := range agents {
		agents[i] = fmt.Sprintf("agent-%02d", i)
	}
	const callers = 64
	var mu sync.Mutex
	winners := map[string][]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range callers {
		wg.Go(func() {
			<-start
			for i := range agents {
				// Callers walk the agents from different places, as
				// calls with rotated orders do.
				a := agents[(i+c)%len(agents)]
				if r.Acquire(a) {
					mu.Lock()
					winners[a] = append(winners[a], c)
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for _, a := range agents {
		if len(winners[a]) != 1 {
			t.Errorf("%s acquired by callers %v, want exactly one", a, winners[a])
		}
		if !r.Busy(a) {
			t.Errorf("%s not busy after being acquired", a)
		}
	}
}

// Acquire and Release racing from many calls: no agent is ever held twice.
func TestConcurrentAcquireReleaseNeverDoubleBooks(t *testing.T) {
	r := NewRouter(NewTable(testConfig()))
	agents := []string{"alice", "bob", "carol"}
	var holders [3]int32
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for n := range 200 {
				i := n % len(agents)
				if !r.Acquire(agents[i]) {
					continue
				}
				mu.Lock()
				holders[i]++
				if holders[i] != 1 {
					t.Errorf("%s held by %d calls", agents[i], holders[i])
				}
				holders[i]--
				mu.Unlock()
				r.Release(agents[i])
			}
		})
	}
	wg.Wait()
	for _, a := range agents {
		if r.Busy(a) {
			t.Errorf("%s still busy after every call released it", a)
		}
	}
}

// Agent state outlives a reload: an agent on a call before SIGHUP is still
// on it after, and calls keep the queue they started with.
func TestSwapKeepsBusyAgents(t *testing.T) {
	cfg := testConfig()
	old := NewTable(cfg)
	r := NewRouter(old)
	oldSales, _ := r.Queue("sales")
	if !r.Acquire("alice") {
		t.Fatal("Acquire(alice) failed on a fresh router")
	}

	cfg2 := testConfig()
	cfg2.Queues["sales"] = &config.Queue{Name: "sales", Agents: []string{"alice", "zoe"}}
	delete(cfg2.Numbers, "+15550100002")
	fresh := NewTable(cfg2)
	r.Swap(fresh)

	if r.Table() != fresh {
		t.Error("Table() is not the swapped-in table")
	}
	if !r.Busy("alice") || r.Acquire("alice") {
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
	r.Release("alice")
	if !r.Acquire("alice") {
		t.Error("alice cannot be acquired once released after the reload")
	}
}

func TestAcquireSkipsAgentsNotPresent(t *testing.T) {
	r := NewRouter(NewTable(testConfig()))
	away := map[string]bool{"alice": true}
	var mu sync.Mutex
	r.SetPresence(func(agent string) bool {
		mu.Lock()
		defer mu.Unlock()
		return !away[agent]
	})
	if r.Acquire("alice") {
		t.Fatal("an away agent was offered a call")
	}
	if r.Busy("alice") {
		t.Fatal("refusing an away agent marked it busy")
	}
	if !r.Acquire("bob") {
		t.Fatal("a present agent was not offered the call")
	}
	mu.Lock()
	away["alice"] = false
	mu.Unlock()
	if !r.Acquire("alice") {
		t.Fatal("an agent who came back was not offered the call")
	}
}
