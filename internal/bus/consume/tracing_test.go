package consume_test

import (
	"context"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
)

// A span per message per stage, the correlation ID as an attribute, and
// the W3C traceparent carried from the input's headers to the output's.
func TestSpansAndTraceparentPropagation(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	b := bustest.Start(t, bus.Options{Tracer: tp.Tracer("test")})
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	defer stop()

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	bustest.Pub(t, b, "sightline.raw.metric.traced", `{"a":1}`, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	out := bustest.Messages(t, b, bus.StreamEvents, "sightline.events.metric.traced", 1)[0]
	tpOut := out.Headers().Get("traceparent")
	if !strings.HasPrefix(tpOut, "00-"+traceID+"-") || strings.Contains(tpOut, "00f067aa0ba902b7") {
		t.Fatalf("output traceparent %q: want the same trace with the processor's span as parent", tpOut)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.Ended()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	var found bool
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() != traceID || !strings.HasPrefix(s.Name(), "process ") {
			continue
		}
		for _, a := range s.Attributes() {
			if string(a.Key) == "sightline.correlation_id" && a.Value.AsString() == traceID {
				found = true
			}
		}
		if s.Parent().SpanID().String() != "00f067aa0ba902b7" {
			t.Fatalf("span parent %s, want the producer's span", s.Parent().SpanID())
		}
	}
	if !found {
		t.Fatalf("no process span in trace %s carrying the correlation id; spans: %d", traceID, len(rec.Ended()))
	}
}
