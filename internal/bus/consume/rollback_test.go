package consume_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/stage"
)

// drained reports whether the processor's consumer has nothing left to
// deliver and nothing unacknowledged.
func drained(t testing.TB, b *bus.Bus) bool {
	t.Helper()
	c, err := b.JetStream().Consumer(context.Background(), bus.StreamRaw, "processor")
	if err != nil {
		return false
	}
	info, err := c.Info(context.Background())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

// After a power cut under group commit the processor's consumer can resume
// from an older position than it had acknowledged (its state is not part
// of what a commit round promises), so it is handed inputs it already
// conformed, as their first delivery. Their events are already stored:
// that is the processor's own earlier output, not a second producer's
// input with the same id, and must not be dead-lettered as a duplicate.
// A different input with an id already used is still recorded as one.
func TestRolledBackConsumerIsNotADuplicate(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	const withID, withoutID = 40, 10
	for i := range withID {
		// A producer's Sightline-Input is not what its event carries.
		bustest.Pub(t, b, "sightline.raw.metric.rollback", `{"i":`+strconv.Itoa(i)+`}`, "Nats-Msg-Id", "m"+strconv.Itoa(i), stage.HeaderInput, "forged")
	}
	for i := range withoutID { // ids derived from the input's position
		bustest.Pub(t, b, "sightline.raw.metric.rollback", `{"j":`+strconv.Itoa(i)+`}`)
	}
	for _, m := range bustest.Messages(t, b, bus.StreamEvents, "sightline.events.>", withID+withoutID) {
		if ref := m.Headers().Get(stage.HeaderInput); !strings.HasPrefix(ref, bus.StreamRaw+":") || !strings.Contains(ref, " ") {
			t.Fatalf("event %s carries %s %q, want its input's position", m.Headers().Get("Nats-Msg-Id"), stage.HeaderInput, ref)
		}
	}
	bustest.WaitFor(t, 30*time.Second, "the processor acknowledged every input", func() bool { return drained(t, b) })
	stop()

	// The position rolls back to the stream's start, as a consumer whose
	// state file lost its last writes (here: all of them).
	if err := b.JetStream().DeleteConsumer(context.Background(), bus.StreamRaw, "processor"); err != nil {
		t.Fatal(err)
	}
	// Another input with an id already used (after the raw stream's own
	// window): a real duplicate.
	time.Sleep(2 * bus.RawDuplicates)
	bustest.Pub(t, b, "sightline.raw.metric.rollback", `{"i":"other"}`, "Nats-Msg-Id", "m7")

	stop = bustest.Run(t, b, bustest.Pipeline(t))
	bustest.WaitFor(t, 30*time.Second, "the processor acknowledged every input again", func() bool { return drained(t, b) })
	stop()

	dlq := bustest.Messages(t, b, bus.StreamDLQ, "sightline.dlq.>", 1)
	if n := bustest.StreamMsgs(t, b, bus.StreamDLQ); n != 1 {
		subjects := map[string]int{}
		for _, m := range bustest.Messages(t, b, bus.StreamDLQ, "sightline.dlq.>", int(n)) {
			subjects[m.Headers().Get(stage.HeaderDLQClass)]++
		}
		t.Fatalf("want 1 dead letter (the other input with id m7), got %d: %v", n, subjects)
	}
	h := dlq[0].Headers()
	m7 := identity.ID(identity.Source{Subject: "sightline.raw.metric.rollback"}, "m7", identity.Position{})
	if h.Get(stage.HeaderDLQClass) != stage.ClassDuplicate || !strings.Contains(h.Get(stage.HeaderDLQReason), m7) || string(dlq[0].Data()) != `{"i":"other"}` {
		t.Fatalf("dead letter: class %q reason %q body %s, want a duplicate of %s", h.Get(stage.HeaderDLQClass), h.Get(stage.HeaderDLQReason), dlq[0].Data(), m7)
	}
	if n := bustest.StreamMsgs(t, b, bus.StreamEvents); n != withID+withoutID {
		t.Fatalf("want %d events, got %d", withID+withoutID, n)
	}
}
