package ops

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	// Report time zones must not depend on the host having a zoneinfo
	// database: minimal container images often lack one.
	_ "time/tzdata"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/calllog"
	"github.com/callsign/callsign/config"
)

// CallLog is what the admin API reads of the stored calls; *calllog.Store
// is one.
type CallLog interface {
	Query(f calllog.Filter) (calllog.Page, error)
	WriteCSV(w io.Writer, f calllog.Filter) error
	GoogleAdsConversions(w io.Writer, from, to time.Time, conversionName string, value float64, currency string) error
	SourcesReport(from, to time.Time) ([]calllog.SourceRow, error)
	AgentsReport(from, to time.Time) (calllog.AgentsReport, error)
	MissedByHour(from, to time.Time, loc *time.Location) ([7][24]int, error)
}

// Default ranges of the exports and reports when the request gives none.
const (
	// googleAdsWindow is Google Ads' click-through conversion window at
	// its longest: a conversion older than its click by more is refused.
	googleAdsWindow = 90 * 24 * time.Hour
	reportWindow    = 30 * 24 * time.Hour
	// missedByHourWindow is whole weeks, so that every cell of the grid
	// covers the same number of days.
	missedByHourWindow = 28 * 24 * time.Hour
)

// apiTime is the layout of every time the API writes, as in events.
const apiTime = "2006-01-02T15:04:05.000Z07:00"

func (a API) registerCalls(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/calls", a.authorized(a.withCalls(a.listCalls)))
	mux.HandleFunc("GET /api/calls/{call_id}/recording", a.authorized(a.recording))
	mux.HandleFunc("GET /api/exports/google-ads.csv", a.authorized(a.withCalls(a.googleAds)))
	mux.HandleFunc("GET /api/reports/sources", a.authorized(a.withCalls(a.sourcesReport)))
	mux.HandleFunc("GET /api/reports/agents", a.authorized(a.withCalls(a.agentsReport)))
	mux.HandleFunc("GET /api/reports/missed-by-hour", a.authorized(a.withCalls(a.missedByHour)))
	mux.HandleFunc("GET /api/stream", a.authorized(a.stream))
}

func (a API) withCalls(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.Calls == nil {
			writeError(w, http.StatusNotFound, "the call log is off")
			return
		}
		next(w, r)
	}
}

func (a API) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// paramError is a query parameter the API cannot use, and why.
type paramError struct {
	name, why string
}

func (e *paramError) Error() string { return "parameter " + e.name + ": " + e.why }

func badParam(w http.ResponseWriter, err error) {
	writeError(w, http.StatusBadRequest, err.Error())
}

// parseTime reads an RFC 3339 time, or a date meaning its midnight in
// loc.
func parseTime(name, v string, loc *time.Location) (time.Time, error) {
	// An unescaped '+' in a query string arrives as a space: a time
	// offset such as +02:00 typed into a URL is meant, not a blank.
	v = strings.ReplaceAll(v, " ", "+")
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, v, loc); err == nil {
		return t, nil
	}
	return time.Time{}, &paramError{name, fmt.Sprintf("%q is neither an RFC 3339 time (2026-11-01T09:00:00Z) nor a date (2026-11-01)", v)}
}

// timeRange reads from and to, the half-open range [from, to). With a
// window, a missing to is now and a missing from is window before to;
// without one, a missing bound leaves that side open (zero time).
func (a API) timeRange(q url.Values, loc *time.Location, window time.Duration) (from, to time.Time, err error) {
	if v := q.Get("from"); v != "" {
		if from, err = parseTime("from", v, loc); err != nil {
			return from, to, err
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = parseTime("to", v, loc); err != nil {
			return from, to, err
		}
	}
	if window > 0 {
		if to.IsZero() {
			to = a.clock()
		}
		if from.IsZero() {
			from = to.Add(-window)
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		if q.Get("to") == "" {
			return from, to, &paramError{"from", "must be in the past (to defaults to now)"}
		}
		return from, to, &paramError{"to", "must be after from (the range is from <= started_at < to)"}
	}
	return from, to, nil
}

// number is a phone number as calls are stored: E.164 when it reads as
// one, whatever separators it was typed with, else as given (anonymous,
// a SIP user name).
func number(v string) string {
	if n, ok := config.NormalizeDialed(v); ok {
		return n
	}
	return strings.TrimSpace(v)
}

// callFilter reads the call list's parameters.
func (a API) callFilter(q url.Values) (calllog.Filter, error) {
	var f calllog.Filter
	var err error
	if f.From, f.To, err = a.timeRange(q, time.UTC, 0); err != nil {
		return f, err
	}
	f.Source, f.Campaign, f.Agent = q.Get("source"), q.Get("campaign"), q.Get("agent")
	switch f.Outcome = q.Get("outcome"); f.Outcome {
	case "", call.OutcomeAnswered, call.OutcomeMissed:
	default:
		return f, &paramError{"outcome", fmt.Sprintf("%q is neither answered nor missed", f.Outcome)}
	}
	if v := q.Get("caller"); v != "" {
		f.Caller = number(v)
	}
	if v := q.Get("tracking_number"); v != "" {
		f.TrackingNumber = number(v)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > calllog.MaxLimit {
			return f, &paramError{"limit", fmt.Sprintf("%q is not a whole number from 1 to %d", v, calllog.MaxLimit)}
		}
		f.Limit = n
	}
	f.Cursor = q.Get("cursor")
	return f, nil
}

// wantsCSV: format=csv, or no format and an Accept header that asks for
// CSV and not for JSON.
func wantsCSV(r *http.Request) (bool, error) {
	switch v := r.URL.Query().Get("format"); v {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, &paramError{"format", fmt.Sprintf("%q is neither json nor csv", v)}
	}
	csvOK, jsonOK := false, false
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch mt {
		case "text/csv":
			csvOK = true
		case "application/json":
			jsonOK = true
		}
	}
	return csvOK && !jsonOK, nil
}

func (a API) listCalls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := a.callFilter(q)
	if err != nil {
		badParam(w, err)
		return
	}
	asCSV, err := wantsCSV(r)
	if err != nil {
		badParam(w, err)
		return
	}
	if asCSV {
		name := "calls-" + fileTime(f.From, "start") + "-" + fileTime(f.To, "now") + ".csv"
		streamCSV(w, name, func(out io.Writer) error { return a.Calls.WriteCSV(out, f) })
		return
	}
	page, err := a.Calls.Query(f)
	switch {
	case errors.Is(err, calllog.ErrBadCursor):
		badParam(w, &paramError{"cursor", "not a cursor this API handed out (use next of the previous page)"})
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	calls := make([]callJSON, 0, len(page.Entries))
	for i := range page.Entries {
		e := &page.Entries[i]
		calls = append(calls, callOf(e, &e.FirstCall))
	}
	writeJSON(w, http.StatusOK, struct {
		Calls []callJSON `json:"calls"`
		Next  string     `json:"next,omitempty"`
	}{calls, page.Next})
}

// fileTime is a range bound in a download's file name: the date when it
// is a UTC midnight, else the instant to the second.
func fileTime(t time.Time, open string) string {
	if t.IsZero() {
		return open
	}
	t = t.UTC()
	if t.Equal(t.Truncate(24 * time.Hour)) {
		return t.Format(time.DateOnly)
	}
	return t.Format("20060102T150405Z")
}

// lazyHeaders holds a download's headers back until its first byte, so
// that a failure before any output can still be answered as an error.
type lazyHeaders struct {
	w       http.ResponseWriter
	headers func(http.Header)
	started bool
}

func (l *lazyHeaders) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.headers(l.w.Header())
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

// streamCSV sends what write produces as a CSV download named name.
func streamCSV(w http.ResponseWriter, name string, write func(io.Writer) error) {
	out := &lazyHeaders{w: w, headers: func(h http.Header) {
		h.Set("Content-Type", "text/csv; charset=utf-8")
		// name is made of digits, letters, '-', '.': quoting is enough.
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}}
	err := write(out)
	if err == nil {
		return
	}
	if !out.started {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	// Half a file already went out as a success. Breaking the connection
	// is the only way left to tell the client it is not the whole file.
	panic(http.ErrAbortHandler)
}

func (a API) googleAds(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, to, err := a.timeRange(q, time.UTC, googleAdsWindow)
	if err != nil {
		badParam(w, err)
		return
	}
	name := q.Get("conversion_name")
	if name == "" {
		name = "Phone call"
	}
	var value float64
	if v := q.Get("value"); v != "" {
		value, err = strconv.ParseFloat(v, 64)
		if err != nil || value < 0 || math.IsInf(value, 0) || math.IsNaN(value) {
			badParam(w, &paramError{"value", fmt.Sprintf("%q is not a non-negative number", v)})
			return
		}
	}
	currency := "USD"
	if v := q.Get("currency"); v != "" {
		if len(v) != 3 || strings.IndexFunc(v, func(c rune) bool { return (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') }) >= 0 {
			badParam(w, &paramError{"currency", fmt.Sprintf("%q is not a three-letter ISO 4217 code such as USD", v)})
			return
		}
		currency = strings.ToUpper(v)
	}
	streamCSV(w, "google-ads-conversions.csv", func(out io.Writer) error {
		return a.Calls.GoogleAdsConversions(out, from, to, name, value, currency)
	})
}

type sourceJSON struct {
	Source           string  `json:"source"`
	Campaign         string  `json:"campaign"`
	Calls            int     `json:"calls"`
	Answered         int     `json:"answered"`
	Missed           int     `json:"missed"`
	MissedRate       float64 `json:"missed_rate"`
	AvgTalkMS        int64   `json:"avg_talk_ms"`
	FirstTimeCallers int     `json:"first_time_callers"`
}

func (a API) sourcesReport(w http.ResponseWriter, r *http.Request) {
	from, to, err := a.timeRange(r.URL.Query(), time.UTC, reportWindow)
	if err != nil {
		badParam(w, err)
		return
	}
	rows, err := a.Calls.SourcesReport(from, to)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]sourceJSON, 0, len(rows))
	for _, s := range rows {
		out = append(out, sourceJSON{
			Source: s.Source, Campaign: s.Campaign, Calls: s.Calls, Answered: s.Answered, Missed: s.Missed,
			MissedRate: s.MissedRate, AvgTalkMS: s.AvgTalkMS, FirstTimeCallers: s.FirstTime,
		})
	}
	writeJSON(w, http.StatusOK, struct {
		From    string       `json:"from"`
		To      string       `json:"to"`
		Sources []sourceJSON `json:"sources"`
	}{from.UTC().Format(apiTime), to.UTC().Format(apiTime), out})
}

type agentJSON struct {
	Agent     string `json:"agent"`
	Name      string `json:"name,omitempty"`
	Offered   int    `json:"offered"`
	Answered  int    `json:"answered"`
	Missed    int    `json:"missed"`
	TalkMS    int64  `json:"talk_ms"`
	AvgTalkMS int64  `json:"avg_talk_ms"`
}

type queueJSON struct {
	Queue  string `json:"queue"`
	Calls  int    `json:"calls"`
	Missed int    `json:"missed"`
}

func (a API) agentsReport(w http.ResponseWriter, r *http.Request) {
	from, to, err := a.timeRange(r.URL.Query(), time.UTC, reportWindow)
	if err != nil {
		badParam(w, err)
		return
	}
	rep, err := a.Calls.AgentsReport(from, to)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	agents := make([]agentJSON, 0, len(rep.Agents))
	for _, g := range rep.Agents {
		j := agentJSON{Agent: g.Agent, Offered: g.Offered, Answered: g.Answered, Missed: g.Missed, TalkMS: g.TalkMS, AvgTalkMS: g.AvgTalkMS}
		if a.AgentName != nil {
			j.Name = a.AgentName(g.Agent)
		}
		agents = append(agents, j)
	}
	queues := make([]queueJSON, 0, len(rep.Queues))
	for _, q := range rep.Queues {
		queues = append(queues, queueJSON{Queue: q.Queue, Calls: q.Calls, Missed: q.Missed})
	}
	writeJSON(w, http.StatusOK, struct {
		From   string      `json:"from"`
		To     string      `json:"to"`
		Agents []agentJSON `json:"agents"`
		Queues []queueJSON `json:"queues"`
	}{from.UTC().Format(apiTime), to.UTC().Format(apiTime), agents, queues})
}

func (a API) missedByHour(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	loc := time.UTC
	if v := q.Get("tz"); v != "" {
		var err error
		// "Local" would be the server's zone, which the client cannot
		// know; only real zone names are accepted.
		if loc, err = time.LoadLocation(v); err != nil || v == "Local" {
			badParam(w, &paramError{"tz", fmt.Sprintf("%q is not an IANA time zone name such as America/New_York", v)})
			return
		}
	}
	// Dates in from and to are midnights in tz: the grid is of tz's days.
	from, to, err := a.timeRange(q, loc, missedByHourWindow)
	if err != nil {
		badParam(w, err)
		return
	}
	grid, err := a.Calls.MissedByHour(from, to, loc)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	days := make([]string, 7)
	missed := make([][]int, 7)
	for d := range 7 {
		days[d] = time.Weekday(d).String()[:3]
		missed[d] = grid[d][:]
	}
	writeJSON(w, http.StatusOK, struct {
		From   string   `json:"from"`
		To     string   `json:"to"`
		TZ     string   `json:"tz"`
		Days   []string `json:"days"`
		Missed [][]int  `json:"missed"`
	}{from.In(loc).Format(apiTime), to.In(loc).Format(apiTime), loc.String(), days, missed})
}

// jsonErrors turns the plain-text errors of http.ServeContent (a range
// it cannot satisfy) into the API's JSON errors.
type jsonErrors struct {
	http.ResponseWriter
	failed bool
}

func (j *jsonErrors) WriteHeader(code int) {
	if code >= http.StatusBadRequest {
		j.failed = true
		writeError(j.ResponseWriter, code, strings.ToLower(http.StatusText(code)))
		return
	}
	j.ResponseWriter.WriteHeader(code)
}

func (j *jsonErrors) Write(p []byte) (int, error) {
	if j.failed {
		return len(p), nil
	}
	return j.ResponseWriter.Write(p)
}

func (a API) recording(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("call_id")
	if a.Recording == nil {
		writeError(w, http.StatusNotFound, "recordings are off")
		return
	}
	path, err := a.Recording(id)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "no recording for call "+id)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		writeError(w, http.StatusNotFound, "the recording of call "+id+" is no longer on disk")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if !fi.Mode().IsRegular() {
		writeError(w, http.StatusNotFound, "no recording for call "+id)
		return
	}
	h := w.Header()
	// Set here rather than by extension: hosts' MIME tables disagree on
	// .wav (audio/x-wav, audio/wave), and browsers play audio/wav.
	if strings.EqualFold(filepath.Ext(path), ".wav") {
		h.Set("Content-Type", "audio/wav")
	}
	h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": filepath.Base(path)}))
	// A conversation is personal data: no shared cache keeps a copy.
	h.Set("Cache-Control", "private, no-store")
	http.ServeContent(&jsonErrors{ResponseWriter: w}, r, filepath.Base(path), fi.ModTime(), f)
}

// callJSON is a call as the API shows it, by the event field names; a
// field not known is absent.
type callJSON struct {
	CallID         string            `json:"call_id"`
	SIPCallID      string            `json:"sip_call_id,omitempty"`
	Caller         string            `json:"caller,omitempty"`
	CallerName     string            `json:"caller_name,omitempty"`
	TrackingNumber string            `json:"tracking_number,omitempty"`
	Source         string            `json:"source,omitempty"`
	Medium         string            `json:"medium,omitempty"`
	Campaign       string            `json:"campaign,omitempty"`
	Keyword        string            `json:"keyword,omitempty"`
	Pool           string            `json:"pool,omitempty"`
	Visitor        map[string]string `json:"visitor,omitempty"`
	FirstCall      *bool             `json:"first_call,omitempty"`
	Flow           string            `json:"flow,omitempty"`
	// IVR is empty, not absent, when the caller pressed nothing.
	IVR          []string       `json:"ivr,omitzero"`
	IVRExit      string         `json:"ivr_exit,omitempty"`
	Queue        string         `json:"queue,omitempty"`
	Agent        string         `json:"agent,omitempty"`
	Outcome      string         `json:"outcome,omitempty"`
	MissedReason string         `json:"missed_reason,omitempty"`
	HangupBy     string         `json:"hangup_by,omitempty"`
	StartedAt    string         `json:"started_at,omitempty"`
	AnsweredAt   string         `json:"answered_at,omitempty"`
	EndedAt      string         `json:"ended_at,omitempty"`
	WaitMS       *int64         `json:"wait_ms,omitempty"`
	TalkMS       *int64         `json:"talk_ms,omitempty"`
	DurationMS   *int64         `json:"duration_ms,omitempty"`
	Recording    *recordingJSON `json:"recording,omitempty"`
	RecordingURL string         `json:"recording_url,omitempty"`
}

type recordingJSON struct {
	Consent    string `json:"consent,omitempty"`
	Path       string `json:"path,omitempty"`
	DurationMS *int64 `json:"duration_ms,omitempty"`
}

// callOf is e as the API shows it; firstCall is nil while unknown.
func callOf(e *calllog.Entry, firstCall *bool) callJSON {
	c := callJSON{
		CallID: e.ID, SIPCallID: e.SIPCallID, Caller: e.Caller, CallerName: e.CallerName,
		TrackingNumber: e.TrackingNumber, Source: e.Source, Medium: e.Medium, Campaign: e.Campaign,
		Keyword: e.Keyword, Pool: e.Pool, Visitor: e.Visitor, FirstCall: firstCall, Flow: e.Flow,
		IVR: e.IVR, IVRExit: e.IVRExit, Queue: e.Queue, Agent: e.Agent, Outcome: e.Outcome,
		MissedReason: e.MissedReason, HangupBy: e.HangupBy,
		StartedAt: jsonTime(e.StartedAt), AnsweredAt: jsonTime(e.AnsweredAt), EndedAt: jsonTime(e.EndedAt),
	}
	ms := func(d time.Duration, ok bool) *int64 {
		if !ok {
			return nil
		}
		n := d.Milliseconds()
		return &n
	}
	c.WaitMS, c.TalkMS, c.DurationMS = ms(e.Wait()), ms(e.Talk()), ms(e.Duration())
	if e.Consent != "" || e.Recording != nil {
		c.Recording = &recordingJSON{Consent: e.Consent}
		if rec := e.Recording; rec != nil {
			c.Recording.Path = rec.Path
			c.Recording.DurationMS = ms(rec.Duration, rec.Duration > 0 || rec.SHA256 != "")
			if rec.Path != "" {
				c.RecordingURL = "/api/calls/" + url.PathEscape(e.ID) + "/recording"
			}
		}
	}
	return c
}

func jsonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(apiTime)
}
