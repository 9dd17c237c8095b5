package graph

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/sinks"
)

// Spec is the graph sink in the binary's sink table: the `graph` section
// and one durable consumer on the snapshot subjects.
var Spec = sinks.Define("graph", DefaultConfig, open)

func open(ctx context.Context, cfg *Config, env sinks.Env) (*sinks.Opened, error) {
	opts := []Option{WithLogger(env.Log)}
	if env.Registerer != nil {
		opts = append(opts, WithRegisterer(env.Registerer))
	}
	if env.Publish != nil {
		// Every sweep decision becomes an event on the events stream
		// (indexed, archived, traceable by the sync's correlation ID).
		opts = append(opts, WithSweepReporter(func(ctx context.Context, rep SweepReport) {
			if err := env.Publish(ctx, SweepEvent(rep, time.Now())); err != nil {
				env.Log.Warn("graph sweep decision not published as an event", "scope", rep.Scope, "tag", rep.Tag,
					"result", rep.Result, "correlation_id", rep.Correlation, "err", err)
			}
		}))
	}
	s, err := New(ctx, *cfg, opts...)
	if err != nil {
		return nil, fmt.Errorf("graph sink (graph.uri %s): %w", cfg.URI, err)
	}
	if env.Handle != nil {
		mux := http.NewServeMux()
		RegisterAdmin(mux, s) // admin-only forced sweep and scope reset
		for _, p := range AdminPatterns {
			env.Handle(p, mux)
		}
	}
	// Syncs of one scope are serialized by the sink's scope lock; one lane
	// keeps the parts of a sync in order.
	o := sinks.OnEvents(s, consume.Config{Stage: "graph", Durable: cfg.Consumer, Filters: []string{cfg.Subject},
		Batch: 500, Lanes: 1, Linger: 100 * time.Millisecond})
	o.Background = []func(context.Context){func(ctx context.Context) {
		if err := s.MonitorOpenSyncs(ctx); err != nil && ctx.Err() == nil {
			env.Log.Warn("open sync monitor stopped", "err", err)
		}
	}}
	return o, nil
}
