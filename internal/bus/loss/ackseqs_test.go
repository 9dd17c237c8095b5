package loss_test

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/sightline/sightline/internal/bus/loss"
)

// checkAckSeqs compares loss.AckSeqs with nats.go's Msg.Metadata: whenever
// nats.go reads a reply subject, AckSeqs reads the same delivery count and
// stream sequence.
func checkAckSeqs(t *testing.T, reply string) {
	t.Helper()
	d, s, ok := loss.AckSeqs(reply)
	md, err := (&nats.Msg{Reply: reply}).Metadata()
	if err != nil {
		return
	}
	if !ok || d != md.NumDelivered || s != md.Sequence.Stream {
		t.Errorf("%q: AckSeqs %d %d %v, nats.go %d %d", reply, d, s, ok, md.NumDelivered, md.Sequence.Stream)
	}
}

func TestAckSeqsMatchesMetadata(t *testing.T) {
	for _, r := range []string{
		"$JS.ACK.SIGHTLINE_RAW.processor.1.42.42.1764640000000000000.0",
		"$JS.ACK.SIGHTLINE_RAW.processor.3.18446744073709551615.9.1764640000000000000.12",
		"$JS.ACK.hub.ACCHASH.SIGHTLINE_EVENTS.index.1.7.7.1764640000000000000.3.abc",
		"$JS.ACK._.ACCHASH.SIGHTLINE_EVENTS.index.2.7.8.1764640000000000000.3",
		"$JS.ACK.hub.ACCHASH.SIGHTLINE_EVENTS.index.1.7.7.1764640000000000000.3.abc.def.ghi.jkl",
	} {
		checkAckSeqs(t, r)
		if _, _, ok := loss.AckSeqs(r); !ok {
			t.Errorf("%q not read", r)
		}
	}
	for _, r := range []string{"", "$JS.ACK", "_INBOX.x.y", "$JS.ACK.a.b.c.d.e.f.g", "$JS.ACK.S.c.x.1.1.1.0", "$JS.NAK.S.c.1.1.1.1.0"} {
		if _, _, ok := loss.AckSeqs(r); ok {
			t.Errorf("%q read as a stored message's reply", r)
		}
	}
	for i := range 200 {
		checkAckSeqs(t, fmt.Sprintf("$JS.ACK.S%d.c%d.%d.%d.%d.%d.%d", i, i, i%7+1, i*i, i, 1764640000000000000+i, i%3))
	}
}

func FuzzAckSeqs(f *testing.F) {
	f.Add("$JS.ACK.SIGHTLINE_RAW.processor.1.42.42.1764640000000000000.0")
	f.Add("$JS.ACK.hub.ACCHASH.SIGHTLINE_EVENTS.index.1.7.7.1764640000000000000.3.abc")
	f.Add("$JS.ACK.a..b.1.2.3.4.5")
	f.Fuzz(func(t *testing.T, reply string) { checkAckSeqs(t, reply) })
}
