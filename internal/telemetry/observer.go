package telemetry

import (
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/bus/loss"
)

// Fanout sends every observation to each observer.
type Fanout []bus.Observer

var _ bus.Observer = Fanout(nil)

// Both the metrics and the fan-out record stalls, lost input and backlogs
// at risk.
var (
	_ consume.StallObserver = (*Metrics)(nil)
	_ loss.Observer         = (*Metrics)(nil)
	_ consume.StallObserver = Fanout(nil)
	_ loss.Observer         = Fanout(nil)
)

func (f Fanout) Received(stage, kind string, redelivered bool) {
	for _, o := range f {
		o.Received(stage, kind, redelivered)
	}
}

func (f Fanout) Emitted(stage, kind string, n int) {
	for _, o := range f {
		o.Emitted(stage, kind, n)
	}
}

func (f Fanout) Rejected(stage, kind, class string) {
	for _, o := range f {
		o.Rejected(stage, kind, class)
	}
}

func (f Fanout) Duplicate(stage, kind string) {
	for _, o := range f {
		o.Duplicate(stage, kind)
	}
}

func (f Fanout) Retried(stage, kind string) {
	for _, o := range f {
		o.Retried(stage, kind)
	}
}

func (f Fanout) Observed(stage, kind string, d time.Duration) {
	for _, o := range f {
		o.Observed(stage, kind, d)
	}
}

func (f Fanout) Pending(stream, consumer string, n uint64) {
	for _, o := range f {
		o.Pending(stream, consumer, n)
	}
}

// Stalled forwards to the observers that record stalls.
func (f Fanout) Stalled(stream, consumer string, stalled bool) {
	for _, o := range f {
		if so, ok := o.(consume.StallObserver); ok {
			so.Stalled(stream, consumer, stalled)
		}
	}
}

// Lost forwards to the observers that record lost input.
func (f Fanout) Lost(stream, consumer string, n uint64) {
	for _, o := range f {
		if lo, ok := o.(loss.Observer); ok {
			lo.Lost(stream, consumer, n)
		}
	}
}

// Dropped forwards to the observers that record input not stored.
func (f Fanout) Dropped(stream string, n uint64) {
	for _, o := range f {
		if do, ok := o.(loss.DoorObserver); ok {
			do.Dropped(stream, n)
		}
	}
}

// AtRisk forwards to the observers that record backlogs at risk.
func (f Fanout) AtRisk(stream, consumer string, risk bool) {
	for _, o := range f {
		if lo, ok := o.(loss.Observer); ok {
			lo.AtRisk(stream, consumer, risk)
		}
	}
}
