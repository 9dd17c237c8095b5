package graph

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

const (
	bLabel = "SlBenchHost"
	bType  = "SL_BENCH_LINK"
)

// benchSync builds a sync of n nodes and 3n relationships in parts of at
// most per items, like producers/inventory would publish it.
func benchSync(b *testing.B, scope, px string, tag int64, n, per int) []*stage.Message {
	var msgs []*stage.Message
	d := schemas.SnapshotData{Scope: scope, Tag: tag}
	total := 4 * n
	flush := func(final bool) {
		if final {
			d.Final, d.Count = true, total
		}
		msgs = append(msgs, syncPart(b, d))
		d = schemas.SnapshotData{Scope: scope, Tag: tag, Part: d.Part + 1}
	}
	key := func(i int) string { return px + "h" + strconv.Itoa(i%n) }
	for i := range n {
		d.Nodes = append(d.Nodes, schemas.Node{Label: bLabel, Key: key(i),
			Properties: map[string]any{"name": "h" + strconv.Itoa(i), "zone": "z" + strconv.Itoa(i%5), "cpu": 4}})
		if len(d.Nodes) == per {
			flush(false)
		}
	}
	for i := range n {
		for _, off := range []int{1, 7, 31} {
			d.Relationships = append(d.Relationships, schemas.Relationship{Type: bType,
				From: schemas.NodeRef{Label: bLabel, Key: key(i)}, To: schemas.NodeRef{Label: bLabel, Key: key(i + off)},
				Properties: map[string]any{"port": 443}})
			if len(d.Nodes)+len(d.Relationships) == per {
				flush(false)
			}
		}
	}
	flush(true)
	return msgs
}

// naive is the naive approach of the Cloud Map to Neo4j write-up: one query (one auto-commit
// transaction) per node and per relationship.
func naive(ctx context.Context, b *testing.B, d neo4j.DriverWithContext, px string, tag int64, n int) {
	sess := d.NewSession(ctx, neo4j.SessionConfig{})
	defer sess.Close(ctx)
	run := func(q string, p map[string]any) {
		res, err := sess.Run(ctx, q, p)
		if err == nil {
			_, err = res.Consume(ctx)
		}
		if err != nil {
			b.Fatalf("naive: %v", err)
		}
	}
	key := func(i int) string { return px + "h" + strconv.Itoa(i%n) }
	for i := range n {
		run("MERGE (n:"+bLabel+" {id: $key}) SET n.name = $name, n.zone = $zone, n.cpu = 4, n.update_id = $tag",
			map[string]any{"key": key(i), "name": "h" + strconv.Itoa(i), "zone": "z" + strconv.Itoa(i%5), "tag": tag})
	}
	for i := range n {
		for _, off := range []int{1, 7, 31} {
			run("MATCH (a:"+bLabel+" {id: $from}) MATCH (b:"+bLabel+" {id: $to}) MERGE (a)-[r:"+bType+"]->(b) SET r.port = 443, r.update_id = $tag",
				map[string]any{"from": key(i), "to": key(i + off), "tag": tag})
		}
	}
}

// peak samples the Go heap while f runs and returns the peak HeapInuse.
func peak(f func()) uint64 {
	var max atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > max.Load() {
				max.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	f()
	close(stop)
	<-done
	return max.Load()
}

func vmHWM() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// BenchmarkSync upserts a 100,000-node, 300,000-relationship sync through
// the sink, then sweeps all of it with a forced one-node sync; the naive
// per-item MERGE baseline runs on a 5,000-item subset (1,250 nodes, 3,750
// relationships) in the same process. Set SIGHTLINE_TEST_BENCH_NODES to change n.
//
//	go test -run '^$' -bench BenchmarkSync -benchtime 1x ./sinks/graph/
func BenchmarkSync(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("SIGHTLINE_TEST_BENCH_NODES")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	s := newTestSink(b, testConfig(b))
	for i := 0; i < b.N; i++ {
		scope := testScope(b, s)
		px := randHex(3) + "-"

		// Baseline on its own keys (same label, same constraint).
		if err := s.ensureSchema(ctx, []string{bLabel}, []string{bType}); err != nil {
			b.Fatal(err)
		}
		bpx := randHex(3) + "-naive-"
		nb := 1250
		t0 := time.Now()
		naive(ctx, b, s.Driver(), bpx, 1, nb)
		naiveRate := float64(4*nb) / time.Since(t0).Seconds()
		b.Cleanup(func() {
			_, _ = neo4j.ExecuteQuery(ctx, s.Driver(), "MATCH (n:"+bLabel+") WHERE n.id STARTS WITH $px DETACH DELETE n",
				map[string]any{"px": bpx}, neo4j.EagerResultTransformer)
		})

		msgs := benchSync(b, scope, px, 1000, n, 3000)
		var size int
		for _, m := range msgs {
			size = max(size, len(m.Data))
		}
		runtime.GC()
		b.ResetTimer()
		var elapsed time.Duration
		heap := peak(func() {
			t1 := time.Now()
			for j := 0; j < len(msgs); j += 10 {
				if err := s.Write(ctx, msgs[j:min(j+10, len(msgs))]); err != nil {
					b.Fatalf("Write: %v", err)
				}
			}
			elapsed = time.Since(t1)
		})
		b.StopTimer()
		rate := float64(4*n) / elapsed.Seconds()

		// Sweep everything: a one-node sync, refused by the share guard,
		// then forced by the operator.
		last := schemas.SnapshotData{Scope: scope, Tag: 2000, Final: true, Count: 1,
			Nodes: []schemas.Node{{Label: bLabel, Key: px + "survivor"}}}
		if err := s.Write(ctx, []*stage.Message{syncPart(b, last)}); err != nil {
			b.Fatalf("sweep sync: %v", err)
		}
		rep, err := s.Sweep(ctx, scope, SweepOptions{Force: true, Operator: "benchmark"})
		if err != nil {
			b.Fatalf("forced sweep: %v", err)
		}
		s.report = nil
		if rep.DeletedNodes != int64(n) || rep.DeletedRels != int64(3*n) {
			b.Fatalf("sweep deleted %d nodes, %d relationships; want %d and %d", rep.DeletedNodes, rep.DeletedRels, n, 3*n)
		}
		b.ReportMetric(rate, "items/s")
		b.ReportMetric(naiveRate, "naive-items/s")
		b.ReportMetric(rate/naiveRate, "speedup")
		b.ReportMetric(rep.Seconds, "sweep-s")
		b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
		b.Logf("%d nodes + %d relationships in %d parts (largest %d bytes): %s, %.0f items/s; naive %.0f items/s (%d items); speedup %.1fx; sweep of %d nodes + %d relationships %.2fs; peak heap %.1f MiB; VmHWM %s",
			n, 3*n, len(msgs), size, elapsed.Round(time.Millisecond), rate, naiveRate, 4*nb, rate/naiveRate,
			rep.DeletedNodes, rep.DeletedRels, rep.Seconds, float64(heap)/(1<<20), vmHWM())
	}
}
