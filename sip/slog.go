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
		ev = ev.Any(a.Key, a.Value.Any())
	}
	r.Attrs(func(a slog.Attr) bool {
		ev = ev.Any(a.Key, a.Value.Any())
		return true
	})
	ev.Msg(r.Message)
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &slogHandler{log: h.log, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
}

func (h *slogHandler) WithGroup(string) slog.Handler { return h }
