// Package hosts is the host store: its layout in a JetStream key-value
// bucket (keys.go, records.go), its configuration section (`hosts:`), and
// the sink that keeps it current from the host sync events on
// SIGHTLINE_EVENTS. The collector that feeds it is producers/host; fleet
// search (`sightline search`) reads it through query/fleet.
package hosts

import (
	"context"

	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/sinks"
)

// Spec is the hosts sink in the binary's sink table: the `hosts` section
// (Config) and a durable consumer on its subject.
var Spec = sinks.Define("hosts", DefaultConfig, open)

func open(ctx context.Context, cfg *Config, env sinks.Env) (*sinks.Opened, error) {
	b, err := env.Bus(ctx)
	if err != nil {
		return nil, err
	}
	kv, err := Open(ctx, b, *cfg)
	if err != nil {
		return nil, err
	}
	return sinks.OnEvents(NewSink(kv, *cfg, env.Log), consume.Config{
		Stage: "hosts", Durable: cfg.Consumer, Filters: cfg.Filters(), Batch: 128, BatchBytes: 16 << 20,
	}), nil
}
