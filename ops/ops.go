// Package ops serves what operators and their tools look at over HTTP:
// /healthz, /readyz, Prometheus /metrics, the admin API and the dashboard.
package ops

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/metrics"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/rs/zerolog"
)

// Sources are where the figures of /metrics come from.
type Sources struct {
	ActiveCalls    func() int64
	SIPResponses   func(f func(code int, n uint64))
	RelayedPackets func() uint64
	DroppedPackets func() uint64
	RTPPortsInUse  func() int
	Events         func() (published, failed, dropped uint64, queued int)
	OutboxErrors   func() uint64
	Ready          func() bool
	// PromptPackets, Keys, Recordings and Softphones are optional.
	PromptPackets func() uint64
	Keys          func(f func(via string, n uint64))
	Recordings    func() RecordingStats
	Softphones    func() SoftphoneStats
	// SIPDropped, SIPBlockedSources and RegisterLockouts are the SIP
	// guard's figures; optional.
	SIPDropped        func(f func(reason string, n uint64))
	SIPBlockedSources func() int
	RegisterLockouts  func(f func(by string, n uint64))
	// Journal is the call journal's failed writes and dropped records;
	// optional.
	Journal func() (errors, dropped uint64)
	// Pools are the DNI pools' figures, in any order; optional.
	Pools func() []PoolStats
}

// PoolStats are a DNI pool's figures: its numbers, how many of them
// visitors hold now, and how many visitors were shown the overflow
// number since the edge started.
type PoolStats struct {
	Name          string
	Numbers, Held int
	Overflows     uint64
}

// SoftphoneStats count the agents whose softphone page is connected.
type SoftphoneStats struct {
	Connected, Available, Busy int
}

// RecordingStats are the recorder's figures.
type RecordingStats struct {
	Active        int
	BufferedBytes int64
	Behind        uint64
	Completed     uint64
	Failed        uint64
	LateSamples   uint64
}

// Outcomes counts ended calls by outcome and missed reason.
type Outcomes struct {
	mu sync.Mutex
	n  map[[2]string]uint64
}

// NewOutcomes starts counting at zero.
func NewOutcomes() *Outcomes { return &Outcomes{n: map[[2]string]uint64{}} }

// Count adds an ended call.
func (o *Outcomes) Count(rec *call.Record) {
	o.mu.Lock()
	o.n[[2]string{rec.Outcome, rec.MissedReason}]++
	o.mu.Unlock()
}

func (o *Outcomes) write(w io.Writer) {
	o.mu.Lock()
	keys := make([][2]string, 0, len(o.n))
	for k := range o.n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1]
	})
	for _, k := range keys {
		fmt.Fprintf(w, "callsign_calls_total{outcome=%s,missed_reason=%s} %d\n", label(k[0]), label(k[1]), o.n[k])
	}
	o.mu.Unlock()
}

// Handler serves /healthz, /readyz, /metrics, the admin API and the
// dashboard.
func Handler(src Sources, outcomes *Outcomes, api API) http.Handler {
	mux := http.NewServeMux()
	api.register(mux)
	registerDashboard(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if src.Ready != nil && !src.Ready() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		writeMetrics(w, src, outcomes)
	})
	return mux
}

func writeMetrics(w io.Writer, src Sources, outcomes *Outcomes) {
	family(w, "callsign_active_calls", "gauge", "Calls in progress.")
	fmt.Fprintf(w, "callsign_active_calls %d\n", src.ActiveCalls())
	family(w, "callsign_calls_total", "counter", "Ended calls by outcome and missed reason.")
	outcomes.write(w)
	family(w, "callsign_sip_responses_total", "counter", "SIP responses the edge sent, by status code.")
	src.SIPResponses(func(code int, n uint64) {
		fmt.Fprintf(w, "callsign_sip_responses_total{code=\"%d\"} %d\n", code, n)
	})
	family(w, "callsign_rtp_packets_relayed_total", "counter", "RTP packets relayed between call legs.")
	fmt.Fprintf(w, "callsign_rtp_packets_relayed_total %d\n", src.RelayedPackets())
	family(w, "callsign_rtp_packets_dropped_total", "counter", "RTP packets dropped (malformed, foreign source, no destination).")
	fmt.Fprintf(w, "callsign_rtp_packets_dropped_total %d\n", src.DroppedPackets())
	family(w, "callsign_rtp_ports_in_use", "gauge", "RTP ports held by call legs.")
	fmt.Fprintf(w, "callsign_rtp_ports_in_use %d\n", src.RTPPortsInUse())
	if src.PromptPackets != nil {
		family(w, "callsign_prompt_packets_sent_total", "counter", "RTP packets of prompts sent to callers.")
		fmt.Fprintf(w, "callsign_prompt_packets_sent_total %d\n", src.PromptPackets())
	}
	if src.SIPDropped != nil {
		family(w, "callsign_sip_dropped_total", "counter", "SIP messages dropped unanswered, by reason (rate_limit: from a source blocked for its request rate; scanner: a SIP scanner's requests).")
		src.SIPDropped(func(reason string, n uint64) {
			fmt.Fprintf(w, "callsign_sip_dropped_total{reason=%s} %d\n", label(reason), n)
		})
	}
	if src.SIPBlockedSources != nil {
		family(w, "callsign_sip_blocked_sources", "gauge", "Sources blocked for sending too many requests.")
		fmt.Fprintf(w, "callsign_sip_blocked_sources %d\n", src.SIPBlockedSources())
	}
	if src.RegisterLockouts != nil {
		family(w, "callsign_register_lockouts_total", "counter", "Lockouts of registrations after failed attempts, by what was locked out (source, username).")
		src.RegisterLockouts(func(by string, n uint64) {
			fmt.Fprintf(w, "callsign_register_lockouts_total{by=%s} %d\n", label(by), n)
		})
	}
	if src.Journal != nil {
		errs, dropped := src.Journal()
		family(w, "callsign_journal_errors_total", "counter", "Failed writes of the call journal (the calls go on; a crash meanwhile may leave them without a call.completed).")
		fmt.Fprintf(w, "callsign_journal_errors_total %d\n", errs)
		family(w, "callsign_journal_dropped_total", "counter", "Call journal records dropped because its writer fell behind.")
		fmt.Fprintf(w, "callsign_journal_dropped_total %d\n", dropped)
	}
	if src.Keys != nil {
		family(w, "callsign_dtmf_keys_total", "counter", "Keys callers pressed, by how they reached the edge.")
		src.Keys(func(via string, n uint64) {
			fmt.Fprintf(w, "callsign_dtmf_keys_total{via=%s} %d\n", label(via), n)
		})
	}
	if src.Recordings != nil {
		r := src.Recordings()
		family(w, "callsign_recordings_active", "gauge", "Recordings in progress.")
		fmt.Fprintf(w, "callsign_recordings_active %d\n", r.Active)
		family(w, "callsign_recordings_total", "counter", "Recordings finished, by result.")
		fmt.Fprintf(w, "callsign_recordings_total{result=\"completed\"} %d\n", r.Completed)
		fmt.Fprintf(w, "callsign_recordings_total{result=\"failed\"} %d\n", r.Failed)
		family(w, "callsign_recording_buffered_bytes", "gauge", "Audio recorded but not yet on disk (grows when the disk is slow).")
		fmt.Fprintf(w, "callsign_recording_buffered_bytes %d\n", r.BufferedBytes)
		family(w, "callsign_recording_writer_behind_total", "counter", "Times a recording's writer found more than a second of audio waiting.")
		fmt.Fprintf(w, "callsign_recording_writer_behind_total %d\n", r.Behind)
		family(w, "callsign_recording_late_samples_total", "counter", "Samples that arrived too late for their place in a recording.")
		fmt.Fprintf(w, "callsign_recording_late_samples_total %d\n", r.LateSamples)
	}
	if src.Softphones != nil {
		sp := src.Softphones()
		family(w, "callsign_softphone_agents", "gauge", "Agents whose softphone page is connected, by what it shows.")
		fmt.Fprintf(w, "callsign_softphone_agents{state=\"connected\"} %d\n", sp.Connected)
		fmt.Fprintf(w, "callsign_softphone_agents{state=\"available\"} %d\n", sp.Available)
		fmt.Fprintf(w, "callsign_softphone_agents{state=\"busy\"} %d\n", sp.Busy)
	}
	if src.Pools != nil {
		writePools(w, src.Pools())
	}
	published, failed, dropped, queued := src.Events()
	family(w, "callsign_events_total", "counter", "Events by what became of them.")
	fmt.Fprintf(w, "callsign_events_total{result=\"published\"} %d\n", published)
	fmt.Fprintf(w, "callsign_events_total{result=\"failed\"} %d\n", failed)
	fmt.Fprintf(w, "callsign_events_total{result=\"dropped\"} %d\n", dropped)
	family(w, "callsign_events_queued", "gauge", "Events waiting to be published.")
	fmt.Fprintf(w, "callsign_events_queued %d\n", queued)
	family(w, "callsign_events_outbox_errors_total", "counter", "Failed disk operations of the event outbox (events then wait in memory).")
	fmt.Fprintf(w, "callsign_events_outbox_errors_total %d\n", src.OutboxErrors())
	writeRuntime(w)
}

// writePools writes each family's samples together, as the text format
// wants, in the order of the pools' names so that scrapes compare line
// by line.
func writePools(w io.Writer, pools []PoolStats) {
	// The slice may be the source's own; it is not ours to reorder.
	pools = slices.Clone(pools)
	slices.SortFunc(pools, func(a, b PoolStats) int { return strings.Compare(a.Name, b.Name) })
	family(w, "callsign_pool_numbers", "gauge", "Numbers of a DNI pool.")
	for _, p := range pools {
		fmt.Fprintf(w, "callsign_pool_numbers{pool=%s} %d\n", label(p.Name), p.Numbers)
	}
	family(w, "callsign_pool_held", "gauge", "Numbers of a DNI pool held by web visitors now (past 75% of callsign_pool_numbers the pool is under pressure).")
	for _, p := range pools {
		fmt.Fprintf(w, "callsign_pool_held{pool=%s} %d\n", label(p.Name), p.Held)
	}
	family(w, "callsign_pool_overflow_total", "counter", "Visitors shown a DNI pool's overflow number because every number was held (their calls lose the visit's attribution).")
	for _, p := range pools {
		fmt.Fprintf(w, "callsign_pool_overflow_total{pool=%s} %d\n", label(p.Name), p.Overflows)
	}
}

// family writes the HELP and TYPE lines that open a metric's samples.
func family(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// label is a label value quoted as the Prometheus text format wants it:
// only backslash, double quote and newline escaped. Go's %q would write
// \t or \x01 for what an operator's pool name may hold, and one such line
// makes the whole scrape unparsable.
func label(v string) string {
	return `"` + labelValue(v) + `"`
}

func labelValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// writeRuntime tells whether peers' traffic leaves goroutines or memory
// behind: both should come back after a burst of calls or junk. It reads
// runtime/metrics, which unlike runtime.ReadMemStats does not stop the
// world on every scrape.
func writeRuntime(w io.Writer) {
	s := []metrics.Sample{
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
	}
	metrics.Read(s)
	val := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	family(w, "callsign_go_goroutines", "gauge", "Goroutines of the edge.")
	fmt.Fprintf(w, "callsign_go_goroutines %d\n", val(0))
	// objects + unused is what runtime.MemStats calls HeapInuse.
	family(w, "callsign_go_heap_inuse_bytes", "gauge", "Bytes of the edge's heap in spans in use.")
	fmt.Fprintf(w, "callsign_go_heap_inuse_bytes %d\n", val(1)+val(2))
}

// Serve runs the HTTP server on listen until ctx ends; with tlsConf, it
// serves https.
func Serve(ctx context.Context, listen string, tlsConf *tls.Config, h http.Handler, log zerolog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("http: listen %s: %w", listen, err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server stopped")
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr(), nil
}
