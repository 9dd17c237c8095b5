package telemetry

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"
)

// statsdSamples bounds the timing samples one series sends per interval
// (reservoir-sampled by the client, sent with their sample rate), so the
// feed stays the same size whatever the event rate.
const statsdSamples = 64

// Statsd is an optional bus.Observer that sends the pipeline's counters,
// gauges and timings over UDP with DogStatsD tags
// (prefix.name:value|c|#kind:metric,stage:process), through the DogStatsD
// client (github.com/DataDog/datadog-go). The client aggregates counters
// and gauges in memory and sends one line per series every interval;
// timings (milliseconds) are sent as up to statsdSamples values per series
// and interval. It never blocks the pipeline: a failed send is dropped.
type Statsd struct {
	c *statsd.Client
}

// NewStatsd dials addr (host:port, UDP). prefix is prepended to every
// metric name ("sightline." by default when empty).
func NewStatsd(addr, prefix string, interval time.Duration) (*Statsd, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("statsd: address %q: %w", addr, err)
	}
	if prefix == "" {
		prefix = "sightline."
	}
	if interval <= 0 {
		interval = 10 * time.Second
	}
	c, err := statsd.New(addr,
		statsd.WithNamespace(prefix),
		statsd.WithExtendedClientSideAggregation(),
		statsd.WithMaxSamplesPerContext(statsdSamples),
		statsd.WithAggregationInterval(interval),
		statsd.WithBufferFlushInterval(interval),
		statsd.WithoutTelemetry(),
		statsd.WithoutOriginDetection(),
	)
	if err != nil {
		return nil, fmt.Errorf("statsd: %s: %w", addr, err)
	}
	return &Statsd{c: c}, nil
}

func (s *Statsd) count(n int64, name string, tags ...string) { _ = s.c.Count(name, n, tags, 1) }

func (s *Statsd) Received(stage, kind string, redelivered bool) {
	s.count(1, "events_in", "kind:"+kind, "stage:"+stage)
	if redelivered {
		s.count(1, "redeliveries", "kind:"+kind, "stage:"+stage)
	}
}
func (s *Statsd) Emitted(stage, kind string, n int) {
	s.count(int64(n), "events_out", "kind:"+kind, "stage:"+stage)
}
func (s *Statsd) Rejected(stage, kind, class string) {
	s.count(1, "events_rejected", "kind:"+kind, "stage:"+stage, "reason:"+class)
}
func (s *Statsd) Duplicate(stage, kind string) {
	s.count(1, "events_duplicate", "kind:"+kind, "stage:"+stage)
}
func (s *Statsd) Retried(stage, kind string) {
	s.count(1, "events_retried", "kind:"+kind, "stage:"+stage)
}
func (s *Statsd) Observed(stage, kind string, d time.Duration) {
	_ = s.c.Timing("processing", d, []string{"kind:" + kind, "stage:" + stage}, 1)
}
func (s *Statsd) Pending(stream, consumer string, n uint64) {
	_ = s.c.Gauge("consumer_pending", float64(n), []string{"stream:" + stream, "consumer:" + consumer}, 1)
}

// Run lets the client send every interval until ctx is done, then sends
// what is left and closes the client.
func (s *Statsd) Run(ctx context.Context) {
	<-ctx.Done()
	_ = s.c.Close() // flushes first
}

// Flush sends what was aggregated since the last flush now.
func (s *Statsd) Flush() { _ = s.c.Flush() }
