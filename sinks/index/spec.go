package index

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/sinks"
)

// Spec is the index sink in the binary's sink table: the `index` section
// and two durable consumers, conformed events and dead letters, plus the
// retention loop.
var Spec = sinks.Define("index", DefaultConfig, open)

func open(_ context.Context, cfg *Config, env sinks.Env) (*sinks.Opened, error) {
	idx, err := Open(*cfg, WithLogger(env.Log))
	if err != nil {
		return nil, fmt.Errorf("index sink: %w", err)
	}
	return &sinks.Opened{
		Sink: idx,
		Consumers: []bus.ConsumerConfig{
			{Stage: "index", Stream: bus.StreamEvents, Durable: "index", Filters: []string{cfg.EventsSubject},
				Batch: 1000, Linger: 200 * time.Millisecond},
			{Stage: "index-dlq", Stream: bus.StreamDLQ, Durable: "index-dlq", Filters: []string{cfg.DLQSubject},
				Batch: 500, Linger: 200 * time.Millisecond},
		},
		Background: []func(context.Context){idx.RunRetention},
	}, nil
}

// Summary describes where the index is, for the start-up log line.
func (c *Config) Summary() string {
	if c.Remote() {
		return strings.Join(c.URLs, ",")
	}
	return "embedded:" + c.EmbeddedPath
}
