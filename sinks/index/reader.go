package index

import (
	"context"
	"fmt"
)

// OpenReader opens the index to search it from another process (the
// CLI): the remote index when configured, else the embedded index opened
// read-only, which fails while `sightline run` holds it (then search
// through its HTTP API, package searchapi). close releases it.
func OpenReader(cfg Config, opts ...Option) (s Searcher, closeFn func() error, err error) {
	nop := func() error { return nil }
	if cfg.Remote() {
		r, err := NewRemote(cfg, opts...)
		if err != nil {
			return nil, nil, err
		}
		return r, nop, nil
	}
	cfg = cfg.withDefaults()
	e, err := openEmbeddedStore(cfg, true, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("index: open the embedded index %s read-only: %w (is `sightline run` holding it? then use --api http://<its http address>)", cfg.EmbeddedPath, err)
	}
	return e, func() error { return e.Close(context.Background()) }, nil
}
