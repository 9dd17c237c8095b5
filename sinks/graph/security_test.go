package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/schemas"
)

// A producer's message marked force (what one unauthenticated POST
// /v1/events could send) no longer sweeps past the share guard: the sync is
// refused, the reason says the flag was ignored, and only an operator's
// forced sweep deletes, leaving an audit line with who and how many.
func TestProducerForceIgnored(t *testing.T) {
	var logs testutil.SyncBuffer
	f := newFixture(t)
	f.s.log = slog.New(slog.NewJSONHandler(&logs, nil))
	var nodes []schemas.Node
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		nodes = append(nodes, f.svc(n, 1))
	}
	f.write(f.sync(1000, nodes, nil, 10, true)...)
	// The attack: an empty final part marked force.
	f.write(syncPart(t, schemas.SnapshotData{Scope: f.scope, Tag: 5000, Final: true, Count: 0, Force: true}))
	f.check(f.picture(), f.want(map[string]string{"a": "1", "b": "1", "c": "1", "d": "1", "e": "1", "f": "1"}))
	y := f.syncStatus(5000)
	if y.Status != statusRefused || !strings.Contains(y.Reason, "force") {
		t.Fatalf("sync 5000: %+v, want refused with the ignored force flag named", y)
	}
	if !strings.Contains(logs.String(), "force flag ignored") {
		t.Fatalf("no warning about the ignored force flag in %s", logs.String())
	}

	// The operator forces it.
	rep, err := f.s.Sweep(context.Background(), f.scope, SweepOptions{Force: true, Operator: "alice (neo4j user neo4j)"})
	if err != nil || rep.Result != statusSwept || rep.DeletedNodes != 6 {
		t.Fatalf("forced sweep: %+v %v", rep, err)
	}
	var audit string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"audit"`) {
			audit = l
		}
	}
	for _, want := range []string{`"operator":"alice (neo4j user neo4j)"`, `"action":"graph sweep --force"`, `"deleted_nodes":6`, f.scope} {
		if !strings.Contains(audit, want) {
			t.Fatalf("audit line %q lacks %s (logs %s)", audit, want, logs.String())
		}
	}
	if y := f.syncStatus(5000); y.Status != statusSwept {
		t.Fatalf("sync 5000 after the forced sweep: %+v", y)
	}
}

// A part whose tag lies beyond graph.max_tag_skew in the future is a
// permanent error with a readable reason (before: tag 9007199254740991 was
// accepted and froze the scope).
func TestFutureTagRejected(t *testing.T) {
	f := newFixture(t)
	f.write(f.sync(1000, []schemas.Node{f.svc("a", 1)}, nil, 10, true)...)
	for _, tag := range []int64{9007199254740991, time.Now().Add(48 * time.Hour).UnixMilli()} {
		m := syncPart(t, schemas.SnapshotData{Scope: f.scope, Tag: tag, Final: true, Count: 1, Nodes: []schemas.Node{f.svc("a", 2)}})
		err := f.s.Write(context.Background(), []*stage.Message{m})
		var be *stage.BatchError
		if !errors.As(err, &be) || be.Failed[0] == nil || !stage.IsPermanent(be.Failed[0]) {
			t.Fatalf("tag %d: %v, want a permanent error", tag, err)
		}
		if msg := be.Failed[0].Error(); !strings.Contains(msg, "future") || !strings.Contains(msg, "graph.max_tag_skew") {
			t.Fatalf("tag %d: reason %q does not explain the future tag", tag, msg)
		}
	}
	// A tag a little ahead (clock skew inside the limit) is fine.
	f.write(f.sync(time.Now().Add(time.Minute).UnixMilli(), []schemas.Node{f.svc("a", 3)}, nil, 10, true)...)
	f.check(f.picture(), f.want(map[string]string{"a": "3"}))
}

// A scope frozen by a far-future sync (written before the skew check, or by
// a sink configured with a larger skew) is recovered by ResetScope: the dry
// run says what it will do and changes nothing; the reset lets the next
// real sync update and sweep the scope again.
func TestScopeResetRecoversFrozenScope(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxTagSkew = 400 * 24 * time.Hour
	loose := newTestSink(t, cfg)
	f := &fixture{t: t, s: loose, scope: testScope(t, loose), px: randHex(3) + "-"}
	now := time.Now().UnixMilli()
	f.write(f.sync(now-2000, []schemas.Node{f.svc("a", 1), f.svc("b", 1)}, []schemas.Relationship{f.dep("a", "b")}, 10, true)...)
	future := time.Now().Add(300 * 24 * time.Hour).UnixMilli()
	f.write(f.sync(future, []schemas.Node{f.svc("a", 9), f.svc("b", 9), f.svc("x", 9)}, []schemas.Relationship{f.dep("a", "b")}, 10, true)...)

	strict := newTestSink(t, testConfig(t))
	f.s = strict
	// Frozen: a real sync changes nothing.
	f.write(f.sync(now, []schemas.Node{f.svc("a", 2)}, nil, 10, true)...)
	f.check(f.picture(), f.want(map[string]string{"a": "9", "b": "9", "x": "9"}, "a->b"))

	ctx := context.Background()
	if st, err := strict.Status(ctx, f.scope); err != nil || !st[0].Frozen {
		t.Fatalf("status does not say the scope is frozen: %+v %v", st, err)
	}
	dry, err := strict.ResetScope(ctx, f.scope, ResetOptions{DryRun: true, Operator: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.FutureSyncs) != 1 || dry.FutureSyncs[0] != future || dry.Nodes != 3 || dry.Rels != 1 || dry.Completed != now-2000 {
		t.Fatalf("dry run: %+v", dry)
	}
	var out bytes.Buffer
	PrintReset(&out, dry)
	if s := out.String(); !strings.Contains(s, "would") || !strings.Contains(s, "3 nodes") {
		t.Fatalf("dry run text: %s", s)
	}
	f.check(f.picture(), f.want(map[string]string{"a": "9", "b": "9", "x": "9"}, "a->b"))

	rep, err := strict.ResetScope(ctx, f.scope, ResetOptions{Operator: "alice"})
	if err != nil || rep.Nodes != 3 || rep.Rels != 1 || !rep.Done {
		t.Fatalf("reset: %+v %v", rep, err)
	}
	// The next real sync updates a and b and sweeps x and a->b.
	f.write(f.sync(now+1000, []schemas.Node{f.svc("a", 3), f.svc("b", 3)}, nil, 10, true)...)
	f.check(f.picture(), f.want(map[string]string{"a": "3", "b": "3"}))
	st, err := strict.Status(ctx, f.scope)
	if err != nil || st[0].LastCompleted != now+1000 || st[0].Frozen {
		t.Fatalf("status after reset: %+v %v", st, err)
	}
}

// Two scopes writing the same node (a file inventory and a Cloud Map
// inventory naming the same namespace): a sweep of one never deletes what
// the other still claims, neither the node nor the other's relationships;
// the node goes when no scope claims it any more.
func TestSharedNodeSurvivesOtherScopesSweep(t *testing.T) {
	s := newTestSink(t, testConfig(t))
	px := randHex(3) + "-"
	fileF := &fixture{t: t, s: s, scope: testScope(t, s), px: px}
	cmF := &fixture{t: t, s: s, scope: testScope(t, s), px: px}
	// File scope: ns, svc and an edge svc->db (its own). Tags far apart
	// on purpose: scopes' tags are not comparable.
	fileF.write(fileF.sync(5_000, []schemas.Node{fileF.svc("svc", 1), fileF.svc("db", 1)},
		[]schemas.Relationship{fileF.dep("svc", "db")}, 10, true)...)
	// Cloud Map scope writes the same svc later, with an edge of its own.
	now := time.Now().UnixMilli()
	// Filler nodes keep each sweep under the share guard.
	var filler []schemas.Node
	for _, n := range []string{"f1", "f2", "f3", "f4", "f5", "f6"} {
		filler = append(filler, cmF.svc(n, 1))
	}
	cm := func(n ...schemas.Node) []schemas.Node { return append(n, filler...) }
	cmF.write(cmF.sync(now, cm(cmF.svc("svc", 2), cmF.svc("api", 2)),
		[]schemas.Relationship{cmF.dep("api", "svc")}, 10, true)...)
	// Cloud Map drops svc (and the edge to it): its sweep must keep svc
	// (the file scope still claims it) and the file scope's svc->db.
	cmF.write(cmF.sync(now+1, cm(cmF.svc("api", 3)), nil, 10, true)...)
	if n := nodeCount(t, s, tSvc, px+"svc"); n != 1 {
		t.Fatalf("Cloud Map's sweep deleted the file scope's node (%d left)", n)
	}
	if n := relCount(t, s, px+"svc", px+"db"); n != 1 {
		t.Fatalf("Cloud Map's sweep deleted the file scope's relationship (%d left)", n)
	}
	if n := relCount(t, s, px+"api", px+"svc"); n != 0 {
		t.Fatalf("Cloud Map's own stale edge kept (%d)", n)
	}
	// The file scope syncs again with a lower tag than Cloud Map's: it can
	// still update its node.
	fileF.write(fileF.sync(6_000, []schemas.Node{fileF.svc("svc", 7), fileF.svc("db", 7), fileF.svc("db2", 7), fileF.svc("db3", 7)},
		[]schemas.Relationship{fileF.dep("svc", "db")}, 10, true)...)
	if v := nodeVersion(t, s, tSvc, px+"svc"); v != 7 {
		t.Fatalf("file scope's update of the shared node lost: version %d", v)
	}
	// Both claim svc; the file scope drops it: still claimed by nobody
	// else now (Cloud Map released it), so it goes.
	cmF.write(cmF.sync(now+2, cm(cmF.svc("svc", 4), cmF.svc("api", 4)), nil, 10, true)...)
	fileF.write(fileF.sync(7_000, []schemas.Node{fileF.svc("db", 8), fileF.svc("db2", 8), fileF.svc("db3", 8)}, nil, 10, true)...)
	if n := nodeCount(t, s, tSvc, px+"svc"); n != 1 {
		t.Fatalf("file sweep deleted svc still claimed by Cloud Map (%d left)", n)
	}
	cmF.write(cmF.sync(now+3, cm(cmF.svc("api", 5)), nil, 10, true)...)
	if n := nodeCount(t, s, tSvc, px+"svc"); n != 0 {
		t.Fatalf("svc claimed by no scope was kept (%d)", n)
	}
	for _, y := range []SyncStatus{cmF.syncStatus(now + 1), fileF.syncStatus(7_000), cmF.syncStatus(now + 3)} {
		if y.Status != statusSwept {
			t.Fatalf("sync %d: %+v, want swept", y.Tag, y)
		}
	}
}

func nodeCount(t *testing.T, s *Sink, label, key string) int64 {
	t.Helper()
	res, err := neo4j.ExecuteQuery(context.Background(), s.Driver(), "MATCH (n:`"+label+"` {id: $k}) RETURN count(n) AS n",
		map[string]any{"k": key}, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatal(err)
	}
	return asInt(res.Records[0], "n")
}

func nodeVersion(t *testing.T, s *Sink, label, key string) int64 {
	t.Helper()
	res, err := neo4j.ExecuteQuery(context.Background(), s.Driver(), "MATCH (n:`"+label+"` {id: $k}) RETURN n.version AS n",
		map[string]any{"k": key}, neo4j.EagerResultTransformer)
	if err != nil || len(res.Records) == 0 {
		t.Fatalf("%v %v", res, err)
	}
	return asInt(res.Records[0], "n")
}

func relCount(t *testing.T, s *Sink, from, to string) int64 {
	t.Helper()
	res, err := neo4j.ExecuteQuery(context.Background(), s.Driver(), "MATCH (:`"+tSvc+"` {id: $a})-[r:SL_TEST_DEPENDS_ON]->(:`"+tSvc+"` {id: $b}) RETURN count(r) AS n",
		map[string]any{"a": from, "b": to}, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatal(err)
	}
	return asInt(res.Records[0], "n")
}

// The graph sink connects with bolt+s:// to a Neo4j that requires TLS,
// trusting the local CA through graph.ca_file, and applies a sync; without
// the CA the connection fails on the certificate; a CA file with a plain
// bolt:// URI is a configuration error naming the key.
func TestNeo4jOverTLSWithCAFile(t *testing.T) {
	info, ca := testsvc.Neo4jTLS(t)
	cfg := DefaultConfig()
	cfg.URI, cfg.Username, cfg.Password, cfg.CAFile = info.URI, info.User, info.Password, ca
	s := newTestSink(t, cfg)
	f := &fixture{t: t, s: s, scope: testScope(t, s), px: randHex(3) + "-"}
	f.write(f.sync(1000, []schemas.Node{f.svc("a", 1), f.svc("b", 1)}, []schemas.Relationship{f.dep("a", "b")}, 10, true)...)
	f.check(f.picture(), f.want(map[string]string{"a": "1", "b": "1"}, "a->b"))

	noCA := cfg
	noCA.CAFile = ""
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s2, err := New(ctx, noCA); err == nil {
		_ = s2.Close(ctx)
		t.Fatal("connected over bolt+s without trusting the local CA")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v, want a certificate error", err)
	}
	plain := cfg
	plain.URI = strings.Replace(cfg.URI, "bolt+s://", "bolt://", 1)
	if err := plain.Validate(); err == nil || !strings.Contains(err.Error(), "graph.ca_file") {
		t.Fatalf("ca_file with bolt://: %v", err)
	}
}

// Every sweep decision becomes an event on the events stream
// (sightline.events.log.graph_sweep) carrying the sync's correlation ID:
// here a swept and a refused one.
func TestSweepDecisionEvents(t *testing.T) {
	var evs []*stage.Message
	f := newFixture(t, WithSweepReporter(func(_ context.Context, r SweepReport) { evs = append(evs, SweepEvent(r, time.Now())) }))
	var nodes []schemas.Node
	for _, n := range []string{"a", "b", "c", "d"} {
		nodes = append(nodes, f.svc(n, 1))
	}
	f.write(f.sync(1000, nodes, nil, 10, true)...)
	f.write(f.sync(2000, nodes[:3], nil, 10, true)...)
	f.write(f.sync(3000, nodes[:1], nil, 10, true)...)
	if len(evs) != 3 {
		t.Fatalf("%d decision events, want 3", len(evs))
	}
	for i, want := range []string{statusEmpty, statusSwept, statusRefused} {
		m := evs[i]
		var ev schemas.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		_ = json.Unmarshal(ev.Data, &d)
		tag := []int64{1000, 2000, 3000}[i]
		if m.Subject != "sightline.events.log.graph_sweep" || ev.Type != SweepEventType || d["result"] != want ||
			ev.CorrelationID != fmt.Sprintf("corr-%s:%d:0", f.scope, tag) || m.Header.Get(stage.HeaderCorrelationID) != ev.CorrelationID {
			t.Fatalf("event %d: subject %s type %s cid %s data %v, want result %s", i, m.Subject, ev.Type, ev.CorrelationID, d, want)
		}
	}
}

// A sync left open (final marker never sent) longer than
// graph.open_sync_max_age is listed, logged once, and counted in the
// metrics the alert rule in deploy/prometheus/alerts.yml reads.
func TestOpenSyncOverAge(t *testing.T) {
	var logs testutil.SyncBuffer
	cfg := testConfig(t)
	cfg.OpenSyncMaxAge = time.Second
	s := newTestSink(t, cfg, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	f := &fixture{t: t, s: s, scope: testScope(t, s), px: randHex(3) + "-"}
	f.write(f.sync(1000, []schemas.Node{f.svc("a", 1)}, nil, 10, false)...)
	time.Sleep(1100 * time.Millisecond)
	find := func() *OpenSync {
		list, err := s.CheckOpenSyncs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for i := range list {
			if list[i].Scope == f.scope {
				return &list[i]
			}
		}
		return nil
	}
	o := find()
	if o == nil || o.Tag != 1000 || o.Age < time.Second || o.Expected != -1 {
		t.Fatalf("open sync not reported: %+v", o)
	}
	_ = find()
	if n := strings.Count(logs.String(), `"scope":"`+f.scope+`"`); n != 1 {
		t.Fatalf("open sync logged %d times, want once: %s", n, logs.String())
	}
	if v := gauge(s.m.openOver); v < 1 {
		t.Fatalf("sightline_graph_open_syncs_over_age = %v", v)
	}
	if v := gauge(s.m.oldestOpen); v < 1 {
		t.Fatalf("sightline_graph_oldest_open_sync_seconds = %v", v)
	}
	// Completing it takes it off the list.
	f.write(syncPart(t, schemas.SnapshotData{Scope: f.scope, Tag: 1000, Part: 1, Final: true, Count: 1}))
	if o := find(); o != nil {
		t.Fatalf("completed sync still listed: %+v", o)
	}
}

func gauge(g prometheus.Gauge) float64 {
	var m dto.Metric
	_ = g.Write(&m)
	return m.GetGauge().GetValue()
}

// foreign runs a Cypher statement as another tool writing to the same
// Neo4j would (not through the sink), with the test's keys.
func foreign(t *testing.T, s *Sink, q string, params map[string]any) {
	t.Helper()
	if _, err := neo4j.ExecuteQuery(context.Background(), s.Driver(), q, params, neo4j.EagerResultTransformer); err != nil {
		t.Fatalf("foreign write: %v", err)
	}
}

// foreignState reads a node another tool wrote: whether it exists, its
// own property owner, whether it carries Sightline's marker, and its
// relationship of type SL_TEST_DEPENDS_ON to key `to` (owner, marker).
func foreignState(t *testing.T, s *Sink, key, to string) string {
	t.Helper()
	res, err := neo4j.ExecuteQuery(context.Background(), s.Driver(), "OPTIONAL MATCH (n:`"+tSvc+"` {id: $k}) "+
		"OPTIONAL MATCH (n)-[r:SL_TEST_DEPENDS_ON]->(:`"+tSvc+"` {id: $to}) "+
		"RETURN n IS NOT NULL AS node, n.owner AS owner, n.version AS version, n:SightlineNode OR n.syncscope IS NOT NULL AS marked, "+
		"r IS NOT NULL AS rel, r.owner AS rowner, r.syncscope IS NOT NULL AS rmarked",
		map[string]any{"k": key, "to": to}, neo4j.EagerResultTransformer)
	if err != nil || len(res.Records) != 1 {
		t.Fatalf("%v %v", res, err)
	}
	m := res.Records[0].AsMap()
	return fmt.Sprintf("node=%v owner=%v version=%v marked=%v rel=%v rowner=%v rmarked=%v",
		m["node"], m["owner"], m["version"], m["marked"], m["rel"], m["rowner"], m["rmarked"])
}

// A scope writer (any ingest token, a host collector's credential) names a
// node and a relationship another tool created in the same Neo4j, then
// drops them from its next sync. Before, the first sync took the node over
// (Sightline's label and claim, its properties replaced) and the second
// swept it with its relationship. Now what exists without Sightline's
// marker is never claimed, changed or swept: both survive as the other tool
// wrote them; the scope's own relationship to that node comes and goes.
func TestForeignNodeNeverTakenOver(t *testing.T) {
	f := newFixture(t)
	cmdb, cmdb2 := f.px+"cmdb", f.px+"cmdb2"
	foreign(t, f.s, "CREATE (a:`"+tSvc+"` {id: $a, owner: 'cmdb'})-[:SL_TEST_DEPENDS_ON {owner: 'cmdb'}]->(:`"+tSvc+"` {id: $b, owner: 'cmdb'})",
		map[string]any{"a": cmdb, "b": cmdb2})
	t.Cleanup(func() {
		foreign(t, f.s, "MATCH (n:`"+tSvc+"`) WHERE n.id IN [$a, $b] DETACH DELETE n", map[string]any{"a": cmdb, "b": cmdb2})
	})
	const intact = "node=true owner=cmdb version=<nil> marked=false rel=true rowner=cmdb rmarked=false"
	var own []schemas.Node
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		own = append(own, f.svc(n, 1))
	}
	// Sync 1 names the foreign node and the foreign relationship (and a
	// relationship of its own to the foreign node).
	f.write(f.sync(1000, append(own, f.svc("cmdb", 1)), []schemas.Relationship{f.dep("cmdb", "cmdb2"), f.dep("a", "cmdb")}, 10, true)...)
	if got := foreignState(t, f.s, cmdb, cmdb2); got != intact {
		t.Fatalf("after naming them: %s\nwant %s", got, intact)
	}
	if n := relCount(t, f.s, f.px+"a", cmdb); n != 1 {
		t.Fatalf("the scope's own relationship to the foreign node: %d", n)
	}
	// Sync 2 drops them.
	f.write(f.sync(2000, own, nil, 10, true)...)
	if y := f.syncStatus(2000); y.Status != statusSwept {
		t.Fatalf("sync 2000: %+v, want swept (its own relationship)", y)
	}
	if got := foreignState(t, f.s, cmdb, cmdb2); got != intact {
		t.Fatalf("after dropping them: %s\nwant %s", got, intact)
	}
	if n := relCount(t, f.s, f.px+"a", cmdb); n != 0 {
		t.Fatalf("the scope's own stale relationship to the foreign node kept: %d", n)
	}
	// An operator's forced sweep of the scope does not reach them either.
	f.write(f.sync(3000, nil, nil, 10, true)...)
	if _, err := f.s.Sweep(context.Background(), f.scope, SweepOptions{Force: true, Operator: "test"}); err != nil {
		t.Fatal(err)
	}
	if got := foreignState(t, f.s, cmdb, cmdb2); got != intact {
		t.Fatalf("after a forced sweep: %s\nwant %s", got, intact)
	}
}

// The same for a relationship another tool created between two nodes
// Sightline wrote: a scope naming it neither claims nor changes it, and
// dropping it deletes nothing.
func TestForeignRelationshipNeverTakenOver(t *testing.T) {
	f := newFixture(t)
	var own []schemas.Node
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		own = append(own, f.svc(n, 1))
	}
	f.write(f.sync(1000, own, nil, 10, true)...)
	foreign(t, f.s, "MATCH (a:`"+tSvc+"` {id: $a}), (b:`"+tSvc+"` {id: $b}) CREATE (a)-[:SL_TEST_DEPENDS_ON {owner: 'cmdb'}]->(b)",
		map[string]any{"a": f.px + "a", "b": f.px + "b"})
	rel := func() string {
		t.Helper()
		res, err := neo4j.ExecuteQuery(context.Background(), f.s.Driver(), "MATCH (:`"+tSvc+"` {id: $a})-[r:SL_TEST_DEPENDS_ON]->(:`"+tSvc+"` {id: $b}) "+
			"RETURN collect(coalesce(r.owner, '') + '/' + coalesce(r.syncscope, '')) AS r",
			map[string]any{"a": f.px + "a", "b": f.px + "b"}, neo4j.EagerResultTransformer)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(res.Records[0].AsMap()["r"])
	}
	f.write(f.sync(2000, own, []schemas.Relationship{f.dep("a", "b")}, 10, true)...)
	if got := rel(); got != "[cmdb/]" {
		t.Fatalf("after naming it: %s, want the other tool's relationship untouched", got)
	}
	f.write(f.sync(3000, own, nil, 10, true)...)
	if got := rel(); got != "[cmdb/]" {
		t.Fatalf("after dropping it: %s, want the other tool's relationship untouched", got)
	}
}

// A sweep interrupted by a crash between two of its delete transactions is
// resumed by the redelivered final part in a new process; its decision
// event, the sync's record (`sightline graph status`) and an operator's
// `sightline graph sweep` report what the sweep deleted in total, both
// runs, not only after the restart.
func TestResumedSweepReportsTotal(t *testing.T) {
	cfg := testConfig(t)
	cfg.SweepBatch = 4 // nodes go 2 per transaction
	crashed := errors.New("crash between two sweep transactions")
	first := newTestSink(t, cfg)
	batches := 0
	first.afterSweepBatch = func() error {
		if batches++; batches == 1 {
			return crashed
		}
		return nil
	}
	f := &fixture{t: t, s: first, scope: testScope(t, first), px: randHex(3) + "-"}
	var nodes []schemas.Node
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		nodes = append(nodes, f.svc(n, 1))
	}
	f.write(f.sync(1000, nodes, nil, 10, true)...)
	final := f.sync(2000, nodes[:6], nil, 10, true)
	if err := first.Write(context.Background(), final); !errors.Is(stage.Outcomes(err, len(final)).Cause, crashed) {
		t.Fatalf("first run: %v, want the crash", err)
	}
	if y := f.syncStatus(2000); y.Status != statusSweeping || y.Deleted != 2 {
		t.Fatalf("after the crash: %+v, want sweeping with 2 deleted", y)
	}
	if got := len(f.picture().Nodes); got != 8 {
		t.Fatalf("after the crash: %d nodes, want 8 (one batch of 2 deleted)", got)
	}
	var out bytes.Buffer
	st, _ := first.Status(context.Background(), f.scope)
	_ = PrintStatus(&out, st)
	if !strings.Contains(out.String(), "parts 1, items 6/6, deleted 2 so far") {
		t.Fatalf("graph status after the crash prints:\n%s", out.String())
	}

	// The restarted sink gets the final part again (JetStream redelivers
	// what was not acknowledged).
	var reps []SweepReport
	second := newTestSink(t, cfg, WithSweepReporter(func(_ context.Context, r SweepReport) { reps = append(reps, r) }))
	f.s = second
	f.write(final...)
	if len(reps) != 1 || reps[0].Result != statusSwept || reps[0].DeletedNodes != 4 || reps[0].StaleNodes != 4 || reps[0].TotalNodes != 10 {
		t.Fatalf("resumed sweep reported %+v, want swept, 4 of 10 nodes stale and deleted", reps)
	}
	var ev schemas.Event
	if err := json.Unmarshal(SweepEvent(reps[0], time.Now()).Data, &ev); err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	_ = json.Unmarshal(ev.Data, &d)
	if d["deleted_nodes"] != float64(4) || d["stale_nodes"] != float64(4) {
		t.Fatalf("decision event: %v", d)
	}
	f.check(f.picture(), f.want(map[string]string{"a": "1", "b": "1", "c": "1", "d": "1", "e": "1", "f": "1"}))
	if y := f.syncStatus(2000); y.Status != statusSwept || y.Deleted != 4 {
		t.Fatalf("graph status after the resumed sweep: %+v, want swept 4", y)
	}
	out.Reset()
	st, _ = second.Status(context.Background(), f.scope)
	_ = PrintStatus(&out, st)
	if !strings.Contains(out.String(), "swept 4") {
		t.Fatalf("graph status prints:\n%s\nwant swept 4", out.String())
	}

	// The same through an operator's `sightline graph sweep`, resuming a
	// second crashed sweep.
	batches = 0
	f.s = first
	third := f.sync(3000, nodes[:2], nil, 10, true) // 4 of 6 would be refused: force it
	f.write(third...)
	rep, err := first.Sweep(context.Background(), f.scope, SweepOptions{Force: true, Operator: "test"})
	if !errors.Is(err, crashed) {
		t.Fatalf("forced sweep: %+v %v, want the crash", rep, err)
	}
	rep, err = second.Sweep(context.Background(), f.scope, SweepOptions{})
	if err != nil || rep.Result != statusSwept || rep.DeletedNodes != 4 || rep.StaleNodes != 4 {
		t.Fatalf("resumed operator sweep: %+v %v, want swept 4", rep, err)
	}
	out.Reset()
	PrintReport(&out, rep)
	if !strings.Contains(out.String(), "deleted: 4 nodes") {
		t.Fatalf("graph sweep prints:\n%s", out.String())
	}
}
