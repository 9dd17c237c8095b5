package consume_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
)

func event(t testing.TB, m jetstream.Msg) schemas.Event {
	t.Helper()
	var ev schemas.Event
	if err := json.Unmarshal(m.Data(), &ev); err != nil {
		t.Fatalf("event %s: %v", m.Data(), err)
	}
	return ev
}

func TestNoHeadersMetricIsConformed(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	defer stop()

	bustest.Pub(t, b, "sightline.raw.metric.search_made", `{"query":"cats","n_results":3,"user_id":"1234"}`)
	msgs := bustest.Messages(t, b, bus.StreamEvents, "sightline.events.metric.search_made", 1)
	ev := event(t, msgs[0])
	if ev.Type != "metric.search_made" || ev.SpecVersion != "1.0" || ev.ID == "" || ev.Source == "" {
		t.Fatalf("envelope: %+v", ev)
	}
	if ev.CorrelationID == "" || msgs[0].Headers().Get("Correlation-Id") != ev.CorrelationID {
		t.Fatalf("correlation id: envelope %q header %q", ev.CorrelationID, msgs[0].Headers().Get("Correlation-Id"))
	}
	if msgs[0].Headers().Get(jetstream.MsgIDHeader) != ev.ID {
		t.Fatalf("Nats-Msg-Id %q != id %q", msgs[0].Headers().Get(jetstream.MsgIDHeader), ev.ID)
	}
	if time.Since(ev.Time) > time.Minute || ev.Attributes["site"] != "lab1" {
		t.Fatalf("time %v attrs %v", ev.Time, ev.Attributes)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil || data["query"] != "cats" {
		t.Fatalf("data %s: %v", ev.Data, err)
	}
	v, _ := schemas.NewValidator()
	doc, _ := schemas.Decode(msgs[0].Data())
	if err := v.ValidateEvent(doc); err != nil {
		t.Fatalf("output violates the envelope schema: %v", err)
	}
}

func TestCorrelationFromHeaderAndTraceparent(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	defer stop()

	bustest.Pub(t, b, "sightline.raw.metric.a", `{"x":1}`, "Correlation-Id", "abc")
	bustest.Pub(t, b, "sightline.raw.metric.b", `{"x":1}`, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	a := event(t, bustest.Messages(t, b, bus.StreamEvents, "sightline.events.metric.a", 1)[0])
	if a.CorrelationID != "abc" {
		t.Fatalf("want abc, got %q", a.CorrelationID)
	}
	m := bustest.Messages(t, b, bus.StreamEvents, "sightline.events.metric.b", 1)[0]
	if ev := event(t, m); ev.CorrelationID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("want trace id, got %q", ev.CorrelationID)
	}
	// The output carries a traceparent in the same trace.
	if tp := m.Headers().Get("traceparent"); !strings.Contains(tp, "4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Fatalf("output traceparent %q not in the producer's trace", tp)
	}
}

func TestDuplicateMsgIDYieldsOneEvent(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	bustest.Pub(t, b, "sightline.raw.metric.search_made", `{"q":1}`, "Nats-Msg-Id", "x")
	bustest.Pub(t, b, "sightline.raw.metric.search_made", `{"q":1}`, "Nats-Msg-Id", "x") // within the raw stream's window: dropped there
	time.Sleep(2 * bus.RawDuplicates)
	bustest.Pub(t, b, "sightline.raw.metric.search_made", `{"q":1}`, "Nats-Msg-Id", "x") // after it: stored, recorded as a duplicate
	bustest.Pub(t, b, "sightline.raw.metric.search_made", `{"q":2}`, "Nats-Msg-Id", "y")
	bustest.Messages(t, b, bus.StreamEvents, "sightline.events.>", 2)
	dup := bustest.Messages(t, b, bus.StreamDLQ, "sightline.dlq.duplicate.metric.search_made", 1)[0]
	stop()
	if n := bustest.StreamMsgs(t, b, bus.StreamEvents); n != 2 {
		t.Fatalf("want 2 events (x once, y once), got %d", n)
	}
	ids := map[string]bool{}
	for _, m := range bustest.Messages(t, b, bus.StreamEvents, "sightline.events.>", 2) {
		ids[event(t, m).ID] = true
	}
	src := identity.Source{Subject: "sightline.raw.metric.search_made"}
	x, y := identity.ID(src, "x", identity.Position{}), identity.ID(src, "y", identity.Position{})
	if !ids[x] || !ids[y] {
		t.Fatalf("event ids should be derived from the subject and x, y (%s, %s), got %v", x, y, ids)
	}
	if c := dup.Headers().Get(stage.HeaderDLQClass); c != stage.ClassDuplicate || !strings.Contains(dup.Headers().Get(stage.HeaderDLQReason), x) {
		t.Fatalf("duplicate record: class %q reason %q", c, dup.Headers().Get(stage.HeaderDLQReason))
	}
}

func TestLogLines(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	defer stop()
	bustest.Pub(t, b, "sightline.raw.log.download-server", `[Wed Oct 11 14:32:12 2000] [info] [client 127.0.0.1] image 1d3x5 downloaded by userId 1234`)
	bustest.Pub(t, b, "sightline.raw.log.download-server", `{"message":"Downloaded img","userId":"1234","imgId":"1d3x5","service":"download-server","time":"1509385330"}`)
	msgs := bustest.Messages(t, b, bus.StreamEvents, "sightline.events.log.download-server", 2)
	plain, structured := event(t, msgs[0]), event(t, msgs[1])
	if strings.Contains(string(plain.Data), `"imgId"`) {
		plain, structured = structured, plain // lanes may reorder
	}
	var pd, sd map[string]any
	_ = json.Unmarshal(plain.Data, &pd)
	_ = json.Unmarshal(structured.Data, &sd)
	if plain.Type != "log.download-server" || !strings.Contains(pd["message"].(string), "image 1d3x5") || pd["level"] != "info" {
		t.Fatalf("plain: %s", plain.Data)
	}
	if sd["message"] != "Downloaded img" || sd["userId"] != "1234" {
		t.Fatalf("structured: %s", structured.Data)
	}
	if want := time.Unix(1509385330, 0).UTC(); !structured.Time.Equal(want) {
		t.Fatalf("time from body: got %v want %v", structured.Time, want)
	}
}

func TestBadInputGoesToDLQAndPipelineKeepsGoing(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	defer stop()
	cases := []struct {
		subject, body, class, reason string
	}{
		{"sightline.raw.metric.notjson", `{"query":`, "not_json", "not valid JSON"},
		{"sightline.raw.metric.utf8", "{\"q\":\"\xff\xfe\"}", "invalid_utf8", "not valid UTF-8"},
		{"sightline.raw.metric.big", `{"q":"` + strings.Repeat("a", processors.DefaultMaxBodyBytes) + `"}`, "too_large", "over the limit"},
		{"sightline.raw.metric.schema", `[1,2,3]`, "not_json", "must be a JSON object"},
		{"sightline.raw.snapshot.inv", `{"scope":"s","tag":1,"nodes":[{"label":"Bad Label} DETACH DELETE n //","key":"k"}]}`, "schema", "/nodes/0/label"},
		{"sightline.raw.trace.thing", `{}`, "unknown_kind", "unknown kind \"trace\""},
	}
	for _, c := range cases {
		bustest.Pub(t, b, c.subject, c.body, "Correlation-Id", "bad-"+c.class, "X-Custom", "kept")
	}
	bustest.Pub(t, b, "sightline.raw.metric.good", `{"ok":true}`)
	bustest.Messages(t, b, bus.StreamEvents, "sightline.events.metric.good", 1)
	dlq := bustest.Messages(t, b, bus.StreamDLQ, "sightline.dlq.>", len(cases))
	// Lanes process batches in parallel: match dead letters by subject.
	bySubject := map[string]int{}
	for i, c := range cases {
		bySubject[strings.Replace(c.subject, "sightline.raw.", "sightline.dlq.", 1)] = i
	}
	for _, m := range dlq {
		i, ok := bySubject[m.Subject()]
		if !ok {
			t.Errorf("unexpected dead letter on %s", m.Subject())
			continue
		}
		delete(bySubject, m.Subject())
		c := cases[i]
		h := m.Headers()
		if m.Subject() != strings.Replace(c.subject, "sightline.raw.", "sightline.dlq.", 1) {
			t.Errorf("dlq subject %s for %s", m.Subject(), c.subject)
		}
		if string(m.Data()) != c.body {
			t.Errorf("%s: original bytes not kept", c.subject)
		}
		if h.Get("X-Custom") != "kept" || h.Get("Correlation-Id") != "bad-"+c.class {
			t.Errorf("%s: original headers not kept: %v", c.subject, h)
		}
		if !strings.Contains(h.Get(stage.HeaderDLQReason), c.reason) || h.Get("Sightline-Dlq-Class") != c.class {
			t.Errorf("%s: reason %q class %q, want %q / %q", c.subject, h.Get(stage.HeaderDLQReason), h.Get("Sightline-Dlq-Class"), c.reason, c.class)
		}
	}
	if in, out, rej := bustest.StreamMsgs(t, b, bus.StreamRaw), bustest.StreamMsgs(t, b, bus.StreamEvents), bustest.StreamMsgs(t, b, bus.StreamDLQ); in != out+rej {
		t.Fatalf("count in %d != out %d + rejected %d", in, out, rej)
	}
}

// crashy fails every message once in the middle of a batch, as if the
// process died before acking: the message must come back and be processed.
type crashy struct {
	p     stage.Processor
	calls atomic.Int64
}

func (c *crashy) Process(ctx context.Context, in *stage.Message) ([]*stage.Message, error) {
	if in.Meta.Delivered == 1 && c.calls.Add(1)%3 == 0 {
		return nil, context.DeadlineExceeded // transient
	}
	return c.p.Process(ctx, in)
}

func TestTransientFailureRedeliversWithoutDuplicates(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	stop := bustest.Run(t, b, &crashy{p: bustest.Pipeline(t)})
	const n = 300
	for i := 0; i < n; i++ {
		bustest.Pub(t, b, "sightline.raw.metric.m", `{"i":`+strconv.Itoa(i)+`}`)
	}
	bustest.Messages(t, b, bus.StreamEvents, "sightline.events.>", n)
	stop()
	if got := bustest.StreamMsgs(t, b, bus.StreamEvents); got != n {
		t.Fatalf("want %d events, got %d", n, got)
	}
}

func TestCrashMidBatchLosesNothing(t *testing.T) {
	dir := t.TempDir()
	// The crashed run's goroutines outlive the test: keep them out of t.Log.
	b, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureStreams(context.Background(), bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for i := 0; i < n; i++ {
		bustest.Pub(t, b, "sightline.raw.metric.m", `{"i":`+strconv.Itoa(i)+`}`)
	}
	// First run: process some, then "crash" (the processor blocks after
	// 500 messages and the whole bus goes away without draining).
	var seen atomic.Int64
	block := make(chan struct{})
	p := bustest.Pipeline(t)
	slow := stage.ProcessorFunc(func(ctx context.Context, in *stage.Message) ([]*stage.Message, error) {
		if seen.Add(1) > 500 {
			<-block
		}
		return p.Process(ctx, in)
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_ = consume.RunProcessor(ctx, b, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor", AckWait: time.Second}, slow)
	}()
	for seen.Load() <= 500 {
		time.Sleep(10 * time.Millisecond)
	}
	b.Conn().Close() // crash: no drain, unacked work is abandoned
	cancel()
	close(block)
	b.Close()

	// Second run on the same store: everything arrives exactly once.
	b2 := bustest.Open(t, dir)
	defer b2.Close()
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() {
		done2 <- consume.RunProcessor(ctx2, b2, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor", AckWait: time.Second}, bustest.Pipeline(t))
	}()
	defer func() { cancel2(); <-done2 }()
	deadline := time.Now().Add(30 * time.Second)
	for bustest.StreamMsgs(t, b2, bus.StreamEvents) < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // let any redelivery duplicates land
	if got := bustest.StreamMsgs(t, b2, bus.StreamEvents); got != n {
		t.Fatalf("after crash and restart: want %d events, got %d", n, got)
	}
}

func TestGracefulShutdownLosesNothing(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	const n = 3000
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	for i := 0; i < n; i++ {
		bustest.Pub(t, b, "sightline.raw.metric.m", `{"i":`+strconv.Itoa(i)+`}`)
		if i == n/2 {
			stop() // SIGTERM mid-stream
		}
	}
	stop2 := bustest.Run(t, b, bustest.Pipeline(t))
	defer stop2()
	bustest.Messages(t, b, bus.StreamEvents, "sightline.events.>", n)
	time.Sleep(500 * time.Millisecond)
	if got := bustest.StreamMsgs(t, b, bus.StreamEvents); got != n {
		t.Fatalf("want %d, got %d", n, got)
	}
}

// blockingSink holds every Write until release is closed.
type blockingSink struct{ release chan struct{} }

func (s blockingSink) Write(ctx context.Context, _ []*stage.Message) error {
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return nil
}
func (blockingSink) Close(context.Context) error { return nil }

// A consumer with huge batches (the archive's) holds its batch plus a
// bounded prefetch, not Lanes more batches: the client must not buffer
// tens of thousands of messages ahead of a slow Write.
func TestConsumerPrefetchIsBounded(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	js := b.JetStream()
	const n, batch = 20000, 6000
	// In chunks the server acks before the client's async publish window
	// (4096) fills, even on a busy machine.
	futs := make([]jetstream.PubAckFuture, 0, 1000)
	for i := range n {
		f, err := js.PublishAsync("sightline.events.metric.prefetch", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
		if len(futs) < cap(futs) && i < n-1 {
			continue
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatal(err)
			}
		}
		futs = futs[:0]
	}
	sink := blockingSink{release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consume.RunSink(ctx, b, consume.Config{Stage: "big", Stream: bus.StreamEvents, Durable: "big",
			Batch: batch, Lanes: 1, Linger: 2 * time.Second}, sink)
	}()
	// The first batch fills (or its linger ends) and its Write blocks; the
	// client fills its buffers behind it.
	time.Sleep(3500 * time.Millisecond)
	cons, err := js.Consumer(context.Background(), bus.StreamEvents, "big")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	close(sink.release)
	cancel()
	<-done
	t.Logf("unacked while the sink was blocked: %d", info.NumAckPending)
	// One batch in Write (the only lane is blocked, so none is being
	// gathered), plus at most 2048 in the channel and 2048 in the pull
	// buffer. Before the bound it was ~15,000 (Lanes*Batch in each).
	if limit := uint64(batch + 2*2048); uint64(info.NumAckPending) > limit || info.NumAckPending == 0 {
		t.Fatalf("%d messages delivered and unacked while the sink was blocked, want 1 to %d", info.NumAckPending, limit)
	}
}
