package natsauth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/internal/natsauth"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/hosts"
)

// TestAttackWorkerCannotDestroyStreamContents: the worker's credentials
// (what `sightline run` holds all day) on a nats-server process running
// the shipped nats.conf/auth.conf/roles.conf. With them an attacker used
// to empty the raw stream (a stream update with max_msgs 1), remove a dead
// letter (STREAM.MSG.DELETE), delete the consumers and shrink the hosts
// bucket. Each is refused now and the data stays; what the worker needs
// (start on streams the operator set up, publish, consume, ack, write the
// hosts store) still works.
func TestAttackWorkerCannotDestroyStreamContents(t *testing.T) {
	n := startShippedNATS(t)
	op, err := bus.Connect(ctxFor(t), bus.Options{URLs: []string{n.url}, User: "operator", Password: "opw", TLS: trustCA(t, n.ca)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	// Setup by the operator identity (`sightline setup`).
	if err := op.EnsureStreams(ctxFor(t), bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	if _, err := hosts.Open(ctxFor(t), op, hosts.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	w := n.worker
	// The worker starts on what the operator set up, without changing it.
	if err := w.EnsureStreams(ctxFor(t), bus.DefaultStreams()); err != nil {
		t.Fatalf("the worker's start on streams set up by the operator: %v", err)
	}
	st, err := hosts.Open(ctxFor(t), w, hosts.DefaultConfig())
	if err != nil {
		t.Fatalf("the worker opens the hosts store: %v", err)
	}
	if err := st.PutMany(ctxFor(t), []kv.StatePut{{Key: "h.web-01", Value: []byte(`{}`)}}); err != nil {
		t.Fatalf("the worker writes the hosts store: %v", err)
	}
	for i := 0; i < 3; i++ {
		if _, err := w.Publish(ctxFor(t), &stage.Message{Subject: "sightline.raw.metric.cpu", Data: []byte(`{"v":1}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Publish(ctxFor(t), &stage.Message{Subject: "sightline.dlq.x", Data: []byte(`{"v":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	js := w.JetStream()
	cons, err := js.CreateOrUpdateConsumer(ctxFor(t), bus.StreamRaw, jetstream.ConsumerConfig{Durable: "attack-probe", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("the worker creates its durable consumer: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctxFor(t)); err != nil {
			t.Fatalf("the worker acks: %v", err)
		}
	}

	short := func() context.Context { return ctxTimeout(t, 2*time.Second) }
	raw, err := js.Stream(ctxFor(t), bus.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	cfg := raw.CachedInfo().Config
	cfg.MaxMsgs = 1
	if _, err := js.UpdateStream(short(), cfg); err == nil {
		t.Error("the worker updated the raw stream to max_msgs 1")
	}
	dlq, err := js.Stream(ctxFor(t), bus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if err := dlq.DeleteMsg(short(), 1); err == nil {
		t.Error("the worker deleted a dead letter")
	}
	if err := dlq.SecureDeleteMsg(short(), 2); err == nil {
		t.Error("the worker erased a dead letter")
	}
	if err := js.DeleteConsumer(short(), bus.StreamRaw, "attack-probe"); err == nil {
		t.Error("the worker deleted a consumer")
	}
	if _, err := js.UpdateKeyValue(short(), jetstream.KeyValueConfig{Bucket: natsauth.HostsBucket, History: 1, MaxBytes: 1024}); err == nil {
		t.Error("the worker shrank the hosts bucket")
	}
	if _, err := js.CreateStream(short(), jetstream.StreamConfig{Name: "ATTACK", Subjects: []string{"attack.>"}}); err == nil {
		t.Error("the worker created a stream Sightline does not use")
	}

	// Everything is still there, as the operator sees it.
	ojs := op.JetStream()
	for stream, want := range map[string]uint64{bus.StreamRaw: 3, bus.StreamDLQ: 3} {
		s, err := ojs.Stream(ctxFor(t), stream)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().State.Msgs; got != want {
			t.Errorf("%s holds %d messages, want %d", stream, got, want)
		}
	}
	if _, err := ojs.Consumer(ctxFor(t), bus.StreamRaw, "attack-probe"); err != nil {
		t.Errorf("the consumer is gone: %v", err)
	}
	kv, err := ojs.KeyValue(ctxFor(t), natsauth.HostsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(ctxFor(t)); err != nil || st.History() == 1 {
		t.Errorf("hosts bucket status %v, %v", st, err)
	}
	for _, subj := range []string{"$JS.API.STREAM.UPDATE.SIGHTLINE_RAW", "$JS.API.STREAM.MSG.DELETE.SIGHTLINE_DLQ", "$JS.API.CONSUMER.DELETE.SIGHTLINE_RAW.attack-probe"} {
		want := `"$G/user:sightline" - Publish Violation - Subject "` + subj + `"`
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(n.out.String(), want) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.Contains(n.out.String(), want) {
			t.Errorf("server log lacks %s", want)
		}
	}
}
