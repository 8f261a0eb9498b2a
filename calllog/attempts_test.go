package calllog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/callsign/callsign/call"
)

type attemptRow struct {
	CallID, Agent string
	StartedMS     sql.NullInt64
	RingMS        int64
	Result        string
}

func attemptRows(t testing.TB, s *Store) []attemptRow {
	t.Helper()
	rows, err := s.db.Query(`SELECT call_id, agent, started_at, ring_ms, result FROM attempts ORDER BY call_id, rowid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := []attemptRow{}
	for rows.Next() {
		var r attemptRow
		if err := rows.Scan(&r.CallID, &r.Agent, &r.StartedMS, &r.RingMS, &r.Result); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func ms(t time.Time) sql.NullInt64 { return sql.NullInt64{Int64: t.UnixMilli(), Valid: true} }

func TestAttemptsStoredOnce(t *testing.T) {
	s := newStore(t)
	e := answered("c1", "+15551230001", t0, time.Minute)
	e.Agent = "bob"
	e.Attempts = []call.Attempt{
		{Agent: "alice", StartedAt: t0.Add(2 * time.Second), Ring: 8*time.Second + 400*time.Microsecond, Result: call.AttemptCancelled},
		{Agent: "bob", StartedAt: t0.Add(2 * time.Second), Ring: 8 * time.Second, Result: call.AttemptAnswered},
		// An attempt without a start is kept, its start unknown, rather
		// than costing the call its record.
		{Agent: "carol", Result: call.AttemptUnreachable},
	}
	other := missed("c2", "+15551230002", t0)
	other.Attempts = []call.Attempt{{Agent: "alice", StartedAt: t0, Ring: 20 * time.Second, Result: call.AttemptNoAnswer}}
	// Journal recovery and event replay add the same call again, in the
	// same batch and later.
	addAll(t, s, e, other, e)
	replay := e
	replay.Attempts = append([]call.Attempt(nil), e.Attempts...)
	replay.Attempts[0].Result = call.AttemptNoAnswer
	addAll(t, s, replay, other)

	want := []attemptRow{
		{"c1", "alice", ms(t0.Add(2 * time.Second)), 8000, call.AttemptCancelled},
		{"c1", "bob", ms(t0.Add(2 * time.Second)), 8000, call.AttemptAnswered},
		{"c1", "carol", sql.NullInt64{}, 0, call.AttemptUnreachable},
		{"c2", "alice", ms(t0), 20000, call.AttemptNoAnswer},
	}
	if got := attemptRows(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("attempts:\n got %+v\nwant %+v", got, want)
	}
	if n := count(t, s); n != 2 {
		t.Fatalf("%d calls", n)
	}
}

// TestAttemptsWithTheirCall: a call whose write fails leaves no attempts
// behind, and its attempts do not take the batch's other calls with it.
func TestAttemptsWithTheirCall(t *testing.T) {
	s := newStore(t)
	// A trigger stands in for a record the database refuses at its
	// second attempt, after the call row and the first attempt went in.
	if _, err := s.db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON attempts WHEN NEW.agent = 'refused'
		BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	bad := missed("bad", "+15551230001", t0)
	bad.Attempts = []call.Attempt{
		{Agent: "alice", StartedAt: t0, Ring: time.Second, Result: call.AttemptNoAnswer},
		{Agent: "refused", StartedAt: t0, Ring: time.Second, Result: call.AttemptNoAnswer},
	}
	good := missed("good", "+15551230002", t0)
	good.Attempts = []call.Attempt{{Agent: "bob", StartedAt: t0, Ring: time.Second, Result: call.AttemptBusy}}
	s.Add(bad)
	s.Add(good)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if s.Failed() != 1 {
		t.Fatalf("failed %d, want 1", s.Failed())
	}
	p, err := s.Query(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(p.Entries); !reflect.DeepEqual(got, []string{"good"}) {
		t.Fatalf("calls %v", got)
	}
	want := []attemptRow{{"good", "bob", ms(t0), 1000, call.AttemptBusy}}
	if got := attemptRows(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("attempts:\n got %+v\nwant %+v", got, want)
	}
}

// TestMigrationToAttempts: a database written before attempts were kept
// gains the table on open, keeps its calls, and its answered calls still
// count for their agents.
func TestMigrationToAttempts(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	if err := step(db, 0, migrations()[0]); err != nil {
		t.Fatal(err)
	}
	old := answered("old", "+15551230001", t0, 90*time.Second)
	args, err := insertArgs(&old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(insertSQL, args...); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO attempts VALUES ('x')`); err == nil {
		t.Fatal("the first step already has attempts: this test no longer builds an older database")
	}
	db.Close()

	s, err := Open(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var version int
	if err := s.db.QueryRow(`SELECT version FROM schema_version`).Scan(&version); err != nil || version != len(migrations()) {
		t.Fatalf("version %d %v", version, err)
	}
	var indexes int
	if err := s.db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'attempts'`).Scan(&indexes); err != nil || indexes != 2 {
		t.Fatalf("attempts indexes: %d %v", indexes, err)
	}
	fresh := answered("new", "+15551230002", t0.Add(time.Hour), 30*time.Second)
	fresh.Attempts = []call.Attempt{{Agent: "alice", StartedAt: t0.Add(time.Hour), Ring: 5 * time.Second, Result: call.AttemptAnswered}}
	addAll(t, s, fresh)
	rep, err := s.AgentsReport(t0, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []AgentRow{{Agent: "alice", Offered: 2, Answered: 2, TalkMS: 120000, AvgTalkMS: 60000}}
	if !reflect.DeepEqual(rep.Agents, want) {
		t.Fatalf("agents:\n got %+v\nwant %+v", rep.Agents, want)
	}
}

func TestAgentsReportAttempts(t *testing.T) {
	s := newStore(t)
	att := func(agent string, start time.Time, ring time.Duration, result string) call.Attempt {
		return call.Attempt{Agent: agent, StartedAt: start, Ring: ring, Result: result}
	}
	// Ring-all: bob answers after 8 s; alice's phone stops because bob
	// took the call, which is no miss of hers.
	ringAll := answered("ring-all", "+15551230001", t0, 100*time.Second)
	ringAll.Agent = "bob"
	ringAll.AnsweredAt = t0.Add(10 * time.Second)
	ringAll.Attempts = []call.Attempt{
		att("alice", t0.Add(2*time.Second), 8*time.Second, call.AttemptCancelled),
		att("bob", t0.Add(2*time.Second+time.Millisecond), 8*time.Second-time.Millisecond, call.AttemptAnswered),
	}
	// Rung in turn: alice lets it ring out, bob declines, carol is still
	// ringing when the caller hangs up: all three missed it.
	gaveUp := missed("gave-up", "+15551230002", t0.Add(time.Minute))
	gaveUp.Attempts = []call.Attempt{
		att("alice", t0.Add(time.Minute), 15*time.Second, call.AttemptNoAnswer),
		att("bob", t0.Add(time.Minute+15*time.Second), 2*time.Second, call.AttemptDeclined),
		att("carol", t0.Add(time.Minute+17*time.Second), 5*time.Second, call.AttemptCancelled),
	}
	// Overflow: alice rings until the call moves to another queue, where
	// carol answers. Carol's phone rang only once alice's had stopped
	// (the same millisecond), so her answer does not excuse alice.
	overflow := answered("overflow", "+15551230003", t0.Add(2*time.Minute), 40*time.Second)
	overflow.Agent = "carol"
	overflow.AnsweredAt = t0.Add(2*time.Minute + 35*time.Second)
	overflow.EndedAt = overflow.AnsweredAt.Add(40 * time.Second)
	overflow.Attempts = []call.Attempt{
		att("alice", t0.Add(2*time.Minute), 30*time.Second, call.AttemptCancelled),
		att("carol", t0.Add(2*time.Minute+30*time.Second), 5*time.Second, call.AttemptAnswered),
	}
	// Phones that never rang properly still had the call offered.
	unreachable := missed("unreachable", "+15551230004", t0.Add(3*time.Minute))
	unreachable.Attempts = []call.Attempt{
		att("dave", t0.Add(3*time.Minute), 0, call.AttemptUnreachable),
		att("dave", t0.Add(3*time.Minute+time.Second), 0, call.AttemptBusy),
	}
	// Stored before attempts were kept: erin answered it.
	legacy := answered("legacy", "+15551230005", t0.Add(4*time.Minute), 20*time.Second)
	legacy.Agent = "erin"
	// Outside the range: counts for nobody.
	before := answered("before", "+15551230006", t0.Add(-time.Second), time.Hour)
	before.Agent = "bob"
	before.Attempts = []call.Attempt{att("bob", t0, time.Second, call.AttemptAnswered), att("alice", t0, time.Second, call.AttemptNoAnswer)}
	addAll(t, s, ringAll, gaveUp, overflow, unreachable, legacy, before)

	rep, err := s.AgentsReport(t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := AgentsReport{
		Agents: []AgentRow{
			{Agent: "bob", Offered: 2, Answered: 1, Missed: 1, TalkMS: 100000, AvgTalkMS: 100000},
			{Agent: "carol", Offered: 2, Answered: 1, Missed: 1, TalkMS: 40000, AvgTalkMS: 40000},
			{Agent: "erin", Offered: 1, Answered: 1, TalkMS: 20000, AvgTalkMS: 20000},
			{Agent: "alice", Offered: 3, Missed: 2},
			{Agent: "dave", Offered: 2, Missed: 2},
		},
		Queues: []QueueRow{{Queue: "sales", Calls: 3, Missed: 0}, {Queue: "support", Calls: 2, Missed: 2}},
	}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("agents report:\n got %+v\nwant %+v", rep, want)
	}

	// Two answered calls average their talk time.
	second := answered("second", "+15551230007", t0.Add(5*time.Minute), 51*time.Second)
	second.Agent = "bob"
	second.Attempts = []call.Attempt{att("bob", t0.Add(5*time.Minute), 10*time.Second, call.AttemptAnswered)}
	addAll(t, s, second)
	rep, err = s.AgentsReport(t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.Agents[0], (AgentRow{Agent: "bob", Offered: 3, Answered: 2, Missed: 1, TalkMS: 151000, AvgTalkMS: 75500}); got != want {
		t.Fatalf("bob after a second call: %+v, want %+v", got, want)
	}

	empty, err := s.AgentsReport(t0.Add(-time.Hour), t0.Add(-time.Minute))
	if err != nil || len(empty.Agents) != 0 || len(empty.Queues) != 0 {
		t.Fatalf("empty range: %+v %v", empty, err)
	}
}

// holdWriteLock keeps the writer from committing until the returned
// function is called.
func holdWriteLock(t *testing.T, s *Store) func() {
	t.Helper()
	conn, err := s.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
			t.Error(err)
		}
		conn.Close()
	}
}

func pendingCount(s *Store) int {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	n := 0
	for _, times := range s.pending {
		n += len(times)
	}
	return n
}

// TestFirstCallSeesQueuedCalls: a caller who hangs up and calls straight
// back is not new, even while the first call waits for the disk.
func TestFirstCallSeesQueuedCalls(t *testing.T) {
	s := newStore(t)
	release := holdWriteLock(t, s)
	caller := "+15551230001"
	s.Add(missed("c1", caller, t0))
	s.Add(missed("c2", caller, t0.Add(10*time.Second)))
	s.Add(missed("anon", "anonymous", t0))
	for _, c := range []struct {
		name   string
		caller string
		at     time.Time
		want   bool
	}{
		{"calls back a moment later", caller, t0.Add(15 * time.Second), false},
		{"the queued call itself", caller, t0, true},
		{"queued calls after at do not count", caller, t0.Add(-time.Second), true},
		{"more than 30 days later", caller, t0.Add(10*time.Second + firstCallWindow + time.Millisecond), true},
		{"another caller", "+15551239999", t0.Add(time.Minute), true},
		{"anonymous", "anonymous", t0.Add(time.Minute), false},
	} {
		got, err := s.FirstCallContext(t.Context(), c.caller, c.at)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("while queued, %s: got %v, want %v", c.name, got, c.want)
		}
	}
	if n := count(t, s); n != 0 {
		t.Fatalf("%d calls written while the write lock was held", n)
	}
	release()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := pendingCount(s); n != 0 {
		t.Fatalf("%d calls still pending after they were written", n)
	}
	if first, err := s.FirstCall(caller, t0.Add(15*time.Second)); err != nil || first {
		t.Fatalf("once written: %v %v", first, err)
	}
}

// TestPendingBounded: calls that were dropped or failed do not stay in
// the record of queued callers, so it never outgrows the queue.
func TestPendingBounded(t *testing.T) {
	s, err := open(t.TempDir(), zerolog.Nop(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release := holdWriteLock(t, s)
	const n = 2000
	for i := range n {
		s.Add(missed(fmt.Sprintf("c%d", i), fmt.Sprintf("+1555123%04d", i), t0))
	}
	// The queue holds 4 and the writer one batch, blocked on the lock.
	if p := pendingCount(s); p > 4+maxBatch || p < 4 {
		t.Fatalf("%d callers pending with a queue of 4", p)
	}
	if uint64(pendingCount(s))+s.Dropped() != n {
		t.Fatalf("%d pending + %d dropped != %d", pendingCount(s), s.Dropped(), n)
	}
	release()
	s.Add(missed("bad", "+15559999999", time.Time{})) // refused by the database
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if p := pendingCount(s); p != 0 {
		t.Fatalf("%d callers pending after the flush", p)
	}
}

// TestFirstCallContextBounded: with the database locked, the lookup gives
// up when its context ends rather than waiting out the busy timeout.
func TestFirstCallContextBounded(t *testing.T) {
	s := newStore(t)
	addAll(t, s, missed("c1", "+15551230001", t0))
	conn, err := s.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Exclusive locking keeps even readers out, as a checkpoint or
	// another process's exclusive transaction would.
	for _, q := range []string{`PRAGMA locking_mode = EXCLUSIVE`, `BEGIN EXCLUSIVE`, `UPDATE schema_version SET version = version`} {
		if _, err := conn.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	first, err := s.FirstCallContext(ctx, "+15551239999", t0.Add(time.Hour))
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || first {
		t.Fatalf("locked database: %v %v", first, err)
	}
	if took > 2*time.Second {
		t.Fatalf("took %v with a 200 ms deadline", took)
	}
	// A caller still queued is known without the database.
	s.Add(missed("c2", "+15551230002", t0))
	first, err = s.FirstCallContext(t.Context(), "+15551230002", t0.Add(time.Minute))
	if err != nil || first {
		t.Fatalf("queued caller, locked database: %v %v", first, err)
	}
	for _, q := range []string{`ROLLBACK`, `PRAGMA locking_mode = NORMAL`, `SELECT count(*) FROM calls`} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	if first, err := s.FirstCallContext(t.Context(), "+15551230001", t0.Add(time.Hour)); err != nil || first {
		t.Fatalf("unlocked: %v %v", first, err)
	}
	if err := s.Flush(); err != nil || s.Failed() != 0 {
		t.Fatalf("flush %v, failed %d", err, s.Failed())
	}
}

func TestGet(t *testing.T) {
	s := newStore(t)
	e := answered("c1", "+15551230001", t0, time.Minute)
	e.Recording = &call.RecordingResult{Path: "2025/03/10/c1.wav", Duration: time.Minute}
	addAll(t, s, e, missed("c2", "+15551230002", t0))
	got, err := s.Get("c1")
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("Get c1: %+v %v", got, err)
	}
	if _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an unknown call: %v", err)
	}
}
