package bus

import (
	"context"
	"fmt"
	"time"
)

// Stream probes: how often each stream is asked for its state, and how
// long it may take to answer before the stream is reported failing.
const (
	probeEvery    = 2 * time.Second
	probeDeadline = 4 * time.Second
)

// WatchStreams asks each stream for its state (a round trip to the node
// that leads it) every probeEvery until ctx ends. A stream that does not
// answer within probeDeadline (its leader frozen or gone, a cluster
// electing a new one, no quorum) makes the component "stream NAME"
// failing, so /readyz answers 503 naming it, until it answers again: a
// connection that is up is not enough to publish or consume.
func (b *Bus) WatchStreams(ctx context.Context, streams ...string) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		for _, name := range streams {
			pctx, cancel := context.WithTimeout(ctx, probeDeadline)
			start := time.Now()
			_, err := b.js.Stream(pctx, name)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				err = fmt.Errorf("stream info request failed after %s (limit %s): %w", time.Since(start).Round(time.Millisecond), probeDeadline, err)
			}
			b.health.Set("stream "+name, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
