package read_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/internal/bus/read"
)

// Without NATS authentication (the embedded default on loopback) anyone can
// core-publish straight onto the events stream. Replay reads that stream:
// a stored message that looks like a server status message (empty body
// plus a Status header) must come out as a message like any other, and the
// replay must go on to the end of the range.
func TestReplayReadsHostileHeaders(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sent := 0
	for i, h := range bustest.HostileHeaders {
		bustest.CorePub(t, nc, fmt.Sprintf("sightline.events.metric.hostile%d", i), nil, h...)
		sent++
	}
	bustest.CorePub(t, nc, "sightline.events.metric.good", []byte(`{"ok":true}`))
	sent++
	deadline := time.Now().Add(10 * time.Second)
	for bustest.StreamMsgs(t, b, bus.StreamEvents) < uint64(sent) {
		if time.Now().After(deadline) {
			t.Fatalf("events stream holds %d of %d", bustest.StreamMsgs(t, b, bus.StreamEvents), sent)
		}
		time.Sleep(20 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := read.Replay(ctx, b, read.ReplayOptions{BatchSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	got := 0
	var last string
	for {
		batch, err := src.Next(ctx)
		got += len(batch)
		for _, m := range batch {
			last = m.Subject
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("replay stopped after %d of %d messages: %v", got, sent, err)
		}
	}
	if got != sent || last != "sightline.events.metric.good" {
		t.Fatalf("replay read %d of %d messages, last %q", got, sent, last)
	}
}

// The same for a state bucket (the hosts store): an entry written by a
// core publish onto the bucket's subject with an empty value and a Status
// header is an entry like any other to a scan.
func TestStateScanReadsHostileHeaders(t *testing.T) {
	ctx := context.Background()
	b := bustest.Open(t, "")
	defer b.Close()
	st, err := kv.OpenState(ctx, b, kv.StateConfig{Bucket: "hostile_state", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i, h := range bustest.HostileHeaders {
		bustest.CorePub(t, nc, fmt.Sprintf("$KV.hostile_state.h%d", i), nil, h...)
	}
	if err := st.PutMany(ctx, []kv.StatePut{{Key: "zz.good", Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	seen := map[string]bool{}
	err = st.Scan(sctx, []string{">"}, func(e kv.StateEntry) error { seen[e.Key] = true; return nil }, kv.ScanBatch(3))
	if err != nil {
		t.Fatalf("scan stopped after %d entries: %v", len(seen), err)
	}
	if !seen["zz.good"] || len(seen) != len(bustest.HostileHeaders)+1 {
		t.Fatalf("scan saw %d entries (want %d), good one: %v", len(seen), len(bustest.HostileHeaders)+1, seen["zz.good"])
	}
}
