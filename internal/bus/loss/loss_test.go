package loss_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
	"strconv"
)

// lossObserver records what the bus reports lost.
type lossObserver struct {
	bus.Observer
	mu   sync.Mutex
	lost map[string]uint64
	risk []string
}

func (o *lossObserver) Lost(stream, consumer string, n uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lost == nil {
		o.lost = map[string]uint64{}
	}
	o.lost[stream+"/"+consumer] += n
}

func (o *lossObserver) AtRisk(stream, consumer string, risk bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.risk = append(o.risk, fmt.Sprintf("%s/%s %v", stream, consumer, risk))
}

func (o *lossObserver) risks() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.risk)
}

func (o *lossObserver) get(key string) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lost[key]
}

// lossBus is an embedded bus with the streams as limit makes them, its
// log and the loss observer.
func lossBus(t *testing.T, limit func(*bus.StreamsConfig)) (*bus.Bus, *testutil.SyncBuffer, *lossObserver) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	obs := &lossObserver{Observer: bus.NopObserver}
	b, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: t.TempDir(),
		Logger: slog.New(slog.NewJSONHandler(logs, nil)), Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	sc := bus.DefaultStreams()
	limit(&sc)
	if err := b.EnsureStreams(context.Background(), sc); err != nil {
		t.Fatal(err)
	}
	return b, logs, obs
}

// Input the raw stream's limits remove before the processor received it
// (here: max_age, while the processor is down) is gone; the processor
// cannot get it back, but it must not vanish without a word. When the
// processor starts again it reports how many messages it lost, with the
// sequences, in one error line and in the loss metric; input published
// after that still flows, and nothing is reported twice.
func TestInputRemovedBeforeProcessingIsReported(t *testing.T) {
	b, logs, obs := lossBus(t, func(sc *bus.StreamsConfig) { sc.Raw.MaxAge, sc.Raw.Duplicates = 2*time.Second, time.Second })
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- consume.RunProcessor(ctx, b, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor",
				StallTimeout: 2 * time.Second}, bustest.Pipeline(t))
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("processor: %v", err)
			}
		}
	}

	stop := run()
	for i := range 5 {
		bustest.Pub(t, b, "sightline.raw.metric.loss", `{"i":`+strconv.Itoa(i)+`}`)
	}
	bustest.WaitFor(t, 15*time.Second, "5 events", func() bool { return bustest.StreamMsgs(t, b, bus.StreamEvents) == 5 })
	stop()

	// The processor is down longer than the raw stream keeps input.
	for i := range 30 {
		bustest.Pub(t, b, "sightline.raw.metric.loss", `{"late":`+strconv.Itoa(i)+`}`)
	}
	bustest.WaitFor(t, 15*time.Second, "the 30 messages aged out", func() bool { return bustest.StreamMsgs(t, b, bus.StreamRaw) == 0 })

	stop = run()
	defer stop()
	bustest.WaitFor(t, 10*time.Second, "the loss reported", func() bool { return obs.get(bus.StreamRaw+"/processor") > 0 })
	for i := range 3 {
		bustest.Pub(t, b, "sightline.raw.metric.loss", `{"fresh":`+strconv.Itoa(i)+`}`)
	}
	bustest.WaitFor(t, 15*time.Second, "the 3 fresh events", func() bool { return bustest.StreamMsgs(t, b, bus.StreamEvents) == 8 })
	time.Sleep(6 * time.Second) // another check or two: nothing reported twice
	if n := obs.get(bus.StreamRaw + "/processor"); n != 30 {
		t.Errorf("loss metric %d, want 30", n)
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "removed from the stream before") {
			if line != "" {
				t.Errorf("reported twice:\n%s\n%s", line, l)
			}
			line = l
		}
	}
	for _, want := range []string{`"level":"ERROR"`, `"consumer":"processor"`, `"lost":30`, `"first_lost_seq":6`, `"last_lost_seq":35`, "streams.raw"} {
		if !strings.Contains(line, want) {
			t.Errorf("loss line lacks %s: %s", want, line)
		}
	}
}

// A consumer whose backlog the stream's limits are about to remove is
// reported at risk (a warning and the at-risk metric) while it still can
// be saved; when the limit then removes it, the loss is reported too, and
// the risk clears once nothing is pending. Here the events stream is at
// 90 % of its max_bytes with a sink that holds one message and receives
// nothing more, then overflows.
func TestBacklogAtRiskThenLost(t *testing.T) {
	b, logs, obs := lossBus(t, func(sc *bus.StreamsConfig) { sc.Events.MaxBytes, sc.Events.MaxMsgSize = 32<<10, 1<<10 })
	info := func() *jetstream.StreamInfo {
		s, err := b.JetStream().Stream(context.Background(), bus.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		si, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return si
	}
	body := `{"pad":"` + strings.Repeat("x", 200) + `"}`
	// 93 % of the stream's max_bytes as created (an embedded server with
	// little free disk halves the configured sizes to fit: fit_storage).
	full := info().Config.MaxBytes * 93 / 100
	for i := 0; info().State.Bytes < uint64(full); i++ {
		if i > 1000 {
			t.Fatalf("the stream does not fill: %+v", info().State)
		}
		bustest.Pub(t, b, "sightline.events.metric.risk", body)
	}
	if si := info(); si.State.FirstSeq != 1 {
		t.Fatalf("the stream overflowed while filling: %+v", si.State)
	}
	sink := &recordingSink{release: make(chan struct{}), seqs: map[uint64]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consume.RunSink(ctx, b, consume.Config{Stage: "risk", Stream: bus.StreamEvents, Durable: "risk",
			Batch: 1, Lanes: 1, MaxAckPending: 1, StallTimeout: 2 * time.Second}, sink)
	}()
	defer func() { cancel(); <-done }()
	key := bus.StreamEvents + "/risk"
	bustest.WaitFor(t, 10*time.Second, "backlog reported at risk", func() bool { return slices.Contains(obs.risks(), key+" true") })
	if obs.get(key) != 0 {
		t.Errorf("lost reported before anything was removed: %d", obs.get(key))
	}
	for range 40 { // overflow: the oldest go, received or not
		bustest.Pub(t, b, "sightline.events.metric.risk", body)
	}
	last := info().State.LastSeq
	bustest.WaitFor(t, 10*time.Second, "a loss reported", func() bool { return obs.get(key) > 0 })
	close(sink.release)
	bustest.WaitFor(t, 10*time.Second, "risk cleared", func() bool { return slices.Contains(obs.risks(), key+" false") })
	// Every message is either received by the sink or reported lost, and
	// none both.
	bustest.WaitFor(t, 10*time.Second, "every message received or reported lost", func() bool {
		return uint64(sink.distinct())+obs.get(key) == last
	})
	time.Sleep(time.Second)
	if r, n := sink.distinct(), obs.get(key); uint64(r)+n != last {
		t.Errorf("%d received + %d reported lost != %d published", r, n, last)
	}
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"backlog at risk`) || !strings.Contains(logs.String(), "streams.events.max_bytes") {
		t.Errorf("no at-risk warning naming the keys:\n%s", logs)
	}
}

// recordingSink records the stream sequences it is given; its first Write
// blocks until release.
type recordingSink struct {
	release chan struct{}
	mu      sync.Mutex
	seqs    map[uint64]int
}

func (s *recordingSink) Write(ctx context.Context, msgs []*stage.Message) error {
	s.mu.Lock()
	for _, m := range msgs {
		s.seqs[m.Meta.Sequence]++
	}
	s.mu.Unlock()
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (*recordingSink) Close(context.Context) error { return nil }

func (s *recordingSink) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seqs)
}

// A consumer created on a stream whose first messages already aged out
// starts at the stream's first message: nothing is reported lost.
func TestNewConsumerOnAgedStreamReportsNothing(t *testing.T) {
	b, logs, obs := lossBus(t, func(sc *bus.StreamsConfig) { sc.Events.MaxAge, sc.Events.Duplicates = 2*time.Second, time.Second })
	for i := range 10 {
		bustest.Pub(t, b, "sightline.events.metric.aged", `{"i":`+strconv.Itoa(i)+`}`)
	}
	bustest.WaitFor(t, 15*time.Second, "aged out", func() bool { return bustest.StreamMsgs(t, b, bus.StreamEvents) == 0 })
	bustest.Pub(t, b, "sightline.events.metric.aged", `{"i":10}`)
	sink := &countingSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consume.RunSink(ctx, b, consume.Config{Stage: "fresh", Stream: bus.StreamEvents, Durable: "fresh", StallTimeout: 2 * time.Second}, sink)
	}()
	defer func() { cancel(); <-done }()
	bustest.WaitFor(t, 10*time.Second, "the one message", func() bool { return sink.count() == 1 })
	time.Sleep(2 * time.Second)
	if n := obs.get(bus.StreamEvents + "/fresh"); n != 0 || strings.Contains(logs.String(), "removed from the stream before") {
		t.Errorf("a new consumer reported %d lost:\n%s", n, logs)
	}
}

// countingSink counts what it is given.
type countingSink struct {
	mu sync.Mutex
	n  int
}

func (s *countingSink) Write(_ context.Context, msgs []*stage.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n += len(msgs)
	return nil
}

func (*countingSink) Close(context.Context) error { return nil }

func (s *countingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
