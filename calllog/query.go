package calllog

import (
	"database/sql"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/callsign/callsign/call"
)

// Page sizes for Query.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Filter selects calls. Empty fields select everything.
type Filter struct {
	// From and To bound started_at: From <= started_at < To.
	From, To       time.Time
	Source         string
	Campaign       string
	Outcome        string
	Agent          string
	Caller         string
	TrackingNumber string
	// Limit is the page size: DefaultLimit when 0, at most MaxLimit.
	Limit int
	// Cursor is Page.Next of the previous page; empty for the first.
	Cursor string
}

// Page is one page of calls, newest first.
type Page struct {
	Entries []Entry
	// Next fetches the following page; empty on the last one.
	Next string
}

// ErrBadCursor: the cursor was not one Query handed out.
var ErrBadCursor = errors.New("calllog: invalid cursor")

// cursor is the (started_at, call_id) of the last entry of a page; the
// next page starts strictly after it in the newest-first order, which
// stays right when rows are added meanwhile, unlike an OFFSET.
type cursor struct {
	startedMS int64
	callID    string
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.startedMS, 10) + ":" + c.callID))
}

func parseCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, ErrBadCursor
	}
	ms, id, ok := strings.Cut(string(b), ":")
	if !ok || id == "" {
		return cursor{}, ErrBadCursor
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return cursor{}, ErrBadCursor
	}
	return cursor{startedMS: n, callID: id}, nil
}

const selectColumns = `call_id, sip_call_id, caller, caller_name, tracking_number,
	source, medium, campaign, keyword, pool, visitor, first_call,
	flow, ivr, ivr_exit, queue, agent, outcome, missed_reason, hangup_by,
	started_at, answered_at, ended_at, consent, recording_path, recording_ms`

// where builds the WHERE clause shared by Query and WriteCSV.
func (f *Filter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		conds = append(conds, cond)
		args = append(args, arg)
	}
	if !f.From.IsZero() {
		add("started_at >= ?", f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		add("started_at < ?", f.To.UnixMilli())
	}
	for _, c := range []struct {
		col, v string
	}{
		{"source", f.Source}, {"campaign", f.Campaign}, {"outcome", f.Outcome},
		{"agent", f.Agent}, {"caller", f.Caller}, {"tracking_number", f.TrackingNumber},
	} {
		if c.v != "" {
			add(c.col+" = ?", c.v)
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Query returns one page of the calls f selects, newest first. Entries
// come without their attempts.
func (s *Store) Query(f Filter) (Page, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	where, args := f.where()
	if f.Cursor != "" {
		c, err := parseCursor(f.Cursor)
		if err != nil {
			return Page{}, err
		}
		if where == "" {
			where = " WHERE "
		} else {
			where += " AND "
		}
		where += "(started_at, call_id) < (?, ?)"
		args = append(args, c.startedMS, c.callID)
	}
	// One more than the page tells whether there is a next page.
	args = append(args, limit+1)
	rows, err := s.db.Query(`SELECT `+selectColumns+` FROM calls`+where+
		` ORDER BY started_at DESC, call_id DESC LIMIT ?`, args...)
	if err != nil {
		return Page{}, fmt.Errorf("calllog: query: %w", err)
	}
	defer rows.Close()
	var p Page
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return Page{}, fmt.Errorf("calllog: query: %w", err)
		}
		p.Entries = append(p.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("calllog: query: %w", err)
	}
	if len(p.Entries) > limit {
		p.Entries = p.Entries[:limit]
		last := p.Entries[limit-1]
		p.Next = cursor{startedMS: last.StartedAt.UnixMilli(), callID: last.ID}.String()
	}
	return p, nil
}

// ErrNotFound: no call with that call_id is stored.
var ErrNotFound = errors.New("calllog: no such call")

// Get returns the stored call callID (without its attempts), ErrNotFound
// when there is none; a call still waiting to be written is not seen.
func (s *Store) Get(callID string) (Entry, error) {
	rows, err := s.db.Query(`SELECT `+selectColumns+` FROM calls WHERE call_id = ?`, callID)
	if err != nil {
		return Entry{}, fmt.Errorf("calllog: get %s: %w", callID, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Entry{}, fmt.Errorf("calllog: get %s: %w", callID, err)
		}
		return Entry{}, ErrNotFound
	}
	e, err := scanEntry(rows)
	if err != nil {
		return Entry{}, fmt.Errorf("calllog: get %s: %w", callID, err)
	}
	return e, nil
}

func scanEntry(rows *sql.Rows) (Entry, error) {
	var e Entry
	var visitor, ivr, recPath sql.NullString
	var started, answered, ended, recMS sql.NullInt64
	err := rows.Scan(&e.ID, &e.SIPCallID, &e.Caller, &e.CallerName, &e.TrackingNumber,
		&e.Source, &e.Medium, &e.Campaign, &e.Keyword, &e.Pool, &visitor, &e.FirstCall,
		&e.Flow, &ivr, &e.IVRExit, &e.Queue, &e.Agent, &e.Outcome, &e.MissedReason, &e.HangupBy,
		&started, &answered, &ended, &e.Consent, &recPath, &recMS)
	if err != nil {
		return Entry{}, err
	}
	if visitor.Valid {
		if err := json.Unmarshal([]byte(visitor.String), &e.Visitor); err != nil {
			return Entry{}, fmt.Errorf("call %s: visitor: %w", e.ID, err)
		}
	}
	if ivr.Valid {
		if err := json.Unmarshal([]byte(ivr.String), &e.IVR); err != nil {
			return Entry{}, fmt.Errorf("call %s: ivr: %w", e.ID, err)
		}
	}
	e.StartedAt, e.AnsweredAt, e.EndedAt = fromMS(started), fromMS(answered), fromMS(ended)
	if recPath.Valid {
		e.Recording = &call.RecordingResult{Path: recPath.String, Duration: time.Duration(recMS.Int64) * time.Millisecond}
	}
	return e, nil
}

// csvHeader names the columns of WriteCSV.
func csvHeader() []string {
	return []string{
		"call_id", "sip_call_id", "started_at", "answered_at", "ended_at",
		"caller", "caller_name", "tracking_number", "source", "medium", "campaign", "keyword",
		"pool", "visitor", "first_call", "flow", "ivr", "queue", "agent", "outcome",
		"missed_reason", "hangup_by", "wait_ms", "talk_ms", "duration_ms", "recording_path",
	}
}

// WriteCSV writes every call f selects (Limit and Cursor are ignored),
// newest first, as RFC 4180 CSV with a header row. Rows are streamed, so
// memory does not grow with the range.
func (s *Store) WriteCSV(w io.Writer, f Filter) error {
	where, args := f.where()
	rows, err := s.db.Query(`SELECT `+selectColumns+` FROM calls`+where+` ORDER BY started_at DESC, call_id DESC`, args...)
	if err != nil {
		return fmt.Errorf("calllog: csv: %w", err)
	}
	defer rows.Close()
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	if err := cw.Write(csvHeader()); err != nil {
		return fmt.Errorf("calllog: csv: %w", err)
	}
	rec := make([]string, 0, len(csvHeader()))
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return fmt.Errorf("calllog: csv: %w", err)
		}
		rec = csvRow(rec[:0], &e)
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("calllog: csv: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("calllog: csv: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("calllog: csv: %w", err)
	}
	return nil
}

func csvRow(rec []string, e *Entry) []string {
	var visitor string
	if len(e.Visitor) > 0 {
		b, _ := json.Marshal(e.Visitor) // a map[string]string always encodes
		visitor = string(b)
	}
	ms := func(d time.Duration, ok bool) string {
		if !ok {
			return ""
		}
		return strconv.FormatInt(d.Milliseconds(), 10)
	}
	var recPath string
	if e.Recording != nil {
		recPath = e.Recording.Path
	}
	rec = append(rec,
		e.ID, e.SIPCallID, csvTime(e.StartedAt), csvTime(e.AnsweredAt), csvTime(e.EndedAt),
		e.Caller, e.CallerName, e.TrackingNumber, e.Source, e.Medium, e.Campaign, e.Keyword,
		e.Pool, visitor, strconv.FormatBool(e.FirstCall), e.Flow, strings.Join(e.IVR, " "),
		e.Queue, e.Agent, e.Outcome, e.MissedReason, e.HangupBy,
		ms(e.Wait()), ms(e.Talk()), ms(e.Duration()), recPath)
	for i := range rec {
		rec[i] = guardCell(rec[i])
	}
	return rec
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// guardCell defuses CSV formula injection: caller names, keywords and
// visitor fields come from outside, and a spreadsheet runs a cell that
// starts with = + - @ (or a tab or CR, which some trim first) as a
// formula. A leading quote makes it text. A plain signed integer, such as
// an E.164 number, cannot hold a formula and is left readable.
func guardCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
	default:
		return s
	}
	if (s[0] == '+' || s[0] == '-') && len(s) > 1 && allDigits(s[1:]) {
		return s
	}
	return "'" + s
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
