package chaos

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/sinks/sinktest"
)

// freezeFor is how long a service or process stays frozen: 60 s in the
// long form, 15 s in the short one.
func freezeFor() time.Duration {
	if long() {
		return 60 * time.Second
	}
	return 15 * time.Second
}

// searchIndex is a fresh index prefix on the shared OpenSearch.
type searchIndex struct {
	url, prefix string
}

// newSearchIndex is a fresh prefix on the shared OpenSearch, dropped after
// the test.
func newSearchIndex(t testing.TB) *searchIndex {
	ix := &searchIndex{url: testsvc.OpenSearch(t), prefix: "chaos-" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")}
	t.Cleanup(ix.drop)
	return ix
}

func (s searchIndex) drop() {
	req, _ := http.NewRequest(http.MethodDelete, s.url+"/"+s.prefix+"-*", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

// scenario is one fault injected while a paced ingest runs.
type scenario struct {
	name      string
	workers   []*Pipeline
	pubURL    string // where the publisher and the checks connect
	archive   *archiveStore
	index     *searchIndex
	consumers [][2]string
	// fault runs during the ingest and returns when the fault is over.
	fault  func(t *testing.T) string
	events int
	rate   int
}

// watchReady polls /readyz of p every second until stop and reports
// whether it ever answered 503 with want in its text.
func watchReady(p *Pipeline, want string, stop <-chan struct{}) func() bool {
	var mu sync.Mutex
	seen := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			code, body := get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.HTTPPort))
			if code == http.StatusServiceUnavailable && strings.Contains(strings.ToLower(body), strings.ToLower(want)) {
				mu.Lock()
				seen = true
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return func() bool { <-done; mu.Lock(); defer mu.Unlock(); return seen }
}

func run(t *testing.T, sc scenario) {
	for _, w := range sc.workers {
		// One at a time: the first creates the streams.
		w.Start()
		w.WaitReady(3 * time.Minute)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := Publish(ctx, sc.pubURL, sc.events, sc.rate, rawSubject, rawBody)
	time.Sleep(5 * time.Second) // mid-stream
	faults := sc.fault(t)
	pub.Wait(t)
	end := time.Now() // the fault is over and every event acknowledged
	acked := int(pub.Acked.Load())
	_, js := connect(t, sc.pubURL)
	waitDrained(t, js, acked, 10*time.Minute, sc.consumers...)
	recovered := time.Since(end)
	ids := streamIDs(t, js)
	row := Row{Scenario: sc.name, Acked: acked, Recover: recovered, Faults: faults,
		Sinks: []Count{streamCount(acked, ids)}}
	if sc.index != nil {
		row.Sinks = append(row.Sinks, compare("index (OpenSearch)", ids, sc.index.ids(t)))
	}
	if sc.archive != nil {
		arch, tmps := archiveIDs(t, sc.archive.cfg)
		row.Sinks = append(row.Sinks, compare("archive", ids, arch))
		if len(tmps) > 0 {
			t.Errorf("temporary files left: %v", tmps)
		}
	}
	report(t, row)
}

// TestSigstop freezes `sightline run` (and so its embedded JetStream) with
// SIGSTOP during the ingest, then continues it.
func TestSigstop(t *testing.T) {
	t.Parallel()
	st := localArchive(t)
	p := NewPipeline(t, "sightline", append([]string{"index.enabled=false", "graph.enabled=false",
		"archive.batch_max_age=1s"}, st.sets...)...)
	n, rate := events(t)
	run(t, scenario{name: "SIGSTOP of sightline run", workers: []*Pipeline{p}, pubURL: p.URL(), archive: &st,
		consumers: [][2]string{{bus.StreamRaw, "processor"}, {bus.StreamEvents, "archive"}}, events: n / 2, rate: rate,
		fault: func(t *testing.T) string {
			d := 20 * time.Second
			p.Freeze(d)
			return fmt.Sprintf("SIGSTOP %s", d)
		}})
}

// TestServiceFrozen freezes OpenSearch and then the S3 server (each behind
// a TCP proxy that stops forwarding: hung, not down; the shared services
// themselves are untouched) mid-stream, and checks that /readyz named the
// sink while it was frozen.
func TestServiceFrozen(t *testing.T) {
	t.Parallel()
	ou, err := url.Parse(testsvc.OpenSearch(t))
	if err != nil {
		t.Fatal(err)
	}
	osProxy := sinktest.NewProxy(t, ou.Host)
	ix := newSearchIndex(t)
	st := s3Archive(t)
	su, err := url.Parse(st.cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	s3Proxy := sinktest.NewProxy(t, su.Host)
	sets := append([]string{"graph.enabled=false", "index.urls=http://" + osProxy.Addr(), "index.prefix=" + ix.prefix,
		"index.timeout=5s", "archive.batch_max_age=1s", "archive.put_timeout=10s"}, st.sets...)
	for i, s := range sets {
		if strings.HasPrefix(s, "archive.endpoint=") {
			sets[i] = "archive.endpoint=http://" + s3Proxy.Addr()
		}
	}
	p := NewPipeline(t, "sightline", sets...)
	p.Env = st.env
	n, rate := events(t)
	run(t, scenario{name: "OpenSearch then S3 frozen", workers: []*Pipeline{p}, pubURL: p.URL(), archive: &st, index: ix,
		consumers: [][2]string{{bus.StreamRaw, "processor"}, {bus.StreamEvents, "archive"}, {bus.StreamEvents, "index"}},
		events:    n / 2, rate: rate,
		fault: func(t *testing.T) string {
			var notes []string
			for _, f := range []struct {
				name, sink string
				proxy      *sinktest.Proxy
			}{{"OpenSearch", "index", osProxy}, {"S3", "archive", s3Proxy}} {
				stop := make(chan struct{})
				seen := watchReady(p, f.sink, stop)
				f.proxy.Freeze()
				time.Sleep(freezeFor())
				f.proxy.Thaw()
				close(stop)
				notes = append(notes, fmt.Sprintf("%s frozen %s (/readyz named it: %v)", f.name, freezeFor(), seen()))
			}
			return strings.Join(notes, "; ") + fmt.Sprintf("; %d warn/error log lines", countLevel(t, p, "WARN", "ERROR"))
		}})
}

// TestNATSConnectionCut cuts the TCP connection between a worker and NATS
// (a proxy in front of one node of a 3-node cluster, the worker's only
// URL) for 20 s mid-stream, then restores it.
func TestNATSConnectionCut(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	proxy := sinktest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", c.Client[0]))
	st := localArchive(t)
	w := NewPipeline(t, "worker", append([]string{"nats.urls=nats://" + proxy.Addr(), "streams.replicas=3",
		"index.enabled=false", "graph.enabled=false", "archive.batch_max_age=1s", "archive.put_timeout=10s"}, st.sets...)...)
	n, rate := events(t)
	run(t, scenario{name: "TCP cut worker-NATS", workers: []*Pipeline{w}, pubURL: c.URLs(), archive: &st,
		consumers: [][2]string{{bus.StreamRaw, "processor"}, {bus.StreamEvents, "archive"}}, events: n / 2, rate: rate,
		fault: func(t *testing.T) string {
			stop := make(chan struct{})
			seen := watchReady(w, "nats", stop)
			proxy.Cut()
			time.Sleep(20 * time.Second)
			proxy.Restore()
			close(stop)
			return fmt.Sprintf("cut 20s (/readyz named NATS: %v)", seen())
		}})
}

// TestClusterNodeAndWorkerKilled runs two workers on a 3-node cluster with
// R3 streams and kills one NATS node and one worker with SIGKILL
// mid-stream, restarting both 10 s later. Both workers run the processor,
// the index (a fresh prefix on the shared OpenSearch) and the archive on
// the shared S3 server seen through a proxy that drops If-Match and
// If-None-Match (a store whose conditional PUT keeps no two writers
// apart): the archive's window leases in JetStream must, including the
// lease the killed worker held. CHAOS_ARCHIVE_LEASE_TTL=0 runs it without
// them.
func TestClusterNodeAndWorkerKilled(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	st := s3Archive(t)
	ix := newSearchIndex(t)
	sets := append([]string{"graph.enabled=false", "index.urls=" + ix.url, "index.prefix=" + ix.prefix, "index.timeout=5s",
		"archive.batch_max_age=1s", "archive.put_timeout=10s", "archive.batch_max_messages=2000", "archive.window_sequences=1500"}, st.sets...)
	for i, s := range sets {
		if strings.HasPrefix(s, "archive.endpoint=") {
			sets[i] = "archive.endpoint=" + sinktest.UnconditionalS3(t, st.cfg.Endpoint, st.cfg.Username, st.cfg.Password, st.cfg.Region)
		}
	}
	if v := os.Getenv("CHAOS_ARCHIVE_LEASE_TTL"); v != "" {
		sets = append(sets, "archive.lease_ttl="+v)
	}
	w1 := NewWorker(t, "worker-1", c, "processor,index,archive", sets...)
	w2 := NewWorker(t, "worker-2", c, "processor,index,archive", sets...)
	w1.Env, w2.Env = st.env, st.env
	n, rate := events(t)
	run(t, scenario{name: "3-node cluster: node + worker killed", workers: []*Pipeline{w1, w2}, pubURL: c.URLs(), archive: &st, index: ix,
		consumers: [][2]string{{bus.StreamRaw, "processor"}, {bus.StreamEvents, "archive"}, {bus.StreamEvents, "index"}}, events: n / 2, rate: rate,
		fault: func(t *testing.T) string {
			c.Kill(1)
			w2.Kill9()
			time.Sleep(10 * time.Second)
			c.Start(1)
			w2.Start()
			return "nats node 2 and worker 2 kill -9, restarted after 10s; 2 workers on an S3 archive without conditional PUT"
		}})
}

// countLevel counts the log lines of p at the given levels.
func countLevel(t testing.TB, p *Pipeline, levels ...string) int {
	n := 0
	for _, l := range logLines(t, p) {
		if slices.Contains(levels, l.Level) {
			n++
		}
	}
	return n
}

// TestNeo4jFrozen freezes Neo4j (behind a proxy) while a service map is
// published as a sync and the metric ingest runs, then checks the graph
// holds every service and instance once, and /readyz named the sink.
func TestNeo4jFrozen(t *testing.T) {
	t.Parallel()
	neo := testsvc.Neo4j(t)
	u, err := url.Parse(neo.URI)
	if err != nil {
		t.Fatal(err)
	}
	proxy := sinktest.NewProxy(t, u.Host)
	st := localArchive(t)
	p := NewPipeline(t, "sightline", append([]string{"index.enabled=false", "graph.enabled=true",
		"graph.uri=bolt://" + proxy.Addr(), "graph.username=" + neo.User, "archive.batch_max_age=1s"}, st.sets...)...)
	p.Env = []string{"SIGHTLINE_GRAPH_PASSWORD=" + neo.Password}
	ns := "chaos" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	const services, instances = 40, 3
	var m strings.Builder
	fmt.Fprintf(&m, "namespace: %s\nservices:\n", ns)
	for i := range services {
		fmt.Fprintf(&m, "  - name: svc%d\n    instances:\n", i)
		for j := range instances {
			fmt.Fprintf(&m, "      - id: i%d\n", j)
		}
		if i > 0 {
			fmt.Fprintf(&m, "    depends_on: [svc%d]\n", i-1)
		}
	}
	mapFile := filepath.Join(t.TempDir(), "map.yaml")
	if err := os.WriteFile(mapFile, []byte(m.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { graphQuery(t, neo, "MATCH (n) WHERE n.id STARTS WITH $p DETACH DELETE n", ns+"/") })
	n, rate := events(t)
	run(t, scenario{name: "Neo4j frozen during a sync", workers: []*Pipeline{p}, pubURL: p.URL(), archive: &st,
		consumers: [][2]string{{bus.StreamRaw, "processor"}, {bus.StreamEvents, "archive"}, {bus.StreamEvents, "graph"}},
		events:    n / 4, rate: rate,
		fault: func(t *testing.T) string {
			stop := make(chan struct{})
			seen := watchReady(p, "graph", stop)
			proxy.Freeze()
			out, err := exec.Command(bin, "inventory", "publish", "--source", "file", "--file", mapFile,
				"--state", filepath.Join(t.TempDir(), "tags.json"), "--set", "nats.urls="+p.URL()).CombinedOutput()
			if err != nil {
				t.Fatalf("inventory publish: %v\n%s", err, out)
			}
			time.Sleep(freezeFor())
			proxy.Thaw()
			close(stop)
			return fmt.Sprintf("Neo4j frozen %s during a %d-service sync (/readyz named it: %v)", freezeFor(), services, seen())
		}})
	// Graph by id: every service and instance once.
	nodes, distinct := graphCount(t, neo, ns+"/")
	c := Count{Sink: "graph", Count: nodes}
	if want := services * (1 + instances); distinct < want {
		c.Lost = want - distinct
	}
	c.Duplicated = nodes - distinct
	report(t, Row{Scenario: "Neo4j frozen during a sync: graph nodes", Acked: services * (1 + instances), Sinks: []Count{c}})
}

func graphSession(t testing.TB, neo testsvc.Neo4jInfo) (neo4j.DriverWithContext, context.Context) {
	ctx := context.Background()
	d, err := neo4j.NewDriverWithContext(neo.URI, neo4j.BasicAuth(neo.User, neo.Password, ""))
	if err != nil {
		t.Fatal(err)
	}
	return d, ctx
}

func graphQuery(t testing.TB, neo testsvc.Neo4jInfo, q, prefix string) {
	d, ctx := graphSession(t, neo)
	defer d.Close(ctx)
	_, _ = neo4j.ExecuteQuery(ctx, d, q, map[string]any{"p": prefix}, neo4j.EagerResultTransformer)
}

// graphCount returns the nodes whose key starts with prefix and how many
// distinct keys they have.
func graphCount(t testing.TB, neo testsvc.Neo4jInfo, prefix string) (int, int) {
	t.Helper()
	d, ctx := graphSession(t, neo)
	defer d.Close(ctx)
	res, err := neo4j.ExecuteQuery(ctx, d, "MATCH (n) WHERE n.id STARTS WITH $p RETURN count(n) AS n, count(DISTINCT n.id) AS k",
		map[string]any{"p": prefix}, neo4j.EagerResultTransformer)
	if err != nil || len(res.Records) != 1 {
		t.Fatalf("graph count: %v", err)
	}
	nodes, _ := res.Records[0].Get("n")
	keys, _ := res.Records[0].Get("k")
	return int(nodes.(int64)), int(keys.(int64))
}
