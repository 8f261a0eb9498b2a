package ops

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// ErrNotFound is what an API source returns for a call it does not know,
// or that has nothing the request could act on.
var ErrNotFound = errors.New("not found")

// API is what the admin API acts on. Every request needs the admin token
// (Authorization: Bearer TOKEN); with no token configured the API is off.
type API struct {
	// Token returns the admin token in force (it may change on reload).
	Token func() string
	// PauseRecording pauses (pause true) or resumes the recording of a
	// call in progress; ErrNotFound when the call is not being recorded.
	PauseRecording func(callID string, pause bool) error
	// Agents, if set, is every agent's state and figures of today.
	Agents func() []AgentStatus
	// Calls, if set, is the call log behind the call list, the exports
	// and the reports; without it their endpoints answer 404.
	Calls CallLog
	// Recording returns the recording file of a stored call, ErrNotFound
	// when it has none. The path is served as it is: making sure it is
	// one of the edge's recordings is Recording's job.
	Recording func(callID string) (path string, err error)
	// Feed, if set, streams ended calls to live clients (GET /api/stream).
	Feed *Feed
	// AgentName, if set, names agents in the agents report ("" when it
	// does not know the id).
	AgentName func(id string) string

	// now is the clock of default report ranges; time.Now when nil.
	now func() time.Time
}

// AgentStatus is one agent as GET /api/agents shows it.
type AgentStatus struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// State is available, ringing, busy, wrap_up or away.
	State string `json:"state"`
	// Offered, Answered and Missed count today's offers: Missed are the
	// offers the agent did not answer (no answer, declined, busy,
	// unreachable, or the caller left while it rang); a ring another
	// agent answered first is not missed, as in the agents report.
	Offered  int   `json:"offered_today"`
	Answered int   `json:"answered_today"`
	Missed   int   `json:"missed_today"`
	TalkMS   int64 `json:"talk_ms_today"`
	// LastCallEndedAt is when the agent's last answered call ended (RFC
	// 3339), absent if it has had none.
	LastCallEndedAt string `json:"last_call_ended_at,omitempty"`
}

func (a API) register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/calls/{call_id}/recording/pause", a.authorized(func(w http.ResponseWriter, r *http.Request) {
		a.pause(w, r, true)
	}))
	mux.HandleFunc("POST /api/calls/{call_id}/recording/resume", a.authorized(func(w http.ResponseWriter, r *http.Request) {
		a.pause(w, r, false)
	}))
	mux.HandleFunc("GET /api/agents", a.authorized(func(w http.ResponseWriter, _ *http.Request) {
		agents := []AgentStatus{}
		if a.Agents != nil {
			agents = a.Agents()
		}
		writeJSON(w, http.StatusOK, map[string]any{"agents": agents})
	}))
	a.registerCalls(mux)
}

// authorized checks the admin token in constant time, so its bytes cannot
// be guessed one at a time from response timings.
func (a API) authorized(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		want := ""
		if a.Token != nil {
			want = a.Token()
		}
		if want == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the admin API is off: set http.admin_token"})
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="callsign"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong admin token"})
			return
		}
		next(w, r)
	}
}

func (a API) pause(w http.ResponseWriter, r *http.Request, pause bool) {
	id := r.PathValue("call_id")
	state := "recording"
	if pause {
		state = "paused"
	}
	if a.PauseRecording == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no recording in progress for call " + id})
		return
	}
	switch err := a.PauseRecording(id, pause); {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no recording in progress for call " + id})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"call_id": id, "recording": state})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
