package routing

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/config"
)

func TestAcquireRelease(t *testing.T) {
	r, _ := newTestRouter(testConfig())
	steps := []struct {
		op    string
		agent string
		want  string // the agent's state afterwards
		ok    bool   // Acquire's result
	}{
		{"state", "alice", StateAvailable, false},
		{"acquire", "alice", StateRinging, true},
		{"acquire", "alice", StateRinging, false}, // never two calls at once
		{"acquire", "bob", StateRinging, true},    // others unaffected
		{"release", "alice", StateAvailable, false},
		{"state", "bob", StateRinging, false},
		{"acquire", "alice", StateRinging, true},
		{"release", "carol", StateAvailable, false},  // releasing a free agent is harmless
		{"answered", "carol", StateAvailable, false}, // so is answering without ringing
		{"acquire", "carol", StateRinging, true},
	}
	for i, s := range steps {
		var ok bool
		switch s.op {
		case "acquire":
			ok = r.Acquire(s.agent)
		case "release":
			r.Release(s.agent, time.Minute)
		case "answered":
			r.Answered(s.agent)
		}
		if got := r.state(s.agent); got != s.want || ok != s.ok {
			t.Errorf("step %d %s(%s): state %s, ok %v; want %s, %v", i, s.op, s.agent, got, ok, s.want, s.ok)
		}
	}
}

func TestAgentLifecycle(t *testing.T) {
	r, clock := newTestRouter(testConfig())
	expect := func(what, want string) {
		t.Helper()
		if got := r.state("alice"); got != want {
			t.Fatalf("%s: alice is %s, want %s", what, got, want)
		}
	}
	if !r.Acquire("alice") {
		t.Fatal("Acquire(alice) failed on a fresh router")
	}
	expect("offered", StateRinging)
	r.Answered("alice")
	expect("answered", StateBusy)
	if r.Acquire("alice") {
		t.Fatal("an agent on a call was offered another")
	}
	r.Answered("alice") // a second answer for the same call changes nothing
	clock.Advance(3 * time.Minute)
	r.Release("alice", 30*time.Second)
	expect("hung up", StateWrapUp)
	clock.Advance(29 * time.Second)
	if r.Acquire("alice") {
		t.Fatal("an agent in wrap-up was offered a call")
	}
	expect("during wrap-up", StateWrapUp)
	r.Release("alice", 0) // no call to release: wrap-up goes on
	expect("released in wrap-up", StateWrapUp)
	clock.Advance(time.Second)
	expect("after wrap-up", StateAvailable)
	if !r.Acquire("alice") {
		t.Fatal("an agent whose wrap-up ended was not offered the call")
	}

	// Without wrap-up the agent is free at once.
	r.Answered("alice")
	r.Release("alice", 0)
	expect("hung up without wrap-up", StateAvailable)
	if !r.Acquire("alice") {
		t.Fatal("an agent without wrap-up was not offered the next call")
	}
	r.Release("alice", time.Hour) // missed: no wrap-up after an unanswered offer
	expect("missed", StateAvailable)
	// Another agent answered first: offered, not missed.
	if !r.Acquire("alice") {
		t.Fatal("alice not offered the next call")
	}
	r.Withdraw("alice")
	expect("withdrawn", StateAvailable)
	r.Withdraw("alice") // no offer left: nothing changes

	got := r.Agents()[0]
	want := AgentStats{ID: "alice", State: StateAvailable, Offered: 4, Answered: 2, Missed: 1,
		TalkTime: 3 * time.Minute, LastCallEnded: noon.Add(3*time.Minute + 30*time.Second)}
	if got != want {
		t.Errorf("alice = %+v\nwant    %+v", got, want)
	}
}

func TestAcquireSkipsAgentsNotPresent(t *testing.T) {
	r, _ := newTestRouter(testConfig())
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
	if s := r.state("alice"); s != StateAway {
		t.Fatalf("an away agent is %s", s)
	}
	if !r.Acquire("bob") {
		t.Fatal("a present agent was not offered the call")
	}
	r.Answered("bob")
	mu.Lock()
	away["alice"] = false
	away["bob"] = true // closed the softphone tab mid-call
	mu.Unlock()
	if s := r.state("bob"); s != StateBusy {
		t.Errorf("an agent on a call who went away is %s, want still busy", s)
	}
	r.Release("bob", time.Minute)
	if s := r.state("bob"); s != StateAway {
		t.Errorf("an away agent in wrap-up is %s", s)
	}
	if !r.Acquire("alice") {
		t.Fatal("an agent who came back was not offered the call")
	}
	states := map[string]string{}
	for _, a := range r.Agents() {
		states[a.ID] = a.State
	}
	want := map[string]string{"alice": StateRinging, "bob": StateAway, "carol": StateAvailable, "dave": StateAvailable, "erin": StateAvailable}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("Agents() states %v, want %v", states, want)
	}
}

// Agents lists every agent of the configuration, in a queue or not, and
// an agent a reload removed only while it still has a call.
func TestAgentsListing(t *testing.T) {
	r, _ := newTestRouter(testConfig())
	ids := func() []string {
		var out []string
		for _, a := range r.Agents() {
			out = append(out, a.ID)
		}
		return out
	}
	if got, want := ids(), []string{"alice", "bob", "carol", "dave", "erin"}; !slices.Equal(got, want) {
		t.Errorf("Agents() = %v, want %v", got, want)
	}
	r.Acquire("carol")
	r.Acquire("dave")
	r.Release("dave", 0)
	cfg := testConfig()
	cfg.Queues = map[string]*config.Queue{"sales": {Name: "sales", Agents: []string{"alice", "zoe"}}}
	cfg.Agents = map[string]*config.Agent{"alice": {ID: "alice"}, "yann": {ID: "yann"}}
	r.Swap(NewTable(cfg))
	if got, want := ids(), []string{"alice", "carol", "yann", "zoe"}; !slices.Equal(got, want) {
		t.Errorf("Agents() after reload = %v, want %v", got, want)
	}
	r.Release("carol", 0)
	if got, want := ids(), []string{"alice", "yann", "zoe"}; !slices.Equal(got, want) {
		t.Errorf("Agents() once carol's call ended = %v, want %v", got, want)
	}
}

func TestStatsResetAtLocalMidnight(t *testing.T) {
	clock := newClock()
	clock.now = time.Date(2025, time.June, 11, 23, 30, 0, 0, time.Local)
	r := NewRouter(NewTable(testConfig()), clock)

	// alice: one call of 10 minutes and one missed offer before midnight.
	call(t, r, clock, "alice", 10*time.Minute, 0)
	r.Acquire("alice")
	r.Release("alice", 0)
	// bob answers at 23:50 and talks until 00:20.
	clock.Advance(10 * time.Minute)
	r.Acquire("bob")
	r.Answered("bob")

	stats := func() map[string]AgentStats {
		out := map[string]AgentStats{}
		for _, a := range r.Agents() {
			out[a.ID] = a
		}
		return out
	}
	before := stats()
	if a := before["alice"]; a.Offered != 2 || a.Answered != 1 || a.Missed != 1 || a.TalkTime != 10*time.Minute {
		t.Errorf("alice before midnight: %+v", a)
	}
	if b := before["bob"]; b.Offered != 1 || b.Answered != 1 || b.State != StateBusy {
		t.Errorf("bob before midnight: %+v", b)
	}

	clock.Advance(30 * time.Minute) // 00:20
	r.Release("bob", 0)
	after := stats()
	if a := after["alice"]; a.Offered != 0 || a.Answered != 0 || a.Missed != 0 || a.TalkTime != 0 {
		t.Errorf("alice's counters after midnight: %+v", a)
	}
	if a := after["alice"]; !a.LastCallEnded.Equal(time.Date(2025, time.June, 11, 23, 40, 0, 0, time.Local)) {
		t.Errorf("alice's last call ended %v; that is not a counter and stays", a.LastCallEnded)
	}
	// bob's call belongs to the day it was answered; today only has the
	// part of it after midnight.
	if b := after["bob"]; b.Offered != 0 || b.Answered != 0 || b.TalkTime != 20*time.Minute || b.State != StateAvailable {
		t.Errorf("bob after midnight: %+v", b)
	}

	// The new day counts from zero.
	call(t, r, clock, "alice", time.Minute, 0)
	if a := stats()["alice"]; a.Offered != 1 || a.Answered != 1 || a.TalkTime != time.Minute {
		t.Errorf("alice's first call of the day: %+v", a)
	}
}

func TestConcurrentAcquireGivesEachAgentOnce(t *testing.T) {
	r, _ := newTestRouter(testConfig())
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
		if s := r.state(a); s != StateRinging {
			t.Errorf("%s is %s after being acquired", a, s)
		}
	}
}

// Acquire and Release racing from many calls: no agent is ever held twice.
func TestConcurrentAcquireReleaseNeverDoubleBooks(t *testing.T) {
	r, _ := newTestRouter(testConfig())
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
				if n%2 == 0 {
					r.Answered(agents[i])
				}
				r.Release(agents[i], 0)
			}
		})
	}
	wg.Wait()
	for _, a := range agents {
		if s := r.state(a); s != StateAvailable {
			t.Errorf("%s is %s after every call released it", a, s)
		}
	}
}

// Many calls on queues that share agents, each trying agents as its
// queue's order says, answering or not, with wrap-ups ending as the clock
// runs on: no agent is ever offered two calls at once, and the counters
// add up.
func TestConcurrentQueuesNeverDoubleOffer(t *testing.T) {
	const goroutines, callsEach = 50, 200
	agents := []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"}
	index := map[string]int{}
	for i, a := range agents {
		index[a] = i
	}
	cfg := testConfig()
	cfg.Queues = map[string]*config.Queue{
		"sales":   {Name: "sales", Strategy: roundRobin, Agents: agents[:5], Priority: map[string]int{"a0": 2}},
		"support": {Name: "support", Strategy: longestIdle, Agents: agents[3:], WrapUp: 3 * time.Millisecond},
		"vip":     {Name: "vip", Strategy: ringAll, Agents: []string{"a0", "a4", "a7", "a2"}, Priority: map[string]int{"a2": 2}},
		"billing": {Name: "billing", Strategy: fewestCalls, Agents: []string{"a6", "a1", "a3"}, WrapUp: time.Millisecond},
	}
	queues := []*config.Queue{cfg.Queues["sales"], cfg.Queues["support"], cfg.Queues["vip"], cfg.Queues["billing"]}
	clock := newClock()
	clock.step = 100 * time.Microsecond // each reading moves time on, so wrap-ups end
	r := NewRouter(NewTable(cfg), clock)

	var awayMu sync.Mutex
	away := map[string]bool{}
	r.SetPresence(func(a string) bool {
		awayMu.Lock()
		defer awayMu.Unlock()
		return !away[a]
	})

	var offers [8]atomic.Int32
	var answered, missed atomic.Int64
	// offer walks q's order once, as a call does; true if an agent
	// answered.
	offer := func(rnd *rand.Rand, q *config.Queue) bool {
		for group := range r.Order(q) {
			var held []string
			for _, a := range group {
				if !r.Acquire(a) {
					continue
				}
				if c := offers[index[a]].Add(1); c != 1 {
					t.Errorf("%s offered %d calls at once", a, c)
				}
				held = append(held, a)
			}
			if len(held) == 0 {
				continue
			}
			winner := -1
			if rnd.IntN(3) > 0 {
				winner = rnd.IntN(len(held))
			}
			runtime.Gosched()
			for i, a := range held {
				if i == winner {
					r.Answered(a)
					answered.Add(1)
					runtime.Gosched()
				} else {
					missed.Add(1)
				}
				offers[index[a]].Add(-1)
				r.Release(a, q.WrapUp)
			}
			if winner >= 0 {
				return true
			}
		}
		return false
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			for n := range callsEach {
				q := queues[(g+n)%len(queues)]
				// A caller nobody took is offered again, a few times,
				// as one waiting in the queue would be.
				for range 5 {
					if offer(rnd, q) {
						break
					}
				}
			}
		})
	}
	// Operators watch and agents come and go meanwhile.
	stop := make(chan struct{})
	var watchers sync.WaitGroup
	watchers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := len(r.Agents()); n < len(agents) {
				t.Errorf("Agents() lists %d agents", n)
			}
		}
	})
	watchers.Go(func() {
		rnd := rand.New(rand.NewPCG(7, 7))
		for {
			select {
			case <-stop:
				awayMu.Lock()
				clear(away)
				awayMu.Unlock()
				return
			default:
			}
			awayMu.Lock()
			a := agents[2+4*rnd.IntN(2)] // a2 or a6
			away[a] = !away[a]
			awayMu.Unlock()
			runtime.Gosched()
		}
	})
	wg.Wait()
	close(stop)
	watchers.Wait()

	clock.Advance(time.Second) // past every wrap-up
	var offered, gotAnswered, gotMissed int
	for _, a := range r.Agents() {
		if _, ok := index[a.ID]; !ok {
			continue
		}
		if a.State != StateAvailable {
			t.Errorf("%s is %s after every call ended", a.ID, a.State)
		}
		if a.Offered != a.Answered+a.Missed {
			t.Errorf("%s: offered %d, answered %d, missed %d", a.ID, a.Offered, a.Answered, a.Missed)
		}
		offered += a.Offered
		gotAnswered += a.Answered
		gotMissed += a.Missed
	}
	if int64(gotAnswered) != answered.Load() || int64(gotMissed) != missed.Load() {
		t.Errorf("counted %d answered and %d missed, the calls saw %d and %d", gotAnswered, gotMissed, answered.Load(), missed.Load())
	}
	if answered.Load() == 0 || offered == 0 {
		t.Error("no call reached an agent")
	}
	t.Logf("%d offers, %d answered, %d missed", offered, gotAnswered, gotMissed)
}
