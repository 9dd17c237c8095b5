package archive_test

import (
	"context"

	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/sinktest"
)

// Two workers sharing the archive consumer on an S3 store whose conditional
// PUT cannot be trusted (here: the shared S3 server behind a proxy that
// drops If-Match and If-None-Match) merge batches into the same window
// objects at the same instant. Each worker is opened the way `sightline
// run` opens the sink (archive.Spec, its own connection to JetStream), so
// they share nothing but the store and NATS. With the window leases every
// event is in exactly one object. Without them (ARCHIVE_SHOW_LOSS=1 runs
// that case too) a worker's PUT replaces what the other just stored: about
// half the events were lost (1,987 of 4,000 on 2026-12-01).
func TestTwoWorkersS3SameWindows(t *testing.T) {
	for _, c := range []struct {
		name     string
		leaseTTL time.Duration
	}{{"leases", archive.DefaultConfig().LeaseTTL}, {"no leases", 0}} {
		t.Run(c.name, func(t *testing.T) {
			if c.leaseTTL == 0 && os.Getenv("ARCHIVE_SHOW_LOSS") == "" {
				t.Skip("ARCHIVE_SHOW_LOSS=1 shows two workers losing events without leases on a store that ignores If-Match")
			}
			twoWorkers(t, c.leaseTTL)
		})
	}
}

func twoWorkers(t *testing.T, leaseTTL time.Duration) {
	direct := s3Config(t)
	direct.WindowSequences = 100000
	// The workers write through a proxy that drops If-Match and
	// If-None-Match (and signs the request again): a store without
	// conditional PUT, or whose conditional PUT is not atomic.
	cfg := direct
	cfg.Endpoint = sinktest.UnconditionalS3(t, direct.Endpoint, direct.Username, direct.Password, direct.Region)
	cfg.LeaseTTL = leaseTTL
	srv, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.EnsureStreams(context.Background(), bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	open := func(name string) stage.Sink {
		b, err := bus.Connect(context.Background(), bus.Options{URLs: []string{srv.ClientURL()}, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		c := cfg
		o, err := archive.Spec.Open(context.Background(), &c, sinks.Env{
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Bus: func(context.Context) (*bus.Bus, error) { return b, nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = o.Sink.Close(context.Background()) })
		return o.Sink
	}
	var workers []stage.Sink
	for i := range nWorkers() {
		workers = append(workers, open(fmt.Sprintf("worker-%d", i+1)))
	}

	// Rounds: in each, every worker writes a batch of its own at the same
	// instant, all into the same window objects (one per event type), as
	// a shared consumer hands out neighbouring messages to both. The
	// objects grow round after round, so the PUTs get long enough to
	// overlap.
	start := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	const rounds, batch = 40, 50
	all := events(rounds*batch*len(workers), start, 100*time.Millisecond, 1)
	for r := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, len(workers))
		for w, s := range workers {
			i := (r*len(workers) + w) * batch
			msgs := all[i : i+batch]
			wg.Go(func() {
				for try := 0; ; try++ {
					err := s.Write(ctxFor(t), msgs)
					if err == nil {
						return
					}
					if try == 20 {
						errs <- err
						return
					}
					time.Sleep(50 * time.Millisecond) // the router's redelivery
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	got, lines := readBack(t, openBucket(t, direct))
	lost := 0
	for _, m := range all {
		if _, ok := got[m.ID]; !ok {
			lost++
		}
	}
	t.Logf("lease_ttl %s: %d events written by %d workers, %d distinct read back in %d lines (%d lost, %d duplicated)",
		cfg.LeaseTTL, len(all), len(workers), len(got), lines, lost, lines-len(got))
	if lost != 0 || lines != len(all) {
		t.Fatalf("%d lost, %d lines for %d events", lost, lines, len(all))
	}
}

// nWorkers is 2, or ARCHIVE_TEST_WORKERS.
func nWorkers() int {
	if n, err := strconv.Atoi(os.Getenv("ARCHIVE_TEST_WORKERS")); err == nil && n > 0 {
		return n
	}
	return 2
}

// BenchmarkArchiveS3Leases is the sink on the shared S3 server with and
// without the window leases (an embedded JetStream, sync always), same run:
// batches of 20,000 events continuing the stream's sequences, as in
// BenchmarkArchiveS3.
//
//	go test -run '^$' -bench BenchmarkArchiveS3Leases -benchtime 10x ./sinks/archive/
var benchSeq = uint64(1)

func BenchmarkArchiveS3Leases(b *testing.B) {
	const n = 20000
	cfg := s3Config(b)
	srv, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: b.TempDir(), Sync: bus.SyncAlways,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	leases, err := kv.OpenLeases(context.Background(), srv, kv.LeaseConfig{Bucket: archive.LeaseBucket})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opts []archive.Option
	}{{"no_leases", nil}, {"leases", []archive.Option{archive.WithLocker(archive.BusLocker{Leases: leases})}}, {"no_leases_again", nil}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := archive.New(ctxFor(b), cfg, c.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctxFor(b))
			// Fresh windows for every run (sequences continue across
			// runs), so no run merges into a previous run's objects.
			seq := benchSeq
			defer func() { benchSeq = seq + 10*n }()
			for b.Loop() {
				b.StopTimer()
				batch := benchEvents(n, seq)
				b.StartTimer()
				if err := s.Write(ctxFor(b), batch); err != nil {
					b.Fatal(err)
				}
				seq += n
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
