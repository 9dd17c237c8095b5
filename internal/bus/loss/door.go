package loss

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/stage"
)

// DoorObserver is implemented by observers that also record messages
// published on the raw subjects that the raw stream never stored
// (internal/telemetry's metrics).
type DoorObserver interface {
	// Dropped counts n messages published on the stream's subjects that
	// the stream did not store.
	Dropped(stream string, n uint64)
}

// doorTick is how often the door is reconciled.
const doorTick = time.Second

// DoorComponent is the health component that carries the door's count.
const DoorComponent = "input " + bus.StreamRaw

// WatchDoor counts, on the embedded server, every message published on
// sightline.raw.> that SIGHTLINE_RAW did not store: a core publish (like
// `nats pub`) dropped without a word because the stream's ingest queue
// was full (a burst faster than the disk), or because the stream refused
// it (a JetStream control header such as Nats-Expected-Last-Sequence or
// Nats-TTL, a header block over 64 KiB, a Nats-Msg-Id seen within the
// duplicate window), and a JetStream publish refused to its publisher. A
// core subscription of its own counts what the server received; the
// stream's last sequence counts what it stored; whenever the stream's
// ingest queue is empty and nothing arrived meanwhile, the difference is
// exact, and what it grew by is logged, counted in the DoorObserver
// (sightline_input_dropped_total) and in the health component
// DoorComponent (`sightline status`). On an external cluster it does
// nothing: the server's log says "Dropping messages due to excessive
// stream ingest rate". It runs until ctx is done.
func WatchDoor(ctx context.Context, b *bus.Bus) error {
	if b.Server() == nil {
		return nil
	}
	// A connection of its own: a burst must not make the pipeline's
	// connection a slow consumer.
	nc, err := b.ConnectEmbedded("sightline-door")
	if err != nil {
		return fmt.Errorf("bus: door watch: %w", err)
	}
	d := &door{b: b}
	sub, err := nc.Subscribe(stage.RawPrefix+">", func(*nats.Msg) { d.seen.Add(1) })
	if err != nil {
		nc.Close()
		return fmt.Errorf("bus: door watch: %w", err)
	}
	_ = sub.SetPendingLimits(-1, 1<<30)
	if err := nc.Flush(); err != nil {
		nc.Close()
		return fmt.Errorf("bus: door watch: %w", err)
	}
	d.sub = sub
	go func() {
		defer nc.Close()
		t := time.NewTicker(doorTick)
		defer t.Stop()
		// Counting starts at a quiet moment: nothing arriving, nothing
		// queued; until then, nothing is counted.
		started := d.start(ctx)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if !started {
					started = d.start(ctx)
					continue
				}
				d.check(ctx)
			}
		}
	}()
	return nil
}

type door struct {
	b       *bus.Bus
	sub     *nats.Subscription
	seen    atomic.Uint64
	base    uint64 // the stream's last sequence when counting began
	offset  uint64 // received() when counting began
	counted uint64 // not stored, reported so far
}

// start sets the counts' origin; false when the moment was not quiet.
func (d *door) start(ctx context.Context) bool {
	before := d.received()
	last, ok := d.stored(ctx)
	if !ok || d.received() != before {
		return false
	}
	d.base, d.offset = last, before
	return true
}

// stored reads the stream's last sequence; ok only when its ingest queue
// is empty (everything the server received is stored or dropped).
func (d *door) stored(ctx context.Context) (uint64, bool) {
	if d.queued() != 0 {
		return 0, false
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := d.b.JetStream().Stream(ictx, bus.StreamRaw)
	if err != nil {
		return 0, false
	}
	info, err := s.Info(ictx)
	if err != nil {
		return 0, false
	}
	return info.State.LastSeq, d.queued() == 0
}

// queued is what the raw stream's ingest queue holds or works on.
func (d *door) queued() int {
	qs := d.b.Server().Ipqueuesz(&server.IpqueueszOptions{All: true, Filter: "stream '" + bus.StreamRaw + "' messages"})
	n := 0
	for _, q := range *qs {
		n += q.Pending + q.InProgress
	}
	return n
}

// received is what the door's subscription got, plus what it dropped
// itself (a slow subscriber).
func (d *door) received() uint64 {
	dropped, _ := d.sub.Dropped()
	return d.seen.Load() + uint64(max(dropped, 0))
}

// check reconciles at a quiet moment: nothing arrived while the stream's
// state was read and its ingest queue was empty.
func (d *door) check(ctx context.Context) {
	before := d.received()
	last, ok := d.stored(ctx)
	if !ok || d.received() != before || last < d.base {
		return
	}
	before -= d.offset
	stored := last - d.base
	if before <= stored+d.counted {
		return
	}
	n := before - stored - d.counted
	d.counted += n
	if o, ok := d.b.Observer().(DoorObserver); ok {
		o.Dropped(bus.StreamRaw, n)
	}
	d.b.Health().AddLost(DoorComponent, n)
	d.b.Logger().Error("messages published on the raw subjects were not stored: a core publisher (nats pub) was not told",
		"stream", bus.StreamRaw, "not_stored", n, "not_stored_total", d.counted, "published_total", before, "stored_total", stored,
		"hint", "a burst faster than the stream's ingest queue (core publishes are at-most-once: publish with acknowledgements, `nats pub -J`, "+
			"to be told and retry), a JetStream control header (Nats-Expected-*, Nats-TTL, Nats-Rollup, Nats-Batch-Id, Nats-Schedule, Nats-Incr), "+
			"a header block over 64 KiB, or a Nats-Msg-Id repeated within the duplicate window; JetStream publishes refused to their publisher count here too")
}
