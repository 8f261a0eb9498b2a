package sip

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// slogHandler carries sipgo's log/slog lines into the edge's zerolog
// logger, so the edge has one log stream. sipgo's informational chatter
// is kept at debug.
type slogHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
}

// NewSlogHandler makes a slog.Handler writing to log.
func NewSlogHandler(log zerolog.Logger) slog.Handler { return &slogHandler{log: log} }

func level(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.WarnLevel // a peer's mistake, not the edge's error
	case l >= slog.LevelWarn:
		return zerolog.InfoLevel
	}
	return zerolog.DebugLevel
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= level(l)
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	ev := h.log.WithLevel(level(r.Level))
	if ev == nil {
		return nil
	}
	for _, a := range h.attrs {
		ev = field(ev, a)
	}
	r.Attrs(func(a slog.Attr) bool {
		ev = field(ev, a)
		return true
	})
	ev.Msg(r.Message)
	return nil
}

// field adds a to ev; errors by their text, which zerolog's Any would
// marshal as {} for most error types.
func field(ev *zerolog.Event, a slog.Attr) *zerolog.Event {
	if err, ok := a.Value.Any().(error); ok {
		return ev.AnErr(a.Key, err)
	}
	return ev.Any(a.Key, a.Value.Any())
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &slogHandler{log: h.log, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
}

func (h *slogHandler) WithGroup(string) slog.Handler { return h }
