package routing

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/callsign/callsign/config"
)

// PressureThreshold is the share of a pool's numbers held at which the
// pool is under pressure: past it, new visitors will soon see the
// overflow number and lose their attribution, so the pool wants more
// numbers.
const PressureThreshold = 0.75

// maxVisitField bounds each text field of a Visit and the visitor id.
// They come from web pages, so without a bound one visitor could pin any
// amount of memory for as long as its number is held.
const maxVisitField = 2048

// maxClickIDName bounds a key of Visit.ClickIDs, as the configuration
// bounds click id names; config.MaxClickIDs bounds their number.
const maxClickIDName = 64

// Errors of Assign and Heartbeat.
var (
	ErrUnknownPool = errors.New("unknown pool")
	ErrNoVisitor   = errors.New("empty visitor id")
)

// Visit is the web visit a pool number is shown to, as the page reports
// it. The JSON names are those of the `visitor` object of call events.
type Visit struct {
	UTMSource   string    `json:"utm_source,omitempty"`
	UTMMedium   string    `json:"utm_medium,omitempty"`
	UTMCampaign string    `json:"utm_campaign,omitempty"`
	UTMTerm     string    `json:"utm_term,omitempty"`
	UTMContent  string    `json:"utm_content,omitempty"`
	GCLID       string    `json:"gclid,omitempty"`
	GBRAID      string    `json:"gbraid,omitempty"`
	WBRAID      string    `json:"wbraid,omitempty"`
	FBCLID      string    `json:"fbclid,omitempty"`
	MSCLKID     string    `json:"msclkid,omitempty"`
	Referrer    string    `json:"referrer,omitempty"`
	LandingPage string    `json:"landing_page,omitempty"`
	FirstSeen   time.Time `json:"first_seen,omitzero"`
	// ClickIDs are the values of configured click ids that have no field
	// above (ttclid, ...), by parameter name. In JSON they sit next to
	// the fields, as gclid does, so consumers read every click id alike.
	// A visit handed out by Pools or Router shares this map: read it,
	// never write it.
	ClickIDs map[string]string `json:"-"`
}

// Binding is a pool number held by one visitor: who was shown it, and
// from when until when it stands for that visit.
type Binding struct {
	Pool    string    `json:"pool"`
	Number  string    `json:"number"`
	Visitor string    `json:"visitor"`
	Visit   Visit     `json:"visit"`
	Since   time.Time `json:"since"`
	// Until is the last heartbeat plus the pool's hold: the number is
	// free again from then on.
	Until time.Time `json:"until"`
}

func (b *Binding) heldAt(t time.Time) bool {
	return b.Visitor != "" && !t.Before(b.Since) && t.Before(b.Until)
}

// PressureFunc is told when a pool's use crosses PressureThreshold
// upwards. It is called without the manager's lock held, so it may call
// back into the manager.
type PressureFunc func(pool string, held, total int)

// Pools hands out pool numbers to web visitors and remembers, for each
// number, which visit it was shown to, so a call to it can be attributed.
//
// One mutex guards everything: every operation is a few map and heap
// steps, and Assign must decide that a number is free and give it away
// in one step. Expired bindings are released lazily, by the next
// operation on their pool, or by Sweep, so no timers are needed; memory
// is bounded by the pools' numbers, as a visitor is only remembered while
// it holds one.
type Pools struct {
	clock      Clock
	onPressure PressureFunc

	mu       sync.Mutex
	pools    map[string]*pool
	byNumber map[string]*slot
}

type pool struct {
	cfg   config.Pool
	slots []*slot
	// free are the slots nobody holds, the one free the longest first, so
	// a number released a moment ago is the last to be shown to someone
	// else: a caller late to dial it still reaches the right attribution.
	free slotHeap
	// held are the slots held, the first to expire first.
	held      slotHeap
	visitors  map[string]*slot
	overflows uint64
	// pressured is set when use crossed the threshold upwards and cleared
	// when it falls below, so each crossing is told once.
	pressured bool
}

type slot struct {
	number string
	order  int // position in the pool's numbers, to break ties
	index  int // position in free or held
	cur    Binding
	// prev is the binding before cur, for calls that arrive just after
	// the number changed hands and are looked up at their start time.
	prev Binding
	// freedAt is when the number last became free; zero if never held.
	freedAt time.Time
}

// slotHeap is a min-heap of slots; each slot is in one heap at a time,
// free or held, so one index field serves both.
type slotHeap struct {
	s    []*slot
	less func(a, b *slot) bool
}

func (h *slotHeap) Len() int           { return len(h.s) }
func (h *slotHeap) Less(i, j int) bool { return h.less(h.s[i], h.s[j]) }
func (h *slotHeap) Swap(i, j int) {
	h.s[i], h.s[j] = h.s[j], h.s[i]
	h.s[i].index, h.s[j].index = i, j
}
func (h *slotHeap) Push(x any) {
	s := x.(*slot)
	s.index = len(h.s)
	h.s = append(h.s, s)
}
func (h *slotHeap) Pop() any {
	s := h.s[len(h.s)-1]
	h.s[len(h.s)-1] = nil
	h.s = h.s[:len(h.s)-1]
	s.index = -1
	return s
}

func freeFirst(a, b *slot) bool {
	if !a.freedAt.Equal(b.freedAt) {
		return a.freedAt.Before(b.freedAt)
	}
	return a.order < b.order
}

func expiresFirst(a, b *slot) bool { return a.cur.Until.Before(b.cur.Until) }

// NewPools manages pools; a nil clock is the real one. onPressure may be
// nil.
func NewPools(pools []config.Pool, clock Clock, onPressure PressureFunc) *Pools {
	if clock == nil {
		clock = systemClock{}
	}
	m := &Pools{clock: clock, onPressure: onPressure, pools: map[string]*pool{}, byNumber: map[string]*slot{}}
	m.Apply(pools)
	return m
}

// Apply puts a new configuration's pools in force. A number still in a
// pool keeps its binding, so a reload does not take numbers away from
// visitors looking at them; bindings of numbers no longer in any pool are
// dropped.
func (m *Pools) Apply(pools []config.Pool) {
	now := m.clock.Now()
	m.mu.Lock()
	old := m.byNumber
	oldPools := m.pools
	m.pools = make(map[string]*pool, len(pools))
	m.byNumber = map[string]*slot{}
	var raised []pressureEvent
	for _, cfg := range pools {
		p := &pool{
			cfg:      cfg,
			slots:    make([]*slot, 0, len(cfg.Numbers)),
			free:     slotHeap{less: freeFirst},
			held:     slotHeap{less: expiresFirst},
			visitors: map[string]*slot{},
		}
		if o := oldPools[cfg.Name]; o != nil {
			p.overflows, p.pressured = o.overflows, o.pressured
		}
		for i, num := range cfg.Numbers {
			if _, dup := m.byNumber[num]; dup {
				continue // config refuses this; never hand one number to two pools
			}
			s := old[num]
			if s == nil {
				s = &slot{number: num}
			}
			s.order = i
			s.cur.Pool, s.prev.Pool = cfg.Name, cfg.Name
			m.byNumber[num] = s
			p.slots = append(p.slots, s)
			if s.cur.Visitor != "" && s.cur.Until.After(now) && p.visitors[s.cur.Visitor] == nil {
				p.visitors[s.cur.Visitor] = s
				heap.Push(&p.held, s)
				continue
			}
			if s.cur.Visitor != "" {
				s.release(minTime(s.cur.Until, now))
			}
			heap.Push(&p.free, s)
		}
		if e, ok := p.checkPressure(); ok {
			raised = append(raised, e)
		}
		m.pools[cfg.Name] = p
	}
	m.mu.Unlock()
	m.tell(raised)
}

type pressureEvent struct {
	pool        string
	held, total int
}

func (m *Pools) tell(events []pressureEvent) {
	if m.onPressure == nil {
		return
	}
	for _, e := range events {
		m.onPressure(e.pool, e.held, e.total)
	}
}

// release frees the slot as of at, keeping its binding as prev.
func (s *slot) release(at time.Time) {
	s.prev = s.cur
	s.cur = Binding{Pool: s.cur.Pool, Number: s.number}
	s.freedAt = at
}

// expire releases the bindings of p that ended by now, in the order they
// ended, so the free heap learns how long each number has been free.
func (p *pool) expire(now time.Time) int {
	n := 0
	for p.held.Len() > 0 && !p.held.s[0].cur.Until.After(now) {
		s := heap.Pop(&p.held).(*slot)
		delete(p.visitors, s.cur.Visitor)
		s.release(s.cur.Until)
		heap.Push(&p.free, s)
		n++
	}
	return n
}

// checkPressure updates p.pressured, reporting an upward crossing.
func (p *pool) checkPressure() (pressureEvent, bool) {
	held, total := p.held.Len(), len(p.slots)
	over := total > 0 && float64(held) >= PressureThreshold*float64(total)
	switch {
	case over && !p.pressured:
		p.pressured = true
		return pressureEvent{p.cfg.Name, held, total}, true
	case !over:
		p.pressured = false
	}
	return pressureEvent{}, false
}

// Assign gives visitorID a number of the pool to show: the number it
// holds, its hold extended; else the number free the longest; else, when
// every number is held, the pool's overflow number (overflow true). The
// visit is kept with a new binding; a visitor that already holds a number
// keeps the visit it was first shown it for.
func (m *Pools) Assign(poolName, visitorID string, v Visit, now time.Time) (number string, overflow bool, err error) {
	if visitorID == "" {
		return "", false, ErrNoVisitor
	}
	visitorID = bound(visitorID)
	m.mu.Lock()
	p := m.pools[poolName]
	if p == nil {
		m.mu.Unlock()
		return "", false, fmt.Errorf("%w %q", ErrUnknownPool, poolName)
	}
	p.expire(now)
	if s := p.visitors[visitorID]; s != nil {
		s.cur.Until = now.Add(p.cfg.Hold)
		heap.Fix(&p.held, s.index)
		m.mu.Unlock()
		return s.number, false, nil
	}
	if p.free.Len() == 0 {
		p.overflows++
		e, raised := p.checkPressure()
		m.mu.Unlock()
		if raised {
			m.tell([]pressureEvent{e})
		}
		return p.cfg.Overflow, true, nil
	}
	s := heap.Pop(&p.free).(*slot)
	s.cur = Binding{
		Pool: poolName, Number: s.number, Visitor: visitorID, Visit: v.bounded(),
		Since: now, Until: now.Add(p.cfg.Hold),
	}
	heap.Push(&p.held, s)
	p.visitors[visitorID] = s
	e, raised := p.checkPressure()
	m.mu.Unlock()
	if raised {
		m.tell([]pressureEvent{e})
	}
	return s.number, false, nil
}

// Heartbeat extends the hold of the number visitorID holds in the pool,
// the page being still open. It is false when the visitor holds none
// (its hold ran out, or it was shown the overflow number): the page
// should Assign again.
func (m *Pools) Heartbeat(poolName, visitorID string, now time.Time) bool {
	visitorID = bound(visitorID)
	m.mu.Lock()
	p := m.pools[poolName]
	if p == nil {
		m.mu.Unlock()
		return false
	}
	ok := false
	if p.expire(now) > 0 {
		p.checkPressure()
	}
	if s := p.visitors[visitorID]; s != nil {
		s.cur.Until = now.Add(p.cfg.Hold)
		heap.Fix(&p.held, s.index)
		ok = true
	}
	m.mu.Unlock()
	return ok
}

// Lookup finds the binding that held number at the given time, the start
// of a call to it, so the call is attributed to the visit it was shown
// to even if the number changed hands since. Only the latest two bindings
// of a number are kept. It is false for a number held by nobody then,
// and for numbers of no pool (overflow numbers included: see PoolOf).
func (m *Pools) Lookup(number string, at time.Time) (Binding, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.byNumber[number]
	switch {
	case s == nil:
		return Binding{}, false
	case s.cur.heldAt(at):
		return s.cur, true
	case s.prev.heldAt(at):
		return s.prev, true
	}
	return Binding{}, false
}

// PoolOf says which pool a number belongs to, as one of its numbers or as
// its overflow number, so a call to it runs the pool's flow even when no
// visit can be found.
func (m *Pools) PoolOf(number string) (pool string, overflow bool, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.byNumber[number]; s != nil {
		return s.cur.Pool, false, true
	}
	for name, p := range m.pools {
		if p.cfg.Overflow == number {
			return name, true, true
		}
	}
	return "", false, false
}

// Pressure is how many numbers of the pool are held now, of how many.
func (m *Pools) Pressure(poolName string) (held, total int) {
	now := m.clock.Now()
	m.mu.Lock()
	p := m.pools[poolName]
	if p == nil {
		m.mu.Unlock()
		return 0, 0
	}
	if p.expire(now) > 0 {
		p.checkPressure()
	}
	held, total = p.held.Len(), len(p.slots)
	m.mu.Unlock()
	return held, total
}

// Overflows is how many times the pool's overflow number was shown
// because every number was held, since the edge started.
func (m *Pools) Overflows(poolName string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.pools[poolName]; p != nil {
		return p.overflows
	}
	return 0
}

// Sweep releases every binding that ended by now, and says how many.
// Operations release their pool's expired bindings anyway; Sweep only
// keeps Snapshot and Pressure of idle pools current.
func (m *Pools) Sweep(now time.Time) int {
	m.mu.Lock()
	n := 0
	for _, p := range m.pools {
		if k := p.expire(now); k > 0 {
			n += k
			p.checkPressure()
		}
	}
	m.mu.Unlock()
	return n
}

// Snapshot is every binding held now, by pool and number, to be saved
// across a restart.
func (m *Pools) Snapshot() []Binding {
	now := m.clock.Now()
	m.mu.Lock()
	var out []Binding
	for _, p := range m.pools {
		for _, s := range p.held.s {
			if s.cur.Until.After(now) {
				out = append(out, s.cur)
			}
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Binding) int {
		if c := strings.Compare(a.Pool, b.Pool); c != 0 {
			return c
		}
		return strings.Compare(a.Number, b.Number)
	})
	return out
}

// Restore takes back bindings saved by Snapshot, as after a restart. A
// binding is dropped when its hold ended by now, when its number is no
// longer in that pool, or when the number or the visitor is already
// bound; a hold longer than the pool's hold from now is shortened to it,
// so a bad file cannot pin numbers. It says how many were restored.
func (m *Pools) Restore(bindings []Binding, now time.Time) int {
	m.mu.Lock()
	for _, p := range m.pools {
		p.expire(now)
	}
	n := 0
	for _, b := range bindings {
		p := m.pools[b.Pool]
		s := m.byNumber[b.Number]
		if p == nil || s == nil || s.cur.Pool != b.Pool || b.Visitor == "" || !b.Until.After(now) ||
			s.index < 0 || s.cur.Visitor != "" || p.visitors[bound(b.Visitor)] != nil {
			continue
		}
		heap.Remove(&p.free, s.index)
		b.Visitor, b.Visit = bound(b.Visitor), b.Visit.bounded()
		b.Until = minTime(b.Until, now.Add(p.cfg.Hold))
		s.cur = b
		heap.Push(&p.held, s)
		p.visitors[b.Visitor] = s
		n++
	}
	var raised []pressureEvent
	for _, p := range m.pools {
		if e, ok := p.checkPressure(); ok {
			raised = append(raised, e)
		}
	}
	m.mu.Unlock()
	m.tell(raised)
	return n
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// bound cuts s to maxVisitField bytes; a character cut in two is dropped.
func bound(s string) string {
	if len(s) <= maxVisitField {
		return s
	}
	return strings.ToValidUTF8(s[:maxVisitField], "")
}

// bounded also copies ClickIDs, so a caller changing its map later does
// not change (or race with readers of) the visit kept.
func (v Visit) bounded() Visit {
	for _, f := range []*string{
		&v.UTMSource, &v.UTMMedium, &v.UTMCampaign, &v.UTMTerm, &v.UTMContent,
		&v.GCLID, &v.GBRAID, &v.WBRAID, &v.FBCLID, &v.MSCLKID, &v.Referrer, &v.LandingPage,
	} {
		*f = bound(*f)
	}
	if len(v.ClickIDs) == 0 {
		v.ClickIDs = nil
		return v
	}
	// In name order, so which ones an over-full map keeps does not
	// depend on map iteration.
	names := slices.Sorted(maps.Keys(v.ClickIDs))
	kept := make(map[string]string, min(len(names), config.MaxClickIDs))
	for _, name := range names {
		if len(kept) == config.MaxClickIDs {
			break
		}
		val := v.ClickIDs[name]
		if name == "" || len(name) > maxClickIDName || val == "" || visitField(name) {
			continue
		}
		kept[name] = bound(val)
	}
	v.ClickIDs = kept
	if len(kept) == 0 {
		v.ClickIDs = nil
	}
	return v
}

// visitField is whether name is the JSON name of a field of Visit, which
// a click id in ClickIDs must not shadow.
func visitField(name string) bool {
	switch name {
	case "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
		"gclid", "gbraid", "wbraid", "fbclid", "msclkid", "referrer", "landing_page", "first_seen":
		return true
	}
	return false
}

// visitJSON has Visit's fields but not its methods, so encoding it does
// not come back to MarshalJSON.
type visitJSON Visit

// MarshalJSON writes ClickIDs as members of the object next to the
// fields, in name order.
func (v Visit) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(visitJSON(v))
	if err != nil || len(v.ClickIDs) == 0 {
		return b, err
	}
	extra := make(map[string]string, len(v.ClickIDs))
	for name, val := range v.ClickIDs {
		if !visitField(name) && val != "" {
			extra[name] = val
		}
	}
	if len(extra) == 0 {
		return b, nil
	}
	e, err := json.Marshal(extra)
	if err != nil {
		return nil, err
	}
	if string(b) == "{}" {
		return e, nil
	}
	// Both are objects: join their members.
	return append(append(b[:len(b)-1], ','), e[1:]...), nil
}

// UnmarshalJSON reads what MarshalJSON writes: a string member that is
// no field is a click id.
func (v *Visit) UnmarshalJSON(data []byte) error {
	var f visitJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return err
	}
	for name, raw := range members {
		var s string
		if visitField(name) || json.Unmarshal(raw, &s) != nil || s == "" {
			continue
		}
		if f.ClickIDs == nil {
			f.ClickIDs = map[string]string{}
		}
		f.ClickIDs[name] = s
	}
	*v = Visit(f)
	return nil
}

// Mediums of the built-in rules, and the source of visits nobody
// referred.
const (
	MediumCPC        = "cpc"
	MediumPaidSocial = "paid_social"
	MediumOrganic    = "organic"
	MediumReferral   = "referral"
	SourceDirect     = "direct"
	MediumNone       = "none"
)

// AttributionRules are a configuration's attribution section ready to
// apply to visits (see config.Attribution for what decides, in what
// order). They never change: a reload builds new ones with its Table.
type AttributionRules struct {
	// clickIDs are in precedence order.
	clickIDs []config.ClickID
	// extra are the click ids Visit has no field for, in precedence
	// order: those read into Visit.ClickIDs.
	extra   []string
	engines []string
	// referrals are longest host first, so the most specific match wins.
	referrals []config.Referral
	direct    config.Channel
	utmFirst  bool
}

// NewAttributionRules prepares a; nil is config.DefaultAttribution().
func NewAttributionRules(a *config.Attribution) *AttributionRules {
	if a == nil {
		d := config.DefaultAttribution()
		a = &d
	}
	r := &AttributionRules{
		clickIDs: slices.Clone(a.ClickIDs),
		engines:  slices.Clone(a.SearchEngines),
		direct:   a.Direct,
		utmFirst: a.UTMFirst,
	}
	for _, c := range r.clickIDs {
		if (&Visit{}).clickIDField(c.Param) == nil {
			r.extra = append(r.extra, c.Param)
		}
	}
	for _, ref := range a.Referrals {
		// Load normalizes hosts already; a Config built by hand may not.
		ref.Host = strings.TrimPrefix(strings.ToLower(ref.Host), "www.")
		r.referrals = append(r.referrals, ref)
	}
	// Stable: hosts of one length match the same referrer only when equal,
	// and then the one written first wins.
	slices.SortStableFunc(r.referrals, func(a, b config.Referral) int { return len(b.Host) - len(a.Host) })
	return r
}

// Attribution is the source, medium, campaign and keyword of a visit by
// the default rules, those analytics tools apply, so call reports match
// web reports:
//
//   - utm_source (and utm_medium) win when given;
//   - else a click id names its ad network, paid: gclid, gbraid and wbraid
//     are google/cpc, msclkid bing/cpc, fbclid facebook/paid_social;
//   - else a search engine's referrer is that engine/organic;
//   - else another site's referrer is its host/referral, the www. dropped;
//     the site itself (same host as the landing page) refers nobody;
//   - else direct/none.
//
// Campaign is utm_campaign and keyword utm_term, whatever decided the
// source. Parameters missing from the visit are read from its landing
// page's query, where the page put them. AttributionBy applies the rules
// of a configuration instead.
func (v Visit) Attribution() (source, medium, campaign, keyword string) {
	return v.AttributionBy(nil)
}

// AttributionBy is Attribution by the rules r; nil is the default rules.
func (v Visit) AttributionBy(r *AttributionRules) (source, medium, campaign, keyword string) {
	if r == nil {
		r = NewAttributionRules(nil)
	}
	v = r.withLandingParams(v, true)
	campaign, keyword = v.UTMCampaign, v.UTMTerm
	net, clicked := r.clickNetwork(v)
	switch {
	case v.UTMSource != "" && (r.utmFirst || !clicked):
		source, medium = v.UTMSource, v.UTMMedium
		if medium == "" && clicked {
			medium = net.Medium
		}
	case clicked:
		source, medium = net.Source, net.Medium
		if r.utmFirst && v.UTMMedium != "" {
			medium = v.UTMMedium
		}
	default:
		source, medium = r.referral(v)
		if v.UTMMedium != "" {
			medium = v.UTMMedium
		}
	}
	return source, medium, campaign, keyword
}

// WithClickIDs is v with the values of the rules' click ids that Visit
// has no field for filled into ClickIDs from the landing page, where
// dni.js sent every parameter of the page: so the click ids in force
// when a call comes are the ones read, even for a visit from before a
// reload. v's own map is never written; a new one is made when needed.
func (r *AttributionRules) WithClickIDs(v Visit) Visit {
	if r == nil {
		return v // the default rules have a field for each of theirs
	}
	return r.withLandingParams(v, false)
}

func (r *AttributionRules) clickNetwork(v Visit) (config.Channel, bool) {
	for _, c := range r.clickIDs {
		if v.clickID(c.Param) != "" {
			return c.Channel, true
		}
	}
	return config.Channel{}, false
}

func (r *AttributionRules) referral(v Visit) (source, medium string) {
	host := hostOf(v.Referrer)
	if host == "" || host == hostOf(v.LandingPage) {
		return r.direct.Source, r.direct.Medium
	}
	for _, ref := range r.referrals {
		if host == ref.Host || strings.HasSuffix(host, "."+ref.Host) {
			return ref.Source, ref.Medium
		}
	}
	if !strings.HasPrefix(host, "mail.") {
		labels := strings.Split(host, ".")
		for _, l := range labels[:len(labels)-1] {
			if slices.Contains(r.engines, l) {
				return l, MediumOrganic
			}
		}
	}
	return host, MediumReferral
}

// clickIDField is the field v keeps the click id param in, nil for one
// it keeps in ClickIDs.
func (v *Visit) clickIDField(param string) *string {
	switch param {
	case "gclid":
		return &v.GCLID
	case "gbraid":
		return &v.GBRAID
	case "wbraid":
		return &v.WBRAID
	case "fbclid":
		return &v.FBCLID
	case "msclkid":
		return &v.MSCLKID
	}
	return nil
}

func (v Visit) clickID(param string) string {
	if f := v.clickIDField(param); f != nil {
		return *f
	}
	return v.ClickIDs[param]
}

// hostOf is the lower-case host of a URL without port and www.; "" when
// there is none.
func hostOf(raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		// A referrer written without a scheme, "google.com/search".
		if u, err = url.Parse("//" + raw); err != nil {
			return ""
		}
	}
	h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if h == "" || strings.Trim(h, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != "" {
		return "" // an address or garbage names no site
	}
	return strings.TrimPrefix(h, "www.")
}

// withLandingParams fills in what the visit lacks from its landing page's
// query: the rules' click ids that Visit has no field for and, with
// fields, the utm and built-in click id fields too.
func (r *AttributionRules) withLandingParams(v Visit, fields bool) Visit {
	if v.LandingPage == "" || !strings.Contains(v.LandingPage, "?") || !fields && len(r.extra) == 0 {
		return v
	}
	u, err := url.Parse(v.LandingPage)
	if err != nil {
		return v
	}
	q := u.Query()
	if fields {
		for _, f := range []struct {
			dst  *string
			name string
		}{
			{&v.UTMSource, "utm_source"}, {&v.UTMMedium, "utm_medium"}, {&v.UTMCampaign, "utm_campaign"},
			{&v.UTMTerm, "utm_term"}, {&v.UTMContent, "utm_content"}, {&v.GCLID, "gclid"},
			{&v.GBRAID, "gbraid"}, {&v.WBRAID, "wbraid"}, {&v.FBCLID, "fbclid"}, {&v.MSCLKID, "msclkid"},
		} {
			if *f.dst == "" {
				*f.dst = q.Get(f.name)
			}
		}
	}
	copied := false
	for _, name := range r.extra {
		val := strings.TrimSpace(q.Get(name))
		if val == "" || v.ClickIDs[name] != "" {
			continue
		}
		if !copied {
			v.ClickIDs, copied = maps.Clone(v.ClickIDs), true
			if v.ClickIDs == nil {
				v.ClickIDs = map[string]string{}
			}
		}
		v.ClickIDs[name] = bound(val)
	}
	return v
}
