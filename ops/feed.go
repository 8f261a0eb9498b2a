package ops

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/calllog"
)

const (
	// feedSubscribers bounds the live clients: each holds a connection,
	// a goroutine and a buffer of events.
	feedSubscribers = 64
	// feedBuffer is how many events a client may be behind before it is
	// told to resync: enough for a burst of calls ending together.
	feedBuffer = 64
	// feedKeepalive keeps proxies and load balancers, which close idle
	// connections after 30 to 60 s, from closing a quiet stream.
	feedKeepalive = 15 * time.Second
	// feedWriteTimeout frees a stream whose client stopped reading
	// without closing the connection.
	feedWriteTimeout = 30 * time.Second
)

var (
	errFeedFull   = errors.New("too many live clients")
	errFeedClosed = errors.New("the live call feed is closed")
)

// Feed hands every ended call to the admin API's live clients (GET
// /api/stream). Its methods are safe for concurrent use.
type Feed struct {
	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed bool
	done   chan struct{}

	max       int
	buffer    int
	keepalive time.Duration
}

// subscription is one live client.
type subscription struct {
	events chan []byte
	// behind holds a signal once an event could not be buffered.
	behind chan struct{}
}

// NewFeed makes a feed without clients.
func NewFeed() *Feed {
	return &Feed{
		subs:      map[*subscription]struct{}{},
		done:      make(chan struct{}),
		max:       feedSubscribers,
		buffer:    feedBuffer,
		keepalive: feedKeepalive,
	}
}

// Publish sends an ended call to every live client. It never blocks: a
// client too slow to take it loses it and is told to resync. rec is only
// read during the call.
func (f *Feed) Publish(rec *call.Record) {
	if rec == nil {
		return
	}
	f.mu.Lock()
	n := len(f.subs)
	f.mu.Unlock()
	if n == 0 {
		return
	}
	// Encoded once for every client.
	e := calllog.EntryOf(rec)
	b, err := json.Marshal(callOf(&e, rec.FirstCall))
	if err != nil {
		return // strings, numbers and maps of strings always encode
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		select {
		case s.events <- b:
		default:
			select {
			case s.behind <- struct{}{}:
			default:
			}
		}
	}
}

// Close ends every stream and refuses new ones, so that a server
// shutting down does not wait on clients that never leave by themselves.
func (f *Feed) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.done)
	}
}

func (f *Feed) subscribe() (*subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return nil, errFeedClosed
	case len(f.subs) >= f.max:
		return nil, errFeedFull
	}
	s := &subscription{events: make(chan []byte, f.buffer), behind: make(chan struct{}, 1)}
	f.subs[s] = struct{}{}
	return s, nil
}

func (f *Feed) unsubscribe(s *subscription) {
	f.mu.Lock()
	delete(f.subs, s)
	f.mu.Unlock()
}

// stream serves the feed as Server-Sent Events.
func (a API) stream(w http.ResponseWriter, r *http.Request) {
	f := a.Feed
	if f == nil {
		writeError(w, http.StatusNotFound, "the live call feed is off")
		return
	}
	sub, err := f.subscribe()
	if err != nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer f.unsubscribe(sub)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// nginx buffers responses unless told not to, which would hold
	// events back until its buffer fills.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The headers go out now: the client knows it is subscribed before
	// the first call ends.
	if err := rc.Flush(); err != nil {
		return
	}
	keepalive := time.NewTicker(f.keepalive)
	defer keepalive.Stop()
	for {
		var msg []byte
		select {
		case <-r.Context().Done():
			return
		case <-f.done:
			return
		case <-keepalive.C:
			msg = []byte(": keepalive\n\n")
		case <-sub.behind:
			// The client reloads the list on resync, which covers what
			// is still buffered: no need to send it too.
			for len(sub.events) > 0 {
				<-sub.events
			}
			// EventSource parsers drop an event without data.
			msg = []byte("event: resync\ndata: {}\n\n")
		case b := <-sub.events:
			msg = make([]byte, 0, len(b)+40)
			msg = append(msg, "event: "+call.EventCompleted+"\ndata: "...)
			msg = append(msg, b...)
			msg = append(msg, "\n\n"...)
		}
		// Not every writer has deadlines (ErrNotSupported): the stream
		// then relies on the connection failing.
		_ = rc.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
		if _, err := w.Write(msg); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
