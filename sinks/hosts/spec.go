// Package hosts is the hosts sink: it keeps the latest-state store of host
// snapshots (package hosts at the repository root: its format, its
// configuration section and `sightline search`) current from the host sync
// events on SIGHTLINE_EVENTS.
package hosts

import (
	"context"

	store "github.com/sightline/sightline/hosts"
	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/sinks"
)

// Spec is the hosts sink in the binary's sink table: the `hosts` section
// (store.Config) and a durable consumer on its subject.
var Spec = sinks.Define("hosts", store.DefaultConfig, open)

func open(ctx context.Context, cfg *store.Config, env sinks.Env) (*sinks.Opened, error) {
	b, err := env.Bus(ctx)
	if err != nil {
		return nil, err
	}
	kv, err := store.Open(ctx, b, *cfg)
	if err != nil {
		return nil, err
	}
	return &sinks.Opened{
		Sink: NewSink(kv, *cfg, env.Log),
		Consumers: []bus.ConsumerConfig{{
			Stage: "hosts", Stream: bus.StreamEvents, Durable: cfg.Consumer,
			Filters: cfg.Filters(), Batch: 128, BatchBytes: 16 << 20,
		}},
	}, nil
}
