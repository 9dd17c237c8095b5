package host_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/dbtype"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/graph"
)

// logWriter sends pipeline logs to the test log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestHostSyncIntoNeo4j runs the real chain: host collector → embedded
// JetStream (SIGHTLINE_RAW) → standard processor → SIGHTLINE_EVENTS →
// graph sink → the local Neo4j, and checks the (:Host) node, the sync
// bookkeeping of scope host:<name>, an update after a second run with
// changed labels, and that a neighbouring scope is left alone.
func TestHostSyncIntoNeo4j(t *testing.T) {
	cfgGraph := graph.DefaultConfig()
	info := testsvc.Neo4j(t)
	cfgGraph.URI, cfgGraph.Username, cfgGraph.Password = info.URI, info.User, info.Password

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	rb := make([]byte, 5)
	_, _ = rand.Read(rb)
	name := "sl-hostgraph-" + hex.EncodeToString(rb) + ".test"
	neighbour := name + "-neighbour"
	scope, nscope := host.Scope(name), host.Scope(neighbour)

	// The bus.
	b, err := bus.Connect(ctx, bus.Options{Port: -1, StoreDir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.EnsureStreams(ctx, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}

	// The graph sink against the real Neo4j.
	var repMu sync.Mutex
	var reports []graph.SweepReport
	sink, err := graph.New(ctx, cfgGraph, graph.WithLogger(logger), graph.WithSweepReporter(func(_ context.Context, r graph.SweepReport) {
		repMu.Lock()
		reports = append(reports, r)
		repMu.Unlock()
	}))
	if err != nil {
		t.Fatalf("graph.New: %v", err)
	}
	t.Cleanup(func() { _ = sink.Close(context.Background()) })
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer ccancel()
		for _, s := range []string{scope, nscope} {
			if err := sink.DeleteScope(cctx, s); err != nil {
				t.Logf("cleanup %s: %v", s, err)
			}
		}
	})

	// Processor and sink runners; stopped before the scope is cleaned up.
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := processors.Standard(processors.Config{}, v)
	rctx, rcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs <- consume.RunProcessor(rctx, b, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor",
			Backoff: []time.Duration{200 * time.Millisecond}}, proc)
	}()
	go func() {
		defer wg.Done()
		errs <- consume.RunSink(rctx, b, consume.Config{Stage: "graph", Stream: bus.StreamEvents, Durable: "graph",
			Filters: []string{"sightline.events.snapshot.>"}, Lanes: 1, Backoff: []time.Duration{200 * time.Millisecond}}, sink)
	}()
	t.Cleanup(func() {
		rcancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("runner: %v", err)
			}
		}
	})

	publisher := b

	// A neighbouring host's scope, synced first with an older tag: the
	// sweeps of host:<name> must leave it alone.
	nparts, err := host.Split(nscope, 1000, host.HostNode(neighbour, map[string]string{"site": "lva1", "role": "web"}, nil), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	nmsgs, err := host.Messages(host.Subject, nparts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publisher.Publish(ctx, nmsgs...); err != nil {
		t.Fatal(err)
	}
	waitCompleted(ctx, t, sink, b, nscope, 1000)
	nbefore := readHost(ctx, t, sink, neighbour)

	// The host's files and commands, in a temp dir; small parts so the sync
	// has several parts, each carrying the Host node.
	dir := t.TempDir()
	var files []string
	for i := range 4 {
		p := filepath.Join(dir, fmt.Sprintf("etc/conf-%d.conf", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("key.%d = value\n", i), 200)), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	cfg := host.DefaultConfig()
	cfg.Host = name
	cfg.StateFile = filepath.Join(dir, "state.json")
	cfg.Files = append(files, filepath.Join(dir, "missing"))
	cfg.Commands = []host.Command{{Name: "echo", Run: []string{"echo", "hello"}}}
	cfg.MaxPartBytes = 8 << 10
	run := func(labels map[string]string, rack string, minParts int) *host.Report {
		t.Helper()
		c := cfg
		c.Labels = labels
		c.ExtraFacts = map[string]any{"rack": rack}
		col, err := host.NewCollector(c)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := host.Run(ctx, col, publisher, host.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Parts < minParts {
			t.Fatalf("want a sync of at least %d parts, got %d", minParts, rep.Parts)
		}
		return rep
	}

	// Run 1.
	rep1 := run(map[string]string{"site": "lva1", "cluster": "c3", "role": "web"}, "r12", 2)
	st1 := waitCompleted(ctx, t, sink, b, scope, rep1.Tag)
	checkSync(t, st1, rep1)
	got := readHost(ctx, t, sink, name)
	want := map[string]any{
		"id": name, "site": "lva1", "cluster": "c3", "role": "web",
		"labels":      []any{"cluster=c3", "role=web", "site=lva1"},
		"fact_rack":   "r12",
		"lastupdated": rep1.Tag, "firstseen": rep1.Tag, "syncscope": scope, "correlationid": rep1.CorrelationID,
	}
	checkHost(t, "run 1", got, want)
	if t.Failed() {
		return
	}

	// Run 2: labels changed (role changed, env added, cluster dropped);
	// the files are unchanged, so this sync is small ("still the same").
	rep2 := run(map[string]string{"site": "lva1", "role": "db", "env": "prod"}, "r13", 1)
	if rep2.Tag <= rep1.Tag {
		t.Fatalf("tag did not increase: %d then %d", rep1.Tag, rep2.Tag)
	}
	st2 := waitCompleted(ctx, t, sink, b, scope, rep2.Tag)
	checkSync(t, st2, rep2)
	got = readHost(ctx, t, sink, name)
	want = map[string]any{
		"id": name, "site": "lva1", "role": "db", "env": "prod",
		"labels":      []any{"env=prod", "role=db", "site=lva1"},
		"fact_rack":   "r13",
		"lastupdated": rep2.Tag, "firstseen": rep1.Tag, "syncscope": scope, "correlationid": rep2.CorrelationID,
	}
	checkHost(t, "run 2", got, want)
	if _, ok := got["cluster"]; ok {
		t.Errorf("run 2: dropped label cluster still on the node: %v", got["cluster"])
	}
	if st2.Nodes != 1 || st2.Relationships != 0 {
		t.Errorf("scope %s: %d nodes, %d relationships; want just the Host node", scope, st2.Nodes, st2.Relationships)
	}

	// Nothing of another scope was touched: the neighbour is as it was, and
	// no node or relationship outside the scope carries its syncs' writes.
	if nafter := readHost(ctx, t, sink, neighbour); !reflect.DeepEqual(nbefore, nafter) {
		t.Errorf("neighbour scope changed:\nbefore %v\nafter  %v", nbefore, nafter)
	}
	if ns, err := sink.Status(ctx, nscope); err != nil || len(ns) != 1 || ns[0].LastCompleted != 1000 || ns[0].Nodes != 1 {
		t.Errorf("neighbour status: %+v, %v", ns, err)
	}
	// (The sync bookkeeping nodes carry the scope as "scope".)
	res, err := neo4j.ExecuteQuery(ctx, sink.Driver(), `
CALL { MATCH (n) WHERE n.correlationid IN $cids AND coalesce(n.syncscope, n.scope, '') <> $scope
         RETURN 'node ' + reduce(s = '', l IN labels(n) | s + ':' + l) + ' ' + coalesce(n.id, '') AS what
  UNION ALL MATCH ()-[r]->() WHERE r.correlationid IN $cids AND coalesce(r.syncscope, '') <> $scope
         RETURN 'relationship ' + type(r) AS what }
RETURN collect(what) AS what`, map[string]any{"cids": []any{rep1.CorrelationID, rep2.CorrelationID}, "scope": scope}, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := res.Records[0].Get("what"); len(w.([]any)) != 0 {
		t.Errorf("outside %s, written by its syncs: %v", scope, w)
	}
	repMu.Lock()
	for _, r := range reports {
		if r.Scope != scope && r.Scope != nscope {
			continue
		}
		if r.DeletedNodes != 0 || r.DeletedRels != 0 || (r.Result != "nothing" && r.Result != "swept") {
			t.Errorf("sweep report: %+v", r)
		}
	}
	repMu.Unlock()
	dlq, err := b.JetStream().Stream(ctx, bus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if si, err := dlq.Info(ctx); err != nil || si.State.Msgs != 0 {
		t.Errorf("DLQ: %v messages (%v)", si.State.Msgs, err)
	}
}

// waitCompleted waits until the scope's last completed sync is tag.
func waitCompleted(ctx context.Context, t *testing.T, s *graph.Sink, b *bus.Bus, scope string, tag int64) graph.ScopeStatus {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last []graph.ScopeStatus
	for time.Now().Before(deadline) {
		st, err := s.Status(ctx, scope)
		if err != nil {
			t.Fatal(err)
		}
		last = st
		if len(st) == 1 && st[0].LastCompleted == tag {
			return st[0]
		}
		time.Sleep(200 * time.Millisecond)
	}
	var dlq uint64
	if str, err := b.JetStream().Stream(ctx, bus.StreamDLQ); err == nil {
		if si, err := str.Info(ctx); err == nil {
			dlq = si.State.Msgs
		}
	}
	t.Fatalf("sync %s tag %d never completed: status %+v, %d DLQ messages", scope, tag, last, dlq)
	return graph.ScopeStatus{}
}

// checkSync checks the bookkeeping of the sync of a run.
func checkSync(t *testing.T, st graph.ScopeStatus, rep *host.Report) {
	t.Helper()
	if !slices.Contains(st.Labels, "Host") {
		t.Errorf("scope %s labels %v: want Host", st.Scope, st.Labels)
	}
	for _, y := range st.Syncs {
		if y.Tag != rep.Tag {
			continue
		}
		if !y.Final || y.Parts != rep.Parts || y.Applied != int64(rep.Items) || y.Expected != int64(rep.Items) ||
			(y.Status != "nothing" && y.Status != "swept") {
			t.Errorf("sync %s@%d: %+v; want final, %d parts, %d items applied, complete", st.Scope, rep.Tag, y, rep.Parts, rep.Items)
		}
		return
	}
	t.Errorf("sync %s@%d not in status %+v", st.Scope, rep.Tag, st.Syncs)
}

// readHost returns the properties of (:Host {id: key}) (and "_labels").
func readHost(ctx context.Context, t *testing.T, s *graph.Sink, key string) map[string]any {
	t.Helper()
	res, err := neo4j.ExecuteQuery(ctx, s.Driver(), `MATCH (n:Host {id: $key}) RETURN n`,
		map[string]any{"key": key}, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 {
		t.Fatalf("(:Host {id: %q}): %d nodes", key, len(res.Records))
	}
	v, _ := res.Records[0].Get("n")
	n := v.(dbtype.Node)
	props := map[string]any{}
	for k, v := range n.Props {
		props[k] = v
	}
	labels := slices.Clone(n.Labels)
	slices.Sort(labels)
	props["_labels"] = labels
	return props
}

// checkHost checks the Host node's properties: want, plus the facts.
func checkHost(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if g := got[k]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s: %s = %#v, want %#v", what, k, g, w)
		}
	}
	if l, _ := got["_labels"].([]string); !slices.Equal(l, []string{"Host", "SightlineNode"}) {
		t.Errorf("%s: labels %v", what, l)
	}
	facts := map[string]any{
		"fact_hostname": want["id"], "fact_os": runtime.GOOS, "fact_arch": runtime.GOARCH,
		"fact_num_cpu": int64(runtime.NumCPU()), "fact_collector_version": int64(1),
		"fact_collector": "sightline collect host",
	}
	for k, w := range facts {
		if g := got[k]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s: %s = %#v, want %#v", what, k, g, w)
		}
	}
	for _, k := range []string{"fact_labels", "fact_addresses", "placeholder"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s: unexpected property %s = %v", what, k, got[k])
		}
	}
}
