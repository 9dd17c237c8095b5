package bus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sightline/sightline/internal/bus"
)

// corePub publishes the way `nats pub` does: a plain core publish (no
// PubAck), optional headers, then a flush so the server has it.
func corePub(t testing.TB, nc *nats.Conn, subject string, body []byte, headers ...string) {
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

// hostileHeaders are header sets a producer can send that look like the
// server's own status messages (an empty body plus a Status header is what
// a pull consumer gets for "no messages", "request timeout", heartbeats...).
var hostileHeaders = [][]string{
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

// Whatever headers a stored message carries, the processor's consumer
// delivers it (to an event or to the DLQ) and keeps going: nothing a
// producer sends can stop it. Each hostile message is sent twice, and a
// good message after all of them must still become an event.
func TestHostileHeadersNeverStopTheConsumer(t *testing.T) {
	b := newBus(t, "")
	defer b.Close()
	stop := runProcessor(t, b, pipeline(t))
	defer stop()

	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sent := 0
	for round := range 2 {
		for i, h := range hostileHeaders {
			corePub(t, nc, fmt.Sprintf("sightline.raw.metric.hostile%d", i), nil, h...)
			sent++
			// The same headers with a body are ordinary messages.
			if round == 0 {
				corePub(t, nc, fmt.Sprintf("sightline.raw.metric.hostilebody%d", i), []byte(`{"ok":1}`), h...)
				sent++
			}
		}
	}
	corePub(t, nc, "sightline.raw.metric.good", []byte(`{"ok":true}`))
	sent++

	deadline := time.Now().Add(30 * time.Second)
	for {
		in, out, rej := streamMsgs(t, b, bus.StreamRaw), streamMsgs(t, b, bus.StreamEvents), streamMsgs(t, b, bus.StreamDLQ)
		if in == uint64(sent) && out+rej == in {
			break
		}
		if time.Now().After(deadline) {
			st, _ := b.Status(context.Background())
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
	collect(t, b, bus.StreamEvents, "sightline.events.metric.good", 1)
	// Dead letters keep those headers renamed (Sightline-Orig-Status), so
	// any NATS client can read the DLQ: nats.go's ordered consumer reads
	// them all.
	rej := streamMsgs(t, b, bus.StreamDLQ)
	for _, m := range collect(t, b, bus.StreamDLQ, "sightline.dlq.>", int(rej)) {
		if m.Headers().Get("Status") != "" || m.Headers().Get("Description") != "" {
			t.Errorf("dead letter %s carries a Status/Description header: %v", m.Subject(), m.Headers())
		}
	}
}
