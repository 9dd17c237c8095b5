package index

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
)

var benchCleanups struct {
	sync.Mutex
	fns []func()
}

func atExit(f func()) {
	benchCleanups.Lock()
	benchCleanups.fns = append(benchCleanups.fns, f)
	benchCleanups.Unlock()
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range benchCleanups.fns {
		f()
	}
	os.Exit(code)
}

// rawBulk is the baseline: a plain _bulk loader POSTing prebuilt NDJSON.
func rawBulk(ctx context.Context, c *http.Client, base string, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/_bulk?filter_path=errors", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || bytes.Contains(buf.Bytes(), []byte(`"errors":true`)) {
		return fmt.Errorf("raw bulk: %d %s", resp.StatusCode, buf.String())
	}
	return nil
}

// BenchmarkSinkVsRawBulk writes the same documents through the sink
// (messages → documents → _bulk, per-item checks) and through a plain
// _bulk loader (prebuilt NDJSON), interleaved batch by batch, and reports
// both rates and their ratio.
//
//	go test -run '^$' -bench SinkVsRawBulk -benchtime 40x -count 1 ./sinks/index/
func BenchmarkSinkVsRawBulk(b *testing.B) {
	base := openSearch(b)
	ctx := context.Background()
	const batch = 1000
	sink, _ := remoteFor(b, base, nil)
	if err := sink.EnsureTemplate(ctx); err != nil {
		b.Fatal(err)
	}
	rawPrefix := testPrefix(b, base)
	// Same template for the raw loader's prefix, so both pay the same mapping.
	rawTpl, _ := remoteFor(b, base, func(c *Config) { c.Prefix = rawPrefix })
	if err := rawTpl.EnsureTemplate(ctx); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Timeout: time.Minute}
	var sinkDur, rawDur time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		msgs := make([]*stage.Message, batch)
		var nd []byte
		t0 := time.Now().UTC()
		for j := range msgs {
			kind := []string{"metric", "log", "snapshot"}[j%3]
			msgs[j] = event(fmt.Sprintf("bench-%d-%d", i, j%50), kind, "request", fmt.Sprintf("svc%d", j%7), t0.Add(time.Duration(j)*time.Millisecond), fmt.Sprintf("b%d-%d", i, j), uint64(i*batch+j))
			d, err := FromMessage(msgs[j])
			if err != nil {
				b.Fatal(err)
			}
			nd, _ = appendAction(nd, d, rawPrefix)
		}
		b.StartTimer()
		s := time.Now()
		if err := rawBulk(ctx, client, base, nd); err != nil {
			b.Fatal(err)
		}
		rawDur += time.Since(s)
		s = time.Now()
		if err := sink.Write(ctx, msgs); err != nil {
			b.Fatal(err)
		}
		sinkDur += time.Since(s)
	}
	b.StopTimer()
	docs := float64(b.N * batch)
	sinkRate, rawRate := docs/sinkDur.Seconds(), docs/rawDur.Seconds()
	b.ReportMetric(sinkRate, "sink_docs/s")
	b.ReportMetric(rawRate, "raw_docs/s")
	b.ReportMetric(sinkRate/rawRate, "ratio")
}

// BenchmarkTraceLookup loads SIGHTLINE_TEST_BENCH_DOCS (default 1,000,000)
// events into a benchmark prefix with the raw bulk loader (10 events per
// correlation id, 5 services, 3 kinds, spread over 30 days), then times
// Trace of random ids and reports p50/p95. The prefix is deleted after.
//
//	go test -run '^$' -bench TraceLookup -benchtime 300x -count 1 -timeout 30m ./sinks/index/
func BenchmarkTraceLookup(b *testing.B) {
	base := openSearch(b)
	ctx := context.Background()
	traceBench.once.Do(func() { traceBench.r, traceBench.ids, traceBench.err = loadTraceBench(b, base) })
	if traceBench.err != nil {
		b.Fatal(traceBench.err)
	}
	r, ids := traceBench.r, traceBench.ids
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		id := ids[rand.IntN(len(ids))]
		s := time.Now()
		tl, err := Trace(ctx, r, id, StreamLocator)
		lat = append(lat, time.Since(s))
		if err != nil || len(tl.Events) != 10 {
			b.Fatalf("trace %s: %v (%d events)", id, err, len(tl.Events))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95_ms")
	b.ReportMetric(float64(traceBench.docs), "indexed_docs")
}

var traceBench struct {
	once sync.Once
	r    *Remote
	ids  []string
	docs int
	err  error
}

func loadTraceBench(b *testing.B, base string) (*Remote, []string, error) {
	n := 1_000_000
	if s := os.Getenv("SIGHTLINE_TEST_BENCH_DOCS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	prefix := "slbench-" + randHex(4)
	atExit(func() { deletePrefix(base, prefix) })
	r, err := NewRemote(Config{URLs: []string{base}, Prefix: prefix, Timeout: 2 * time.Minute})
	if err != nil {
		return nil, nil, err
	}
	ctx := context.Background()
	if err := r.EnsureTemplate(ctx); err != nil {
		return nil, nil, err
	}
	// Faster loading: no refresh while loading.
	start := time.Now()
	const per, workers = 5000, 2
	end := time.Now().UTC()
	work := make(chan []byte, workers)
	errs := make(chan error, workers)
	client := &http.Client{Timeout: 5 * time.Minute}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for body := range work {
				if err := rawBulk(ctx, client, base, body); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	var ids []string
	var nd []byte
	kinds := []string{"metric", "log", "snapshot"}
	for i := range n {
		cid := fmt.Sprintf("cid-%08d", i/10)
		if i%10 == 0 && len(ids) < 100_000 {
			ids = append(ids, cid)
		}
		at := end.Add(-time.Duration(i/10) * 30 * 24 * time.Hour / time.Duration(n/10+1)).Add(time.Duration(i%10) * time.Millisecond)
		m := event(cid, kinds[i%3], "request", fmt.Sprintf("svc%d", i%5), at, fmt.Sprintf("ev-%08d", i), uint64(i+1))
		d, err := FromMessage(m)
		if err != nil {
			return nil, nil, err
		}
		nd, _ = appendAction(nd, d, prefix)
		if (i+1)%per == 0 || i == n-1 {
			work <- nd
			nd = nil
		}
		if (i+1)%200_000 == 0 {
			b.Logf("loaded %d docs in %s", i+1, time.Since(start).Round(time.Second))
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, nil, err
	default:
	}
	if err := r.Refresh(ctx); err != nil {
		return nil, nil, err
	}
	traceBench.docs = count(b, r)
	b.Logf("loaded %d docs into %s-* in %s (%.0f docs/s)", traceBench.docs, prefix, time.Since(start).Round(time.Second), float64(n)/time.Since(start).Seconds())
	return r, ids, nil
}

// benchBatch is the batch of BenchmarkSinkVsRawBulk: 1,000 metric, log
// and snapshot events of ~700 bytes.
func benchBatch(i, n int, t0 time.Time) []*stage.Message {
	msgs := make([]*stage.Message, n)
	for j := range msgs {
		kind := []string{"metric", "log", "snapshot"}[j%3]
		msgs[j] = event(fmt.Sprintf("bench-%d-%d", i, j%50), kind, "request", fmt.Sprintf("svc%d", j%7), t0.Add(time.Duration(j)*time.Millisecond), fmt.Sprintf("b%d-%d", i, j), uint64(i*n+j))
	}
	return msgs
}

// BenchmarkBuildDocs is the sink's own work per document, without the
// network: "document" is a Document per message with one decoder per
// batch + appendAction (the path Embedded.Write uses), "sink" is what
// Remote.Write runs to build a _bulk body.
//
//	go test -run '^$' -bench BuildDocs -benchmem ./sinks/index/
func BenchmarkBuildDocs(b *testing.B) {
	msgs := benchBatch(0, 1000, time.Now().UTC())
	run := func(name string, add func([]byte, *stage.Message) ([]byte, error)) {
		b.Run(name, func(b *testing.B) {
			var body []byte
			b.ReportAllocs()
			for b.Loop() {
				body = body[:0]
				for _, m := range msgs {
					var err error
					if body, err = add(body, m); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs))/1000, "µs/doc")
			b.ReportMetric(float64(len(body))/float64(len(msgs)), "B/doc")
		})
	}
	// The code before the one-pass validating scanner (oracle_test.go).
	run("before", func(body []byte, m *stage.Message) ([]byte, error) {
		d, err := oldFromMessage(m)
		if err != nil {
			return body, err
		}
		return oldAppendAction(body, d, "bench")
	})
	var docDec decoder
	run("document", func(body []byte, m *stage.Message) ([]byte, error) {
		d, err := docDec.document(m)
		if err != nil {
			return body, err
		}
		return appendAction(body, d, "bench")
	})
	var dec decoder
	run("sink", func(body []byte, m *stage.Message) ([]byte, error) {
		return dec.appendMessage(body, m, "bench")
	})
}

// BenchmarkEmbeddedWrite indexes batches of 1,000 events (the batch size
// `sightline run` gives the embedded index) into an on-disk bleve index —
// the sink that bounds `sightline run` on its embedded defaults.
//
//	go test -run '^$' -bench EmbeddedWrite -benchtime 20x ./sinks/index/
func BenchmarkEmbeddedWrite(b *testing.B) {
	e, err := OpenEmbedded(Config{EmbeddedPath: filepath.Join(b.TempDir(), "idx")})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	batch := 1000
	if n, err := strconv.Atoi(os.Getenv("SIGHTLINE_TEST_BENCH_BATCH")); err == nil && n > 0 {
		batch = n
	}
	t0 := time.Now().UTC()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		msgs := make([]*stage.Message, batch)
		for j := range msgs {
			kind := []string{"metric", "log", "snapshot"}[j%3]
			msgs[j] = event(fmt.Sprintf("bench-%d-%d", i, j%50), kind, "request", fmt.Sprintf("svc%d", j%7), t0.Add(time.Duration(j)*time.Millisecond), fmt.Sprintf("b%d-%d", i, j), uint64(i*batch+j))
		}
		b.StartTimer()
		if err := e.Write(context.Background(), msgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "docs/s")
}
