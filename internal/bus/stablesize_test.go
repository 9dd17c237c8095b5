package bus_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
)

// streamSizes returns the three streams' max_bytes.
func streamSizes(t *testing.T, b *bus.Bus) [3]int64 {
	t.Helper()
	var out [3]int64
	for i, name := range []string{bus.StreamRaw, bus.StreamEvents, bus.StreamDLQ} {
		s, err := b.JetStream().Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s.CachedInfo().Config.MaxBytes
	}
	return out
}

// Streams shrunk to fit a small store keep the sizes they were given at
// every later start of the same configuration, with data in them: no
// start sends an update (which would, on the way, grow one stream and
// shrink it back, or settle on other sizes).
func TestFittedStreamSizesHoldAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	body := bytes.Repeat([]byte("x"), 8<<10)
	start := func(store string, publish int) (sizes [3]int64, updates int64) {
		b, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: filepath.Join(dir, "js"), ServerConfig: storeConf(t, dir, store), Logger: bustest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		var n atomic.Int64
		sub, err := b.Conn().Subscribe("$JS.EVENT.ADVISORY.STREAM.UPDATED.>", func(*nats.Msg) { n.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Conn().Flush(); err != nil {
			t.Fatal(err)
		}
		if err := b.EnsureStreams(context.Background(), bus.DefaultStreams()); err != nil {
			t.Fatalf("start with max_file_store %s: %v", store, err)
		}
		sizes = streamSizes(t, b)
		for range publish {
			if _, err := b.JetStream().Publish(context.Background(), "sightline.raw.metric.fill", body); err != nil {
				t.Fatal(err)
			}
		}
		_ = b.Conn().Flush()
		time.Sleep(200 * time.Millisecond) // advisories in flight
		_ = sub.Unsubscribe()
		return sizes, n.Load()
	}
	first, _ := start("3GB", 1000)
	if first[0] >= bus.DefaultStreams().Raw.MaxBytes {
		t.Fatalf("streams not shrunk to fit 3 GB: %v", first)
	}
	// 3 GB each time, then more: the default max_file_store is a share of
	// the disk space free at each start, which the store itself uses.
	for i, store := range []string{"3GB", "3GB", "3GB", "6GB", "3GB"} {
		sizes, updates := start(store, 1000)
		if sizes != first || updates != 0 {
			t.Fatalf("restart %d (max_file_store %s): max_bytes %v after %d stream updates, want %v as set at the first start and no update", i+1, store, sizes, updates, first)
		}
	}
}
