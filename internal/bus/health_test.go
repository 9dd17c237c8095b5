package bus_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
)

// stallObserver records stall transitions (the metric's input).
type stallObserver struct {
	bus.NopObserver
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

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func healthOf(b *bus.Bus, component string) (bus.ComponentHealth, bool) {
	for _, c := range b.Health() {
		if c.Component == component {
			return c, true
		}
	}
	return bus.ComponentHealth{}, false
}

// A pull loop whose requests the server lost (here: never sent) leaves
// work pending with no progress: the stall detector reports the consumer
// (readiness names it, one error line, the stall metric), restarts the pull
// loop, and the work then flows; recovery is logged once.
func TestStallDetectedAndPullLoopRestarted(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	obs := &stallObserver{}
	b, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: t.TempDir(),
		Logger: slog.New(slog.NewJSONHandler(logs, nil)), Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.EnsureStreams(context.Background(), bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	bus.DropPulls(b, 1) // the first generation's requests never reach the server
	for i := range 20 {
		pub(t, b, "sightline.raw.metric.stall", `{"i":`+itoa(i)+`}`)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.RunProcessor(ctx, bus.ConsumerConfig{Stage: "process", Stream: bus.StreamRaw, Durable: "processor",
			StallTimeout: 2 * time.Second}, pipeline(t))
	}()
	defer func() { cancel(); <-done }()

	if b.NotReady() != "" {
		// Not yet stalled: ready.
		t.Logf("early: %s", b.NotReady())
	}
	took := waitFor(t, 10*time.Second, "consumer reported stalled", func() bool {
		h, ok := healthOf(b, "consumer processor")
		return ok && !h.OK
	})
	t.Logf("stall reported after %s", took.Round(time.Millisecond))
	if nr := b.NotReady(); !strings.Contains(nr, "consumer processor") || !strings.Contains(nr, "stalled") {
		t.Fatalf("readiness does not name the stalled consumer: %q", nr)
	}
	// The restart makes the work flow again.
	waitFor(t, 15*time.Second, "events after the pull loop restart", func() bool {
		return streamMsgs(t, b, bus.StreamEvents) == 20
	})
	waitFor(t, 10*time.Second, "consumer recovered", func() bool {
		h, _ := healthOf(b, "consumer processor")
		return h.OK
	})
	if nr := b.NotReady(); nr != "" {
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
	b := newBus(t, "")
	defer b.Close()
	for i := range 50 {
		pub(t, b, "sightline.events.metric.hang", `{"i":`+itoa(i)+`}`)
	}
	sink := hangingSink{release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.RunSink(ctx, bus.ConsumerConfig{Stage: "hang", Stream: bus.StreamEvents, Durable: "hang",
			Batch: 10, Lanes: 1, StallTimeout: time.Second}, sink)
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, 10*time.Second, "hung sink reported", func() bool {
		return strings.Contains(b.NotReady(), "consumer hang: stalled")
	})
	inst, err := b.Instances(context.Background(), 2*time.Second)
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
	waitFor(t, 10*time.Second, "recovered", func() bool { return b.NotReady() == "" })
}

// The embedded server fsyncs before every acknowledgement with nats.sync
// "always", at the interval named otherwise, and at NATS's own 2-minute
// interval when the option is left empty or under "group" (`sightline
// run`'s default), where the bus runs the commit rounds.
func TestEmbeddedSyncPolicy(t *testing.T) {
	for _, c := range []struct {
		sync     string
		always   bool
		interval time.Duration
	}{{"", false, 2 * time.Minute}, {bus.SyncGroup, false, 2 * time.Minute}, {bus.SyncAlways, true, 0}, {"2m", false, 2 * time.Minute}, {"5s", false, 5 * time.Second}} {
		b, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: t.TempDir(), Sync: c.sync})
		if err != nil {
			t.Fatal(err)
		}
		always, interval := bus.EmbeddedSync(b)
		group := bus.GroupCommit(b)
		b.Close()
		if group != (c.sync == bus.SyncGroup) {
			t.Errorf("sync %q: group commit %v", c.sync, group)
		}
		if always != c.always || (!c.always && interval != c.interval) {
			t.Errorf("sync %q: server runs always=%v interval=%s", c.sync, always, interval)
		}
	}
	if _, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: t.TempDir(), Sync: "sometimes"}); err == nil {
		t.Error("sync \"sometimes\" accepted")
	}
}
