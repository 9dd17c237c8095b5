package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
