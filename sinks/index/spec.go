package index

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
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
		Consumers: []consume.Config{
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
		safe := make([]string, len(c.URLs))
		for i, u := range c.URLs {
			safe[i] = withoutUserinfo(u)
		}
		return strings.Join(safe, ",")
	}
	return "embedded:" + c.EmbeddedPath
}

// withoutUserinfo is u with anything between "://" and its last "@"
// replaced by "***": the user and password, whatever characters the
// password holds (a "/", "#", "?" or "%" makes url.Parse fail or cut the
// password elsewhere, so it is not used here).
func withoutUserinfo(u string) string {
	scheme := strings.Index(u, "://")
	at := strings.LastIndex(u, "@")
	if scheme < 0 || at < scheme {
		return u
	}
	return u[:scheme+3] + "***" + u[at:]
}
