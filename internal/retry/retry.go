// Package retry is the one backoff of the stages that retry by hand
// (publishing, merging an archive object, replaying a batch): a delay
// that doubles from Initial up to Max, with optional jitter, and a sleep
// that ends when the context does.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential delay: Initial before the first retry,
// doubled before each next one, never above Max (0: no cap). Jitter (0 to
// 1) spreads each delay over [d·(1-Jitter), d], so writers that collided
// do not retry in step.
type Backoff struct {
	Initial, Max time.Duration
	Jitter       float64
}

// Delay is the wait before retry number attempt (0 for the first).
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Initial
	for range min(attempt, 62) {
		if b.Max > 0 && d >= b.Max || d > time.Duration(1<<62) {
			break
		}
		d *= 2
	}
	if b.Max > 0 && d > b.Max {
		d = b.Max
	}
	if b.Jitter > 0 && d > 0 {
		d -= time.Duration(rand.Float64() * min(b.Jitter, 1) * float64(d))
	}
	return d
}

// Sleep waits d, or until ctx is done: then it returns ctx.Err().
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
