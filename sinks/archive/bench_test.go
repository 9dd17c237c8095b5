package archive_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/archive/archivetest"
)

// benchEvents makes n realistic conformed metric events (~450 bytes each)
// from stream sequence first, all in one partition hour.
func benchEvents(n int, first uint64) []*stage.Message {
	rng := rand.New(rand.NewPCG(1, first))
	words := strings.Fields("cats dogs fleet kernel sysctl mounts packages lshw neo4j search trace replay archive graph index host service")
	start := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	out := make([]*stage.Message, n)
	for i := range out {
		data := fmt.Sprintf(`{"query":"%s %s","n_results":%d,"user_id":"%s","latency_ms":%d,"host":"web-%03d.dc%d","path":"/api/v1/%s"}`,
			words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(500), uuid.NewString(),
			rng.IntN(3000), rng.IntN(400), rng.IntN(4), words[rng.IntN(len(words))])
		m := archivetest.Event("metric", "search_made", start.Add(time.Duration(i)*time.Millisecond), uuid.NewString(), data)
		m.Meta = stage.Meta{Stream: "SIGHTLINE_EVENTS", Sequence: first + uint64(i)}
		out[i] = m
	}
	return out
}

// BenchmarkArchiveS3 writes batches of 20,000 events through the sink to the
// shared S3 server (sink), against a plain PUT of an already-gzipped object
// of the same size (plain_put) in the same run.
//
//	go test -run '^$' -bench BenchmarkArchiveS3 -benchtime 10x ./sinks/archive/
func BenchmarkArchiveS3(b *testing.B) {
	const n = 20000
	cfg := archivetest.S3Config(b)
	for _, c := range []string{archive.CompressionGzip, archive.CompressionZstd} {
		cfg.Compression = c
		benchSink(b, "sink_"+c, cfg, n)
	}
	benchPlainPut(b, cfg, n)
}

// BenchmarkArchiveFile is the same against the local-directory default.
//
//	go test -run '^$' -bench BenchmarkArchiveFile -benchtime 10x ./sinks/archive/
func BenchmarkArchiveFile(b *testing.B) {
	const n = 20000
	cfg := archivetest.FileConfig(b)
	benchSink(b, "sink_gzip", cfg, n)
	benchPlainPut(b, cfg, n)
}

func benchSink(b *testing.B, name string, cfg archive.Config, n int) {
	b.Run(name, func(b *testing.B) {
		s, err := archive.New(archivetest.Context(b), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close(archivetest.Context(b))
		// Each Write is a new batch of the stream: sequences continue, so a
		// batch ends inside a window and the next one merges into it (the
		// realistic cost of sequence-window objects). Event ids repeat every
		// four batches, never within one window.
		batches := [][]*stage.Message{benchEvents(n, 1), benchEvents(n, 1), benchEvents(n, 1), benchEvents(n, 1)}
		for k, batch := range batches {
			for _, m := range batch {
				m.ID = fmt.Sprintf("%d-%s", k, m.ID)
			}
		}
		raw := 0
		for _, m := range batches[0] {
			raw += len(m.Data) + 1
		}
		ctx := archivetest.Context(b)
		i := 0
		b.ResetTimer()
		for b.Loop() {
			batch := batches[i%len(batches)]
			for j, m := range batch {
				m.Meta.Sequence = uint64(i*n + j + 1)
			}
			if err := s.Write(ctx, batch); err != nil {
				b.Fatal(err)
			}
			i++
		}
		sec := b.Elapsed().Seconds()
		bucket := openBucket(b, cfg)
		objs, _ := archive.NewReader(bucket).Objects(ctx, archive.Filter{})
		var stored int64
		for _, o := range objs {
			stored = max(stored, o.Size) // a full window: n events
		}
		b.ReportMetric(float64(n*b.N)/sec, "events/s")
		b.ReportMetric(float64(stored)*float64(b.N)/sec/1e6, "MBcompressed/s")
		b.ReportMetric(float64(raw)*float64(b.N)/sec/1e6, "MBraw/s")
		b.ReportMetric(float64(raw)/float64(stored), "ratio")
	})
}

// benchPlainPut PUTs a gzip object as large as the sink's, prepared in advance.
func benchPlainPut(b *testing.B, cfg archive.Config, n int) {
	b.Run("plain_put", func(b *testing.B) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		for _, m := range benchEvents(n, 1) {
			zw.Write(m.Data)
			zw.Write([]byte{'\n'})
		}
		zw.Close()
		body := buf.Bytes()
		bucket := openBucket(b, cfg)
		ctx := archivetest.Context(b)
		b.ResetTimer()
		for b.Loop() {
			if err := bucket.WriteAll(ctx, "plain/put.ndjson.gz", body, nil); err != nil {
				b.Fatal(err)
			}
		}
		sec := b.Elapsed().Seconds()
		b.ReportMetric(float64(n*b.N)/sec, "events/s")
		b.ReportMetric(float64(len(body))*float64(b.N)/sec/1e6, "MBcompressed/s")
	})
}

// BenchmarkArchiveParquet compares Parquet output with the default gzip
// NDJSON, same events, same S3 server, same run (each in its own prefix).
//
//	go test -run '^$' -bench BenchmarkArchiveParquet -benchtime 10x ./sinks/archive/
func BenchmarkArchiveParquet(b *testing.B) {
	const n = 20000
	for _, f := range []string{archive.FormatNDJSON, archive.FormatParquet} {
		cfg := archivetest.S3Config(b)
		cfg.Format = f
		name := "sink_" + f
		if f == archive.FormatNDJSON {
			name += "_gzip"
		}
		benchSink(b, name, cfg, n)
	}
}

// loadEvents makes n conformed metric events shaped like the burst of
// scripts/embedded-e2e.sh (sightline-load's 512-byte payload, a correlation
// id per event), read from stream sequences 1..n, all in one partition hour.
func loadEvents(n int) []*stage.Message {
	start := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	out := make([]*stage.Message, n)
	for i := range out {
		p := fmt.Sprintf(`{"query":"cats and dogs","n_results":%d,"user_id":"u%07d","session":"s-%d","page":"/search","ab_bucket":"b","pad":"`, i%50, i, i%977)
		p += strings.Repeat("x", max(0, 512-len(p)-2)) + `"}`
		m := archivetest.Event("metric", "load", start.Add(time.Duration(i)*10*time.Microsecond), uuid.NewString(), p)
		m.Meta = stage.Meta{Stream: "SIGHTLINE_EVENTS", Sequence: uint64(i + 1), Timestamp: start}
		out[i] = m
	}
	return out
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkArchiveAppends is the archive of `sightline run` in a burst:
// the default configuration (local directory, gzip NDJSON, windows of
// window_sequences), 100,000 load events written in the consumer's batches
// of batch_max_messages, so each window object is merged into several
// times. Each iteration starts from an empty archive; cpu-µs/event is the
// process's CPU time (user+system) per event.
//
//	go test -run '^$' -bench BenchmarkArchiveAppends -benchtime 3x ./sinks/archive/
func BenchmarkArchiveAppends(b *testing.B) {
	const n = 100_000
	evs := loadEvents(n)
	batch := archive.DefaultConfig().BatchMaxMessages
	var cpu time.Duration
	var stored, raw int64
	for b.Loop() {
		b.StopTimer()
		cfg := archivetest.FileConfig(b)
		s, err := archive.New(archivetest.Context(b), cfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx := archivetest.Context(b)
		b.StartTimer()
		c0 := cpuTime()
		for lo := 0; lo < n; lo += batch {
			if err := s.Write(ctx, evs[lo:min(lo+batch, n)]); err != nil {
				b.Fatal(err)
			}
		}
		cpu += cpuTime() - c0
		b.StopTimer()
		r := archive.NewReader(openBucket(b, cfg))
		objs, err := r.Objects(ctx, archive.Filter{})
		if err != nil {
			b.Fatal(err)
		}
		stored, raw = 0, 0
		counted, lines := 0, 0
		for _, o := range objs {
			stored += o.Size
			m, err := r.Manifest(ctx, o.Key)
			if err != nil {
				b.Fatal(err)
			}
			raw += m.RawBytes
			counted += m.Count
			if err := r.ReadLines(ctx, o.Key, func([]byte) error { lines++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
		if counted != n || lines != n {
			b.Fatalf("manifests count %d events, objects hold %d lines, want %d", counted, lines, n)
		}
		_ = s.Close(ctx)
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cpu-µs/event")
	b.ReportMetric(float64(stored), "stored-bytes")
	b.ReportMetric(float64(raw)/float64(stored), "ratio")
}
