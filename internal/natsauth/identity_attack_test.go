package natsauth_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/status"
	"github.com/sightline/sightline/internal/natsauth"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/host"
)

// corePublish is `nats pub -H Nats-Msg-Id:<id> <subject> <body>` with the
// connection of b.
func corePublish(t *testing.T, b *bus.Bus, subject, msgID, body string) {
	t.Helper()
	m := nats.NewMsg(subject)
	if msgID != "" {
		m.Header.Set(nats.MsgIdHdr, msgID)
	}
	m.Data = []byte(body)
	if err := b.Conn().PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
}

// Dedup squatting: collector web-01.lva1, with its own key and on its own
// permitted subject, sends the Nats-Msg-Ids of web-02's sync before web-02
// publishes it. web-02's sync must still become its events (the ids of two
// sources never meet), and web-01.lva1's own repeat of an id must be
// counted as a duplicate, not as out.
func TestAttackDedupSquattingByAnotherCollector(t *testing.T) {
	e := newEnv(t)
	op := e.mustClient(natsauth.Operator, "", nil)
	a := e.mustClient(natsauth.Collector, "web-01.lva1", nil)
	b := e.mustClient(natsauth.Collector, "web-02", nil)

	// web-02's sync, built but not yet sent; the attacker is told its ids
	// (they carry a random nonce, so in real life it cannot guess them).
	var victim []*stage.Message
	capture := stage.PublisherFunc(func(_ context.Context, msgs ...*stage.Message) ([]stage.PublishResult, error) {
		victim = append(victim, msgs...)
		return make([]stage.PublishResult, len(msgs)), nil
	})
	if err := collect(t, "web-02", capture); err != nil {
		t.Fatal(err)
	}
	own := host.SubjectFor(host.Subject, "web-01.lva1")
	for i, m := range victim {
		body := `{"scope":"host:web-01.lva1","tag":` + strconv.Itoa(i+1) + `,"final":true,"count":0}`
		corePublish(t, a, own, m.ID, body)
	}
	bustest.Events(t, op, "sightline.events.snapshot.host.web-01.lva1", len(victim))
	// Past the raw stream's own window (bus.RawDuplicates), which no
	// configuration can switch off.
	time.Sleep(2 * bus.RawDuplicates)

	if _, err := publisher(b, 10*time.Second).Publish(ctxFor(t), victim...); err != nil {
		t.Fatal(err)
	}
	evs := bustest.Events(t, op, host.SubjectFor("sightline.events.snapshot.host", "web-02"), len(victim))
	for _, ev := range evs {
		if ev.SyncScope != "host:web-02" || ev.Source != "urn:sightline:subject:sightline.raw.snapshot.host.web-02" {
			t.Fatalf("web-02's event %s: scope %q source %q", ev.ID, ev.SyncScope, ev.Source)
		}
	}

	// The attacker repeats one of its own ids: one event, one duplicate.
	corePublish(t, a, own, victim[0].ID, `{"scope":"host:web-01.lva1","tag":1,"final":true,"count":0}`)
	dup := bustest.Messages(t, op, bus.StreamDLQ, stage.DuplicatePrefix+">", 1)[0]
	if c := dup.Headers().Get(stage.HeaderDLQClass); c != stage.ClassDuplicate || dup.Subject() != "sightline.dlq.duplicate.snapshot.host.web-01.lva1" {
		t.Fatalf("duplicate record on %s class %q", dup.Subject(), c)
	}
	st, err := status.Read(ctxFor(t), op)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range st.Kinds {
		if k.Kind == "snapshot" && (k.In != k.Out+k.Rejected+k.Duplicates || k.Duplicates != 1) {
			t.Fatalf("snapshot counts %+v: want in = out + rejected + duplicates, 1 duplicate", k)
		}
	}
}

// A collector cannot forge the HTTP ingest's sealed source, nor emit a
// decision of Sightline's own services.
func TestAttackForgedSourceAndReservedTypeFromACollector(t *testing.T) {
	e := newEnv(t)
	op := e.mustClient(natsauth.Operator, "", nil)
	a := e.mustClient(natsauth.Collector, "web-01.lva1", nil)
	own := host.SubjectFor(host.Subject, "web-01.lva1")
	m := nats.NewMsg(own)
	m.Header.Set(stage.HeaderSource, "http:admin")
	m.Header.Set(stage.HeaderSourceID, "order-1")
	m.Header.Set(nats.MsgIdHdr, "sealed-0000000000000000000000000000000000000000")
	m.Data = []byte(`{"scope":"host:web-01.lva1","tag":1,"final":true,"count":0}`)
	if err := a.Conn().PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	dl := bustest.Messages(t, op, bus.StreamDLQ, "sightline.dlq.>", 1)[0]
	if c := dl.Headers().Get(stage.HeaderDLQClass); c != stage.ClassForgedSource || !strings.Contains(dl.Headers().Get(stage.HeaderDLQReason), "Sightline-Source") {
		t.Fatalf("forged source: class %q reason %q", c, dl.Headers().Get(stage.HeaderDLQReason))
	}
	// Collectors may not publish log.graph_sweep at all (permissions); the
	// operator, who may publish anything raw, is refused by the processor.
	corePublish(t, op, "sightline.raw.log.graph_sweep", "", `{"message":"graph sweep of host:web-02@1: swept","service":"graph"}`)
	dl = bustest.Messages(t, op, bus.StreamDLQ, "sightline.dlq.log.graph_sweep", 1)[0]
	if c := dl.Headers().Get(stage.HeaderDLQClass); c != stage.ClassReservedType {
		t.Fatalf("raw log.graph_sweep: class %q reason %q", c, dl.Headers().Get(stage.HeaderDLQReason))
	}
}
