package consume_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
)

// flaky fails every input whose body says "always-fail" with a transient
// error (a lookup that never answers for it) and runs the standard
// pipeline on the others.
type flaky struct{ next stage.Processor }

func (f flaky) Process(ctx context.Context, in *stage.Message) ([]*stage.Message, error) {
	if bytes.Contains(in.Data, []byte("always-fail")) {
		return nil, errors.New("lookup: connection refused")
	}
	return f.next.Process(ctx, in)
}

// Inputs that fail transiently on every delivery take every in-flight
// slot of the consumer (MaxAckPending): the server delivers nothing else.
// The stall detector reports it (readiness, the stall metric) although
// the failing inputs keep being redelivered, and after MaxAttempts
// deliveries each is dead-lettered ("kept failing"), so the good input
// behind them comes out.
func TestKeptFailingInputsDoNotHoldTheConsumer(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	obs := &stallObserver{Observer: bus.NopObserver}
	b := bustest.Start(t, bus.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Observer: obs})
	const slots = 8
	for i := range slots {
		bustest.Pub(t, b, "sightline.raw.metric.stuck", `{"always-fail":`+strconv.Itoa(i)+`}`)
	}
	bustest.Pub(t, b, "sightline.raw.metric.search_made", `{"query":"cats"}`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consume.RunProcessor(ctx, b, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor",
			Batch: slots / 2, Lanes: 1, MaxAckPending: slots, Backoff: []time.Duration{300 * time.Millisecond}, MaxAttempts: 25,
			StallTimeout: time.Second}, flaky{bustest.Pipeline(t)})
	}()
	defer func() { cancel(); <-done }()

	var why string
	bustest.WaitFor(t, 20*time.Second, "consumer reported stalled", func() bool {
		why = b.Health().NotReady()
		return strings.Contains(why, "consumer processor: stalled")
	})
	t.Logf("while stuck: %s", why)
	bustest.WaitFor(t, 60*time.Second, "the good input's event", func() bool {
		return bustest.StreamMsgs(t, b, bus.StreamEvents) == 1
	})
	bustest.WaitFor(t, 10*time.Second, "every stuck input dead-lettered", func() bool {
		return bustest.StreamMsgs(t, b, bus.StreamDLQ) == slots
	})
	for _, m := range bustest.Messages(t, b, bus.StreamDLQ, "sightline.dlq.>", slots) {
		class, reason := m.Headers().Get(stage.HeaderDLQClass), m.Headers().Get(stage.HeaderDLQReason)
		if class != "kept_failing" || !strings.Contains(reason, "kept failing: 25 deliveries") || !strings.Contains(reason, "connection refused") {
			t.Errorf("dead letter class %q reason %q", class, reason)
		}
	}
	if ev := obs.list(); len(ev) == 0 || ev[0] != "processor stalled" {
		t.Errorf("stall metric transitions %v, want processor stalled first", ev)
	}
	bustest.WaitFor(t, 10*time.Second, "ready again", func() bool { return b.Health().NotReady() == "" })
}
