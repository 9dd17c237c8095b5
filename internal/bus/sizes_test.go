package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
)

var doorSizes = []int{limits.MiB - 1, limits.MiB, limits.MiB + 1, 2 * limits.MiB, 8 * limits.MiB, 8*limits.MiB + 1}

// sizedPubs core-publishes one body of each size (headers none, like
// `nats pub subj "$(cat file)"`) on subject.<size> and returns the sizes
// the client or server refused.
func sizedPubs(t *testing.T, url, subject string) (accepted, refused []int) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, n := range doorSizes {
		err := nc.Publish(subject+"."+strconv.Itoa(n), make([]byte, n))
		if err == nil {
			err = nc.FlushTimeout(10 * time.Second)
		}
		switch {
		case err == nil:
			accepted = append(accepted, n)
		case errors.Is(err, nats.ErrMaxPayload):
			refused = append(refused, n)
		default:
			t.Fatalf("publish %d bytes: %v", n, err)
		}
		if int64(n) > nc.MaxPayload() && err == nil {
			t.Fatalf("%d bytes over the server's max payload %d accepted", n, nc.MaxPayload())
		}
	}
	return accepted, refused
}

// storedSizes waits until the raw stream holds one message per accepted
// size on subject.<size>.
func storedSizes(t *testing.T, b *bus.Bus, subject string, accepted []int) {
	t.Helper()
	s, err := b.JetStream().Stream(context.Background(), bus.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range accepted {
		subj := subject + "." + strconv.Itoa(n)
		var m *jetstream.RawStreamMsg
		deadline := time.Now().Add(time.Minute)
		for {
			m, err = s.GetLastMsgForSubject(context.Background(), subj)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("%d bytes: the server took the core publish but the raw stream does not hold it: %v", n, err)
			continue
		}
		if len(m.Data) != n {
			t.Errorf("%d bytes stored as %d", n, len(m.Data))
		}
	}
}

// Every core publish the embedded server takes lands in the raw stream
// (then, being over the processor's body limit, in the DLQ: a dead letter
// of the server's max payload has its body cut to leave room for the
// reason); a larger one is refused to the publisher. Nothing vanishes.
func TestCorePublishSizesEmbedded(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	defer stop()
	const subject = "sightline.raw.metric.size"
	accepted, refused := sizedPubs(t, b.ClientURL(), subject)
	t.Logf("server max payload %d: accepted %v, refused %v", b.Conn().MaxPayload(), accepted, refused)
	if len(refused) != 1 || refused[0] != 8*limits.MiB+1 {
		t.Fatalf("refused %v, want only the one over %d", refused, limits.ServerMaxPayload)
	}
	storedSizes(t, b, subject, accepted)
	// Megabytes through the stages (slow under -race on a busy machine).
	for deadline := time.Now().Add(2 * time.Minute); bustest.StreamMsgs(t, b, bus.StreamDLQ) < uint64(len(accepted)) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	dlq := bustest.Messages(t, b, bus.StreamDLQ, "sightline.dlq.>", len(accepted))
	cuts := 0
	for _, m := range dlq {
		h := m.Headers()
		if h.Get("Sightline-Dlq-Class") != "too_large" {
			t.Errorf("%s: class %q reason %q", m.Subject(), h.Get("Sightline-Dlq-Class"), h.Get(stage.HeaderDLQReason))
		}
		size := atoi(t, m.Subject()[strings.LastIndexByte(m.Subject(), '.')+1:])
		switch cut := h.Get(consume.HeaderDLQBodyCut); {
		case cut != "":
			cuts++
			if size != 8*limits.MiB || h.Get(consume.HeaderDLQBodyBytes) != strconv.Itoa(size) || len(m.Data()) != atoi(t, cut) ||
				len(m.Data()) < size-limits.DLQHeaderBudget {
				t.Errorf("%s: cut dead letter: body bytes %q, cut %q, kept %d", m.Subject(), h.Get(consume.HeaderDLQBodyBytes), cut, len(m.Data()))
			}
		case len(m.Data()) != size:
			t.Errorf("%s: dead letter body %d bytes, want the original %d", m.Subject(), len(m.Data()), size)
		}
	}
	if cuts != 1 {
		t.Errorf("%d dead letters cut, want 1 (the one of the server's max payload)", cuts)
	}
	if n := bustest.StreamMsgs(t, b, bus.StreamEvents); n != 0 {
		t.Fatalf("%d events from oversized bodies", n)
	}
}

// The same against the external 3-node cluster (its servers keep NATS's
// default max payload of 1 MiB): what the server takes is in the raw
// stream, the rest is refused to the publisher.
func TestCorePublishSizesCluster(t *testing.T) {
	urls := testsvc.NATSCluster(t)
	b, err := bus.Connect(context.Background(), bus.Options{URLs: urls, Logger: bustest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.EnsureStreams(context.Background(), clusterStreams()); err != nil {
		t.Fatal(err)
	}
	subject := fmt.Sprintf("sightline.raw.metric.size%d", time.Now().UnixNano())
	accepted, refused := sizedPubs(t, urls[0], subject)
	t.Logf("server max payload %d: accepted %v, refused %v", b.Conn().MaxPayload(), accepted, refused)
	if len(accepted) == 0 || len(accepted)+len(refused) != len(doorSizes) {
		t.Fatalf("accepted %v refused %v", accepted, refused)
	}
	storedSizes(t, b, subject, accepted)
	// Leave the shared cluster's raw stream as it was.
	if s, err := b.JetStream().Stream(context.Background(), bus.StreamRaw); err == nil {
		_ = s.Purge(context.Background(), jetstream.WithPurgeSubject(subject+".>"))
	}
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
