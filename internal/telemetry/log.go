// Package telemetry builds what Sightline reports about itself: slog JSON
// (or text) logs carrying the correlation ID, Prometheus metrics and an
// optional statsd feed behind the bus.Observer interface, and OpenTelemetry
// tracing (off by default, OTLP over HTTP when configured).
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/sightline/sightline/internal/correlation"
)

// ParseLevel reads debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns a logger writing format ("json" or "text") to w at the
// level held by lv (change lv to change the level while running). Records
// logged with a context carrying a correlation ID get a correlation_id
// attribute.
func NewLogger(w io.Writer, format string, lv *slog.LevelVar) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "", "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want json or text", format)
	}
	return slog.New(correlationHandler{h}), nil
}

// correlationHandler adds correlation_id from the record's context.
type correlationHandler struct{ slog.Handler }

func (h correlationHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := correlation.FromContext(ctx); id != "" {
		has := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "correlation_id" {
				has = true
				return false
			}
			return true
		})
		if !has {
			r.AddAttrs(slog.String("correlation_id", id))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h correlationHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return correlationHandler{h.Handler.WithAttrs(as)}
}

func (h correlationHandler) WithGroup(name string) slog.Handler {
	return correlationHandler{h.Handler.WithGroup(name)}
}
