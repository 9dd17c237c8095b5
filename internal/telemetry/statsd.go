package telemetry

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"
)

// statsdSamples is how many timing values one series sends per interval in
// the steady state (see sampler).
const statsdSamples = 64

// Statsd is an optional bus.Observer (and consume.StallObserver,
// loss.Observer) that sends the pipeline's counters, gauges and timings
// over UDP in the plain statsd grammar, one value per line:
//
//	sightline.events_in.process.metric:1000|c
//	sightline.consumer_pending.SIGHTLINE_RAW.processor:5|g
//	sightline.processing.process.metric:1.5|ms|@0.0064
//
// The dimensions (stage, kind, reason; stream, consumer) are dot-separated
// parts of the name, Graphite style, not DogStatsD tags (|#k:v): etsy
// statsd rejects a line with tags, and Telegraf's statsd input reads them
// only with datadog_extensions. The DataDog agent reads the plain lines
// too.
//
// It uses the DogStatsD client (github.com/DataDog/datadog-go) with plain
// client-side aggregation: counters and gauges are summed in memory and
// sent as one line per series every interval. Its extended aggregation is
// not used: it packs a series' timings into one line (name:1:2:3|ms),
// which only the DogStatsD agent reads. Timings are sent one per line,
// sampled (sampler) so that a series sends about statsdSamples values per
// interval whatever the event rate, each with its sample rate, from which
// a server estimates their count. It never blocks the pipeline: a failed
// send is dropped.
type Statsd struct {
	c        *statsd.Client
	interval time.Duration

	mu      sync.Mutex
	timings map[string]*sampler
}

// sampler sets the sample rate of one timing series: the n-th observation
// of an interval is kept with rate statsdSamples/max(n, observations of the
// previous interval), so a steady series sends about statsdSamples values
// an interval, and a burst in a first interval statsdSamples*(1+ln(n/64)).
type sampler struct {
	start     time.Time
	prev, cur int
}

func (s *sampler) rate(now time.Time, interval time.Duration) float64 {
	if now.Sub(s.start) >= interval {
		s.start, s.prev, s.cur = now, s.cur, 0
	}
	s.cur++
	return min(1, float64(statsdSamples)/float64(max(s.cur, s.prev)))
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
		statsd.WithNamespace(plainName(prefix, true)),
		statsd.WithClientSideAggregation(),
		statsd.WithAggregationInterval(interval),
		statsd.WithBufferFlushInterval(interval),
		statsd.WithoutTelemetry(),
		statsd.WithoutOriginDetection(),
	)
	if err != nil {
		return nil, fmt.Errorf("statsd: %s: %w", addr, err)
	}
	return &Statsd{c: c, interval: interval, timings: map[string]*sampler{}}, nil
}

// plainName replaces every byte that could break a statsd line (':', '|',
// '@', '#', white space, a newline...) with '_'; dots are kept only where
// they separate the parts of a name.
func plainName(s string, dots bool) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		case r == '.' && dots:
			return r
		}
		return '_'
	}, s)
}

// series is name.part1.part2...
func series(name string, parts ...string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, p := range parts {
		b.WriteByte('.')
		b.WriteString(plainName(p, false))
	}
	return b.String()
}

func (s *Statsd) count(n int64, name string, parts ...string) {
	_ = s.c.Count(series(name, parts...), n, nil, 1)
}

func (s *Statsd) gauge(v bool, name string, parts ...string) {
	g := 0.0
	if v {
		g = 1
	}
	_ = s.c.Gauge(series(name, parts...), g, nil, 1)
}

func (s *Statsd) Received(stage, kind string, redelivered bool) {
	s.count(1, "events_in", stage, kind)
	if redelivered {
		s.count(1, "redeliveries", stage, kind)
	}
}
func (s *Statsd) Emitted(stage, kind string, n int) { s.count(int64(n), "events_out", stage, kind) }
func (s *Statsd) Rejected(stage, kind, class string) {
	s.count(1, "events_rejected", stage, kind, class)
}
func (s *Statsd) Duplicate(stage, kind string) { s.count(1, "events_duplicate", stage, kind) }
func (s *Statsd) Retried(stage, kind string)   { s.count(1, "events_retried", stage, kind) }
func (s *Statsd) Lost(stream, consumer string, n uint64) {
	s.count(int64(n), "events_lost", stream, consumer)
}
func (s *Statsd) Pending(stream, consumer string, n uint64) {
	_ = s.c.Gauge(series("consumer_pending", stream, consumer), float64(n), nil, 1)
}
func (s *Statsd) Stalled(stream, consumer string, stalled bool) {
	s.gauge(stalled, "consumer_stalled", stream, consumer)
}
func (s *Statsd) AtRisk(stream, consumer string, risk bool) {
	s.gauge(risk, "consumer_at_risk", stream, consumer)
}

// Observed sends the processing time in milliseconds, sampled.
func (s *Statsd) Observed(stage, kind string, d time.Duration) {
	name := series("processing", stage, kind)
	s.mu.Lock()
	sm := s.timings[name]
	if sm == nil {
		sm = &sampler{}
		s.timings[name] = sm
	}
	rate := sm.rate(time.Now(), s.interval)
	s.mu.Unlock()
	_ = s.c.Timing(name, d, nil, rate)
}

// Run lets the client send every interval until ctx is done, then sends
// what is left and closes the client.
func (s *Statsd) Run(ctx context.Context) {
	<-ctx.Done()
	_ = s.c.Close() // flushes first
}

// Flush sends what was aggregated since the last flush now.
func (s *Statsd) Flush() { _ = s.c.Flush() }
