// Package bustest holds what tests of every stage need from the bus: an
// embedded JetStream server in a temp dir with the three streams, the
// standard processor running on it, and a reader of conformed events.
package bustest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/bus/health"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
)

// New starts an embedded JetStream server (free port, t.TempDir()) with the
// three streams and no logs; it is closed when the test ends.
func New(t testing.TB) *bus.Bus {
	t.Helper()
	return Start(t, bus.Options{Logger: slog.New(slog.DiscardHandler)})
}

// Start starts an embedded JetStream server with o and the three streams;
// it is closed when the test ends. A free port (Port -1), a temp StoreDir
// and the test Logger are used where o leaves them zero.
func Start(t testing.TB, o bus.Options) *bus.Bus {
	t.Helper()
	if o.Port == 0 {
		o.Port = -1
	}
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	if o.Logger == nil {
		o.Logger = Logger(t)
	}
	b, err := bus.Connect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.EnsureStreams(context.Background(), bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	return b
}

// RunProcessor runs the standard validate → conform → enrich pipeline with
// the given enrichment attributes on b until the test ends.
func RunProcessor(t testing.TB, b *bus.Bus, attrs map[string]string) {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := processors.Standard(processors.Config{Attributes: attrs, IdentityKey: b.IdentityKey()}, v)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consume.RunProcessor(ctx, b, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor"}, p)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !b.Conn().IsClosed() { // a test may close the bus itself
			t.Error(err)
		}
	})
}

// Messages reads n messages on filter from stream (an ordered consumer
// from the stream's start).
func Messages(t testing.TB, b *bus.Bus, stream, filter string, n int) []jetstream.Msg {
	t.Helper()
	_, out := read(t, b, stream, filter, n)
	return out
}

// Events reads n conformed events on filter, then checks that no more
// arrive within a short wait.
func Events(t testing.TB, b *bus.Bus, filter string, n int) []schemas.Event {
	t.Helper()
	c, msgs := read(t, b, bus.StreamEvents, filter, n)
	out := make([]schemas.Event, 0, n)
	for _, m := range msgs {
		var ev schemas.Event
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	if m, err := c.Next(jetstream.FetchMaxWait(500 * time.Millisecond)); err == nil {
		t.Fatalf("unexpected extra event: %s", m.Data())
	}
	return out
}

func read(t testing.TB, b *bus.Bus, stream, filter string, n int) (jetstream.Consumer, []jetstream.Msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := b.JetStream().OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	// A replicated stream just created may still be electing its leader: the
	// ordered consumer's (re)creation then meets "no responders" for a moment,
	// and it recreates itself on the next call. Other errors, or 30 s of them, fail.
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < n {
		m, err := c.Next(jetstream.FetchMaxWait(15 * time.Second))
		if err != nil {
			if errors.Is(err, nats.ErrNoResponders) && time.Now().Before(deadline) {
				time.Sleep(250 * time.Millisecond)
				continue
			}
			t.Fatalf("got %d of %d messages on %s: %v", len(out), n, filter, err)
		}
		out = append(out, m)
	}
	return c, out
}

// StreamMsgs returns how many messages stream holds.
func StreamMsgs(t testing.TB, b *bus.Bus, stream string) uint64 {
	t.Helper()
	s, err := b.JetStream().Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// Open starts an embedded JetStream server on a free port in dir (a temp
// dir when empty) with the three streams, logging to the test at warning
// level and above. The caller may close it; it is closed when the test
// ends.
func Open(t testing.TB, dir string) *bus.Bus {
	t.Helper()
	return Start(t, bus.Options{StoreDir: dir})
}

// Logger sends logs to the test log at warning level and above.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Pipeline is the standard validate → conform → enrich processor with the
// attribute site=lab1.
func Pipeline(t testing.TB) stage.Processor {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := processors.Standard(processors.Config{Attributes: map[string]string{"site": "lab1"}}, v)
	return p
}

// Run runs p as the processor (redelivery after 100ms) until the returned
// stop is called.
func Run(t testing.TB, b *bus.Bus, p stage.Processor) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consume.RunProcessor(ctx, b, consume.Config{
			Stage: "process", Stream: bus.StreamRaw, Durable: "processor",
			Backoff: []time.Duration{100 * time.Millisecond},
		}, p)
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// Pub publishes with a PubAck: plain payload, optional header pairs.
func Pub(t testing.TB, b *bus.Bus, subject, body string, headers ...string) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = []byte(body)
	for i := 0; i+1 < len(headers); i += 2 {
		m.Header.Add(headers[i], headers[i+1])
	}
	if _, err := b.JetStream().PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// CorePub publishes the way `nats pub` does: a plain core publish (no
// PubAck), optional header pairs, then a flush so the server has it.
func CorePub(t testing.TB, nc *nats.Conn, subject string, body []byte, headers ...string) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = body
	for i := 0; i+1 < len(headers); i += 2 {
		m.Header.Add(headers[i], headers[i+1])
	}
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// WaitFor polls cond every 20ms and fails the test when it is still false
// after within; it returns how long it took.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
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

// HostileHeaders are header sets a producer can send that look like the
// server's own status messages (an empty body plus a Status header is what
// a pull consumer gets for "no messages", "request timeout", heartbeats...).
var HostileHeaders = [][]string{
	{"Status", "400"},
	{"Status", "404"},
	{"Status", "408"},
	{"Status", "409"},
	{"Status", "503"},
	{"Status", "100"},
	{"Status", "100", "Description", "Idle Heartbeat"},
	{"Status", "408", "Description", "Request Timeout", "Nats-Pending-Messages", "1000000", "Nats-Pending-Bytes", "0"},
	{"Status", "409", "Description", "Consumer Deleted"},
	{"Status", "409", "Description", "Leadership Change"},
	{"Status", "409", "Description", "Message Size Exceeds MaxBytes"},
	{"Status", "100", "Nats-Consumer-Stalled", "$JS.FC.x.y.z"},
	{"Description", "No Messages"},
	{"Status", ""},
	{"Status", "abc"},
	{"Status", "200"},
	{"Status", strings.Repeat("4", 4096)},
	{"X-Huge", strings.Repeat("h", 60<<10)},
	{"Status", "404", "X-Huge", strings.Repeat("h", 60<<10)},
}

// HealthOf is the state of one component of b's health registry.
func HealthOf(b *bus.Bus, component string) (health.ComponentHealth, bool) {
	for _, c := range b.Health().All() {
		if c.Component == component {
			return c, true
		}
	}
	return health.ComponentHealth{}, false
}
