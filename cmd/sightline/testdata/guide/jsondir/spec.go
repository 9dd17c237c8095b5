package jsondir

import (
	"context"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/sinks"
)

// Spec is the jsondir sink in the binary's sink table: the `jsondir`
// section and one durable consumer on the events stream.
var Spec = sinks.Define("jsondir", DefaultConfig, open)

func open(_ context.Context, c *Config, _ sinks.Env) (*sinks.Opened, error) {
	s, err := New(c.Dir)
	if err != nil {
		return nil, err
	}
	return &sinks.Opened{Sink: s, Consumers: []consume.Config{{
		Stage: "jsondir", Stream: bus.StreamEvents, Durable: "jsondir", Filters: []string{c.Subject},
		Batch: c.Batch, Linger: 100 * time.Millisecond,
	}}}, nil
}
