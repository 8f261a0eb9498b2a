package routing

import (
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
)

// flat is an order's agents, failing if any group is not a single agent.
func flat(t *testing.T, order iter.Seq[[]string]) []string {
	t.Helper()
	var out []string
	for g := range order {
		if len(g) != 1 {
			t.Fatalf("group %v in an order that rings one agent at a time", g)
		}
		out = append(out, g[0])
	}
	return out
}

// ringFirst walks q's order as a call does and leaves ringing the agents
// of the first group that had any it could acquire.
func ringFirst(r *Router, q *config.Queue) []string {
	for g := range r.Order(q) {
		var got []string
		for _, a := range g {
			if r.Acquire(a) {
				got = append(got, a)
			}
		}
		if len(got) > 0 {
			return got
		}
	}
	return nil
}

// call gives agent one answered call of talk, then wrap-up.
func call(t *testing.T, r *Router, clock *fakeClock, agent string, talk, wrapUp time.Duration) {
	t.Helper()
	if !r.Acquire(agent) {
		t.Fatalf("Acquire(%s) failed", agent)
	}
	r.Answered(agent)
	clock.Advance(talk)
	r.Release(agent, wrapUp)
}

func TestOrderRotatesPerCallPerQueue(t *testing.T) {
	r, _ := newTestRouter(testConfig())
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
		if got := flat(t, r.Order(step.q)); !slices.Equal(got, step.want) {
			t.Errorf("call %d to %s: order %v, want %v", i+1, step.q.Name, got, step.want)
		}
	}
	if got := sales.Agents; !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Errorf("Order changed the queue's own agents: %v", got)
	}
}

func TestOrderOfEmptyQueue(t *testing.T) {
	r, _ := newTestRouter(testConfig())
	q, _ := r.Queue("empty")
	for _, s := range []string{roundRobin, longestIdle, fewestCalls, ringAll} {
		q.Strategy = s
		if got := slices.Collect(r.Order(q)); len(got) != 0 {
			t.Errorf("%s: Order(empty) = %v", s, got)
		}
	}
}

func TestOrderUnknownStrategyIsRoundRobin(t *testing.T) {
	r, _ := newTestRouter(testConfig())
	q := &config.Queue{Name: "q", Agents: []string{"alice", "bob"}}
	for _, want := range [][]string{{"alice", "bob"}, {"bob", "alice"}, {"alice", "bob"}} {
		if got := flat(t, r.Order(q)); !slices.Equal(got, want) {
			t.Errorf("order %v, want %v", got, want)
		}
	}
}

// Each call must start at a different agent even when calls arrive at once.
func TestOrderConcurrentCallsSpreadEvenly(t *testing.T) {
	r, _ := newTestRouter(testConfig())
	q, _ := r.Queue("sales")
	const calls = 300
	firsts := make(chan string, calls)
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			var o []string
			for g := range r.Order(q) {
				o = append(o, g...)
			}
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
	r, _ := newTestRouter(cfg)
	q, _ := r.Queue("sales")
	r.Order(q)
	r.Order(q)

	cfg2 := testConfig()
	cfg2.Queues["sales"] = &config.Queue{Name: "sales", Agents: []string{"erin", "frank"}}
	r.Swap(NewTable(cfg2))
	q2, _ := r.Queue("sales")
	for range 4 {
		got := flat(t, r.Order(q2))
		sorted := slices.Sorted(slices.Values(got))
		if !slices.Equal(sorted, []string{"erin", "frank"}) {
			t.Fatalf("order after reload %v, want erin and frank", got)
		}
	}
}

// A call may keep or change the groups it is given; the queue, shared by
// every call, must not see it.
func TestOrderGroupsAreTheCallsOwn(t *testing.T) {
	r, _ := newTestRouter(testConfig())
	for _, s := range []string{roundRobin, longestIdle, fewestCalls, ringAll} {
		q := &config.Queue{Name: s, Strategy: s, Agents: []string{"alice", "bob", "carol"}}
		for g := range r.Order(q) {
			g[0] = "mallory"
			_ = append(g, "trudy")
		}
		if !slices.Equal(q.Agents, []string{"alice", "bob", "carol"}) {
			t.Errorf("%s: a call changed the queue's agents to %v", s, q.Agents)
		}
	}
}

func TestOrderByPriority(t *testing.T) {
	// alice and carol ring first (carol by default), then bob and dave,
	// then erin.
	agents := []string{"alice", "bob", "carol", "dave", "erin"}
	priority := map[string]int{"alice": 1, "bob": 2, "dave": 2, "erin": 3, "nobody": 0}
	for _, tc := range []struct {
		strategy string
		calls    [][][]string
	}{
		{roundRobin, [][][]string{
			{{"alice"}, {"carol"}, {"bob"}, {"dave"}, {"erin"}},
			{{"carol"}, {"alice"}, {"dave"}, {"bob"}, {"erin"}},
			{{"alice"}, {"carol"}, {"bob"}, {"dave"}, {"erin"}},
		}},
		{longestIdle, [][][]string{
			{{"alice"}, {"carol"}, {"bob"}, {"dave"}, {"erin"}},
			{{"carol"}, {"alice"}, {"dave"}, {"bob"}, {"erin"}},
		}},
		{fewestCalls, [][][]string{
			{{"alice"}, {"carol"}, {"bob"}, {"dave"}, {"erin"}},
			{{"alice"}, {"carol"}, {"bob"}, {"dave"}, {"erin"}},
		}},
		{ringAll, [][][]string{
			{{"alice", "carol"}, {"bob", "dave"}, {"erin"}},
			{{"alice", "carol"}, {"bob", "dave"}, {"erin"}},
		}},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			r, _ := newTestRouter(testConfig())
			q := &config.Queue{Name: "q", Strategy: tc.strategy, Agents: agents, Priority: priority}
			for i, want := range tc.calls {
				if got := slices.Collect(r.Order(q)); !slices.EqualFunc(got, want, slices.Equal) {
					t.Errorf("call %d: groups %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

// A lower tier rings only once every agent of the tiers above was tried:
// those busy, in wrap-up or away are passed over, and then the next tier
// is reached.
func TestLowerTierOnlyAfterHigherTried(t *testing.T) {
	priority := map[string]int{"bob": 2, "dave": 2}
	for _, s := range []string{roundRobin, longestIdle, fewestCalls, ringAll} {
		t.Run(s, func(t *testing.T) {
			r, clock := newTestRouter(testConfig())
			away := "carol"
			r.SetPresence(func(a string) bool { return a != away })
			q := &config.Queue{Name: "q", Strategy: s, Agents: []string{"alice", "bob", "carol", "dave"}, Priority: priority}

			// alice free, carol away: alice alone rings.
			if got := ringFirst(r, q); !slices.Equal(got, []string{"alice"}) {
				t.Fatalf("rang %v, want alice of the first tier", got)
			}
			// alice now rings for that call: the next reaches tier 2.
			got := ringFirst(r, q)
			want := map[bool][]string{true: {"bob", "dave"}, false: {"bob"}}[s == ringAll]
			if s == roundRobin || s == longestIdle {
				// Those take turns; either of tier 2 is right.
				if len(got) != 1 || (got[0] != "bob" && got[0] != "dave") {
					t.Fatalf("rang %v, want one agent of tier 2", got)
				}
			} else if !slices.Equal(got, want) {
				t.Fatalf("rang %v, want %v", got, want)
			}
			for _, a := range got {
				r.Release(a, 0)
			}
			// alice answers and wraps up: tier 1 still has nobody.
			r.Answered("alice")
			r.Release("alice", time.Minute)
			if got := ringFirst(r, q); len(got) == 0 || (got[0] != "bob" && got[0] != "dave") {
				t.Fatalf("with alice in wrap-up rang %v, want tier 2", got)
			} else {
				for _, a := range got {
					r.Release(a, 0)
				}
			}
			// Once alice's wrap-up ends she is back first.
			clock.Advance(time.Minute)
			if got := ringFirst(r, q); !slices.Equal(got, []string{"alice"}) {
				t.Fatalf("after alice's wrap-up rang %v, want alice", got)
			}
		})
	}
}

func TestOrderLongestIdle(t *testing.T) {
	r, clock := newTestRouter(testConfig())
	q := &config.Queue{Name: "q", Strategy: longestIdle, Agents: []string{"alice", "bob", "carol", "dave"}}

	// Nobody had a call: they take turns being first.
	for i, want := range [][]string{
		{"alice", "bob", "carol", "dave"},
		{"bob", "carol", "dave", "alice"},
		{"carol", "dave", "alice", "bob"},
		{"dave", "alice", "bob", "carol"},
	} {
		if got := flat(t, r.Order(q)); !slices.Equal(got, want) {
			t.Errorf("fresh call %d: order %v, want %v", i+1, got, want)
		}
	}

	// dave's call ends first, carol's a minute later: agents who never
	// had a call come before both, still taking turns.
	call(t, r, clock, "dave", time.Minute, 0)
	call(t, r, clock, "carol", time.Minute, 0)
	for i, want := range [][]string{
		{"alice", "bob", "dave", "carol"}, // the 5th call of the queue
		{"bob", "alice", "dave", "carol"},
	} {
		if got := flat(t, r.Order(q)); !slices.Equal(got, want) {
			t.Errorf("call %d after dave's and carol's: order %v, want %v", i+1, got, want)
		}
	}

	// A missed offer does not make an agent less idle.
	if !r.Acquire("dave") {
		t.Fatal("Acquire(dave) failed")
	}
	r.Release("dave", 0)

	// Idle is measured from the end of wrap-up: alice's call ends before
	// bob's, but her long wrap-up makes bob free first.
	clock.Advance(time.Minute)
	call(t, r, clock, "alice", time.Minute, 10*time.Minute)
	call(t, r, clock, "bob", time.Minute, 0)
	clock.Advance(10 * time.Minute)
	want := []string{"dave", "carol", "bob", "alice"}
	if got := flat(t, r.Order(q)); !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

func TestOrderFewestCalls(t *testing.T) {
	r, clock := newTestRouter(testConfig())
	q := &config.Queue{Name: "q", Strategy: fewestCalls, Agents: []string{"alice", "bob", "carol", "dave", "erin"}}

	// Nobody answered yet: the queue's order.
	want := []string{"alice", "bob", "carol", "dave", "erin"}
	if got := flat(t, r.Order(q)); !slices.Equal(got, want) {
		t.Errorf("fresh order %v, want %v", got, want)
	}

	call(t, r, clock, "alice", time.Minute, 0)
	call(t, r, clock, "alice", time.Minute, 0)
	call(t, r, clock, "erin", time.Minute, 0)
	call(t, r, clock, "carol", time.Minute, 0)
	// A missed offer is no answered call.
	if !r.Acquire("dave") {
		t.Fatal("Acquire(dave) failed")
	}
	r.Release("dave", 0)

	// bob and dave answered none and never had a call: queue order. erin
	// and carol answered one each; erin is idle longer. alice answered two.
	want = []string{"bob", "dave", "erin", "carol", "alice"}
	if got := flat(t, r.Order(q)); !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}

	// Today's calls only: after midnight everyone starts at none, and the
	// longest idle go first, those who never had a call before them.
	clock.Advance(12 * time.Hour)
	want = []string{"bob", "dave", "alice", "erin", "carol"}
	if got := flat(t, r.Order(q)); !slices.Equal(got, want) {
		t.Errorf("order the next day %v, want %v", got, want)
	}
}
