package index

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/standard"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/traceidx"
	"github.com/sightline/sightline/schemas"
)

// The options measured for the embedded index, side by side on the same
// documents in the same run (BENCHMARKS.md, "Embedded defaults end to
// end"). The bleve ones are the index `sightline run` kept before
// internal/traceidx, kept here only to be measured against.

// bleveOption is a bleve index with the previous mapping (or a smaller one).
type bleveOption struct {
	idx   bleve.Index
	src   bool // store the whole document (the previous mapping did)
	texts bool // index message/reason and the filtered keywords (else the correlation id only)
}

func bleveMapping(src, texts bool) mapping.IndexMapping {
	m := bleve.NewIndexMapping()
	doc := bleve.NewDocumentStaticMapping()
	fields := []string{"id", "correlationid"}
	if texts {
		fields = keywordFieldsOld
	}
	for _, f := range fields {
		fm := bleve.NewKeywordFieldMapping()
		fm.Analyzer = keyword.Name
		fm.Store = false
		fm.IncludeInAll = false
		fm.IncludeTermVectors = false
		fm.DocValues = f == "id"
		doc.AddFieldMappingsAt(f, fm)
	}
	doc.AddSubDocumentMapping("_all", bleve.NewDocumentDisabledMapping())
	tm := bleve.NewDateTimeFieldMapping()
	tm.Store = false
	tm.IncludeInAll = false
	doc.AddFieldMappingsAt("time", tm)
	if texts {
		for _, f := range []string{"message", "reason"} {
			txt := bleve.NewTextFieldMapping()
			txt.Analyzer = standard.Name
			txt.Store = false
			txt.IncludeInAll = false
			doc.AddFieldMappingsAt(f, txt)
		}
	}
	if src {
		s := bleve.NewTextFieldMapping()
		s.Index = false
		s.Store = true
		s.IncludeInAll = false
		s.DocValues = false
		doc.AddFieldMappingsAt("src", s)
	}
	m.DefaultMapping = doc
	m.DefaultAnalyzer = keyword.Name
	return m
}

var keywordFieldsOld = []string{"id", "kind", "type", "name", "correlationid", "source", "service",
	"host", "site", "env", "level", "producer", "subject", "syncscope", "synctag", "stream", "dlq_class", "dlq_stage"}

func (o *bleveOption) write(batch []*stage.Message) error {
	b := o.idx.NewBatch()
	dec := new(decoder)
	for _, m := range batch {
		d, err := dec.document(m)
		if err != nil {
			return err
		}
		bd := map[string]any{"id": d.ID, "time": d.Time, "correlationid": d.CorrelationID}
		if o.src {
			src, err := json.Marshal(d)
			if err != nil {
				return err
			}
			bd["src"] = string(src)
		}
		if o.texts {
			for k, v := range map[string]string{"kind": d.Kind, "type": d.Type, "name": d.Name, "source": d.Source,
				"service": d.Service, "host": d.Host, "site": d.Site, "env": d.Env, "level": d.Level, "producer": d.Producer,
				"subject": d.Subject, "syncscope": d.SyncScope, "synctag": d.SyncTag, "stream": d.Stream, "message": d.Message} {
				if v != "" {
					bd[k] = v
				}
			}
		}
		if err := b.Index(d.ID, bd); err != nil {
			return err
		}
	}
	return o.idx.Batch(b)
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// optionDocs is how many documents each option indexes per round:
// SIGHTLINE_BENCH_DOCS, default 30,000.
func optionDocs() int {
	if n, err := strconv.Atoi(os.Getenv("SIGHTLINE_BENCH_DOCS")); err == nil && n > 0 {
		return n
	}
	return 30000
}

// loadGen makes batches of conformed events of sightline-load's metric
// (a 512-byte payload, a correlation id each), as the processor hands them
// on, rewriting the same messages from one batch to the next (Write keeps
// nothing of them): a million events cost no memory, and each costs the
// benchmark ~1 µs of the CPU it measures, the same for every option.
type loadGen struct {
	t0    time.Time
	parts [][]byte // the event's JSON between the fields that vary: id, cid, time, data
	order []int    // which field follows each part
	msgs  []*stage.Message
}

func newLoadGen(n int, t0 time.Time) *loadGen {
	const id, cid = "IDIDIDIDIDIDIDIDIDIDIDIDID", "CIDCIDCIDCID"
	at := time.Date(2001, 2, 3, 4, 5, 6, 123456789, time.UTC)
	ev := &schemas.Event{
		SpecVersion: schemas.SpecVersion, ID: id, Source: "urn:sightline:subject:sightline.raw.metric.load",
		Type: "metric.load", Time: at, DataContentType: "application/json", CorrelationID: cid,
		Data: []byte(`{"DATADATA":1}`),
	}
	tmpl := stage.EventMessage(ev, "metric", "load", "")
	g := &loadGen{t0: t0, msgs: make([]*stage.Message, n)}
	type mark struct{ at, n, field int }
	var marks []mark
	for f, s := range []string{id, cid, at.Format(time.RFC3339Nano), `{"DATADATA":1}`} {
		i := strings.Index(string(tmpl.Data), s)
		if i < 0 {
			panic("loadGen: no " + s + " in " + string(tmpl.Data))
		}
		marks = append(marks, mark{i, len(s), f})
	}
	slices.SortFunc(marks, func(a, b mark) int { return a.at - b.at })
	prev := 0
	for _, m := range marks {
		g.parts = append(g.parts, tmpl.Data[prev:m.at])
		g.order = append(g.order, m.field)
		prev = m.at + m.n
	}
	g.parts = append(g.parts, tmpl.Data[prev:])
	for j := range g.msgs {
		g.msgs[j] = &stage.Message{Subject: tmpl.Subject, Header: tmpl.Header, Data: make([]byte, 0, 1024)}
	}
	return g
}

// batch returns batch i (valid until the next call).
func (g *loadGen) batch(i int) []*stage.Message {
	pad := strings.Repeat("x", 512)
	for j, m := range g.msgs {
		k := i*len(g.msgs) + j
		at := g.t0.Add(time.Duration(k) * time.Millisecond)
		b := m.Data[:0]
		for p, part := range g.parts {
			b = append(b, part...)
			if p == len(g.order) {
				break
			}
			switch g.order[p] {
			case 0:
				b = fmt.Appendf(b, "%026d", k)
			case 1:
				b = fmt.Appendf(b, "cid-%08d", k)
			case 2:
				b = at.AppendFormat(b, time.RFC3339Nano)
			case 3:
				n := len(b)
				b = fmt.Appendf(b, `{"query":"cats and dogs","n_results":%d,"user_id":"u%07d","session":"s-%d","page":"/search","ab_bucket":"b","pad":"`, k%50, k, k%977)
				b = append(b, pad[:max(0, 512-(len(b)-n)-2)]...)
				b = append(b, `"}`...)
			}
		}
		m.Data, m.ID = b, ""
		m.Meta = stage.Meta{Stream: "SIGHTLINE_EVENTS", Sequence: uint64(k + 1), Delivered: 1, Timestamp: at}
	}
	return g.msgs
}

// loadBatch is batch i of n events of loadGen, in messages of its own.
func loadBatch(i, n int, t0 time.Time) []*stage.Message {
	return newLoadGen(n, t0).batch(i)
}

// BenchmarkEmbeddedOptions writes the same documents (1,000-event batches
// of metric, log and snapshot events, as `sightline run` hands them to the
// index; with SIGHTLINE_BENCH_EVENTS=load, sightline-load's metric events)
// into each option in turn, once per round, from open to close, and
// reports each option's documents per second of wall time and CPU
// microseconds per document (the process's, so background merging and
// compaction count), and each wall rate ÷ the previous bleve index's.
// The peak RSS of the process (maxrss-MiB) is an option's own when
// SIGHTLINE_BENCH_OPTIONS names one.
//
//	go test -run '^$' -bench EmbeddedOptions -benchtime 3x ./sinks/index/
//	SIGHTLINE_BENCH_EVENTS=load SIGHTLINE_BENCH_DOCS=1000000 SIGHTLINE_BENCH_OPTIONS=traceidx,traceidx-tuned-prev \
//	  go test -run '^$' -bench EmbeddedOptions -benchtime 2x -timeout 60m ./sinks/index/
func BenchmarkEmbeddedOptions(b *testing.B) {
	n := optionDocs()
	batch := 1000
	t0 := time.Now().UTC()
	var batches [][]*stage.Message
	var gen *loadGen
	if os.Getenv("SIGHTLINE_BENCH_EVENTS") == "load" {
		gen = newLoadGen(batch, t0)
	} else {
		for i := 0; i*batch < n; i++ {
			batches = append(batches, benchBatch(i, batch, t0.Add(time.Duration(i)*time.Second)))
		}
	}
	nb := (n + batch - 1) / batch
	type option struct {
		name  string
		open  func(dir string) (write func([]*stage.Message) error, close func() error, err error)
		batch int // documents per write (default 1,000)
	}
	bleveOpt := func(src, texts bool) func(string) (func([]*stage.Message) error, func() error, error) {
		return func(dir string) (func([]*stage.Message) error, func() error, error) {
			idx, err := bleve.New(dir, bleveMapping(src, texts))
			if err != nil {
				return nil, nil, err
			}
			o := &bleveOption{idx: idx, src: src, texts: texts}
			return o.write, idx.Close, nil
		}
	}
	storeOpt := func(tune func(*traceidx.Options)) func(string) (func([]*stage.Message) error, func() error, error) {
		return func(dir string) (func([]*stage.Message) error, func() error, error) {
			e, err := OpenEmbedded(Config{EmbeddedPath: dir})
			if err != nil {
				return nil, nil, err
			}
			if tune != nil {
				_ = e.st.Close()
				o := embeddedOptions(dir, false)
				tune(&o)
				if e.st, err = traceidx.Open(o); err != nil {
					return nil, nil, err
				}
			}
			ctx := context.Background()
			return func(m []*stage.Message) error { return e.Write(ctx, m) }, func() error { return e.Close(ctx) }, nil
		}
	}
	opts := []option{
		{name: "bleve-previous", open: bleveOpt(true, true)},
		{name: "bleve-previous-batch5000", open: bleveOpt(true, true), batch: 5000},
		{name: "bleve-no-src", open: bleveOpt(false, true)},
		{name: "bleve-cid-only", open: bleveOpt(false, false)},
		{name: "traceidx", open: storeOpt(nil)},
		{name: "traceidx-posted-type-service", open: storeOpt(func(o *traceidx.Options) {
			o.Posted = []string{"kind", "correlationid", "level", "type", "service"}
		})},
		{name: "traceidx-nosync", open: storeOpt(func(o *traceidx.Options) { o.NoSync = true })},
		{name: "traceidx-memtable16M", open: storeOpt(func(o *traceidx.Options) { o.MemTableBytes = 16 << 20 })},
		{name: "traceidx-memtable4M", open: storeOpt(func(o *traceidx.Options) { o.MemTableBytes = 4 << 20 })},
		{name: "traceidx-blobs", open: storeOpt(func(o *traceidx.Options) {
			o.Tune = func(po *pebble.Options) {
				po.FormatMajorVersion = pebble.FormatValueSeparation
				po.Experimental.EnableColumnarBlocks = func() bool { return true }
				po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
					return pebble.ValueSeparationPolicy{Enabled: true, MinimumSize: 256, MaxBlobReferenceDepth: 10,
						RewriteMinimumAge: time.Hour, TargetGarbageRatio: 0.5}
				}
			}
		})},
		// Candidates for the Pebble settings (BENCHMARKS.md, "Embedded
		// index: Pebble settings"): the previous ones (a 16 MiB memtable,
		// Pebble's L0 thresholds and LBaseMaxBytes, snappy on every
		// level), changes to them one at a time and together, and changes
		// to the current ones ("traceidx").
		{name: "traceidx-prev", open: storeOpt(func(o *traceidx.Options) { prevSettings(o, 16<<20, 4) })},
		{name: "traceidx-mem32M", open: storeOpt(func(o *traceidx.Options) { prevSettings(o, 32<<20, 4) })},
		{name: "traceidx-mem64M", open: storeOpt(func(o *traceidx.Options) { prevSettings(o, 64<<20, 4) })},
		{name: "traceidx-l0-8", open: storeOpt(func(o *traceidx.Options) { prevSettings(o, 16<<20, 8) })},
		{name: "traceidx-l0-16", open: storeOpt(func(o *traceidx.Options) { prevSettings(o, 16<<20, 16) })},
		{name: "traceidx-mem32M-l0-8", open: storeOpt(func(o *traceidx.Options) { prevSettings(o, 32<<20, 8) })},
		{name: "traceidx-mem32M-l0-16", open: storeOpt(func(o *traceidx.Options) { prevSettings(o, 32<<20, 16) })},
		{name: "traceidx-mem64M-l0-8", open: storeOpt(func(o *traceidx.Options) { prevSettings(o, 64<<20, 8) })},
		{name: "traceidx-mem64M-l0-16", open: storeOpt(func(o *traceidx.Options) { prevSettings(o, 64<<20, 16) })},
		{name: "traceidx-lbase256M", open: storeOpt(func(o *traceidx.Options) {
			prevSettings(o, 16<<20, 4)
			chainTune(o, func(po *pebble.Options) { po.LBaseMaxBytes = 256 << 20 })
		})},
		{name: "traceidx-lbase32M", open: storeOpt(func(o *traceidx.Options) {
			prevSettings(o, 16<<20, 4)
			chainTune(o, func(po *pebble.Options) { po.LBaseMaxBytes = 32 << 20 })
		})},
		{name: "traceidx-l0-nocompress", open: storeOpt(func(o *traceidx.Options) {
			chainTune(o, func(po *pebble.Options) {
				po.Levels[0].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
			})
		})},
		{name: "traceidx-nocompress", open: storeOpt(func(o *traceidx.Options) {
			chainTune(o, func(po *pebble.Options) {
				for i := range po.Levels {
					po.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
				}
			})
		})},
		{name: "traceidx-nobloom", open: storeOpt(func(o *traceidx.Options) {
			chainTune(o, func(po *pebble.Options) {
				for i := range po.Levels {
					po.Levels[i].FilterPolicy = nil
				}
			})
		})},
		{name: "traceidx-blocks32K", open: storeOpt(func(o *traceidx.Options) {
			chainTune(o, func(po *pebble.Options) {
				for i := range po.Levels {
					po.Levels[i].BlockSize = 32 << 10
				}
			})
		})},
	}
	if f := os.Getenv("SIGHTLINE_BENCH_OPTIONS"); f != "" {
		opts = slices.DeleteFunc(opts, func(o option) bool { return !slices.Contains(strings.Split(f, ","), o.name) })
	}
	wall := map[string]time.Duration{}
	cpu := map[string]time.Duration{}
	for round := range b.N {
		// A different order each round, so no option always runs first.
		order := rand.Perm(len(opts))
		for _, k := range order {
			o := opts[k]
			dir := filepath.Join(b.TempDir(), fmt.Sprintf("%s-%d", o.name, round))
			c0, w0 := cpuTime(), time.Now()
			write, closeFn, err := o.open(dir)
			if err != nil {
				b.Fatal(o.name, err)
			}
			per := max(1, o.batch/batch)
			if gen != nil {
				per = 1 // gen rewrites its one batch
			}
			for i := 0; i < nb; i += per {
				var msgs []*stage.Message
				for k := i; k < min(i+per, nb); k++ {
					if gen != nil {
						msgs = append(msgs, gen.batch(k)...)
					} else {
						msgs = append(msgs, batches[k]...)
					}
				}
				if err := write(msgs); err != nil {
					b.Fatal(o.name, err)
				}
			}
			if err := closeFn(); err != nil {
				b.Fatal(o.name, err)
			}
			wall[o.name] += time.Since(w0)
			cpu[o.name] += cpuTime() - c0
			_ = os.RemoveAll(dir)
		}
	}
	docs := float64(b.N * nb * batch)
	base := wall["bleve-previous"]
	for _, o := range opts {
		b.ReportMetric(docs/wall[o.name].Seconds(), o.name+"-docs/s")
		b.ReportMetric(float64(cpu[o.name].Microseconds())/docs, o.name+"-cpu-µs/doc")
		if base > 0 {
			b.ReportMetric(base.Seconds()/wall[o.name].Seconds(), o.name+"-x-bleve")
		}
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB")
}

// prevSettings gives o the Pebble settings of the embedded index before
// they were measured for CPU (Pebble's L0 thresholds and LBaseMaxBytes,
// snappy on every level), with memtables of mem bytes and L0 compacted at
// l0 sublevels.
func prevSettings(o *traceidx.Options, mem uint64, l0 int) {
	o.MemTableBytes, o.L0Compaction = mem, 0
	o.Tune = func(po *pebble.Options) {
		po.L0CompactionThreshold, po.L0CompactionFileThreshold, po.L0StopWritesThreshold = 4, 500, 12
		if l0 != 4 {
			po.L0CompactionThreshold, po.L0CompactionFileThreshold, po.L0StopWritesThreshold = l0, 1<<20, max(2*l0, 12)
		}
		po.LBaseMaxBytes = 64 << 20
		for i := range po.Levels {
			po.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.SnappyCompression }
		}
	}
}

// chainTune adds f to the Pebble settings of o, after its own.
func chainTune(o *traceidx.Options, f func(*pebble.Options)) {
	prev := o.Tune
	o.Tune = func(po *pebble.Options) {
		if prev != nil {
			prev(po)
		}
		f(po)
	}
}

// BenchmarkEmbeddedLookup loads SIGHTLINE_BENCH_DOCS (default 100,000)
// events into an on-disk embedded index through Write, in 1,000-event
// batches (10 events per correlation id, 5 services, 3 kinds, spread over
// 30 days, as BenchmarkTraceLookup), then times Trace of random ids and
// `sightline logs`-style searches, and reports their p50/p95.
//
//	SIGHTLINE_BENCH_DOCS=1000000 go test -run '^$' -bench EmbeddedLookup -benchtime 300x -timeout 60m ./sinks/index/
func BenchmarkEmbeddedLookup(b *testing.B) {
	n := optionDocs()
	if os.Getenv("SIGHTLINE_BENCH_DOCS") == "" {
		n = 100_000
	}
	e, err := OpenEmbedded(Config{EmbeddedPath: filepath.Join(b.TempDir(), "idx")})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = e.Close(context.Background()) }()
	ctx := context.Background()
	end := time.Now().UTC()
	kinds := []string{"metric", "log", "snapshot"}
	var ids []string
	batch := make([]*stage.Message, 0, 1000)
	start, c0 := time.Now(), cpuTime()
	for i := range n {
		cid := fmt.Sprintf("cid-%08d", i/10)
		if i%10 == 0 {
			ids = append(ids, cid)
		}
		at := end.Add(-time.Duration(i/10) * 30 * 24 * time.Hour / time.Duration(n/10+1)).Add(time.Duration(i%10) * time.Millisecond)
		batch = append(batch, event(cid, kinds[i%3], "request", fmt.Sprintf("svc%d", i%5), at, fmt.Sprintf("ev-%08d", i), uint64(i+1)))
		if len(batch) == cap(batch) || i == n-1 {
			if err := e.Write(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Logf("wrote %d docs in %s (%.0f docs/s, %.1f CPU µs/doc)", n, time.Since(start).Round(time.Millisecond),
		float64(n)/time.Since(start).Seconds(), float64((cpuTime()-c0).Microseconds())/float64(n))
	// Reopened, as `sightline run` does after a crash or a restart: the
	// open reads the store's manifest and replays its write-ahead log, not
	// the documents.
	if err := e.Close(ctx); err != nil {
		b.Fatal(err)
	}
	s0 := time.Now()
	if e, err = OpenEmbedded(Config{EmbeddedPath: e.cfg.EmbeddedPath}); err != nil {
		b.Fatal(err)
	}
	reopen := time.Since(s0)
	queries := []struct {
		name string
		q    func() Query
		want func(Result) bool
	}{
		{"logs-newest", func() Query { return Query{Newest: true} }, func(r Result) bool { return len(r.Docs) == 100 }},
		{"logs-kind-log", func() Query { return Query{Kinds: []string{"log"}, Newest: true} }, func(r Result) bool { return len(r.Docs) == 100 }},
		{"logs-service", func() Query { return Query{Services: []string{"svc3"}, Newest: true} }, func(r Result) bool { return len(r.Docs) == 100 }},
		{"logs-text", func() Query { return Query{Text: fmt.Sprintf("line of ev-%08d", 3*rand.IntN(n/3)+1), Newest: true} }, func(r Result) bool { return len(r.Docs) == 1 }},
		{"logs-text-common", func() Query { return Query{Text: "log line", Newest: true} }, func(r Result) bool { return len(r.Docs) == 100 }},
		{"logs-last-hour", func() Query { return Query{From: end.Add(-time.Hour), Newest: true} }, func(r Result) bool { return len(r.Docs) > 0 }},
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		id := ids[rand.IntN(len(ids))]
		s := time.Now()
		tl, err := Trace(ctx, e, id, StreamLocator)
		lat = append(lat, time.Since(s))
		if err != nil || len(tl.Events) != 10 {
			b.Fatalf("trace %s: %v (%d events)", id, err, len(tl.Events))
		}
	}
	b.StopTimer()
	p := func(l []time.Duration, q int) float64 {
		slices.Sort(l)
		return float64(l[min(len(l)-1, len(l)*q/100)].Microseconds()) / 1000
	}
	b.ReportMetric(p(lat, 50), "trace-p50-ms")
	b.ReportMetric(p(lat, 95), "trace-p95-ms")
	for _, q := range queries {
		var l []time.Duration
		for range 20 {
			s := time.Now()
			res, err := e.Search(ctx, q.q())
			l = append(l, time.Since(s))
			if err != nil || !q.want(res) {
				b.Fatalf("%s: %v (%d docs of %d)", q.name, err, len(res.Docs), res.Total)
			}
		}
		b.ReportMetric(p(l, 50), q.name+"-p50-ms")
		b.ReportMetric(p(l, 95), q.name+"-p95-ms")
	}
	b.ReportMetric(float64(n), "indexed_docs")
	b.ReportMetric(float64(reopen.Microseconds())/1000, "reopen-ms")
}
