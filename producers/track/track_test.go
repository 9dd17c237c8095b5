package track_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/track"
	"github.com/sightline/sightline/schemas"
)

// newPipeline starts an embedded JetStream server, the streams and the real
// processor; everything stops at the end of the test.
func newPipeline(t *testing.T) *bus.Bus {
	t.Helper()
	b := bustest.New(t)
	bustest.RunProcessor(t, b, map[string]string{"site": "lab1"})
	return b
}

func events(t *testing.T, b *bus.Bus, filter string, n int) []schemas.Event {
	t.Helper()
	return bustest.Events(t, b, filter, n)
}

func TestTrackCarriesContextCorrelation(t *testing.T) {
	b := newPipeline(t)
	tr := track.New(b, track.WithService("search-api", "1.4.2"), track.WithHost("web-3"))
	ctx := correlation.NewContext(context.Background(), "req-42")
	id, err := tr.Track(ctx, "search_made", map[string]any{"query": "cats", "n_results": 3})
	if err != nil {
		t.Fatal(err)
	}
	evs := events(t, b, "sightline.events.metric.search_made", 1)
	ev := evs[0]
	if ev.CorrelationID != "req-42" {
		t.Errorf("correlationid = %q, want req-42", ev.CorrelationID)
	}
	if ev.ID != track.EventID("search_made", id) {
		t.Errorf("event id = %q, Track returned %q (EventID %q)", ev.ID, id, track.EventID("search_made", id))
	}
	if ev.Type != "metric.search_made" {
		t.Errorf("type = %q", ev.Type)
	}
	if ev.Producer != "search-api/1.4.2@web-3" || ev.Source != "urn:sightline:subject:sightline.raw.metric.search_made" {
		t.Errorf("producer = %q, source = %q", ev.Producer, ev.Source)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil || data["query"] != "cats" || data["n_results"] != 3.0 {
		t.Errorf("data = %s (%v)", ev.Data, err)
	}
}

func TestTrackTakesTraceIDFromSpan(t *testing.T) {
	b := newPipeline(t)
	tr := track.New(b)
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	if _, err := tr.Track(ctx, "checkout", map[string]any{"cart": 2}); err != nil {
		t.Fatal(err)
	}
	// No span, no correlation: one is minted.
	if _, err := tr.Track(context.Background(), "checkout", nil); err != nil {
		t.Fatal(err)
	}
	evs := events(t, b, "sightline.events.metric.checkout", 2)
	if evs[0].TraceParent == "" { // two lanes: arrival order is not guaranteed
		evs[0], evs[1] = evs[1], evs[0]
	}
	if evs[0].CorrelationID != traceID.String() {
		t.Errorf("correlationid = %q, want the trace id", evs[0].CorrelationID)
	}
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-"; len(evs[0].TraceParent) != 55 || evs[0].TraceParent[:36] != want {
		t.Errorf("traceparent = %q", evs[0].TraceParent)
	}
	if evs[1].CorrelationID == "" || evs[1].CorrelationID == evs[0].CorrelationID {
		t.Errorf("minted correlationid = %q", evs[1].CorrelationID)
	}
}

// flaky fails the first publish after it reached the server: the classic
// lost-PubAck retry.
type flaky struct {
	track.Publisher
	calls atomic.Int32
}

func (f *flaky) Publish(ctx context.Context, msgs ...*track.Message) ([]track.PublishResult, error) {
	res, err := f.Publisher.Publish(ctx, msgs...)
	if f.calls.Add(1) == 1 && err == nil {
		return nil, errors.New("ack lost")
	}
	return res, err
}

func TestRetriesYieldOneEvent(t *testing.T) {
	b := newPipeline(t)
	f := &flaky{Publisher: b}
	tr := track.New(f, track.WithRetry(3, time.Millisecond))
	id, err := tr.Track(context.Background(), "signup", map[string]any{"plan": "pro"})
	if err != nil {
		t.Fatal(err)
	}
	if f.calls.Load() != 2 {
		t.Fatalf("publish called %d times, want 2", f.calls.Load())
	}
	// A caller-level retry with the id it got, and an idempotency key used twice.
	if _, err := tr.Track(track.WithEventID(context.Background(), id), "signup", map[string]any{"plan": "pro"}); err != nil {
		t.Fatal(err)
	}
	kctx := track.WithIdempotencyKey(context.Background(), "order-7")
	id1, err1 := tr.Track(kctx, "signup", map[string]any{"plan": "free"})
	id2, err2 := tr.Track(kctx, "signup", map[string]any{"plan": "free"})
	if err1 != nil || err2 != nil || id1 != id2 {
		t.Fatalf("idempotency key: %q %v, %q %v", id1, err1, id2, err2)
	}
	evs := events(t, b, "sightline.events.metric.signup", 2)
	got := map[string]bool{evs[0].ID: true, evs[1].ID: true}
	if !got[track.EventID("signup", id)] || !got[track.EventID("signup", id1)] {
		t.Errorf("event ids %v, want %s and %s", got, id, id1)
	}
}

type recorder struct{ n atomic.Int32 }

func (r *recorder) Publish(_ context.Context, msgs ...*track.Message) ([]track.PublishResult, error) {
	r.n.Add(int32(len(msgs)))
	return make([]track.PublishResult, len(msgs)), nil
}

func TestBadInputRejectedBeforePublishing(t *testing.T) {
	r := &recorder{}
	tr := track.New(r)
	for _, name := range []string{"", "search.made", "search made", "a>b", "*", string(make([]byte, 129)), "événement"} {
		if _, err := tr.Track(context.Background(), name, nil); !errors.Is(err, track.ErrInvalidName) {
			t.Errorf("Track(%q) err = %v, want ErrInvalidName", name, err)
		}
	}
	for _, props := range []map[string]any{{"9lives": 1}, {"a b": 1}, {"ok": make(chan int)}} {
		if _, err := tr.Track(context.Background(), "ok", props); !errors.Is(err, track.ErrInvalidProps) {
			t.Errorf("Track(%v) err = %v, want ErrInvalidProps", props, err)
		}
	}
	if r.n.Load() != 0 {
		t.Errorf("%d messages published for bad input", r.n.Load())
	}
	if _, err := tr.Track(context.Background(), "Search-made_2", map[string]any{"@ts": 1, "$x.y-z": 2}); err != nil {
		t.Errorf("good input rejected: %v", err)
	}
}

func TestAsyncBatchesFlushAndClose(t *testing.T) {
	b := newPipeline(t)
	var batches atomic.Int32
	counting := publisherFunc(func(ctx context.Context, msgs ...*track.Message) ([]track.PublishResult, error) {
		batches.Add(1)
		return b.Publish(ctx, msgs...)
	})
	tr := track.New(counting, track.WithAsync(1000, 50, time.Hour))
	ctx := correlation.NewContext(context.Background(), "batch-1")
	for i := range 120 {
		if _, err := tr.Track(ctx, "click", map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := batches.Load(); got != 3 { // 50 + 50 + 20 on Flush
		t.Errorf("published in %d batches, want 3", got)
	}
	if _, err := tr.Track(ctx, "click", map[string]any{"i": 120}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Track(ctx, "click", nil); !errors.Is(err, track.ErrClosed) {
		t.Errorf("Track after Close: %v", err)
	}
	evs := events(t, b, "sightline.events.metric.click", 121)
	for _, ev := range evs {
		if ev.CorrelationID != "batch-1" {
			t.Fatalf("correlationid = %q", ev.CorrelationID)
		}
	}
}

func TestAsyncReportsFailures(t *testing.T) {
	failing := publisherFunc(func(context.Context, ...*track.Message) ([]track.PublishResult, error) {
		return nil, bus.ErrClosed
	})
	var failed atomic.Int32
	tr := track.New(failing, track.WithAsync(10, 10, time.Millisecond), track.WithRetry(2, time.Millisecond),
		track.WithErrorHandler(func(ids []string, err error) { failed.Add(int32(len(ids))) }))
	if _, err := tr.Track(context.Background(), "x", nil); err != nil {
		t.Fatal(err)
	}
	err := tr.Close(context.Background())
	if !errors.Is(err, track.ErrPublish) || !errors.Is(err, bus.ErrClosed) || failed.Load() != 1 {
		t.Errorf("Close err = %v, failed = %d", err, failed.Load())
	}
}

func TestJetStreamAdapter(t *testing.T) {
	b := newPipeline(t)
	pub, err := track.Conn(b.Conn())
	if err != nil {
		t.Fatal(err)
	}
	tr := track.New(pub, track.WithSource("billing"), track.WithHost(""))
	ctx := correlation.NewContext(context.Background(), "adapter-1")
	id, err := tr.Track(ctx, "invoice_paid", map[string]any{"amount": 12.5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Track(track.WithEventID(ctx, id), "invoice_paid", map[string]any{"amount": 12.5}); err != nil {
		t.Fatal(err)
	}
	ev := events(t, b, "sightline.events.metric.invoice_paid", 1)[0]
	if ev.ID != track.EventID("invoice_paid", id) || ev.CorrelationID != "adapter-1" || ev.Producer != "billing" {
		t.Errorf("event %+v", ev)
	}
	m, err := tr.Build(ctx, "x", nil)
	if err != nil || m.Header.Get(stage.HeaderProducer) != "billing" || string(m.Data) != "{}" {
		t.Errorf("Build: %+v %v", m, err)
	}
}

type publisherFunc func(ctx context.Context, msgs ...*track.Message) ([]track.PublishResult, error)

func (f publisherFunc) Publish(ctx context.Context, msgs ...*track.Message) ([]track.PublishResult, error) {
	return f(ctx, msgs...)
}
