package consume_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/status"
)

// Whatever headers a stored message carries, the processor's consumer
// delivers it (to an event or to the DLQ) and keeps going: nothing a
// producer sends can stop it. Each hostile message is sent twice, and a
// good message after all of them must still become an event.
func TestHostileHeadersNeverStopTheConsumer(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	defer stop()

	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sent := 0
	for round := range 2 {
		for i, h := range bustest.HostileHeaders {
			bustest.CorePub(t, nc, fmt.Sprintf("sightline.raw.metric.hostile%d", i), nil, h...)
			sent++
			// The same headers with a body are ordinary messages.
			if round == 0 {
				bustest.CorePub(t, nc, fmt.Sprintf("sightline.raw.metric.hostilebody%d", i), []byte(`{"ok":1}`), h...)
				sent++
			}
		}
	}
	bustest.CorePub(t, nc, "sightline.raw.metric.good", []byte(`{"ok":true}`))
	sent++

	deadline := time.Now().Add(30 * time.Second)
	for {
		in, out, rej := bustest.StreamMsgs(t, b, bus.StreamRaw), bustest.StreamMsgs(t, b, bus.StreamEvents), bustest.StreamMsgs(t, b, bus.StreamDLQ)
		if in == uint64(sent) && out+rej == in {
			break
		}
		if time.Now().After(deadline) {
			st, _ := status.Read(context.Background(), b)
			var cons string
			for _, s := range st.Streams {
				for _, c := range s.Consumers {
					cons += fmt.Sprintf(" %s: pending %d ack pending %d redelivered %d;", c.Name, c.Pending, c.AckPending, c.Redelivered)
				}
			}
			t.Fatalf("after 30s: sent %d, raw %d, events %d + dlq %d (consumers:%s)", sent, in, out, rej, cons)
		}
		time.Sleep(50 * time.Millisecond)
	}
	bustest.Messages(t, b, bus.StreamEvents, "sightline.events.metric.good", 1)
	// Dead letters keep those headers renamed (Sightline-Orig-Status), so
	// any NATS client can read the DLQ: nats.go's ordered consumer reads
	// them all.
	rej := bustest.StreamMsgs(t, b, bus.StreamDLQ)
	for _, m := range bustest.Messages(t, b, bus.StreamDLQ, "sightline.dlq.>", int(rej)) {
		if m.Headers().Get("Status") != "" || m.Headers().Get("Description") != "" {
			t.Errorf("dead letter %s carries a Status/Description header: %v", m.Subject(), m.Headers())
		}
	}
}
