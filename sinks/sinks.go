// Package sinks is what the sightline binary knows about a sink. Each sink
// folder (sinks/index, sinks/graph, ...) exports one Spec: its configuration
// section (config.Section: keys, defaults, validation, secrets) and how it
// is opened and consumed. The binary lists the specs in one explicit table
// (cmd/sightline/sinks.go), used by `sightline run` and `sightline replay`;
// there is no registry and no init().
package sinks

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/stage"
)

// Env is what the binary gives a sink it opens.
type Env struct {
	// Log is the sink's logger (already tagged with the sink's name).
	Log *slog.Logger
	// Registerer takes the sink's own metrics; nil in replay.
	Registerer prometheus.Registerer
	// Bus connects to JetStream, for a sink whose store lives there.
	Bus func(context.Context) (*bus.Bus, error)
	// Publish puts messages on the streams (a sink's own events, such as
	// the graph's sweep decisions); nil in replay.
	Publish func(ctx context.Context, msgs ...*stage.Message) error
	// Handle mounts a sink's own HTTP endpoints (admin calls) on the API
	// server, behind its authentication; nil in replay.
	Handle func(pattern string, h http.Handler)
}

// Opened is a sink ready to consume.
type Opened struct {
	// Sink receives the batches; the binary closes it after the consumers
	// have drained.
	Sink stage.Sink
	// Consumers are the durable consumers `sightline run` feeds the sink
	// from, with the sink's own batch and ack settings (replay uses its
	// own ephemeral consumer instead).
	Consumers []consume.Config
	// Background loops run beside the consumers until their context is
	// done (retention, ...).
	Background []func(context.Context)
}

// OnEvents is the Opened of a sink fed by one durable consumer of the
// events stream (bus.StreamEvents): c, with the stream set and the
// durable named after the stage when c leaves it empty.
func OnEvents(s stage.Sink, c consume.Config) *Opened {
	c.Stream = bus.StreamEvents
	if c.Durable == "" {
		c.Durable = c.Stage
	}
	return &Opened{Sink: s, Consumers: []consume.Config{c}}
}

// Spec describes one sink to the binary.
type Spec struct {
	// Name is the configuration section and the sink's name in logs,
	// metrics and `sightline replay --to-sink`.
	Name string
	// Section declares the configuration section.
	Section config.SectionDef
	// Open opens the sink from its section of cfg.
	Open func(ctx context.Context, cfg config.Section, env Env) (*Opened, error)
}

// Define builds the Spec of a sink whose section is *C: defaults returns
// the section's defaults and open opens the sink from it.
func Define[C any, PC interface {
	*C
	config.Section
}](name string, defaults func() C, open func(ctx context.Context, cfg *C, env Env) (*Opened, error)) Spec {
	return Spec{
		Name: name,
		Section: config.SectionDef{Name: name, New: func() config.Section {
			c := defaults()
			return PC(&c)
		}},
		Open: func(ctx context.Context, s config.Section, env Env) (*Opened, error) {
			c, ok := s.(PC)
			if !ok {
				return nil, fmt.Errorf("sink %s: configuration section of type %T, want %T", name, s, PC(nil))
			}
			if env.Log == nil {
				env.Log = slog.New(slog.DiscardHandler)
			}
			return open(ctx, c, env)
		},
	}
}

// SectionOf returns the section of the sink named name in cfg as *C, or
// an error when the binary has no such section.
func SectionOf[C any](cfg *config.Config, name string) (*C, error) {
	c, ok := any(cfg.Section(name)).(*C)
	if !ok {
		return nil, fmt.Errorf("the configuration has no %s section of type %T", name, c)
	}
	return c, nil
}
