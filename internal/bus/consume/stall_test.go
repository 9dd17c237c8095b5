package consume_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/bus/health"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
	"strconv"
)

// stallObserver records stall transitions (the metric's input).
type stallObserver struct {
	bus.Observer
	mu     sync.Mutex
	events []string
}

func (o *stallObserver) Stalled(stream, consumer string, stalled bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	state := "recovered"
	if stalled {
		state = "stalled"
	}
	o.events = append(o.events, consumer+" "+state)
}

func (o *stallObserver) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.events...)
}

// A pull loop whose requests the server lost (here: never sent) leaves
// work pending with no progress: the stall detector reports the consumer
// (readiness names it, one error line, the stall metric), restarts the pull
// loop, and the work then flows; recovery is logged once.
func TestStallDetectedAndPullLoopRestarted(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	obs := &stallObserver{Observer: bus.NopObserver}
	b := bustest.Start(t, bus.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Observer: obs})
	consume.DropPulls(b, 1) // the first generation's requests never reach the server
	for i := range 20 {
		bustest.Pub(t, b, "sightline.raw.metric.stall", `{"i":`+strconv.Itoa(i)+`}`)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consume.RunProcessor(ctx, b, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor",
			StallTimeout: 2 * time.Second}, bustest.Pipeline(t))
	}()
	defer func() { cancel(); <-done }()

	if b.Health().NotReady() != "" {
		// Not yet stalled: ready.
		t.Logf("early: %s", b.Health().NotReady())
	}
	took := bustest.WaitFor(t, 10*time.Second, "consumer reported stalled", func() bool {
		h, ok := bustest.HealthOf(b, "consumer processor")
		return ok && !h.OK
	})
	t.Logf("stall reported after %s", took.Round(time.Millisecond))
	if nr := b.Health().NotReady(); !strings.Contains(nr, "consumer processor") || !strings.Contains(nr, "stalled") {
		t.Fatalf("readiness does not name the stalled consumer: %q", nr)
	}
	// The restart makes the work flow again.
	bustest.WaitFor(t, 15*time.Second, "events after the pull loop restart", func() bool {
		return bustest.StreamMsgs(t, b, bus.StreamEvents) == 20
	})
	bustest.WaitFor(t, 10*time.Second, "consumer recovered", func() bool {
		h, _ := bustest.HealthOf(b, "consumer processor")
		return h.OK
	})
	if nr := b.Health().NotReady(); nr != "" {
		t.Fatalf("still not ready after recovery: %q", nr)
	}
	if n := logs.Count(`"msg":"component failing","component":"consumer processor"`); n != 1 {
		t.Errorf("%d 'component failing' lines for the stall, want 1", n)
	}
	if n := logs.Count(`"msg":"component recovered","component":"consumer processor"`); n != 1 {
		t.Errorf("%d 'component recovered' lines, want 1", n)
	}
	if n := logs.Count(`"msg":"pull loop restarted"`); n < 1 {
		t.Errorf("no pull loop restart logged")
	}
	if ev := obs.list(); len(ev) != 2 || ev[0] != "processor stalled" || ev[1] != "processor recovered" {
		t.Errorf("stall metric transitions %v, want [processor stalled, processor recovered]", ev)
	}
}

// hangingSink blocks every Write until released.
type hangingSink struct{ release chan struct{} }

func (s hangingSink) Write(ctx context.Context, _ []*stage.Message) error {
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (hangingSink) Close(context.Context) error { return nil }

// A sink whose Write hangs with work pending is a stall too: readiness
// names its consumer until the Write returns, and the health request that
// `sightline status` sends gets the same answer.
func TestHungSinkIsReportedAndRecovers(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	for i := range 50 {
		bustest.Pub(t, b, "sightline.events.metric.hang", `{"i":`+strconv.Itoa(i)+`}`)
	}
	sink := hangingSink{release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consume.RunSink(ctx, b, consume.Config{Stage: "hang", Stream: bus.StreamEvents, Durable: "hang",
			Batch: 10, Lanes: 1, StallTimeout: time.Second}, sink)
	}()
	defer func() { cancel(); <-done }()
	bustest.WaitFor(t, 10*time.Second, "hung sink reported", func() bool {
		return strings.Contains(b.Health().NotReady(), "consumer hang: stalled")
	})
	inst, err := health.Instances(context.Background(), b.Conn(), 2*time.Second)
	if err != nil || len(inst) != 1 {
		t.Fatalf("health request: %v %v", inst, err)
	}
	found := false
	for _, c := range inst[0].Components {
		if c.Component == "consumer hang" && !c.OK && !c.Since.IsZero() {
			found = true
		}
	}
	if !found {
		t.Fatalf("health answer does not show the stalled consumer: %+v", inst[0])
	}
	close(sink.release)
	bustest.WaitFor(t, 10*time.Second, "recovered", func() bool { return b.Health().NotReady() == "" })
}
