package status_test

import (
	"context"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/bus/status"
	"github.com/sightline/sightline/internal/stage"
)

// rejectAll is a sink that can store nothing: every event is a dead letter.
type rejectAll struct{}

func (rejectAll) Write(_ context.Context, batch []*stage.Message) error {
	return stage.Rejectf("test_sink", "this sink stores nothing")
}
func (rejectAll) Close(context.Context) error { return nil }

// TestStatusKeepsSinkDeadLettersApart: a sink's dead letters of events
// were counted as the processor's rejections of the same kind (after the
// events had been counted out), so in != out + rejected.
func TestStatusKeepsSinkDeadLettersApart(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consume.RunSink(ctx, b, consume.Config{Stage: "store", Stream: bus.StreamEvents, Durable: "store"}, rejectAll{})
	}()
	defer func() { cancel(); <-done }()

	bustest.Pub(t, b, "sightline.raw.metric.ok", `{"n":1}`)
	bustest.Pub(t, b, "sightline.raw.metric.ok", `{"n":2}`)
	bustest.Pub(t, b, "sightline.raw.metric.bad", `{"n":`)
	// Hostile kinds: counted as "other", never mistaken for a sink's dead letter.
	bustest.Pub(t, b, "sightline.raw.sink.store.metric.x", `{}`)
	bustest.Pub(t, b, "sightline.raw.bogus.x", `{}`)
	// Status reads the streams one after the other: wait until everything
	// is stored, then read it.
	deadline := time.Now().Add(15 * time.Second)
	for bustest.StreamMsgs(t, b, bus.StreamDLQ) < 5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	st, err := status.Read(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]status.KindCounts{}
	for _, k := range st.Kinds {
		kinds[k.Kind] = k
		if k.In != k.Out+k.Rejected {
			t.Errorf("kind %s: in %d != out %d + rejected %d", k.Kind, k.In, k.Out, k.Rejected)
		}
	}
	if m := kinds["metric"]; m.In != 3 || m.Out != 2 || m.Rejected != 1 || m.SinkDLQ["store"] != 2 {
		t.Errorf("metric: %+v, want in 3, out 2, rejected 1, sink dlq store 2", m)
	}
	if o := kinds["other"]; o.In != 2 || o.Rejected != 2 || len(o.SinkDLQ) != 0 {
		t.Errorf("other: %+v, want in 2, rejected 2", o)
	}
	if len(kinds) != 2 {
		t.Errorf("kinds %v, want metric and other", st.Kinds)
	}
}
