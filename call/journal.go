package call

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"
)

// The journal is how an edge killed with calls up (SIGKILL, a crash, the
// OOM killer) still ends each of them with its call.completed: every
// call's state is appended to a file as it changes, and the next start
// ends the calls found started but not ended.
//
// The file, <dir>/calls.journal, is JSON lines:
//
//	{"k":"s","t":T,"r":{...}}          a call started: its record (T: unix ns)
//	{"k":"u","t":T,"r":{...}}          the record of a call, updated (answered, ...)
//	{"k":"e","t":T,"id":"..."}         the call ended: its call.completed is out
//	{"k":"a","t":T}                    the edge was alive at T, with calls up
//	{"k":"s","t":T,"end":E,"r":{...}}  a call of an earlier run, taken to have ended at E
//
// The lines go out with plain write(2) calls from one goroutine, which
// batches whatever queued meanwhile. A killed process's writes are in the
// page cache and survive it; fsync runs at most once a second (with the
// alive tick), so a power loss or kernel crash may lose about the last
// second. The alive tick makes ended_at of a recovered call the last
// moment the edge was known alive rather than the time of the restart,
// which may be much later.
//
// The file only grows until it passes a size; then it is rewritten with
// the calls still up (a temporary file, fsync, rename, fsync of the
// directory), so it stays about as large as the calls up make it.
//
// Calls never wait for the disk: Publish hands the event to the writer
// through a bounded queue and returns. A full queue or a failing disk is
// logged (at most every errorLogEvery) and counted, and calls go on; the
// state kept in memory is rewritten whole at the next successful
// compaction, so the file is right again once the disk is.
const (
	journalFile     = "calls.journal"
	journalQueue    = 1024
	defaultTick     = time.Second
	defaultCompact  = 1 << 20
	errorLogEvery   = 10 * time.Second
	compactRetry    = time.Second
	maxJournalBatch = 64 << 10
)

// JournalOptions configure a Journal.
type JournalOptions struct {
	// Dir holds the journal file; it is created if missing.
	Dir string
	// Publisher receives every event after the journal took note of it,
	// and the events that end the calls of an earlier run. Recovery uses
	// its IDPublisher and Flusher methods when it has them.
	Publisher Publisher
	Clock     Clock
	Log       zerolog.Logger
	// Tick is how often the journal notes the edge is alive while calls
	// are up; 1s when 0.
	Tick time.Duration
	// CompactAt is the size past which the file is rewritten with only
	// the calls still up; 1 MiB when 0. It grows to twice what the last
	// rewrite left, so that many calls up do not mean a rewrite per event.
	CompactAt int64

	// openFile opens the journal for appending; tests replace it with a
	// failing disk.
	openFile func(path string) (journalWriter, error)
}

// IDPublisher is a Publisher that can be told an event's id. Recovery
// uses it to give the events it publishes ids derived from the call and
// the event, so that publishing them again after another crash yields
// the same ids, which the events stream drops as duplicates.
type IDPublisher interface {
	PublishWithID(id, event string, at time.Time, rec Record)
}

// Flusher is a Publisher that can say when the events it was given are
// safe from a crash. Recovery forgets the calls it ended only then; until
// then they stay in the journal and are ended again at the next start.
type Flusher interface {
	Flush(ctx context.Context) error
}

// journalWriter is the journal file as the writer uses it.
type journalWriter interface {
	io.Writer
	Sync() error
	Close() error
}

func openAppend(path string) (journalWriter, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
}

// Journal is a Publisher that keeps the state of the calls up on disk
// before handing their events on; see the comment at the top of this file.
type Journal struct {
	opts JournalOptions
	path string
	log  zerolog.Logger

	ops       chan journalOp
	stop      chan struct{}
	done      chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once

	// recovered are the calls an earlier run left up, fixed at Open.
	recovered []Record

	errors     atomic.Uint64
	dropped    atomic.Uint64
	dropLogged atomic.Int64 // unix ns of the last log of a drop

	// The writer goroutine's own (Open's, before it starts).
	f           journalWriter
	size        int64
	compactAt   int64
	calls       map[string]*journalEntry
	live        int   // calls of this run in calls
	lastAlive   int64 // unix ns
	buf         []byte
	torn        bool // the file may end mid-line: start the next write on a new one
	dirty       bool // written since the last fsync
	needCompact bool // a write failed: the file misses what memory has
	// compactFailed spaces out rewrites of a failing disk, which would
	// otherwise be tried again at every event.
	compactFailed time.Time
	errLogged     time.Time
	quiet         int // errors not logged since errLogged
}

// journalEntry is a call the journal knows to be up.
type journalEntry struct {
	rec []byte // the record as the journal writes it
	// leg is Record.Leg as a JSON string: written with the call's start
	// only, since it never changes.
	leg  []byte
	last int64 // unix ns of the latest line about the call
	// end is, for a call of an earlier run, when it is taken to have
	// ended; 0 for a call of this run.
	end int64
}

type journalOpKind uint8

const (
	opStart journalOpKind = iota + 1
	opUpdate
	opEnd
	opEndID   // end a recovered call, by id
	opBarrier // done is closed once everything before it is written
	opCompact // rewrite the file now, then close done
)

type journalOp struct {
	kind journalOpKind
	at   time.Time
	rec  Record
	id   string
	done chan struct{}
}

// OpenJournal reads what an earlier run left in the journal, fixes when
// each call it left up ended, and starts taking events. Only a journal
// that cannot be read or created is an error; lines that do not parse (a
// torn last line, after a kill mid-write) are skipped.
func OpenJournal(opts JournalOptions) (*Journal, error) {
	if opts.Tick <= 0 {
		opts.Tick = defaultTick
	}
	if opts.CompactAt <= 0 {
		opts.CompactAt = defaultCompact
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.openFile == nil {
		opts.openFile = openAppend
	}
	j := &Journal{
		opts:      opts,
		path:      filepath.Join(opts.Dir, journalFile),
		log:       opts.Log.With().Str("component", "journal").Logger(),
		ops:       make(chan journalOp, journalQueue),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		calls:     map[string]*journalEntry{},
		compactAt: opts.CompactAt,
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	data, err := os.ReadFile(j.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j.load(data)
	if len(data) > 0 {
		// Fixing the recovered calls' end on disk first means that alive
		// ticks of this run never move it: the ids of their events depend
		// on it.
		if err := j.compact(); err != nil {
			j.failed("rewriting the journal at start", err)
			j.torn = data[len(data)-1] != '\n'
			j.needCompact, j.compactFailed = true, time.Now()
		}
	}
	if _, broken := j.f.(failedWriter); j.f == nil || broken {
		if j.f, err = opts.openFile(j.path); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		j.size = int64(len(data))
	}
	go j.run()
	return j, nil
}

// journalLine is one line of the file, as read back.
type journalLine struct {
	K   string          `json:"k"`
	T   int64           `json:"t"`
	ID  string          `json:"id"`
	End int64           `json:"end"`
	Leg json.RawMessage `json:"leg"`
	R   json.RawMessage `json:"r"`
}

// load rebuilds the calls left up from the file's lines and decides when
// each ended: the later of the last alive tick and its own last line.
func (j *Journal) load(data []byte) {
	skipped := 0
	for len(data) > 0 {
		line, rest, complete := bytes.Cut(data, []byte{'\n'})
		data = rest
		if len(line) == 0 {
			continue
		}
		if !complete {
			// Killed mid-write: the tail never became a whole line.
			skipped++
			break
		}
		var l journalLine
		if err := json.Unmarshal(line, &l); err != nil {
			skipped++
			continue
		}
		switch l.K {
		case "a":
			j.lastAlive = max(j.lastAlive, l.T)
		case "s", "u":
			var r journalRecord
			if err := json.Unmarshal(l.R, &r); err != nil || r.ID == "" {
				skipped++
				continue
			}
			e, ok := j.calls[r.ID]
			if !ok {
				if l.K == "u" {
					continue // an update of a call whose start was lost
				}
				e = &journalEntry{}
				j.calls[r.ID] = e
			}
			e.rec = bytes.Clone(l.R)
			if len(l.Leg) > 0 {
				e.leg = bytes.Clone(l.Leg)
			}
			e.last = max(e.last, l.T)
			if l.End != 0 {
				e.end = l.End
			}
		case "e":
			delete(j.calls, l.ID)
		default:
			skipped++
		}
	}
	if skipped > 0 {
		j.log.Warn().Int("lines", skipped).Str("file", j.path).Msg("journal lines that do not parse skipped (a torn last line is what a kill mid-write leaves)")
	}
	for id, e := range j.calls {
		if e.end == 0 {
			e.end = max(j.lastAlive, e.last)
		}
		var r journalRecord
		_ = json.Unmarshal(e.rec, &r) // it parsed above
		rec := r.record()
		rec.ID = id
		if len(e.leg) > 0 {
			_ = json.Unmarshal(e.leg, &rec.Leg)
		}
		endCall(&rec, time.Unix(0, e.end))
		j.recovered = append(j.recovered, rec)
	}
	slices.SortFunc(j.recovered, func(a, b Record) int { return a.StartedAt.Compare(b.StartedAt) })
}

// endCall makes rec the final record of a call that was up when the edge
// stopped: the edge ended it, at end.
func endCall(rec *Record, end time.Time) {
	if end.Before(rec.StartedAt) {
		end = rec.StartedAt
	}
	if end.Before(rec.AnsweredAt) {
		end = rec.AnsweredAt
	}
	rec.EndedAt = end
	rec.HangupBy = HangupEdge
	if rec.AnsweredAt.IsZero() {
		rec.Outcome = OutcomeMissed
		rec.MissedReason = MissedError
	} else {
		rec.Outcome = OutcomeAnswered
	}
}

// Recover publishes call.missed (for those never answered) and
// call.completed for each call an earlier run left up, hangup_by edge and
// ended_at the last moment that run was known alive, and returns their
// final records. It is called once, before calls are taken. The calls
// are forgotten once the publisher has the events safe (Flusher), within
// ctx; otherwise they stay for the next start, whose events get the same
// ids.
func (j *Journal) Recover(ctx context.Context) []Record {
	recs := j.recovered
	if len(recs) == 0 {
		return nil
	}
	idp, _ := j.opts.Publisher.(IDPublisher)
	for _, rec := range recs {
		j.log.Warn().Str("call_id", rec.ID).Str("sip_call_id", rec.SIPCallID).Str("outcome", rec.Outcome).
			Time("ended_at", rec.EndedAt).Msg("call cut short by a stop of the edge: ended as of the last moment the edge was known alive")
		events := []string{EventCompleted}
		if rec.Outcome == OutcomeMissed {
			events = []string{EventMissed, EventCompleted}
		}
		for _, ev := range events {
			if idp != nil {
				idp.PublishWithID(recoveredEventID(rec.ID, ev, rec.EndedAt), ev, rec.EndedAt, rec)
			} else {
				j.opts.Publisher.Publish(ev, rec.EndedAt, rec)
			}
		}
	}
	if f, ok := j.opts.Publisher.(Flusher); ok {
		if err := f.Flush(ctx); err != nil {
			j.log.Error().Err(err).Int("calls", len(recs)).
				Msg("the events of the calls ended at start may not be safe yet; they stay in the journal and go again, with the same ids, at the next start")
			return recs
		}
	}
	for _, rec := range recs {
		if !j.send(ctx, journalOp{kind: opEndID, id: rec.ID, at: j.opts.Clock.Now()}) {
			return recs
		}
	}
	done := make(chan struct{})
	if j.send(ctx, journalOp{kind: opCompact, done: done}) {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	return recs
}

// send queues an op that must not be dropped, waiting for room.
func (j *Journal) send(ctx context.Context, op journalOp) bool {
	select {
	case j.ops <- op:
		return true
	case <-ctx.Done():
		return false
	case <-j.done:
		return false
	}
}

// recoveredEventID is the id of an event that ends a recovered call: a
// ULID of the event's time whose random part comes from the call's id
// and the event's name, the same at every start that ends the call.
func recoveredEventID(callID, event string, at time.Time) string {
	h := sha256.Sum256([]byte(callID + "\x00" + event))
	id, err := ulid.New(ulid.Timestamp(at), bytes.NewReader(h[:10]))
	if err != nil {
		// Only a time beyond year 10889 gets here.
		id, _ = ulid.New(0, bytes.NewReader(h[:10]))
	}
	return id.String()
}

// Publish notes the event in the journal, without waiting for the disk,
// and hands it on.
func (j *Journal) Publish(event string, at time.Time, rec Record) {
	var kind journalOpKind
	switch event {
	case EventStarted:
		kind = opStart
	case EventAnswered, EventRecordingCompleted, EventVoicemailCompleted:
		kind = opUpdate
	case EventCompleted:
		kind = opEnd
	}
	if kind != 0 && !j.closed.Load() {
		select {
		case j.ops <- journalOp{kind: kind, at: at, rec: rec}:
		default:
			j.dropped.Add(1)
			now := time.Now().UnixNano()
			last := j.dropLogged.Load()
			if now-last >= int64(errorLogEvery) && j.dropLogged.CompareAndSwap(last, now) {
				j.log.Error().Str("call_id", rec.ID).Str("event", event).Uint64("dropped_total", j.dropped.Load()).
					Msg("journal queue full (disk too slow?): event not journaled; a crash now would not end this call")
			}
		}
	}
	j.opts.Publisher.Publish(event, at, rec)
}

// Sync returns once everything published before it is written (not
// fsynced), or ctx ends.
func (j *Journal) Sync(ctx context.Context) error {
	done := make(chan struct{})
	if !j.send(ctx, journalOp{kind: opBarrier, done: done}) {
		return errors.Join(ctx.Err(), errors.New("journal closed"))
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats are the journal's failed disk operations and the events it could
// not take because its queue was full.
func (j *Journal) Stats() (errors, dropped uint64) {
	return j.errors.Load(), j.dropped.Load()
}

// Close writes what is queued and rewrites the file with the calls still
// up, none after a drain, so the next start has nothing to end.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		j.closed.Store(true)
		close(j.stop)
	})
	<-j.done
	return nil
}

// run is the one goroutine that writes the journal.
func (j *Journal) run() {
	defer close(j.done)
	tick := time.NewTicker(j.opts.Tick)
	defer tick.Stop()
	var waiting []chan struct{}
	batch := func(op journalOp) {
		waiting = j.apply(op, waiting[:0])
		for len(j.buf) < maxJournalBatch {
			select {
			case op = <-j.ops:
				waiting = j.apply(op, waiting)
				continue
			default:
			}
			break
		}
		j.flush()
		for _, c := range waiting {
			close(c)
		}
		clear(waiting)
	}
	for {
		select {
		case op := <-j.ops:
			batch(op)
		case <-tick.C:
			j.alive()
		case <-j.stop:
			if j.live > 0 {
				// Calls a drain ran out of time for: the edge is alive now.
				j.lastAlive = j.opts.Clock.Now().UnixNano()
			}
			for {
				select {
				case op := <-j.ops:
					batch(op)
					continue
				default:
				}
				break
			}
			if err := j.compact(); err != nil {
				j.failed("rewriting the journal at close", err)
				j.sync()
			}
			if err := j.f.Close(); err != nil {
				j.failed("closing the journal", err)
			}
			return
		}
	}
}

// apply takes one op into the state in memory and the buffer of lines to
// write; ops that wait for the write join waiting.
func (j *Journal) apply(op journalOp, waiting []chan struct{}) []chan struct{} {
	at := op.at.UnixNano()
	switch op.kind {
	case opStart:
		e, ok := j.calls[op.rec.ID]
		if !ok {
			e = &journalEntry{}
			j.calls[op.rec.ID] = e
			j.live++
		}
		j.state(e, 's', at, &op.rec)
	case opUpdate:
		if e, ok := j.calls[op.rec.ID]; ok {
			j.state(e, 'u', at, &op.rec)
		}
	case opEnd, opEndID:
		id := op.id
		if op.kind == opEnd {
			id = op.rec.ID
		}
		e, ok := j.calls[id]
		if !ok {
			break
		}
		delete(j.calls, id)
		if e.end == 0 {
			j.live--
		}
		j.buf = append(j.buf, `{"k":"e","t":`...)
		j.buf = strconv.AppendInt(j.buf, at, 10)
		j.buf = append(j.buf, `,"id":`...)
		j.buf = appendJSONString(j.buf, id)
		j.buf = append(j.buf, "}\n"...)
	case opBarrier:
		waiting = append(waiting, op.done)
	case opCompact:
		j.needCompact = true
		j.compactFailed = time.Time{}
		waiting = append(waiting, op.done)
	}
	return waiting
}

// state writes a call's record as its entry and as a line.
func (j *Journal) state(e *journalEntry, kind byte, at int64, rec *Record) {
	j.buf = append(j.buf, `{"k":"`...)
	j.buf = append(j.buf, kind)
	j.buf = append(j.buf, `","t":`...)
	j.buf = strconv.AppendInt(j.buf, at, 10)
	if kind == 's' && rec.Leg != "" {
		j.buf = append(j.buf, `,"leg":`...)
		l := len(j.buf)
		j.buf = appendJSONString(j.buf, rec.Leg)
		e.leg = append(e.leg[:0], j.buf[l:]...)
	}
	j.buf = append(j.buf, `,"r":`...)
	r := len(j.buf)
	j.buf = appendJournalRecord(j.buf, rec)
	e.rec = append(e.rec[:0], j.buf[r:]...)
	e.last = max(e.last, at)
	j.buf = append(j.buf, "}\n"...)
}

// flush writes the buffered lines in one write(2), and rewrites the file
// when it has grown past compactAt or lost lines.
func (j *Journal) flush() {
	if len(j.buf) > 0 {
		if j.torn {
			j.buf = slices.Insert(j.buf, 0, '\n')
		}
		n, err := j.f.Write(j.buf)
		j.size += int64(n)
		if err != nil {
			j.failed("writing the journal", err)
			j.torn, j.needCompact = true, true
		} else {
			j.torn = false
			j.dirty = true
		}
		if cap(j.buf) > 4*maxJournalBatch {
			j.buf = nil
		} else {
			j.buf = j.buf[:0]
		}
	}
	retry := j.needCompact && time.Since(j.compactFailed) >= compactRetry
	if retry || (!j.needCompact && j.size >= j.compactAt) {
		if err := j.compact(); err != nil {
			j.failed("rewriting the journal", err)
			j.needCompact = true
			j.compactFailed = time.Now()
		}
	}
}

// alive notes, while calls are up, that the edge still runs, and fsyncs
// what was written since the last tick.
func (j *Journal) alive() {
	if j.live > 0 {
		now := j.opts.Clock.Now().UnixNano()
		j.lastAlive = now
		j.buf = append(j.buf, `{"k":"a","t":`...)
		j.buf = strconv.AppendInt(j.buf, now, 10)
		j.buf = append(j.buf, "}\n"...)
		j.flush()
	} else if j.needCompact {
		j.flush()
	}
	j.sync()
}

func (j *Journal) sync() {
	if !j.dirty {
		return
	}
	if err := j.f.Sync(); err != nil {
		j.failed("fsyncing the journal", err)
		return
	}
	j.dirty = false
}

// compact rewrites the journal with only the calls it knows to be up.
func (j *Journal) compact() error {
	var b []byte
	for _, e := range j.calls {
		b = append(b, `{"k":"s","t":`...)
		b = strconv.AppendInt(b, e.last, 10)
		if e.end != 0 {
			b = append(b, `,"end":`...)
			b = strconv.AppendInt(b, e.end, 10)
		}
		if len(e.leg) > 0 {
			b = append(b, `,"leg":`...)
			b = append(b, e.leg...)
		}
		b = append(b, `,"r":`...)
		b = append(b, e.rec...)
		b = append(b, "}\n"...)
	}
	if j.lastAlive != 0 && len(j.calls) > 0 {
		b = append(b, `{"k":"a","t":`...)
		b = strconv.AppendInt(b, j.lastAlive, 10)
		b = append(b, "}\n"...)
	}
	tmp := j.path + ".tmp"
	if err := writeFileSync(tmp, b); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, j.path); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := syncDir(j.opts.Dir); err != nil {
		// The rename is done; only a power loss could undo it.
		j.failed("fsyncing the journal's directory", err)
	}
	if j.f != nil {
		if err := j.f.Close(); err != nil {
			j.failed("closing the journal", err)
		}
	}
	f, err := j.opts.openFile(j.path)
	if err != nil {
		j.f = failedWriter{err}
		return err
	}
	j.f = f
	j.size = int64(len(b))
	j.compactAt = max(j.opts.CompactAt, 2*j.size)
	j.torn, j.dirty, j.needCompact = false, false, false
	return nil
}

// failedWriter stands for a journal file that could not be opened, until
// the next compaction opens it again.
type failedWriter struct{ err error }

func (w failedWriter) Write([]byte) (int, error) { return 0, w.err }
func (w failedWriter) Sync() error               { return w.err }
func (w failedWriter) Close() error              { return nil }

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// failed counts a disk error and logs it, at most every errorLogEvery.
func (j *Journal) failed(what string, err error) {
	j.errors.Add(1)
	if now := time.Now(); now.Sub(j.errLogged) >= errorLogEvery {
		j.log.Error().Err(err).Int("errors_since_last_logged", j.quiet).Str("file", j.path).
			Msg(what + " failed; calls go on, but a crash now might not end them all at the next start")
		j.errLogged, j.quiet = now, 0
		return
	}
	j.quiet++
}

// journalRecord is a call's record as the journal writes it: what
// recovery needs to publish the call's final record.
type journalRecord struct {
	ID             string           `json:"id"`
	SIPCallID      string           `json:"sip_call_id"`
	Caller         string           `json:"caller"`
	CallerName     string           `json:"caller_name"`
	TrackingNumber string           `json:"tracking_number"`
	Source         string           `json:"source"`
	Medium         string           `json:"medium"`
	Campaign       string           `json:"campaign"`
	Keyword        string           `json:"keyword"`
	Pool           string           `json:"pool"`
	Visitor        *journalVisitor  `json:"visitor"`
	FirstCall      *bool            `json:"first_call"`
	Flow           string           `json:"flow"`
	IVR            []string         `json:"ivr"`
	IVRExit        string           `json:"ivr_exit"`
	Queue          string           `json:"queue"`
	Agent          string           `json:"agent"`
	Consent        string           `json:"consent"`
	StartedAt      int64            `json:"started_at"`
	AnsweredAt     int64            `json:"answered_at"`
	Attempts       []journalAttempt `json:"attempts"`
	AgentLeg       string           `json:"agent_leg"`
}

// journalVisitor is a Visitor as the journal writes it.
type journalVisitor struct {
	UTMSource   string `json:"utm_source"`
	UTMMedium   string `json:"utm_medium"`
	UTMCampaign string `json:"utm_campaign"`
	UTMTerm     string `json:"utm_term"`
	UTMContent  string `json:"utm_content"`
	GCLID       string `json:"gclid"`
	GBRAID      string `json:"gbraid"`
	WBRAID      string `json:"wbraid"`
	FBCLID      string `json:"fbclid"`
	MSCLKID     string `json:"msclkid"`
	Referrer    string `json:"referrer"`
	LandingPage string `json:"landing_page"`
	FirstSeen   int64  `json:"first_seen"`
	// ClickIDs are the configured click ids beyond the built-in ones.
	ClickIDs map[string]string `json:"click_ids"`
}

type journalAttempt struct {
	Agent     string `json:"agent"`
	StartedAt int64  `json:"started_at"`
	Ring      int64  `json:"ring"`
	Result    string `json:"result"`
}

func (r *journalRecord) record() Record {
	rec := Record{
		ID: r.ID, SIPCallID: r.SIPCallID, Caller: r.Caller, CallerName: r.CallerName,
		TrackingNumber: r.TrackingNumber, Source: r.Source, Medium: r.Medium, Campaign: r.Campaign,
		Keyword: r.Keyword, Pool: r.Pool, FirstCall: r.FirstCall, Flow: r.Flow, IVR: r.IVR, IVRExit: r.IVRExit,
		Queue: r.Queue, Agent: r.Agent, Consent: r.Consent, StartedAt: unixTime(r.StartedAt), AnsweredAt: unixTime(r.AnsweredAt),
		AgentLeg: r.AgentLeg,
	}
	if v := r.Visitor; v != nil {
		rec.Visitor = &Visitor{
			UTMSource: v.UTMSource, UTMMedium: v.UTMMedium, UTMCampaign: v.UTMCampaign, UTMTerm: v.UTMTerm,
			UTMContent: v.UTMContent, GCLID: v.GCLID, GBRAID: v.GBRAID, WBRAID: v.WBRAID, FBCLID: v.FBCLID,
			MSCLKID: v.MSCLKID, Referrer: v.Referrer, LandingPage: v.LandingPage, FirstSeen: unixTime(v.FirstSeen),
			ClickIDs: v.ClickIDs,
		}
	}
	for _, a := range r.Attempts {
		rec.Attempts = append(rec.Attempts, Attempt{
			Agent: a.Agent, StartedAt: unixTime(a.StartedAt), Ring: time.Duration(a.Ring), Result: a.Result,
		})
	}
	return rec
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// appendJournalRecord writes rec as journalRecord reads it back. It is
// written by hand because it runs for every event: encoding/json's
// reflection would cost several times as much.
func appendJournalRecord(b []byte, rec *Record) []byte {
	b = append(b, '{')
	b = appendStringField(b, "id", rec.ID)
	b = appendStringField(b, "sip_call_id", rec.SIPCallID)
	b = appendStringField(b, "caller", rec.Caller)
	b = appendStringField(b, "caller_name", rec.CallerName)
	b = appendStringField(b, "tracking_number", rec.TrackingNumber)
	b = appendStringField(b, "source", rec.Source)
	b = appendStringField(b, "medium", rec.Medium)
	b = appendStringField(b, "campaign", rec.Campaign)
	b = appendStringField(b, "keyword", rec.Keyword)
	b = appendStringField(b, "pool", rec.Pool)
	if v := rec.Visitor; v != nil {
		// Written even with every field empty: a visit that was found
		// and a visit that was not are not the same attribution.
		b = appendKey(b, "visitor")
		b = append(b, '{')
		b = appendStringField(b, "utm_source", v.UTMSource)
		b = appendStringField(b, "utm_medium", v.UTMMedium)
		b = appendStringField(b, "utm_campaign", v.UTMCampaign)
		b = appendStringField(b, "utm_term", v.UTMTerm)
		b = appendStringField(b, "utm_content", v.UTMContent)
		b = appendStringField(b, "gclid", v.GCLID)
		b = appendStringField(b, "gbraid", v.GBRAID)
		b = appendStringField(b, "wbraid", v.WBRAID)
		b = appendStringField(b, "fbclid", v.FBCLID)
		b = appendStringField(b, "msclkid", v.MSCLKID)
		b = appendStringField(b, "referrer", v.Referrer)
		b = appendStringField(b, "landing_page", v.LandingPage)
		b = appendTimeField(b, "first_seen", v.FirstSeen)
		if len(v.ClickIDs) > 0 {
			b = appendKey(b, "click_ids")
			b = append(b, '{')
			for i, k := range slices.Sorted(maps.Keys(v.ClickIDs)) {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(appendJSONString(b, k), ':')
				b = appendJSONString(b, v.ClickIDs[k])
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if rec.FirstCall != nil {
		b = strconv.AppendBool(appendKey(b, "first_call"), *rec.FirstCall)
	}
	b = appendStringField(b, "flow", rec.Flow)
	if rec.IVR != nil {
		b = appendKey(b, "ivr")
		b = append(b, '[')
		for i, k := range rec.IVR {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
		}
		b = append(b, ']')
	}
	b = appendStringField(b, "ivr_exit", rec.IVRExit)
	b = appendStringField(b, "queue", rec.Queue)
	b = appendStringField(b, "agent", rec.Agent)
	b = appendStringField(b, "consent", rec.Consent)
	b = appendTimeField(b, "started_at", rec.StartedAt)
	b = appendTimeField(b, "answered_at", rec.AnsweredAt)
	if len(rec.Attempts) > 0 {
		b = appendKey(b, "attempts")
		b = append(b, '[')
		for i, a := range rec.Attempts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			b = appendStringField(b, "agent", a.Agent)
			b = appendTimeField(b, "started_at", a.StartedAt)
			b = appendKey(b, "ring")
			b = strconv.AppendInt(b, int64(a.Ring), 10)
			b = appendStringField(b, "result", a.Result)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendStringField(b, "agent_leg", rec.AgentLeg)
	return append(b, '}')
}

func appendKey(b []byte, key string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendStringField(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendJSONString(appendKey(b, key), v)
}

func appendTimeField(b []byte, key string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return strconv.AppendInt(appendKey(b, key), t.UnixNano(), 10)
}

// appendJSONString writes s as a JSON string. Bytes that are not UTF-8
// pass as they are; reading them back turns them into U+FFFD, as
// encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
