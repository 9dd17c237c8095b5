package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/telemetry"
)

func TestLoggerCarriesCorrelationIDAndLevelChangesLive(t *testing.T) {
	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	log, err := telemetry.NewLogger(&buf, "json", lv)
	if err != nil {
		t.Fatal(err)
	}
	ctx := correlation.NewContext(context.Background(), "req-42")
	log.With("stage", "process").InfoContext(ctx, "conformed")
	log.DebugContext(ctx, "hidden")
	lv.Set(slog.LevelDebug)
	log.DebugContext(ctx, "shown")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (debug hidden until the level changed), got %d: %s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["correlation_id"] != "req-42" || rec["stage"] != "process" || rec["msg"] != "conformed" {
		t.Fatalf("record %v", rec)
	}
	if _, err := telemetry.NewLogger(io.Discard, "xml", lv); err == nil {
		t.Fatal("format xml accepted")
	}
	if _, err := telemetry.ParseLevel("loud"); err == nil {
		t.Fatal("level loud accepted")
	}
}

func TestMetricsExposition(t *testing.T) {
	m := telemetry.NewMetrics()
	m.Received("process", "metric", false)
	m.Received("process", "metric", true)
	m.Emitted("process", "metric", 2)
	m.Rejected("process", "log", "not_json")
	m.Observed("process", "metric", 3*time.Millisecond)
	m.Pending("SIGHTLINE_RAW", "processor", 17)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`sightline_events_in_total{kind="metric",stage="process"} 2`,
		`sightline_redeliveries_total{kind="metric",stage="process"} 1`,
		`sightline_events_out_total{kind="metric",stage="process"} 2`,
		`sightline_events_rejected_total{kind="log",reason="not_json",stage="process"} 1`,
		`sightline_processing_seconds_count{kind="metric",stage="process"} 1`,
		`sightline_consumer_pending{consumer="processor",stream="SIGHTLINE_RAW"} 17`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// The statsd feed, received by a UDP listener: counters and gauges
// aggregated into one line per series, timings in milliseconds, DogStatsD
// tags; a thousand events of a series send one counter line, and at most
// a bounded number of timing samples.
func TestStatsdSendsAggregatedLines(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, err := telemetry.NewStatsd(pc.LocalAddr().String(), "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	obs := telemetry.Fanout{s, telemetry.NewMetrics()}
	for range 1000 {
		obs.Received("process", "metric", false)
		obs.Observed("process", "metric", 1500*time.Microsecond)
	}
	obs.Rejected("process", "metric", "schema")
	obs.Pending("SIGHTLINE_RAW", "processor", 5)
	s.Flush()

	var lines []string
	want := map[string]bool{
		"sightline.events_in:1000|c|#kind:metric,stage:process":                   false,
		"sightline.events_rejected:1|c|#kind:metric,stage:process,reason:schema":  false,
		"sightline.consumer_pending:5|g|#stream:SIGHTLINE_RAW,consumer:processor": false,
	}
	var timing string
	missing := func() bool {
		for _, ok := range want {
			if !ok {
				return true
			}
		}
		return timing == ""
	}
	buf := make([]byte, 65536)
	for missing() {
		_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%v; received so far:\n%s", err, strings.Join(lines, "\n"))
		}
		for l := range strings.SplitSeq(strings.TrimSpace(string(buf[:n])), "\n") {
			lines = append(lines, l)
			if _, ok := want[l]; ok {
				want[l] = true
			}
			if strings.HasPrefix(l, "sightline.processing:") {
				timing = l
			}
		}
	}
	// sightline.processing:1.500000:1.500000:...|ms|@0.064|#kind:metric,stage:process
	name, rest, _ := strings.Cut(timing, "|")
	values := strings.Split(strings.TrimPrefix(name, "sightline.processing:"), ":")
	ms, err := strconv.ParseFloat(values[0], 64)
	if !strings.HasPrefix(rest, "ms|") || !strings.HasSuffix(rest, "|#kind:metric,stage:process") || err != nil || ms != 1.5 || len(values) > 64 {
		t.Errorf("timing line %q: want up to 64 values of 1.5 ms", timing)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "sightline.events_in:") && l != "sightline.events_in:1000|c|#kind:metric,stage:process" {
			t.Errorf("a second counter line for the series: %q", l)
		}
	}
	cancel()
	<-done
	if _, err := telemetry.NewStatsd("nohostport", "", 0); err == nil {
		t.Fatal("bad address accepted")
	}
}

func TestOTLPExporterSendsSpans(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" && r.Method == http.MethodPost {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	cfg := telemetry.TracingConfig{Exporter: "otlp", Endpoint: srv.URL}
	if err := cfg.Validate("telemetry.traces"); err != nil {
		t.Fatal(err)
	}
	tr, shutdown, err := telemetry.NewTracer(context.Background(), cfg, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Start(context.Background(), "process sightline.raw.metric.x")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if posts.Load() == 0 {
		t.Fatal("no span was exported")
	}
	bad := telemetry.TracingConfig{Exporter: "zipkin"}
	if err := bad.Validate("telemetry.traces"); err == nil || !strings.Contains(err.Error(), "telemetry.traces.exporter") {
		t.Fatalf("bad exporter: %v", err)
	}
}
