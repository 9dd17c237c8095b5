// Package bustest holds what tests of every stage need from the bus: an
// embedded JetStream server in a temp dir with the three streams, the
// standard processor running on it, and a reader of conformed events.
package bustest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
)

// New starts an embedded JetStream server (free port, t.TempDir()) with the
// three streams; it is closed when the test ends.
func New(t testing.TB) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureStreams(context.Background(), bus.DefaultStreams()); err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
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
		done <- b.RunProcessor(ctx, bus.ConsumerConfig{Stage: "process", Stream: bus.StreamRaw, Durable: "processor"}, p)
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
