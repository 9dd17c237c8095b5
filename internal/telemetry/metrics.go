package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the Prometheus side of the bus.Observer: events in, out,
// rejected and retried per kind and stage, processing latency, consumer
// backlog. It owns its registry (no global state).
type Metrics struct {
	reg       *prometheus.Registry
	in        *prometheus.CounterVec
	out       *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	retried   *prometheus.CounterVec
	dups      *prometheus.CounterVec
	redeliver *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	pending   *prometheus.GaugeVec
	stalled   *prometheus.GaugeVec
	stalls    *prometheus.CounterVec
	lost      *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	atRisk    *prometheus.GaugeVec
}

// NewMetrics registers the pipeline metrics and the Go and process
// collectors on a fresh registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		in: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_events_in_total", Help: "Messages received by a stage, by kind.",
		}, []string{"kind", "stage"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_events_out_total", Help: "Messages a stage published or stored, by kind.",
		}, []string{"kind", "stage"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_events_rejected_total", Help: "Messages a stage sent to the DLQ, by kind and reason class.",
		}, []string{"kind", "stage", "reason"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_events_retried_total", Help: "Messages a stage handed back for redelivery after a transient failure.",
		}, []string{"kind", "stage"}),
		dups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_events_duplicate_total", Help: "Inputs whose event the events stream already held (same source, same id): recorded on sightline.dlq.duplicate.>, not emitted.",
		}, []string{"kind", "stage"}),
		redeliver: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_redeliveries_total", Help: "Messages received again after an earlier delivery (JetStream redelivery).",
		}, []string{"kind", "stage"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sightline_processing_seconds",
			Help:    "Time a stage spent on one message (sinks: the batch time shared by its messages).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind", "stage"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sightline_consumer_pending", Help: "Consumer backlog: messages not yet delivered plus delivered but not acked.",
		}, []string{"stream", "consumer"}),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sightline_consumer_stalled", Help: "1 while a consumer has pending work and makes no progress (its pull loop is being restarted), else 0.",
		}, []string{"stream", "consumer"}),
		stalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_consumer_stalls_total", Help: "Times a consumer was found stalled.",
		}, []string{"stream", "consumer"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_consumer_lost_total",
			Help: "Messages the stream's limits (max_age, max_bytes) or a purge removed before the consumer received them: lost.",
		}, []string{"stream", "consumer"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_input_dropped_total",
			Help: "Messages published on the stream's subjects that it did not store: core publishes dropped by the server (a full ingest queue, a JetStream control header, a header block over 64 KiB, a repeated Nats-Msg-Id) and JetStream publishes refused to their publisher. Embedded server only.",
		}, []string{"stream"}),
		atRisk: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sightline_consumer_backlog_at_risk",
			Help: "1 while the consumer's backlog is about to be removed by the stream's limits (90 % of max_bytes or max_age), else 0.",
		}, []string{"stream", "consumer"}),
	}
	reg.MustRegister(m.in, m.out, m.rejected, m.retried, m.dups, m.redeliver, m.latency, m.pending, m.stalled, m.stalls, m.lost, m.dropped, m.atRisk,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry lets other packages register their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *Metrics) Received(stage, kind string, redelivered bool) {
	m.in.WithLabelValues(kind, stage).Inc()
	if redelivered {
		m.redeliver.WithLabelValues(kind, stage).Inc()
	}
}

func (m *Metrics) Emitted(stage, kind string, n int) {
	m.out.WithLabelValues(kind, stage).Add(float64(n))
}

func (m *Metrics) Rejected(stage, kind, class string) {
	if class == "" {
		class = "other"
	}
	m.rejected.WithLabelValues(kind, stage, class).Inc()
}

func (m *Metrics) Retried(stage, kind string) { m.retried.WithLabelValues(kind, stage).Inc() }

func (m *Metrics) Duplicate(stage, kind string) { m.dups.WithLabelValues(kind, stage).Inc() }

func (m *Metrics) Observed(stage, kind string, d time.Duration) {
	m.latency.WithLabelValues(kind, stage).Observe(d.Seconds())
}

func (m *Metrics) Pending(stream, consumer string, n uint64) {
	m.pending.WithLabelValues(stream, consumer).Set(float64(n))
}

// Stalled records a consumer entering or leaving the stalled state
// (consume.StallObserver).
func (m *Metrics) Stalled(stream, consumer string, stalled bool) {
	if stalled {
		m.stalls.WithLabelValues(stream, consumer).Inc()
	}
	setFlag(m.stalled.WithLabelValues(stream, consumer), stalled)
}

// setFlag sets a 0/1 gauge.
func setFlag(g prometheus.Gauge, on bool) {
	if on {
		g.Set(1)
	} else {
		g.Set(0)
	}
}

// Lost counts messages removed before the consumer received them
// (loss.Observer).
func (m *Metrics) Lost(stream, consumer string, n uint64) {
	m.lost.WithLabelValues(stream, consumer).Add(float64(n))
}

// Dropped counts messages published but not stored (loss.DoorObserver).
func (m *Metrics) Dropped(stream string, n uint64) {
	m.dropped.WithLabelValues(stream).Add(float64(n))
}

// AtRisk records a backlog about to be removed (loss.Observer).
func (m *Metrics) AtRisk(stream, consumer string, risk bool) {
	setFlag(m.atRisk.WithLabelValues(stream, consumer), risk)
}
