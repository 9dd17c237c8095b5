package consume_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/stage"
)

// TestOversizedOutputReason: an output the events stream refuses for its
// size is dead-lettered with a reason that says so; it used to blame "the
// server's max payload" whatever the limit was.
func TestOversizedOutputReason(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	// A processor without the standard pipeline's own size check: 3 MiB
	// out of anything, over the events stream's 2 MiB.
	big := stage.ProcessorFunc(func(_ context.Context, in *stage.Message) ([]*stage.Message, error) {
		return []*stage.Message{{Subject: "sightline.events.log.big", Header: stage.Header{}, Data: bytes.Repeat([]byte("x"), 3<<20)}}, nil
	})
	stop := bustest.Run(t, b, big)
	defer stop()
	bustest.Pub(t, b, "sightline.raw.log.big", "line")
	dl := bustest.Messages(t, b, bus.StreamDLQ, "sightline.dlq.>", 1)[0]
	reason, class := dl.Headers().Get(stage.HeaderDLQReason), dl.Headers().Get("Sightline-Dlq-Class")
	if class != "event_too_large" || strings.Contains(reason, "server's max payload") ||
		!strings.Contains(reason, "3145728 bytes") || !strings.Contains(reason, "message size exceeds maximum") {
		t.Fatalf("class %q reason %q: want event_too_large naming the size and the stream's refusal", class, reason)
	}
	if n := bustest.StreamMsgs(t, b, bus.StreamEvents); n != 0 {
		t.Fatalf("%d events stored", n)
	}
}
