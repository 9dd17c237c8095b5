package hosts

import (
	"context"
	"fmt"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/kv"
)

// KV is what the store needs from the latest-state bucket
// (*kv.State implements it).
type KV interface {
	Get(ctx context.Context, key string) (kv.StateEntry, error)
	History(ctx context.Context, key string) ([]kv.StateEntry, error)
	PutMany(ctx context.Context, puts []kv.StatePut) error
	Scan(ctx context.Context, patterns []string, fn func(kv.StateEntry) error, opts ...kv.ScanOption) error
	Delete(ctx context.Context, keys ...string) error
}

// Open opens (creates or updates) the store's bucket on b.
func Open(ctx context.Context, b *bus.Bus, cfg Config) (*kv.State, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := kv.OpenState(ctx, b, kv.StateConfig{
		Bucket:      cfg.Bucket,
		Description: "Sightline host cache: latest (and previous) version of every host object, for sightline search",
		History:     cfg.History,
		MaxBytes:    cfg.MaxBytes,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("hosts: open store: %w", err)
	}
	return st, nil
}
