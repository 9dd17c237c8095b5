package bus

import "time"

// Observer is told what the consumers do (internal/bus/consume); internal/telemetry implements it
// with Prometheus and statsd.
type Observer interface {
	// Received counts an input message of a kind at a stage.
	Received(stage, kind string, redelivered bool)
	// Emitted counts output messages published for an input.
	Emitted(stage, kind string, n int)
	// Rejected counts an input sent to the DLQ with a reason class.
	Rejected(stage, kind, class string)
	// Duplicate counts an input whose event the events stream already held
	// (same source, same producer id): recorded, not emitted.
	Duplicate(stage, kind string)
	// Retried counts an input handed back for redelivery.
	Retried(stage, kind string)
	// Observed records the processing time of one input (or one batch for
	// sinks, per message).
	Observed(stage, kind string, d time.Duration)
	// Pending records the consumer's backlog.
	Pending(stream, consumer string, n uint64)
}

// NopObserver observes nothing (embed it to implement only some methods).
var NopObserver Observer = nopObserver{}

type nopObserver struct{}

func (nopObserver) Received(string, string, bool)          {}
func (nopObserver) Emitted(string, string, int)            {}
func (nopObserver) Rejected(string, string, string)        {}
func (nopObserver) Retried(string, string)                 {}
func (nopObserver) Duplicate(string, string)               {}
func (nopObserver) Observed(string, string, time.Duration) {}
func (nopObserver) Pending(string, string, uint64)         {}
