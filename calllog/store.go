// Package calllog keeps the final record of every call in a SQLite
// database (calls.db under the storage directory), for the call list,
// CSV and Google Ads exports, reports, first-time caller detection and
// the DNI pool's visitor bindings across restarts.
//
// Writes go through one goroutine with a bounded queue, so a call that
// ends never waits on the disk: when the queue is full the record is
// dropped, counted and logged, and NATS (with its outbox) stays the
// record that cannot be lost.
package calllog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	// The pure Go driver keeps the build free of cgo.
	_ "modernc.org/sqlite"

	"github.com/callsign/callsign/call"
)

// FileName is the database's name inside the storage directory.
const FileName = "calls.db"

const (
	// queueSize bounds the memory held by records waiting for the disk;
	// at a few hundred bytes each this is well under a few MB.
	queueSize = 8192
	// maxBatch keeps one transaction short enough that readers and
	// SaveBindings are never held up for long.
	maxBatch = 512
	// busyTimeoutMS is how long a statement waits for another writer
	// (the batch writer, SaveBindings, another process) before failing.
	busyTimeoutMS = 5000
)

// Entry is what the store keeps of one call: the final record, with its
// visit and first-call flag in the form they are stored and queried in.
type Entry struct {
	call.Record
	// Visitor is the web visit a pool number was shown to, by the event's
	// field names (utm_*, gclid, referrer, landing_page, first_seen); nil
	// when none.
	Visitor map[string]string
	// FirstCall: no call from this caller within the 30 days before this
	// one (see Store.FirstCall).
	FirstCall bool
}

// EntryOf is a call's final record as the store keeps it.
func EntryOf(rec *call.Record) Entry {
	e := Entry{Record: *rec}
	if v := rec.Visitor; v != nil {
		e.Visitor = map[string]string{}
		for k, val := range map[string]string{
			"utm_source": v.UTMSource, "utm_medium": v.UTMMedium, "utm_campaign": v.UTMCampaign,
			"utm_term": v.UTMTerm, "utm_content": v.UTMContent, "gclid": v.GCLID, "gbraid": v.GBRAID,
			"wbraid": v.WBRAID, "fbclid": v.FBCLID, "msclkid": v.MSCLKID, "referrer": v.Referrer,
			"landing_page": v.LandingPage,
		} {
			if val != "" {
				e.Visitor[k] = val
			}
		}
		if !v.FirstSeen.IsZero() {
			e.Visitor["first_seen"] = v.FirstSeen.UTC().Format(time.RFC3339Nano)
		}
		// The config refuses click id names that would clash with the
		// fields above.
		for k, val := range v.ClickIDs {
			if val != "" {
				e.Visitor[k] = val
			}
		}
	}
	if rec.FirstCall != nil {
		e.FirstCall = *rec.FirstCall
	}
	return e
}

// Store is the call log. Its methods are safe for concurrent use.
type Store struct {
	db   *sql.DB
	log  zerolog.Logger
	path string

	// mu guards closed and the send on queue against Close closing it.
	mu      sync.RWMutex
	closed  bool
	queue   chan item
	done    chan struct{}
	dropped atomic.Uint64
	failed  atomic.Uint64

	// pending holds, by caller, the start times (ms) of the calls in the
	// write queue or the batch being written, so that FirstCall knows a
	// caller who hangs up and calls back before the record is on disk.
	// Entries leave once their batch is committed (or has failed), so it
	// never holds more than the queue and one batch.
	pmu     sync.Mutex
	pending map[string][]int64
}

// item is either a record to write or, with flushed set, a marker the
// writer closes once everything queued before it is written.
type item struct {
	entry   Entry
	flushed chan struct{}
}

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("calllog: store closed")

// Open opens (creating if needed) dir/calls.db, brings its schema up to
// date and starts the writer.
func Open(dir string, log zerolog.Logger) (*Store, error) {
	return open(dir, log, queueSize)
}

func open(dir string, log zerolog.Logger, qsize int) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("calllog: storage directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	// The driver takes its parameters after the first '?'.
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("calllog: %s: a '?' in the path is not supported", path)
	}
	// Every pooled connection gets the same settings. IMMEDIATE
	// transactions take the write lock at BEGIN, so two writers queue on
	// busy_timeout instead of one failing at once on a lock upgrade.
	dsn := path + fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate", busyTimeoutMS)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("calllog: open %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("calllog: open %s: %w", path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("calllog: %s: %w", path, err)
	}
	s := &Store{
		db:      db,
		log:     log.With().Str("component", "calllog").Logger(),
		path:    path,
		queue:   make(chan item, qsize),
		done:    make(chan struct{}),
		pending: map[string][]int64{},
	}
	go s.writer()
	return s, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Dropped is the number of records lost because the queue was full or
// the store closed.
func (s *Store) Dropped() uint64 { return s.dropped.Load() }

// Failed is the number of records the database refused to write.
func (s *Store) Failed() uint64 { return s.failed.Load() }

// Add queues a call's final record; it never blocks. A record whose
// call_id is already stored is ignored, attempts included, so replaying
// completed events (after a restart, from JetStream) is harmless.
func (s *Store) Add(e Entry) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		n := s.dropped.Add(1)
		s.log.Warn().Str("call_id", e.ID).Uint64("dropped", n).Msg("call log closed, call record dropped")
		return
	}
	// Known before it is queued: once queued, the writer may commit and
	// forget it at any moment.
	s.pend(&e)
	select {
	case s.queue <- item{entry: e}:
	default:
		s.unpend([]Entry{e})
		n := s.dropped.Add(1)
		s.log.Warn().Str("call_id", e.ID).Uint64("dropped", n).Msg("call log queue full, call record dropped")
	}
}

// Flush waits until every record queued before it is written (or has
// failed), so that reads see them.
func (s *Store) Flush() error {
	ch := make(chan struct{})
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	// A blocking send: Flush is for callers that chose to wait.
	s.queue <- item{flushed: ch}
	s.mu.RUnlock()
	<-ch
	return nil
}

// Close writes what is queued, stops the writer and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	<-s.done
	return s.db.Close()
}

func (s *Store) writer() {
	defer close(s.done)
	batch := make([]Entry, 0, maxBatch)
	var flushes []chan struct{}
	for it := range s.queue {
		batch, flushes = s.collect(batch[:0], flushes[:0], it)
		// Take whatever else is already waiting, without waiting for more:
		// one transaction (one fsync of the WAL at most) per burst.
	more:
		for len(batch) < maxBatch {
			select {
			case it, ok := <-s.queue:
				if !ok {
					break more
				}
				batch, flushes = s.collect(batch, flushes, it)
			default:
				break more
			}
		}
		if len(batch) > 0 {
			s.write(batch)
			// Only now: a reader that misses a caller here finds the
			// call in the database.
			s.unpend(batch)
		}
		for _, ch := range flushes {
			close(ch)
		}
	}
}

func (s *Store) pend(e *Entry) {
	if anonymous(e.Caller) || e.StartedAt.IsZero() {
		return
	}
	s.pmu.Lock()
	s.pending[e.Caller] = append(s.pending[e.Caller], e.StartedAt.UnixMilli())
	s.pmu.Unlock()
}

func (s *Store) unpend(batch []Entry) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for i := range batch {
		e := &batch[i]
		if anonymous(e.Caller) || e.StartedAt.IsZero() {
			continue
		}
		times := s.pending[e.Caller]
		if j := slices.Index(times, e.StartedAt.UnixMilli()); j >= 0 {
			times = slices.Delete(times, j, j+1)
		}
		if len(times) == 0 {
			delete(s.pending, e.Caller)
		} else {
			s.pending[e.Caller] = times
		}
	}
}

// pendingWithin reports whether a call from caller that started in
// [fromMS, toMS) is waiting to be written.
func (s *Store) pendingWithin(caller string, fromMS, toMS int64) bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for _, ms := range s.pending[caller] {
		if ms >= fromMS && ms < toMS {
			return true
		}
	}
	return false
}

func (s *Store) collect(batch []Entry, flushes []chan struct{}, it item) ([]Entry, []chan struct{}) {
	if it.flushed != nil {
		return batch, append(flushes, it.flushed)
	}
	return append(batch, it.entry), flushes
}

const insertSQL = `INSERT INTO calls (
	call_id, sip_call_id, caller, caller_name, tracking_number,
	source, medium, campaign, keyword, pool, visitor, first_call,
	flow, ivr, ivr_exit, queue, agent, outcome, missed_reason, hangup_by,
	started_at, answered_at, ended_at, wait_ms, talk_ms, duration_ms,
	consent, recording_path, recording_ms
) VALUES (?,?,?,?,?, ?,?,?,?,?,?,?, ?,?,?,?,?,?,?,?, ?,?,?,?,?,?, ?,?,?)
ON CONFLICT(call_id) DO NOTHING`

const insertAttemptSQL = `INSERT INTO attempts (call_id, agent, started_at, ring_ms, result) VALUES (?,?,?,?,?)`

// write stores a batch in one transaction; if that fails, each record is
// tried alone so that one bad record does not take the others with it.
func (s *Store) write(batch []Entry) {
	err := s.insertTx(batch)
	if err == nil {
		return
	}
	if len(batch) > 1 {
		s.log.Warn().Err(err).Int("records", len(batch)).Msg("call log batch failed, writing records one by one")
		for _, e := range batch {
			if err := s.insertTx([]Entry{e}); err != nil {
				s.failed.Add(1)
				s.log.Error().Err(err).Str("call_id", e.ID).Msg("call log write failed")
			}
		}
		return
	}
	s.failed.Add(1)
	s.log.Error().Err(err).Str("call_id", batch[0].ID).Msg("call log write failed")
}

func (s *Store) insertTx(batch []Entry) error {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	stmt, err := tx.PrepareContext(ctx, insertSQL)
	if err != nil {
		return err
	}
	defer stmt.Close()
	attStmt, err := tx.PrepareContext(ctx, insertAttemptSQL)
	if err != nil {
		return err
	}
	defer attStmt.Close()
	for i := range batch {
		e := &batch[i]
		args, err := insertArgs(e)
		if err != nil {
			return fmt.Errorf("call %s: %w", e.ID, err)
		}
		res, err := stmt.ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("call %s: %w", e.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("call %s: %w", e.ID, err)
		}
		// A call already stored came with its attempts the first time;
		// adding them again would count every ring twice.
		if n == 0 {
			continue
		}
		for _, a := range e.Attempts {
			if _, err := attStmt.ExecContext(ctx, e.ID, a.Agent, unixMS(a.StartedAt), a.Ring.Milliseconds(), a.Result); err != nil {
				return fmt.Errorf("call %s: attempt of %s: %w", e.ID, a.Agent, err)
			}
		}
	}
	return tx.Commit()
}

func insertArgs(e *Entry) ([]any, error) {
	if e.ID == "" {
		return nil, errors.New("record without call_id")
	}
	if e.StartedAt.IsZero() {
		return nil, errors.New("record without started_at")
	}
	var visitor any
	if len(e.Visitor) > 0 {
		b, err := json.Marshal(e.Visitor)
		if err != nil {
			return nil, err
		}
		visitor = string(b)
	}
	var ivr any
	if e.IVR != nil {
		b, err := json.Marshal(e.IVR)
		if err != nil {
			return nil, err
		}
		ivr = string(b)
	}
	var wait, talk, dur any
	if d, ok := e.Wait(); ok {
		wait = d.Milliseconds()
	}
	if d, ok := e.Talk(); ok {
		talk = d.Milliseconds()
	}
	if d, ok := e.Duration(); ok {
		dur = d.Milliseconds()
	}
	var recPath, recMS any
	if e.Recording != nil {
		recPath = e.Recording.Path
		recMS = e.Recording.Duration.Milliseconds()
	}
	return []any{
		e.ID, e.SIPCallID, e.Caller, e.CallerName, e.TrackingNumber,
		e.Source, e.Medium, e.Campaign, e.Keyword, e.Pool, visitor, e.FirstCall,
		e.Flow, ivr, e.IVRExit, e.Queue, e.Agent, e.Outcome, e.MissedReason, e.HangupBy,
		unixMS(e.StartedAt), unixMS(e.AnsweredAt), unixMS(e.EndedAt), wait, talk, dur,
		e.Consent, recPath, recMS,
	}, nil
}

// unixMS is a time as stored: milliseconds since the epoch (UTC by
// definition), NULL for an unknown time.
func unixMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func fromMS(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64).UTC()
}

// anonymous callers withheld their number; every such call shares the
// same caller value, so it says nothing about who called before.
func anonymous(caller string) bool {
	return caller == "" || strings.EqualFold(caller, "anonymous")
}

// firstCallWindow is how far back a previous call makes a caller known.
const firstCallWindow = 30 * 24 * time.Hour

// FirstCall is FirstCallContext without a deadline.
func (s *Store) FirstCall(caller string, at time.Time) (bool, error) {
	return s.FirstCallContext(context.Background(), caller, at)
}

// FirstCallContext reports whether no call from caller started within the
// 30 days before at (a call starting exactly at at is not "before", so a
// stored call does not count against itself). Calls still waiting to be
// written count too: a caller who hangs up and calls straight back is not
// new the second time. Anonymous callers get false: the store cannot tell
// them apart, and counting every withheld number as new would inflate
// first-time caller figures.
//
// It returns when ctx ends even if the database is still busy (the
// query is abandoned), so a caller on the call path can bound its wait;
// the answer is then unknown and the error says so.
func (s *Store) FirstCallContext(ctx context.Context, caller string, at time.Time) (bool, error) {
	if anonymous(caller) {
		return false, nil
	}
	fromMS, toMS := at.Add(-firstCallWindow).UnixMilli(), at.UnixMilli()
	if s.pendingWithin(caller, fromMS, toMS) {
		return false, nil
	}
	lookup := func() (bool, error) {
		var one int
		err := s.db.QueryRowContext(ctx, `SELECT 1 FROM calls WHERE caller = ? AND started_at >= ? AND started_at < ? LIMIT 1`,
			caller, fromMS, toMS).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("calllog: first call: %w", err)
		}
		return false, nil
	}
	if ctx.Done() == nil {
		return lookup()
	}
	// The driver does not give up a wait on a locked database (up to
	// busy_timeout) when ctx ends, so the wait happens aside.
	type result struct {
		first bool
		err   error
	}
	// Buffered: the lookup may finish after nobody waits for it any more.
	done := make(chan result, 1)
	go func() {
		first, err := lookup()
		done <- result{first, err}
	}()
	select {
	case r := <-done:
		return r.first, r.err
	case <-ctx.Done():
		return false, fmt.Errorf("calllog: first call: %w", context.Cause(ctx))
	}
}
