package graph

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	parts, items, rejected, ignored, errors, forceIgnored prometheus.Counter
	sweeps, deleted                                       *prometheus.CounterVec
	writeSeconds                                          prometheus.Histogram
	openOver, oldestOpen                                  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		parts:    prometheus.NewCounter(prometheus.CounterOpts{Name: "sightline_graph_parts_total", Help: "Snapshot parts applied to Neo4j (redeliveries included)."}),
		items:    prometheus.NewCounter(prometheus.CounterOpts{Name: "sightline_graph_items_total", Help: "Nodes and relationships upserted."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "sightline_graph_rejected_total", Help: "Snapshot parts rejected to the DLQ."}),
		ignored:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sightline_graph_ignored_total", Help: "Snapshot parts with host objects only (not for the graph)."}),
		errors:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sightline_graph_errors_total", Help: "Neo4j errors after the driver's retries."}),
		forceIgnored: prometheus.NewCounter(prometheus.CounterOpts{Name: "sightline_graph_force_ignored_total",
			Help: "Snapshot parts whose producer asked to force the sweep (ignored: forcing is an operator action)."}),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sightline_graph_sweeps_total",
			Help: "Sweep decisions by result (swept, nothing, refused, superseded, incomplete, ...)."}, []string{"result"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sightline_graph_swept_items_total",
			Help: "Stale nodes and relationships deleted by sweeps."}, []string{"kind"}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sightline_graph_part_seconds",
			Help: "Time to apply one snapshot part.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
	}
	m.openOver = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sightline_graph_open_syncs_over_age",
		Help: "Syncs open (parts or final marker missing) for longer than graph.open_sync_max_age."})
	m.oldestOpen = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sightline_graph_oldest_open_sync_seconds",
		Help: "Age of the oldest open sync (0 when none is open)."})
	if reg != nil {
		for _, c := range m.collectors() {
			_ = reg.Register(c)
		}
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.parts, m.items, m.rejected, m.ignored, m.errors, m.forceIgnored, m.sweeps, m.deleted, m.writeSeconds, m.openOver, m.oldestOpen}
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}
