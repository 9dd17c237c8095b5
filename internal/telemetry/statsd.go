package telemetry

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"
)

// Statsd is an optional bus.Observer that aggregates counters and gauges in
// memory and sends them over UDP every interval, with DogStatsD-style tags
// (name:value|c|#kind:metric,stage:process). Timings are sent once per
// interval per series as the mean, in milliseconds. It never blocks the
// pipeline: a failed send is dropped and counted.
type Statsd struct {
	conn     net.Conn
	prefix   string
	interval time.Duration

	mu       sync.Mutex
	counters map[string]int64
	gauges   map[string]float64
	timings  map[string]timing
	dropped  int64
}

type timing struct {
	sum time.Duration
	n   int64
}

// NewStatsd dials addr (host:port, UDP). prefix is prepended to every
// metric name ("sightline." by default when empty).
func NewStatsd(addr, prefix string, interval time.Duration) (*Statsd, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("statsd: address %q: %w", addr, err)
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("statsd: dial %s: %w", addr, err)
	}
	if prefix == "" {
		prefix = "sightline."
	}
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return &Statsd{conn: c, prefix: prefix, interval: interval,
		counters: map[string]int64{}, gauges: map[string]float64{}, timings: map[string]timing{}}, nil
}

func series(name string, tags ...string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('|')
	for i := 0; i+1 < len(tags); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tags[i])
		b.WriteByte(':')
		b.WriteString(tags[i+1])
	}
	return b.String()
}

func (s *Statsd) count(n int64, name string, tags ...string) {
	k := series(name, tags...)
	s.mu.Lock()
	s.counters[k] += n
	s.mu.Unlock()
}

func (s *Statsd) Received(stage, kind string, redelivered bool) {
	s.count(1, "events_in", "kind", kind, "stage", stage)
	if redelivered {
		s.count(1, "redeliveries", "kind", kind, "stage", stage)
	}
}
func (s *Statsd) Emitted(stage, kind string, n int) {
	s.count(int64(n), "events_out", "kind", kind, "stage", stage)
}
func (s *Statsd) Rejected(stage, kind, class string) {
	s.count(1, "events_rejected", "kind", kind, "stage", stage, "reason", class)
}
func (s *Statsd) Duplicate(stage, kind string) {
	s.count(1, "events_duplicate", "kind", kind, "stage", stage)
}
func (s *Statsd) Retried(stage, kind string) {
	s.count(1, "events_retried", "kind", kind, "stage", stage)
}
func (s *Statsd) Observed(stage, kind string, d time.Duration) {
	k := series("processing", "kind", kind, "stage", stage)
	s.mu.Lock()
	t := s.timings[k]
	t.sum += d
	t.n++
	s.timings[k] = t
	s.mu.Unlock()
}
func (s *Statsd) Pending(stream, consumer string, n uint64) {
	k := series("consumer_pending", "stream", stream, "consumer", consumer)
	s.mu.Lock()
	s.gauges[k] = float64(n)
	s.mu.Unlock()
}

// Run flushes every interval until ctx is done, then flushes once more.
func (s *Statsd) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Flush()
			_ = s.conn.Close()
			return
		case <-t.C:
			s.Flush()
		}
	}
}

// Flush sends what was aggregated since the last flush, in datagrams of at
// most 1,400 bytes.
func (s *Statsd) Flush() {
	s.mu.Lock()
	var lines []string
	for k, v := range s.counters {
		if v != 0 {
			lines = append(lines, s.line(k, fmt.Sprintf("%d|c", v)))
		}
	}
	for k, v := range s.gauges {
		lines = append(lines, s.line(k, fmt.Sprintf("%g|g", v)))
	}
	for k, t := range s.timings {
		if t.n > 0 {
			lines = append(lines, s.line(k, fmt.Sprintf("%.3f|ms", float64(t.sum.Microseconds())/1000/float64(t.n))))
		}
	}
	s.counters, s.timings = map[string]int64{}, map[string]timing{}
	s.mu.Unlock()
	sort.Strings(lines)
	var buf []byte
	send := func() {
		if len(buf) > 0 {
			if _, err := s.conn.Write(buf); err != nil {
				s.mu.Lock()
				s.dropped++
				s.mu.Unlock()
			}
			buf = buf[:0]
		}
	}
	for _, l := range lines {
		if len(buf)+len(l)+1 > 1400 {
			send()
		}
		if len(buf) > 0 {
			buf = append(buf, '\n')
		}
		buf = append(buf, l...)
	}
	send()
}

// line renders series "name|k:v,k:v" with value "12|c" as
// "prefix.name:12|c|#k:v,k:v".
func (s *Statsd) line(series, value string) string {
	name, tags, _ := strings.Cut(series, "|")
	l := s.prefix + name + ":" + value
	if tags != "" {
		l += "|#" + tags
	}
	return l
}
