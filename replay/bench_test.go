package replay_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/read"
	"github.com/sightline/sightline/replay"
	"github.com/sightline/sightline/sinks/archive"
)

// benchN is the number of events in the replay benchmarks
// (REPLAY_BENCH_EVENTS, default 200,000).
func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("REPLAY_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 200000
}

var (
	benchOnce sync.Once
	benchBus  *bus.Bus
	benchDir  string
	benchCfg  archive.Config
)

// benchSetup fills an embedded JetStream (file storage) with benchN events
// and archives them into a local directory, once per process.
func benchSetup(b *testing.B) {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "replay-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = dir
		ctx := context.Background()
		benchBus, err = bus.Connect(ctx, bus.Options{Port: -1, StoreDir: dir + "/js"})
		if err != nil {
			b.Fatal(err)
		}
		if err := benchBus.EnsureStreams(ctx, bus.DefaultStreams()); err != nil {
			b.Fatal(err)
		}
		n := benchN()
		start := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
		for lo := 0; lo < n; lo += 2000 {
			msgs := events(min(2000, n-lo), start.Add(time.Duration(lo)*10*time.Millisecond), 10*time.Millisecond)
			if _, err := benchBus.Publish(ctx, msgs...); err != nil {
				b.Fatal(err)
			}
		}
		benchCfg = archive.DefaultConfig()
		benchCfg.URL = dir + "/archive"
		sink, err := archive.New(ctx, benchCfg)
		if err != nil {
			b.Fatal(err)
		}
		src, err := read.Replay(ctx, benchBus, read.ReplayOptions{BatchSize: 50000})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := replay.Run(ctx, src, sink, replay.Options{}); err != nil {
			b.Fatal(err)
		}
		_ = sink.Close(ctx)
	})
}

func report(b *testing.B, n int) {
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkReplay replays benchN events to a discarding sink: from the
// stream through read.Replay + replay.Run (stream_to_discard) against a bare
// JetStream ordered consumer reading the same messages (jetstream_baseline),
// and from the local archive (archive_to_discard) against reading and
// gunzipping its objects only (archive_read_baseline).
//
//	go test -run '^$' -bench BenchmarkReplay -benchtime 3x ./replay/
func BenchmarkReplay(b *testing.B) {
	benchSetup(b)
	n := benchN()
	ctx := context.Background()
	b.Run("jetstream_baseline", func(b *testing.B) {
		for b.Loop() {
			cons, err := benchBus.JetStream().OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{})
			if err != nil {
				b.Fatal(err)
			}
			it, err := cons.Messages(jetstream.PullMaxMessages(2000))
			if err != nil {
				b.Fatal(err)
			}
			for got := 0; got < n; got++ {
				if _, err := it.Next(); err != nil {
					b.Fatal(err)
				}
			}
			it.Stop()
		}
		report(b, n)
	})
	b.Run("stream_to_discard", func(b *testing.B) {
		for b.Loop() {
			src, err := read.Replay(ctx, benchBus, read.ReplayOptions{BatchSize: 1000})
			if err != nil {
				b.Fatal(err)
			}
			var d replay.Discard
			sum, err := replay.Run(ctx, src, &d, replay.Options{})
			if err != nil || d.Count() != uint64(n) {
				b.Fatalf("%v, %v", sum, err)
			}
		}
		report(b, n)
	})
	bucket, err := archive.OpenBucket(ctx, benchCfg)
	if err != nil {
		b.Fatal(err)
	}
	defer bucket.Close()
	r := archive.NewReader(bucket)
	b.Run("archive_read_baseline", func(b *testing.B) {
		for b.Loop() {
			objs, err := r.Objects(ctx, archive.Filter{})
			if err != nil {
				b.Fatal(err)
			}
			got := 0
			for _, o := range objs {
				if err := r.ReadLines(ctx, o.Key, func([]byte) error { got++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
			if got != n {
				b.Fatalf("read %d lines, want %d", got, n)
			}
		}
		report(b, n)
	})
	b.Run("archive_to_discard", func(b *testing.B) {
		for b.Loop() {
			src, err := replay.NewArchiveSource(ctx, r, archive.Filter{}, "", 1000)
			if err != nil {
				b.Fatal(err)
			}
			var d replay.Discard
			if _, err := replay.Run(ctx, src, &d, replay.Options{}); err != nil || d.Count() != uint64(n) {
				b.Fatal(fmt.Sprint(d.Count()), err)
			}
		}
		report(b, n)
	})
	b.Run("archive_to_stream", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dst, err := bus.Connect(ctx, bus.Options{Port: -1, StoreDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			if err := dst.EnsureStreams(ctx, bus.DefaultStreams()); err != nil {
				b.Fatal(err)
			}
			src, err := replay.NewArchiveSource(ctx, r, archive.Filter{}, "", 1000)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			ss := replay.NewStreamSink(dst)
			if _, err := replay.Run(ctx, src, ss, replay.Options{}); err != nil || ss.Published() != uint64(n) {
				b.Fatal(ss.Published(), err)
			}
			b.StopTimer()
			dst.Close()
			b.StartTimer()
		}
		report(b, n)
	})
}
