// Package dni serves dynamic number insertion to web sites: the script a
// site includes (/dni.js) and the endpoints it asks for a visitor's number
// and keeps it held with (/dni/v1/session, /dni/v1/heartbeat). Which
// number a visitor gets, and for how long, is the Pools' business.
package dni

import (
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/callsign/callsign/routing"
	"github.com/rs/zerolog"
)

//go:embed web/dni.js
var script []byte

// Assignment is the number a visitor is shown.
type Assignment struct {
	Number string // E.164
	// Replace is the pool's default number, the one the page shows
	// until the script swaps it.
	Replace string
	// Overflow: every number of the pool is held; this is the pool's
	// overflow number, shared by the visitors who came meanwhile.
	Overflow bool
	// Heartbeat is how often the script is to renew the hold.
	Heartbeat time.Duration
}

// ErrUnknownPool is what Pools return for a pool that is not configured.
var ErrUnknownPool = errors.New("unknown pool")

// Pools hands out and holds the numbers.
type Pools interface {
	// Assign gets v as read off the page's landing URL and referrer on
	// the edge, so the script stays small and one parser decides what a
	// parameter means.
	Assign(pool, visitor string, v routing.Visit) (Assignment, error)
	// Heartbeat renews the visitor's hold; false when it holds nothing
	// (any more), and the script asks again.
	Heartbeat(pool, visitor string) bool
}

// Handler serves the script and its endpoints.
func Handler(p Pools, log zerolog.Logger) http.Handler {
	h := &handler{pools: p, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("/dni.js", h.script)
	mux.HandleFunc("/dni/v1/session", h.session)
	mux.HandleFunc("/dni/v1/heartbeat", h.heartbeat)
	return mux
}

type handler struct {
	pools Pools
	log   zerolog.Logger
}

const (
	maxBody = 8 << 10
	maxURL  = 2048
)

var (
	visitorRE = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)
	poolRE    = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

func (h *handler) script(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	// Sites include it on every page: let browsers and CDNs keep it a
	// while, not so long that a fix takes days to reach visitors.
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(script)
}

type sessionRequest struct {
	Pool     string `json:"pool"`
	Visitor  string `json:"visitor"`
	Landing  string `json:"landing"`
	Referrer string `json:"referrer"`
}

type sessionResponse struct {
	Number      string `json:"number"`
	Display     string `json:"display"`
	Replace     string `json:"replace"`
	Overflow    bool   `json:"overflow"`
	HeartbeatMS int64  `json:"heartbeat_ms"`
}

// read decodes the script's JSON body. The script posts text/plain (a
// simple request, no CORS preflight), so the content type is not checked.
func (h *handler) read(w http.ResponseWriter, r *http.Request, into any) bool {
	// Any site may include the script: the endpoints answer every origin,
	// and hold nothing a visitor's cookies could unlock.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "POST")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "unreadable body")
		return false
	}
	if len(body) > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "body over 8 KiB")
		return false
	}
	if err := json.Unmarshal(body, into); err != nil {
		writeError(w, http.StatusBadRequest, "body is not the JSON the script sends")
		return false
	}
	return true
}

func (h *handler) session(w http.ResponseWriter, r *http.Request) {
	var req sessionRequest
	if !h.read(w, r, &req) {
		return
	}
	if msg := checkIDs(req.Pool, req.Visitor); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	a, err := h.pools.Assign(req.Pool, req.Visitor, visitOf(req.Landing, req.Referrer))
	switch {
	case errors.Is(err, ErrUnknownPool):
		writeError(w, http.StatusNotFound, "no pool "+req.Pool)
		return
	case err != nil:
		h.log.Error().Err(err).Str("pool", req.Pool).Msg("assigning a pool number failed")
		writeError(w, http.StatusInternalServerError, "no number assigned")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(sessionResponse{
		Number: a.Number, Display: a.Number, Replace: a.Replace, Overflow: a.Overflow,
		HeartbeatMS: a.Heartbeat.Milliseconds(),
	})
}

func (h *handler) heartbeat(w http.ResponseWriter, r *http.Request) {
	var req sessionRequest
	if !h.read(w, r, &req) {
		return
	}
	if msg := checkIDs(req.Pool, req.Visitor); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if !h.pools.Heartbeat(req.Pool, req.Visitor) {
		writeError(w, http.StatusNotFound, "nothing held for this visitor")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func checkIDs(pool, visitor string) string {
	switch {
	case !poolRE.MatchString(pool):
		return "pool must be 1-64 letters, digits, '_', '.' or '-'"
	case !visitorRE.MatchString(visitor):
		return "visitor must be 8-64 letters, digits, '_' or '-'"
	}
	return ""
}

// visitOf reads the attribution of a page view off its URL and referrer.
// Over-long or unparsable values are dropped rather than refused: the
// visitor still gets a number. The landing URL is kept whole: click ids
// the configuration adds (attribution click_ids) have no field here and
// are read from it when a call comes, by the rules in force then, so the
// script needs no list of names that a reload could make stale.
func visitOf(landing, referrer string) routing.Visit {
	v := routing.Visit{}
	if len(referrer) <= maxURL {
		if u, err := url.Parse(referrer); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			v.Referrer = referrer
		}
	}
	if len(landing) > maxURL {
		return v
	}
	u, err := url.Parse(landing)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return v
	}
	v.LandingPage = landing
	q := u.Query()
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	v.UTMSource, v.UTMMedium, v.UTMCampaign = get("utm_source"), get("utm_medium"), get("utm_campaign")
	v.UTMTerm, v.UTMContent = get("utm_term"), get("utm_content")
	v.GCLID, v.GBRAID, v.WBRAID = get("gclid"), get("gbraid"), get("wbraid")
	v.FBCLID, v.MSCLKID = get("fbclid"), get("msclkid")
	return v
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
