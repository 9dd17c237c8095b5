package archive

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/sinks"
)

// Spec is the archive sink in the binary's sink table: the `archive`
// section and one durable consumer whose batches become objects.
var Spec = sinks.Define("archive", DefaultConfig, open)

// LeaseBucket is the JetStream key-value bucket of the archive's window
// leases (archive.lease_ttl).
const LeaseBucket = "sightline_archive_leases"

func open(ctx context.Context, cfg *Config, env sinks.Env) (*sinks.Opened, error) {
	opts := []Option{WithLogger(env.Log)}
	if strings.HasPrefix(cfg.URL, "s3://") && cfg.LeaseTTL > 0 && env.Bus != nil {
		// Two workers sharing the archive consumer merge into the same
		// window objects: a lease per window in JetStream makes them take
		// turns, whatever the store's conditional PUT is worth.
		b, err := env.Bus(ctx)
		if err != nil {
			return nil, err
		}
		leases, err := kv.OpenLeases(ctx, b, kv.LeaseConfig{Bucket: LeaseBucket, TTL: cfg.LeaseTTL})
		if err != nil {
			return nil, fmt.Errorf("archive sink (archive.lease_ttl): %w", err)
		}
		opts = append(opts, WithLocker(BusLocker{leases}))
	}
	s, err := New(ctx, *cfg, opts...)
	if err != nil {
		return nil, fmt.Errorf("archive sink (archive.url %s): %w", cfg.URL, err)
	}
	// Messages wait in the batch unacked; in-progress acks keep them for up
	// to MaxHold (linger + upload), a dead process's wait only AckWait.
	return sinks.OnEvents(s, consume.Config{Stage: "archive", Filters: []string{cfg.Subject},
		Batch: cfg.BatchMaxMessages, BatchBytes: cfg.BatchMaxBytes, Linger: cfg.BatchMaxAge,
		Lanes: 1, MaxHold: cfg.BatchMaxAge + cfg.PutTimeout + time.Minute, MaxAckPending: 2 * cfg.BatchMaxMessages,
	}), nil
}

// BusLocker is a Locker on JetStream leases (kv.Leases).
type BusLocker struct{ Leases *kv.Leases }

// Lock implements Locker.
func (l BusLocker) Lock(ctx context.Context, key string) (Lock, error) {
	ls, err := l.Leases.Acquire(ctx, key)
	if err != nil {
		return nil, err
	}
	return ls, nil
}
