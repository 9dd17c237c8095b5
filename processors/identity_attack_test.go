package processors_test

import (
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/stage"
)

// Future dead letters cannot be suppressed: on the open embedded server
// anyone may publish on sightline.dlq.>, and the dead letters of the next
// raw inputs had predictable ids (dlq:process:SIGHTLINE_RAW:<seq>). Sent
// first, those made the DLQ stream drop the real dead letters.
func TestAttackDeadLettersCannotBePreempted(t *testing.T) {
	b := bustest.New(t)
	bustest.RunProcessor(t, b, nil)
	nc := b.Conn()
	for seq := 1; seq <= 3; seq++ {
		for _, id := range []string{"dlq:process:SIGHTLINE_RAW:" + strconv.Itoa(seq), "dlq:process:" + strconv.Itoa(seq)} {
			m := nats.NewMsg("sightline.dlq.metric.search_made")
			m.Header.Set(nats.MsgIdHdr, id)
			m.Data = []byte("squatted")
			if err := nc.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 3 {
		if err := nc.Publish("sightline.raw.metric.search_made", []byte(`{"query":`)); err != nil {
			t.Fatal(err)
		}
	}
	// 6 squatters, then the 3 real dead letters, each with its reason.
	msgs := bustest.Messages(t, b, bus.StreamDLQ, "sightline.dlq.metric.search_made", 9)
	real := 0
	for _, m := range msgs {
		if m.Headers().Get(stage.HeaderDLQClass) == "not_json" && m.Headers().Get(stage.HeaderDLQReason) != "" {
			real++
		}
	}
	if real != 3 {
		t.Fatalf("%d of 3 dead letters stored", real)
	}
}
