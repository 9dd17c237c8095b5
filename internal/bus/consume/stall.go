package consume

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus/loss"
)

// StallObserver is implemented by observers that also record consumer
// stalls (internal/telemetry's metrics).
type StallObserver interface {
	// Stalled records that a consumer entered (true) or left (false) the
	// stalled state.
	Stalled(stream, consumer string, stalled bool)
}

// watch reports the consumer's backlog and detects stalls: work pending
// (on the server or held here) while nothing is received or settled for
// StallTimeout (plus Linger, which a batch may legitimately wait). A stall
// makes the consumer unhealthy (readiness fails, naming it), logs one
// error, sets the stall metric and restarts the pull loop (again every
// StallTimeout while it lasts); recovery logs once and clears them.
func (b *conn) watch(ctx context.Context, p *puller, lc *loss.Check) {
	c := p.c
	name := "consumer " + c.Durable
	b.health.Set(name, nil)
	defer b.health.Drop(name)
	limit := c.StallTimeout + c.Linger
	every := min(5*time.Second, max(c.StallTimeout/4, 50*time.Millisecond))
	t := time.NewTicker(every)
	defer t.Stop()
	so, _ := b.obs.(StallObserver)
	var (
		cons         jetstream.Consumer
		lastCount    uint64
		lastProgress = time.Now()
		lastRestart  time.Time
		stalled      bool
		pending      uint64
		lastCheck    time.Time
	)
	unstall := func() {
		if stalled {
			stalled = false
			b.health.Set(name, nil)
			if so != nil {
				so.Stalled(c.Stream, c.Durable, false)
			}
		}
	}
	defer unstall()
	for {
		if cons == nil {
			cons, _ = b.js.Consumer(ctx, c.Stream, c.Durable)
		}
		lastCheck = time.Now()
		if cons != nil {
			if info, err := lc.Observe(ctx, cons); err == nil {
				pending = info.NumPending
				b.obs.Pending(c.Stream, c.Durable, info.NumPending+uint64(info.NumAckPending))
			} else {
				cons = nil // gone or unreachable: look it up again next time
			}
		}
		// Progress is an input that left (acked, dead-lettered): inputs
		// redelivered and failing again and again are no progress.
		received, settled := p.received.Load(), p.settled.Load()
		now := time.Now()
		count, held := p.finished.Load(), received-min(settled, received)
		switch {
		case count != lastCount:
			lastCount, lastProgress = count, now
			unstall()
		case pending == 0 && held == 0:
			lastProgress = now // idle is not a stall
			unstall()
		case !b.Connected():
			// The nats component says why; the clock starts again once
			// the connection is back.
			lastProgress = now
		case now.Sub(lastProgress) < limit:
		case !stalled:
			stalled, lastRestart = true, now
			b.health.Set(name, fmt.Errorf("stalled: no input acknowledged or dead-lettered for %s with %d pending on the server and %d held here (inputs failing on every delivery hold the in-flight slots until dead-lettered as kept_failing)",
				now.Sub(lastProgress).Round(time.Second), pending, held))
			if so != nil {
				so.Stalled(c.Stream, c.Durable, true)
			}
			p.Restart("stalled")
		case now.Sub(lastRestart) >= limit:
			lastRestart = now
			p.Restart("still stalled")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-lc.Wake():
			// A gap in the deliveries: look at the stream now, while it
			// can still tell a removed message from one another worker
			// got, but not more often than every 250 ms.
			if d := time.Until(lastCheck.Add(250 * time.Millisecond)); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
	}
}
