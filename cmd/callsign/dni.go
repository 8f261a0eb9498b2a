package main

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/callsign/callsign/calllog"
	"github.com/callsign/callsign/config"
	"github.com/callsign/callsign/dni"
	"github.com/callsign/callsign/ops"
	"github.com/callsign/callsign/routing"
	"github.com/rs/zerolog"
)

// poolList is the configuration's pools in name order, as the pool
// manager takes them.
func poolList(cfg *config.Config) []config.Pool {
	out := make([]config.Pool, 0, len(cfg.Pools))
	for _, p := range cfg.Pools {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b config.Pool) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// dniPools answers dni.js for the pool manager, with the pools of the
// configuration in force.
type dniPools struct {
	pools  *routing.Pools
	router *routing.Router
}

func (d dniPools) Assign(pool, visitor string, v routing.Visit) (dni.Assignment, error) {
	pc := d.router.Table().Pool(pool)
	if pc == nil {
		return dni.Assignment{}, dni.ErrUnknownPool
	}
	now := time.Now()
	v.FirstSeen = now
	number, overflow, err := d.pools.Assign(pool, visitor, v, now)
	if errors.Is(err, routing.ErrUnknownPool) {
		return dni.Assignment{}, dni.ErrUnknownPool
	}
	if err != nil {
		return dni.Assignment{}, err
	}
	// A third of the hold: two heartbeats may be lost before the
	// number goes, and an open page never costs more than one a minute.
	beat := min(max(pc.Hold/3, 5*time.Second), time.Minute)
	return dni.Assignment{Number: number, Replace: pc.Replace, Overflow: overflow, Heartbeat: beat}, nil
}

func (d dniPools) Heartbeat(pool, visitor string) bool {
	return d.pools.Heartbeat(pool, visitor, time.Now())
}

// restoreBindings puts back the numbers visitors held when the edge last
// stopped, so calls to them are still attributed to their visits.
func restoreBindings(store *calllog.Store, pools *routing.Pools, log zerolog.Logger) {
	saved, err := store.LoadBindings()
	if err != nil {
		log.Warn().Err(err).Msg("pool numbers held before the restart not restored")
		return
	}
	bs := make([]routing.Binding, 0, len(saved))
	for _, s := range saved {
		b := routing.Binding{Pool: s.Pool, Number: s.Number, Visitor: s.VisitorID, Until: s.HeldUntil}
		if err := json.Unmarshal([]byte(s.VisitJSON), &b.Visit); err != nil {
			continue
		}
		b.Since = b.Visit.FirstSeen
		bs = append(bs, b)
	}
	if n := pools.Restore(bs, time.Now()); n > 0 {
		log.Info().Int("bindings", n).Msg("pool numbers held before the restart restored")
	}
}

// keepBindings saves the numbers visitors hold every 30 s, so that a
// crash loses at most that much of them.
func keepBindings(ctx context.Context, store *calllog.Store, pools *routing.Pools, router *routing.Router, log zerolog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			saveBindings(store, pools, router.Table().PoolNames(), log)
		}
	}
}

// saveBindings writes the numbers visitors hold, pool by pool (every
// configured pool, so a pool whose visitors all left is emptied too).
func saveBindings(store *calllog.Store, pools *routing.Pools, names []string, log zerolog.Logger) {
	byPool := map[string][]calllog.Binding{}
	for _, name := range names {
		byPool[name] = nil
	}
	for _, b := range pools.Snapshot() {
		visit, err := json.Marshal(b.Visit)
		if err != nil {
			continue
		}
		byPool[b.Pool] = append(byPool[b.Pool], calllog.Binding{
			Pool: b.Pool, Number: b.Number, VisitorID: b.Visitor, VisitJSON: string(visit), HeldUntil: b.Until,
		})
	}
	for name, bs := range byPool {
		if err := store.SaveBindings(name, bs); err != nil {
			log.Warn().Err(err).Str("pool", name).Msg("pool numbers held not saved")
		}
	}
}

// poolStats is each configured pool's figures for /metrics.
func poolStats(pools *routing.Pools, router *routing.Router) func() []ops.PoolStats {
	return func() []ops.PoolStats {
		names := router.Table().PoolNames()
		out := make([]ops.PoolStats, 0, len(names))
		for _, name := range names {
			held, total := pools.Pressure(name)
			out = append(out, ops.PoolStats{Name: name, Numbers: total, Held: held, Overflows: pools.Overflows(name)})
		}
		return out
	}
}
