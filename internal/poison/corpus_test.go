package poison_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/bus/loss"
	"github.com/sightline/sightline/internal/bus/status"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/poison"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/telemetry"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/producers/httpingest"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/hosts"
	"github.com/sightline/sightline/sinks/index"
)

const corpusDir = "testdata"

// Load is poison.Load for the tests of this package.
var Load = poison.Load

// Case names and types used by both test files.
const (
	ViaHTTP     = poison.ViaHTTP
	FateRefused = poison.FateRefused
)

func TestCorpusSize(t *testing.T) {
	cases, err := poison.Load(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 100 {
		t.Fatalf("%d cases, want at least 100", len(cases))
	}
	via := map[string]int{}
	for _, c := range cases {
		via[c.Via]++
	}
	for _, v := range []string{poison.ViaCore, poison.ViaJetStream, poison.ViaRaw, poison.ViaHTTP} {
		if via[v] == 0 {
			t.Errorf("no case published by %s", v)
		}
	}
}

// pipeline is a real pipeline on one bus: the processor, the index (embedded,
// with its DLQ consumer), the archive (local directory) and the host store,
// with the Prometheus observer, and POST /v1/events.
type pipeline struct {
	bus     *bus.Bus
	metrics *telemetry.Metrics
	http    *httptest.Server
	stop    func()
	archive string // the archive sink's directory
}

func startPipeline(t *testing.T, o bus.Options, sc bus.StreamsConfig) *pipeline {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := telemetry.NewMetrics()
	o.Observer = m
	o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
	b, err := bus.Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureStreams(ctx, sc); err != nil {
		b.Close()
		t.Fatal(err)
	}
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := processors.Standard(processors.Config{Attributes: map[string]string{"site": "poison"},
		MaxEventBytes: min(int(sc.Events.MaxMsgSize), int(b.Conn().MaxPayload())) - limits.EventHeaderBudget}, v)
	// The sinks as `sightline run` opens and consumes them.
	icfg := index.DefaultConfig()
	icfg.EmbeddedPath = filepath.Join(t.TempDir(), "index")
	acfg := archive.DefaultConfig()
	archiveDir := t.TempDir()
	acfg.URL = "file://" + archiveDir
	acfg.BatchMaxAge = 500 * time.Millisecond
	hcfg := hosts.DefaultConfig()
	env := sinks.Env{Bus: func(context.Context) (*bus.Bus, error) { return b, nil }}
	done := make(chan error, 8)
	run := func(f func() error) { go func() { done <- f() }() }
	if err := loss.WatchDoor(ctx, b); err != nil { // as sightline run does; nothing on an external server
		t.Fatal(err)
	}
	running := 1
	run(func() error {
		return consume.RunProcessor(ctx, b, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor"}, proc)
	})
	var opened []*sinks.Opened
	for _, s := range []struct {
		spec sinks.Spec
		cfg  config.Section
	}{{index.Spec, &icfg}, {archive.Spec, &acfg}, {hosts.Spec, &hcfg}} {
		o, err := s.spec.Open(ctx, s.cfg, env)
		if err != nil {
			t.Fatalf("sink %s: %v", s.spec.Name, err)
		}
		opened = append(opened, o)
		for _, cc := range o.Consumers {
			running++
			run(func() error { return consume.RunSink(ctx, b, cc, o.Sink) })
		}
	}
	h := httptest.NewServer(httpingest.New(b, httpingest.WithMaxItemBytes(limits.HTTPMaxItemBytes)))
	p := &pipeline{bus: b, metrics: m, http: h, archive: archiveDir}
	var once sync.Once
	var stop func()
	p.stop = func() { once.Do(stop) }
	stop = func() {
		h.Close()
		cancel()
		for range running {
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("a consumer did not stop")
			}
		}
		for _, o := range opened {
			_ = o.Sink.Close(context.Background())
		}
		b.Close()
	}
	return p
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runCorpus publishes every case (the pending ones excepted), checks each
// fate, then a sentinel event, and returns the cases checked.
func runCorpus(t *testing.T, p *pipeline, server, runID string, skip func(*poison.Case) string) {
	t.Helper()
	ctx := context.Background()
	cases, err := poison.Load(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	nc := p.bus.Conn()
	target := &poison.Target{NC: nc, JS: p.bus.JetStream(), Server: server, HTTPURL: p.http.URL, RunID: runID,
		Dropped: func() uint64 { return dropped(t, p.metrics.Registry()) }}
	if err := target.Open(ctx); err != nil {
		t.Fatal(err)
	}
	aligned := rawAligned(t, p)
	checked, pending := 0, 0
	for _, c := range cases {
		if c.Requires == poison.RequiresAligned && !aligned {
			pending++
			t.Logf("%s/%s: not published: the raw stream takes less than the server's max payload", c.File, c.Name)
			continue
		}
		if c.Pending != "" {
			pending++
			t.Logf("%s/%s: not published, waiting for %s", c.File, c.Name, c.Pending)
			continue
		}
		if why := skip(c); why != "" {
			t.Logf("%s/%s: skipped: %s", c.File, c.Name, why)
			continue
		}
		o, err := target.Publish(ctx, c)
		if err != nil {
			t.Fatalf("%s/%s: %v", c.File, c.Name, err)
		}
		if msg := c.Check(o); msg != "" {
			t.Errorf("%s/%s (%s): %s", c.File, c.Name, c.Description, msg)
		}
		checked++
	}
	t.Logf("%d cases checked, %d pending", checked, pending)
	// The pipeline is alive: a plain event still goes through.
	sentinel := &poison.Case{Name: "sentinel", Description: "after the corpus", Subject: "sightline.raw.metric.sentinel",
		Via: poison.ViaCore, Expect: poison.Expect{Fate: poison.FateEvent}}
	body := fmt.Sprintf(`{"sentinel":%d}`, time.Now().UnixNano())
	sentinel.Text = &body
	o, err := target.Publish(ctx, sentinel)
	if err != nil || o.Fate != poison.FateEvent {
		t.Fatalf("sentinel after the corpus: %v %v: the pipeline is stuck", o, err)
	}
}

// rawAligned tells whether the raw stream takes every message the server
// takes.
func rawAligned(t *testing.T, p *pipeline) bool {
	t.Helper()
	s, err := p.bus.JetStream().Stream(context.Background(), bus.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int64(info.Config.MaxMsgSize) >= p.bus.Conn().MaxPayload()
}

// TestCorpus runs the poison corpus against the embedded server, like
// `sightline run` on its defaults, then checks that the counts balance.
func TestCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes the whole corpus")
	}
	p := startPipeline(t, bus.Options{Port: -1, StoreDir: t.TempDir(), MaxPayload: limits.ServerMaxPayload}, bus.DefaultStreams())
	defer p.stop()
	u, _ := url.Parse(p.bus.ClientURL())
	runCorpus(t, p, u.Host, "", func(*poison.Case) string { return "" })
	waitSinks(t, p.bus)
	checkBalance(t, p)
	checkNoSinkDeadLetters(t, p)
	p.stop() // the archive writes what it holds
	checkArchiveReadsInPython(t, p.archive)
}

// checkArchiveReadsInPython: every event the archive keeps reads with
// Python's json and writes again as UTF-8 (a 10000-digit integer used to
// be archived, which Python refuses past 4300 digits; a metric's lone
// surrogate escape, which cannot be written as UTF-8).
func checkArchiveReadsInPython(t *testing.T, dir string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Log("python3 not found: the archive is not read with Python's json")
		return
	}
	const script = `
import gzip, json, pathlib, sys
n = 0
for f in sorted(pathlib.Path(sys.argv[1]).rglob("*.ndjson.gz")):
    for i, line in enumerate(gzip.open(f, "rt", encoding="utf-8")):
        try:
            json.dumps(json.loads(line), ensure_ascii=False).encode("utf-8")
        except Exception as e:
            print(f"{f.name} line {i+1}: {type(e).__name__}: {str(e)[:200]}")
            sys.exit(1)
        n += 1
print(n)
`
	out, err := exec.Command(py, "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("an archived event Python's json cannot read: %s (%v)", out, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	if n < 50 {
		t.Fatalf("python read %s events from the archive, want the corpus's events", out)
	}
	t.Logf("python3's json read every one of the %d archived events", n)
}

// checkNoSinkDeadLetters: what the processor accepts, every sink stores.
// A sink's dead letter (sightline.dlq.sink.>) of a corpus event means the
// processor let through what a sink cannot read.
func checkNoSinkDeadLetters(t *testing.T, p *pipeline) {
	t.Helper()
	ctx := context.Background()
	s, err := p.bus.JetStream().Stream(ctx, bus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil || !strings.HasPrefix(m.Subject, stage.SinkDLQPrefix) {
			continue
		}
		body := string(m.Data)
		if len(body) > 300 {
			body = body[:300] + "…"
		}
		t.Errorf("a sink dead-lettered an event the processor made: %s, class %s: %s\n  event: %s",
			m.Subject, m.Header.Get(stage.HeaderDLQClass), m.Header.Get(stage.HeaderDLQReason), body)
	}
}

// TestCorpusExternalCluster runs the corpus against the external NATS
// cluster (task services:up), replicated over its three nodes. Cases
// larger than the cluster's max payload are left out: the cluster is
// configured apart from Sightline.
func TestCorpusExternalCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes the whole corpus")
	}
	urls := testsvc.NATSCluster(t)
	sc := bus.DefaultStreams()
	sc.Replicas = 3
	for _, l := range []*bus.StreamLimits{&sc.Raw, &sc.Events, &sc.DLQ} {
		l.MaxBytes = 256 << 20
	}
	p := startPipeline(t, bus.Options{URLs: urls}, sc)
	defer p.stop()
	maxPayload := int(p.bus.Conn().MaxPayload())
	server := p.bus.Conn().ConnectedAddr()
	if _, _, err := net.SplitHostPort(server); err != nil {
		t.Fatal(err)
	}
	runCorpus(t, p, server, strconv.FormatInt(time.Now().UnixNano(), 36), func(c *poison.Case) string {
		if c.Expect.Fate == poison.FateDropped {
			return "Sightline counts what the server drops on the embedded server only"
		}
		body, _ := c.Body()
		// Conforming may write a byte as six (\u0001).
		if 6*len(body)+c.HeaderBytes() >= maxPayload || len(body) >= int(sc.Raw.MaxMsgSize)/2 {
			return fmt.Sprintf("%d bytes: sized for the embedded server's limits, not this cluster's (max payload %d)", len(body), maxPayload)
		}
		return ""
	})
	// Other tests share the cluster's streams: the counts checked are this
	// pipeline's own, once its consumers have drained (what they hold when
	// stopped is settled, not left in flight).
	p.stop()
	checkMetricsBalance(t, p)
}

// waitSinks waits until every consumer has nothing pending and nothing
// unacknowledged.
func waitSinks(t *testing.T, b *bus.Bus) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := status.Read(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		var busy []string
		for _, s := range st.Streams {
			for _, c := range s.Consumers {
				if c.Pending > 0 || c.AckPending > 0 {
					busy = append(busy, fmt.Sprintf("%s (pending %d, ack pending %d)", c.Name, c.Pending, c.AckPending))
				}
			}
		}
		if len(busy) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumers still busy: %s", strings.Join(busy, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkBalance: what `sightline status` shows (in = out + rejected per
// kind, sink dead letters apart) and what /metrics shows (in = out +
// rejected + retried per stage and kind).
func checkBalance(t *testing.T, p *pipeline) {
	t.Helper()
	st, err := status.Read(context.Background(), p.bus)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range st.Kinds {
		t.Logf("status kind %-8s in %4d  out %4d  rejected %4d  sink dlq %v", k.Kind, k.In, k.Out, k.Rejected, k.SinkDLQ)
		if k.In != k.Out+k.Rejected {
			t.Errorf("sightline status, kind %s: in %d != out %d + rejected %d", k.Kind, k.In, k.Out, k.Rejected)
		}
	}
	checkMetricsBalance(t, p)
}

type counts struct{ in, out, rejected, retried float64 }

func checkMetricsBalance(t *testing.T, p *pipeline) {
	t.Helper()
	got := gather(t, p.metrics.Registry())
	keys := make([]string, 0, len(got))
	var unbalanced float64
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := got[k]
		t.Logf("metrics %-22s in %4.0f  out %4.0f  rejected %4.0f  retried %4.0f", k, c.in, c.out, c.rejected, c.retried)
		if c.in != c.out+c.rejected+c.retried {
			t.Errorf("/metrics %s: in %.0f != out %.0f + rejected %.0f + retried %.0f", k, c.in, c.out, c.rejected, c.retried)
		}
		unbalanced += c.in - c.out - c.rejected - c.retried
	}
	if got["process/metric"].in == 0 {
		t.Error("no metrics from the processor")
	}
	// The dashboard's "unbalanced" panel is this sum over every stage and
	// kind.
	if unbalanced != 0 {
		t.Errorf("the dashboard's unbalanced panel would read %.0f", unbalanced)
	}
}

// gather sums the pipeline counters by stage/kind.
func gather(t *testing.T, reg *prometheus.Registry) map[string]*counts {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*counts{}
	for _, mf := range mfs {
		var field func(*counts) *float64
		switch mf.GetName() {
		case "sightline_events_in_total":
			field = func(c *counts) *float64 { return &c.in }
		case "sightline_events_out_total":
			field = func(c *counts) *float64 { return &c.out }
		case "sightline_events_rejected_total":
			field = func(c *counts) *float64 { return &c.rejected }
		case "sightline_events_retried_total":
			field = func(c *counts) *float64 { return &c.retried }
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			k := label(m, "stage") + "/" + label(m, "kind")
			if out[k] == nil {
				out[k] = &counts{}
			}
			*field(out[k]) += m.GetCounter().GetValue()
		}
	}
	return out
}

// dropped reads sightline_input_dropped_total.
func dropped(t *testing.T, reg *prometheus.Registry) uint64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Error(err)
		return 0
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "sightline_input_dropped_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return uint64(n)
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
