package routing

import (
	"slices"
	"strings"
	"time"
)

// Clock is the router's time source: when wrap-ups end, how long agents
// have been idle, and which day the counters are for. The router only
// reads it, working out wrap-up ends and day changes when it next looks,
// so it needs no timers; any clock of the call package will do.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// States of an agent, as Agents reports them.
const (
	StateAvailable = "available"
	StateRinging   = "ringing"
	StateBusy      = "busy" // talking to a caller
	StateWrapUp    = "wrap_up"
	StateAway      = "away"
)

// AgentStats is one agent as operators see it. The counters are for the
// edge's local day so far; they start again at local midnight.
type AgentStats struct {
	ID    string
	State string
	// Offered counts calls the agent was rung for, Answered those it
	// took and Missed those it did not (declined, let ring out, or the
	// caller left); a ring another agent answered first is neither.
	Offered, Answered, Missed int
	// TalkTime is the time spent on calls that ended today, from
	// midnight for a call that began the day before.
	TalkTime time.Duration
	// LastCallEnded is when the agent's last answered call ended; zero if
	// it had none since the edge started.
	LastCallEnded time.Time
}

// phase is the part of an agent's state that calls move it through;
// wrap-up and away are derived from the clock and the presence hook when
// asked, so they never need to be ended by a timer.
type phase uint8

const (
	idle phase = iota // available, or in wrap-up until wrapUntil
	ringing
	busy
)

type day struct {
	year  int
	month time.Month
	day   int
}

func dayOf(t time.Time) day {
	y, m, d := t.Local().Date()
	return day{y, m, d}
}

func (d day) start() time.Time { return time.Date(d.year, d.month, d.day, 0, 0, 0, 0, time.Local) }

type agent struct {
	phase      phase
	wrapUntil  time.Time
	answeredAt time.Time
	lastEnded  time.Time
	// freeAt is when the agent last became available after a call: the
	// end of its wrap-up. Zero if it had no call since the edge started.
	freeAt time.Time

	// counted is the day the counters are for.
	counted                   day
	offered, answered, missed int
	talk                      time.Duration
}

// agent is id's record with counters for today, created on first use.
// r.mu must be held.
func (r *Router) agent(id string, today day) *agent {
	a := r.agents[id]
	if a == nil {
		a = &agent{counted: today}
		r.agents[id] = a
	}
	if a.counted != today {
		a.counted = today
		a.offered, a.answered, a.missed, a.talk = 0, 0, 0, 0
	}
	return a
}

// available says whether a can be offered a call, presence aside.
func (a *agent) available(now time.Time) bool {
	return a.phase == idle && !now.Before(a.wrapUntil)
}

func (a *agent) state(now time.Time) string {
	switch {
	case a.phase == ringing:
		return StateRinging
	case a.phase == busy:
		return StateBusy
	case now.Before(a.wrapUntil):
		return StateWrapUp
	}
	return StateAvailable
}

// Acquire offers agent a call: it goes from available to ringing. False,
// and nothing changes, if it is ringing for another call, busy, in
// wrap-up or away; so no agent is offered two calls at once.
func (r *Router) Acquire(agent string) bool {
	if !r.isPresent(agent) {
		return false
	}
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.agent(agent, dayOf(now))
	if !a.available(now) {
		return false
	}
	a.phase = ringing
	a.offered++
	return true
}

// Answered says the agent took the call it was ringing for. It does
// nothing for an agent that is not ringing.
func (r *Router) Answered(agent string) {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.agent(agent, dayOf(now))
	if a.phase != ringing {
		return
	}
	a.phase = busy
	a.answered++
	a.answeredAt = now
}

// Release ends the agent's part in a call. An agent still ringing missed
// the offer and is available again at once; one on the call goes into
// wrap-up for wrapUp, the queue's, and is available after it. Releasing
// an agent that has no call does nothing.
func (r *Router) Release(agent string, wrapUp time.Duration) {
	now := r.clock.Now()
	today := dayOf(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.agent(agent, today)
	switch a.phase {
	case ringing:
		a.missed++
	case busy:
		// The part of a call before midnight belongs to a day whose
		// counters are gone.
		from := a.answeredAt
		if midnight := today.start(); from.Before(midnight) {
			from = midnight
		}
		a.talk += now.Sub(from)
		a.lastEnded = now
		a.wrapUntil = now.Add(max(wrapUp, 0))
		a.freeAt = a.wrapUntil
	default:
		return
	}
	a.phase = idle
}

// Withdraw ends an offer another agent answered first (ring-all): the
// agent is available again at once, offered the call but not counted as
// missing it, as the agents report counts it.
func (r *Router) Withdraw(agent string) {
	today := dayOf(r.clock.Now())
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := r.agent(agent, today); a.phase == ringing {
		a.phase = idle
	}
}

// Agents is every agent of the table in force, sorted by id, with its
// state and today's counters; an agent a reload removed is listed while
// it is still on a call.
func (r *Router) Agents() []AgentStats {
	ids := r.table.Load().agents
	now := r.clock.Now()
	today := dayOf(now)
	out := make([]AgentStats, 0, len(ids))
	r.mu.Lock()
	stats := func(id string, a *agent) AgentStats {
		return AgentStats{
			ID: id, State: a.state(now),
			Offered: a.offered, Answered: a.answered, Missed: a.missed,
			TalkTime: a.talk, LastCallEnded: a.lastEnded,
		}
	}
	for _, id := range ids {
		out = append(out, stats(id, r.agent(id, today)))
	}
	for id, a := range r.agents {
		if a.phase != idle {
			if _, listed := slices.BinarySearch(ids, id); !listed {
				out = append(out, stats(id, r.agent(id, today)))
			}
		}
	}
	r.mu.Unlock()

	for i := range out {
		if s := out[i].State; (s == StateAvailable || s == StateWrapUp) && !r.isPresent(out[i].ID) {
			out[i].State = StateAway
		}
	}
	slices.SortFunc(out, func(x, y AgentStats) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// state is agent's state as Agents reports it.
func (r *Router) state(agent string) string {
	now := r.clock.Now()
	r.mu.Lock()
	s := r.agent(agent, dayOf(now)).state(now)
	r.mu.Unlock()
	if (s == StateAvailable || s == StateWrapUp) && !r.isPresent(agent) {
		return StateAway
	}
	return s
}
