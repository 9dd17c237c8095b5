package fleet_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/query/fleet"
	"github.com/sightline/sightline/schemas"
	store "github.com/sightline/sightline/sinks/hosts"
)

// sysctlTemplate is this machine's `sysctl -a` cut to about 40 KB (a
// generated one when sysctl is not available), with the lines that differ
// between hosts marked for substitution.
func sysctlTemplate(tb testing.TB) []string {
	out, err := exec.Command("sysctl", "-a").Output()
	var lines []string
	if err == nil {
		lines = strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	} else {
		for i := range 1100 {
			lines = append(lines, fmt.Sprintf("net.ipv4.conf.if%d.accept_redirects = %d", i, i%2))
		}
	}
	vary := regexp.MustCompile(`^(kernel\.hostname|kernel\.random\.boot_id|kernel\.random\.uuid|fs\.dentry-state|fs\.inode-nr|fs\.file-nr|kernel\.ns_last_pid|net\.core\.netdev_budget) `)
	var keep []string
	size := 0
	for _, l := range lines {
		if vary.MatchString(l) {
			continue
		}
		if size+len(l)+1 > 39_500 {
			break
		}
		keep = append(keep, l)
		size += len(l) + 1
	}
	return keep
}

// fleetSysctl is host i's sysctl -a: the template plus per-host values.
// net.core.netdev_budget is 300 everywhere except every 100th host (600).
func fleetSysctl(tmpl []string, i int) []byte {
	var b bytes.Buffer
	b.Grow(41_000)
	budget := 300
	if i%100 == 99 {
		budget = 600
	}
	for j, l := range tmpl {
		b.WriteString(l)
		b.WriteByte('\n')
		switch j {
		case 10:
			fmt.Fprintf(&b, "fs.dentry-state = %d\t%d\t45\t0\t%d\t0\n", 100000+i*7%65000, 90000+i*3%50000, 30000+i%5000)
			fmt.Fprintf(&b, "fs.file-nr = %d\t0\t2466174\n", 2000+i%900)
			fmt.Fprintf(&b, "fs.inode-nr = %d\t0\n", 120000+i*13%40000)
		case 200:
			fmt.Fprintf(&b, "kernel.hostname = node%05d\n", i)
			fmt.Fprintf(&b, "kernel.ns_last_pid = %d\n", 10000+i*31%50000)
			fmt.Fprintf(&b, "kernel.random.boot_id = %08x-e99b-470a-bd89-%012x\n", i*2654435761%(1<<32), i*40503)
			fmt.Fprintf(&b, "kernel.random.uuid = %08x-85cf-433f-a41e-%012x\n", i*97%(1<<32), i*7919)
		case 700:
			fmt.Fprintf(&b, "net.core.netdev_budget = %d\n", budget)
		}
	}
	return b.Bytes()
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkFleet builds a fleet of SIGHTLINE_TEST_BENCH_HOSTS hosts (default
// 2,000; the BENCHMARKS.md figures use 25,000), each with a ~40 KB
// sysctl-a, writes it through the store's sink, then times the searches
// against baselines over the same bytes in the same run:
//
//	SIGHTLINE_TEST_BENCH_HOSTS=25000 go test -run '^$' -bench BenchmarkFleet -benchtime 1x -timeout 60m ./hosts/
func BenchmarkFleet(b *testing.B) {
	n := envInt("SIGHTLINE_TEST_BENCH_HOSTS", 2000)
	ctx := context.Background()
	dir := b.TempDir()
	bb, err := bus.Connect(ctx, bus.Options{Port: -1, StoreDir: filepath.Join(dir, "js")})
	if err != nil {
		b.Fatal(err)
	}
	defer bb.Close()
	cfg := store.DefaultConfig()
	kv, err := store.Open(ctx, bb, cfg)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := sysctlTemplate(b)
	sample := fleetSysctl(tmpl, 0)
	b.Logf("fleet: %d hosts, sysctl-a %d bytes, %d lines", n, len(sample), bytes.Count(sample, []byte{'\n'}))
	totalBytes := 0

	// Ingest: conformed snapshot events through the sink, 128 per Write
	// (the router's batch), one part per host.
	b.Run("ingest", func(b *testing.B) {
		sink := store.NewSink(kv, cfg, nil)
		start := time.Now()
		at := time.Now().Add(-time.Minute).UTC()
		// Only the sink's Write is timed: building the events (md5, wc,
		// JSON) is the collectors' and processors' work.
		w := &timedWriter{b: b, sink: sink}
		for i := range n {
			h := fmt.Sprintf("node%05d.example.com", i)
			content := fleetSysctl(tmpl, i)
			totalBytes += len(content)
			o := host.Object{HostObject: schemas.HostObject{Host: h, Name: "sysctl-a", Type: host.TypeCommand, Collected: at, Updated: &at}}
			o.SetContent(content, 0)
			pw := host.Object{HostObject: schemas.HostObject{Host: h, Name: "/etc/passwd", Type: host.TypeFile, Collected: at, Updated: &at}}
			pw.SetContent([]byte(passwd), 0)
			parts, err := host.Split(host.Scope(h), 1, host.HostNode(h, map[string]string{"site": []string{"lva1", "ela4"}[i%2]}, nil), []host.Object{o, pw}, 0)
			if err != nil {
				b.Fatal(err)
			}
			msgs, _ := host.Messages(host.Subject, parts)
			w.add(ctx, msgs[0], at)
		}
		w.flush(ctx)
		el := w.took
		b.ReportMetric(float64(n)/el.Seconds(), "hosts/s")
		b.ReportMetric(float64(totalBytes)/el.Seconds()/1e6, "MB/s")
		b.Logf("ingest: %d hosts (%.0f MB of sysctl-a) in %s of sink writes (%s with building the events): %.0f hosts/s, %.1f MB/s",
			n, float64(totalBytes)/1e6, el.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), float64(n)/el.Seconds(), float64(totalBytes)/el.Seconds()/1e6)
	})
	// Steady state: every host reports again, nothing changed ("still
	// the same" records, no content).
	b.Run("ingest_unchanged", func(b *testing.B) {
		sink := store.NewSink(kv, cfg, nil)
		at := time.Now().UTC()
		first := at.Add(-time.Minute)
		w := &timedWriter{b: b, sink: sink}
		wire := 0
		for i := range n {
			h := fmt.Sprintf("node%05d.example.com", i)
			var objs []host.Object
			for name, c := range map[string][]byte{"sysctl-a": fleetSysctl(tmpl, i), "/etc/passwd": []byte(passwd)} {
				o := host.Object{HostObject: schemas.HostObject{Host: h, Name: name, Type: host.TypeCommand, Collected: at}}
				o.SetContent(c, 0)
				o.Unchanged, o.Content, o.Updated = true, "", &first
				objs = append(objs, o)
			}
			parts, err := host.Split(host.Scope(h), 2, host.HostNode(h, map[string]string{"site": []string{"lva1", "ela4"}[i%2]}, nil), objs, 0)
			if err != nil {
				b.Fatal(err)
			}
			msgs, _ := host.Messages(host.Subject, parts)
			wire += len(msgs[0].Data)
			w.add(ctx, msgs[0], at)
		}
		w.flush(ctx)
		b.ReportMetric(float64(n)/w.took.Seconds(), "hosts/s")
		fmt.Fprintf(os.Stderr, "ingest_unchanged: %d hosts in %s of sink writes: %.0f hosts/s; %d bytes per host report on the wire\n",
			n, w.took.Round(time.Millisecond), float64(n)/w.took.Seconds(), wire/n)
	})
	if si, err := bb.JetStream().Stream(ctx, "KV_"+cfg.Bucket); err == nil {
		if info, err := si.Info(ctx); err == nil {
			fmt.Fprintf(os.Stderr, "store: %d messages, %.0f MB on disk for %.0f MB of content\n", info.State.Msgs, float64(info.State.Bytes)/1e6, float64(totalBytes)/1e6)
		}
	}

	// Baseline data: the same bytes as files on disk (sysops-api's approach
	// of grepping local copies) and as plain messages in a plain stream.
	files := filepath.Join(dir, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		b.Fatal(err)
	}
	js := bb.JetStream()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_PLAIN", Subjects: []string{"bench.plain.>"}, MaxMsgSize: 1 << 20}); err != nil {
		b.Fatal(err)
	}
	var futs []jetstream.PubAckFuture
	for i := range n {
		c := fleetSysctl(tmpl, i)
		if err := os.WriteFile(filepath.Join(files, fmt.Sprintf("node%05d.example.com#sysctl-a", i)), c, 0o644); err != nil {
			b.Fatal(err)
		}
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: fmt.Sprintf("bench.plain.node%05d", i), Data: c})
		if err != nil {
			b.Fatal(err)
		}
		futs = append(futs, f)
		if len(futs) == 1024 {
			<-js.PublishAsyncComplete()
			futs = futs[:0]
		}
	}
	<-js.PublishAsyncComplete()

	budget := regexp.MustCompile(`(?m)^net\.core\.netdev_budget `)
	s := fleet.NewSearcher(kv, cfg)
	run := func(name string, q fleet.Query, prefix bool, check func(out *countWriter)) {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				cw := &countWriter{}
				pr := fleet.NewPrinter(cw, q.Mode, prefix, false)
				pr.Grep = q.Grep != nil
				start := time.Now()
				if _, err := s.Search(ctx, q, pr.Print); err != nil {
					b.Fatal(err)
				}
				if err := pr.Flush(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/search")
				b.ReportMetric(float64(cw.n)/1e6, "MB-out")
				check(cw)
			}
		})
	}
	wantLines := func(want int) func(*countWriter) {
		return func(cw *countWriter) {
			if cw.lines != want {
				b.Errorf("got %d lines, want %d", cw.lines, want)
			}
		}
	}
	totalLines := n * bytes.Count(sample, []byte{'\n'})
	b.Run("baseline_read_files", func(b *testing.B) {
		for range b.N {
			cw := &countWriter{}
			start := time.Now()
			ents, _ := os.ReadDir(files)
			for _, e := range ents {
				c, err := os.ReadFile(filepath.Join(files, e.Name()))
				if err != nil {
					b.Fatal(err)
				}
				cw.Write(c)
			}
			b.ReportMetric(time.Since(start).Seconds(), "s/search")
			wantLines(totalLines)(cw)
		}
	})
	b.Run("baseline_grep_files", func(b *testing.B) {
		for range b.N {
			start := time.Now()
			out, err := exec.Command("grep", "-rh", "^net.core.netdev_budget ", files).Output()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(time.Since(start).Seconds(), "s/search")
			if c := bytes.Count(out, []byte{'\n'}); c != n {
				b.Errorf("grep found %d lines", c)
			}
		}
	})
	b.Run("baseline_jetstream_read", func(b *testing.B) {
		for range b.N {
			start := time.Now()
			cons, err := js.OrderedConsumer(ctx, "BENCH_PLAIN", jetstream.OrderedConsumerConfig{})
			if err != nil {
				b.Fatal(err)
			}
			it, err := cons.Messages(jetstream.PullMaxMessages(1024))
			if err != nil {
				b.Fatal(err)
			}
			cw := &countWriter{}
			for range n {
				m, err := it.Next()
				if err != nil {
					b.Fatal(err)
				}
				cw.Write(m.Data())
			}
			it.Stop()
			b.ReportMetric(time.Since(start).Seconds(), "s/search")
			wantLines(totalLines)(cw)
		}
	})
	run("contents_unsorted", fleet.Query{Search: "sysctl-a", Mode: fleet.ModeContents}, false, wantLines(totalLines))
	run("contents_sorted", fleet.Query{Search: "sysctl-a", Mode: fleet.ModeContents, Sorted: true}, false, wantLines(totalLines))
	run("md5sum", fleet.Query{Search: "sysctl-a", Mode: fleet.ModeMD5, Sorted: true}, true, wantLines(n))
	run("grep_unsorted", fleet.Query{Search: "sysctl-a", Mode: fleet.ModeContents, Grep: budget}, false, wantLines(n))
	run("grep_sorted", fleet.Query{Search: "sysctl-a", Mode: fleet.ModeContents, Grep: budget, Sorted: true}, true, wantLines(n))
}

// countWriter counts bytes and lines written.
type countWriter struct {
	mu       sync.Mutex
	n, lines int
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n += len(p)
	c.lines += bytes.Count(p, []byte{'\n'})
	c.mu.Unlock()
	return len(p), nil
}

var _ io.Writer = (*countWriter)(nil)

// timedWriter wraps host report messages as conformed events, writes them
// to the sink 128 at a time (the router's batch) and times only the Writes.
type timedWriter struct {
	b     *testing.B
	sink  *store.Sink
	batch []*stage.Message
	took  time.Duration
}

func (w *timedWriter) add(ctx context.Context, m *stage.Message, at time.Time) {
	ev := schemas.Event{ID: m.ID, Type: "snapshot.host", Time: at, Data: m.Data}
	w.batch = append(w.batch, &stage.Message{Subject: "sightline.events.snapshot.host", Data: ev.AppendJSON(nil), Header: stage.Header{}})
	if len(w.batch) == 128 {
		w.flush(ctx)
	}
}

func (w *timedWriter) flush(ctx context.Context) {
	t0 := time.Now()
	if err := w.sink.Write(ctx, w.batch); err != nil {
		w.b.Fatal(err)
	}
	w.took += time.Since(t0)
	w.batch = w.batch[:0]
}
