package graph

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// fixture builds syncs of one scope with keys unique to the test.
type fixture struct {
	t     *testing.T
	s     *Sink
	scope string
	px    string
}

func newFixture(t *testing.T, opts ...Option) *fixture {
	s := newTestSink(t, testConfig(t), opts...)
	return &fixture{t: t, s: s, scope: testScope(t, s), px: randHex(3) + "-"}
}

func (f *fixture) svc(name string, version int) schemas.Node {
	return schemas.Node{Label: tSvc, Key: f.px + name, Properties: map[string]any{"name": name, "version": version}}
}

func (f *fixture) dep(from, to string) schemas.Relationship {
	return schemas.Relationship{Type: "SL_TEST_DEPENDS_ON",
		From: schemas.NodeRef{Label: tSvc, Key: f.px + from}, To: schemas.NodeRef{Label: tSvc, Key: f.px + to}}
}

// sync splits nodes and relationships into parts of at most per items and
// returns the messages; final=false leaves out the final marker.
func (f *fixture) sync(tag int64, nodes []schemas.Node, rels []schemas.Relationship, per int, final bool) []*stage.Message {
	total := len(nodes) + len(rels)
	var msgs []*stage.Message
	partNo := 0
	for len(nodes) > 0 || len(rels) > 0 || partNo == 0 {
		d := schemas.SnapshotData{Scope: f.scope, Tag: tag, Part: partNo, Source: "test"}
		for len(d.Nodes)+len(d.Relationships) < per && len(nodes) > 0 {
			d.Nodes, nodes = append(d.Nodes, nodes[0]), nodes[1:]
		}
		for len(d.Nodes)+len(d.Relationships) < per && len(rels) > 0 {
			d.Relationships, rels = append(d.Relationships, rels[0]), rels[1:]
		}
		if len(nodes) == 0 && len(rels) == 0 && final {
			d.Final, d.Count = true, total
		}
		msgs = append(msgs, syncPart(f.t, d))
		partNo++
	}
	return msgs
}

func (f *fixture) write(msgs ...*stage.Message) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := f.s.Write(ctx, msgs); err != nil {
		f.t.Fatalf("Write: %v", err)
	}
}

func (f *fixture) picture() world { return picture(f.t, f.s, f.scope) }

func (f *fixture) want(nodes map[string]string, rels ...string) world {
	w := world{Nodes: map[string]string{}}
	for k, v := range nodes {
		w.Nodes[tSvc+":"+f.px+k] = v
	}
	for _, r := range rels {
		from, to, _ := strings.Cut(r, "->")
		w.Rels = append(w.Rels, "SL_TEST_DEPENDS_ON:"+f.px+from+"->"+f.px+to)
	}
	return w
}

func (f *fixture) check(got, want world) {
	f.t.Helper()
	if len(got.Rels) == 0 {
		got.Rels = nil
	}
	if !reflect.DeepEqual(got.Nodes, want.Nodes) || !reflect.DeepEqual(got.Rels, want.Rels) {
		f.t.Fatalf("graph differs\n got %v\nwant %v", got, want)
	}
}

func (f *fixture) syncStatus(tag int64) SyncStatus {
	f.t.Helper()
	st, err := f.s.Status(context.Background(), f.scope)
	if err != nil || len(st) != 1 {
		f.t.Fatalf("status: %v %v", st, err)
	}
	for _, y := range st[0].Syncs {
		if y.Tag == tag {
			return y
		}
	}
	f.t.Fatalf("no sync %d in status %+v", tag, st[0])
	return SyncStatus{}
}

// Create, update and delete across successive syncs; firstseen kept,
// bookkeeping properties on every node and relationship.
func TestSyncCreateUpdateDelete(t *testing.T) {
	f := newFixture(t)
	f.write(f.sync(1000, []schemas.Node{f.svc("a", 1), f.svc("b", 1), f.svc("c", 1)},
		[]schemas.Relationship{f.dep("a", "b"), f.dep("b", "c")}, 2, true)...)
	f.check(f.picture(), f.want(map[string]string{"a": "1", "b": "1", "c": "1"}, "a->b", "b->c"))

	// Sync 2: a updated, c gone, d new, a->b gone, a->d new.
	f.write(f.sync(2000, []schemas.Node{f.svc("a", 2), f.svc("b", 1), f.svc("d", 1)},
		[]schemas.Relationship{f.dep("b", "d"), f.dep("a", "d")}, 2, true)...)
	f.check(f.picture(), f.want(map[string]string{"a": "2", "b": "1", "d": "1"}, "a->d", "b->d"))
	if y := f.syncStatus(2000); y.Status != statusSwept || y.Deleted != 3 {
		t.Fatalf("sync 2000: %+v, want swept with 3 deleted (c, a->b, b->c)", y)
	}

	res, err := neo4j.ExecuteQuery(context.Background(), f.s.Driver(), `
MATCH (n:`+tSvc+` {id: $a}) MATCH (d:`+tSvc+` {id: $d}) MATCH (n)-[r]->(d)
RETURN n.firstseen AS fs, n.lastupdated AS lu, n.syncscope AS sc, n.correlationid AS cid,
       r.firstseen AS rfs, r.syncscope AS rsc, r.correlationid AS rcid`,
		map[string]any{"a": f.px + "a", "d": f.px + "d"}, neo4j.EagerResultTransformer)
	if err != nil || len(res.Records) != 1 {
		t.Fatalf("query: %v %v", res, err)
	}
	m := res.Records[0].AsMap()
	if m["fs"] != int64(1000) || m["lu"] != int64(2000) || m["sc"] != f.scope || m["rfs"] != int64(2000) || m["rsc"] != f.scope {
		t.Fatalf("bookkeeping properties wrong: %v", m)
	}
	if !strings.HasPrefix(m["cid"].(string), "corr-"+f.scope+":2000:") || m["rcid"] == nil {
		t.Fatalf("correlation id not recorded: %v", m)
	}
	st, _ := f.s.Status(context.Background(), f.scope)
	if st[0].LastCompleted != 2000 || st[0].Nodes != 3 || st[0].Relationships != 2 {
		t.Fatalf("status: %+v", st[0])
	}
}

// A sync missing its final marker sweeps nothing.
func TestSyncWithoutFinalSweepsNothing(t *testing.T) {
	f := newFixture(t)
	f.write(f.sync(1000, []schemas.Node{f.svc("a", 1), f.svc("b", 1)}, []schemas.Relationship{f.dep("a", "b")}, 10, true)...)
	f.write(f.sync(2000, []schemas.Node{f.svc("a", 2)}, nil, 10, false)...)
	f.check(f.picture(), f.want(map[string]string{"a": "2", "b": "1"}, "a->b"))
	if y := f.syncStatus(2000); y.Status != statusOpen || y.Final {
		t.Fatalf("sync 2000: %+v, want open without final", y)
	}
	// A final marker with a count that was not reached: still nothing.
	d := schemas.SnapshotData{Scope: f.scope, Tag: 3000, Part: 1, Final: true, Count: 5, Nodes: []schemas.Node{f.svc("a", 3)}}
	f.write(syncPart(t, d))
	f.check(f.picture(), f.want(map[string]string{"a": "3", "b": "1"}, "a->b"))
	if rep, err := f.s.Sweep(context.Background(), f.scope, SweepOptions{}); !errors.Is(err, ErrNothingToSwep) {
		t.Fatalf("manual sweep of incomplete syncs: %+v %v", rep, err)
	}
}

// A late older sync finishing after a newer one changes nothing.
func TestLateOlderSyncChangesNothing(t *testing.T) {
	f := newFixture(t)
	older := f.sync(1000, []schemas.Node{f.svc("a", 1), f.svc("old", 1)}, []schemas.Relationship{f.dep("a", "old")}, 1, true)
	f.write(f.sync(2000, []schemas.Node{f.svc("a", 2), f.svc("b", 2)}, []schemas.Relationship{f.dep("a", "b")}, 10, true)...)
	before := f.picture()
	f.write(older...)
	f.check(f.picture(), before)
	f.check(before, f.want(map[string]string{"a": "2", "b": "2"}, "a->b"))
	if y := f.syncStatus(1000); y.Status != statusSuperseded {
		t.Fatalf("sync 1000: %+v, want superseded", y)
	}
}

// Two overlapping syncs of one scope leave exactly the newer picture,
// whichever completes first.
func TestOverlappingSyncsLeaveNewerPicture(t *testing.T) {
	for _, order := range []string{"newer-completes-first", "older-completes-first"} {
		t.Run(order, func(t *testing.T) {
			f := newFixture(t)
			f.write(f.sync(500, []schemas.Node{f.svc("a", 0), f.svc("gone", 0)}, nil, 10, true)...)
			t1 := f.sync(1000, []schemas.Node{f.svc("a", 1), f.svc("x", 1), f.svc("y", 1)},
				[]schemas.Relationship{f.dep("a", "x"), f.dep("x", "y")}, 1, true)
			t2 := f.sync(2000, []schemas.Node{f.svc("a", 2), f.svc("y", 2), f.svc("z", 2)},
				[]schemas.Relationship{f.dep("a", "z")}, 1, true)
			// Interleave: t1 part 0, t2 parts 0-1, t1 parts 1-2, ...
			var seq []*stage.Message
			if order == "newer-completes-first" {
				seq = append(seq, t1[0], t2[0], t2[1], t1[1], t1[2])
				seq = append(seq, t2[2:]...) // t2 completes
				seq = append(seq, t1[3:]...) // t1's late rest
			} else {
				seq = append(seq, t1[0], t2[0], t1[1], t2[1], t1[2])
				seq = append(seq, t1[3:]...) // t1 completes (and sweeps < 1000)
				seq = append(seq, t2[2:]...)
			}
			for _, m := range seq {
				f.write(m)
			}
			f.check(f.picture(), f.want(map[string]string{"a": "2", "y": "2", "z": "2"}, "a->z"))
		})
	}
}

// Redelivery of every message twice gives the same graph.
func TestRedeliveryTwiceSameGraph(t *testing.T) {
	f := newFixture(t)
	nodes := []schemas.Node{f.svc("a", 1), f.svc("b", 1), f.svc("c", 1)}
	rels := []schemas.Relationship{f.dep("a", "b"), f.dep("b", "c"), f.dep("c", "a")}
	s1 := f.sync(1000, nodes, rels, 2, true)
	s2 := f.sync(2000, nodes[:2], rels[:1], 1, true)
	// Every message twice, the second copy of a part after the later parts.
	for _, batch := range [][]*stage.Message{s1, s1, s2[:2], s2, s2[1:]} {
		f.write(batch...)
	}
	f.check(f.picture(), f.want(map[string]string{"a": "1", "b": "1"}, "a->b"))
	y := f.syncStatus(2000)
	if y.Applied != 3 || y.Expected != 3 || y.Parts != 3 || y.Status != statusSwept {
		t.Fatalf("sync 2000 counted redeliveries: %+v", y)
	}
}

// Injection attempts in labels, types, property names and keys are rejected
// permanently, exactly at their index, and change nothing.
func TestInjectionRejected(t *testing.T) {
	f := newFixture(t)
	bad := []schemas.SnapshotData{
		{Nodes: []schemas.Node{{Label: "X`) DETACH DELETE n //", Key: "k"}}},
		{Nodes: []schemas.Node{{Label: tSvc, Labels: []string{"A:B"}, Key: "k"}}},
		{Nodes: []schemas.Node{{Label: tSvc, Key: "k", Properties: map[string]any{"a` = 1 //": 1}}}},
		{Nodes: []schemas.Node{{Label: tSvc, Key: "k", Properties: map[string]any{"lastupdated": 1}}}},
		{Nodes: []schemas.Node{{Label: tSvc, Key: strings.Repeat("k", 2000)}}},
		{Nodes: []schemas.Node{{Label: tSvc, Key: ""}}},
		{Nodes: []schemas.Node{{Label: "SightlineSync", Key: "k"}}},
		{Nodes: []schemas.Node{{Label: tSvc, Key: "k", Properties: map[string]any{"nested": map[string]any{"a": 1}}}}},
		{Relationships: []schemas.Relationship{{Type: "R]->() DELETE x", From: schemas.NodeRef{Label: tSvc, Key: "a"}, To: schemas.NodeRef{Label: tSvc, Key: "b"}}}},
		{Relationships: []schemas.Relationship{{Type: "R", From: schemas.NodeRef{Label: "L{id:1}", Key: "a"}, To: schemas.NodeRef{Label: tSvc, Key: "b"}}}},
	}
	good := schemas.SnapshotData{Scope: f.scope, Tag: 1000, Part: 99, Nodes: []schemas.Node{f.svc("ok", 1)}}
	batch := []*stage.Message{syncPart(t, good)}
	for i, d := range bad {
		d.Scope, d.Tag, d.Part = f.scope, 1000, i
		batch = append(batch, syncPart(t, d))
	}
	batch = append(batch, &stage.Message{Subject: "sightline.events.snapshot.graph", Header: stage.Header{}, Data: []byte(`{not json`)})
	err := f.s.Write(context.Background(), batch)
	var be *stage.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("Write: %v, want *stage.BatchError", err)
	}
	if len(be.Failed) != len(batch)-1 {
		t.Fatalf("failed %d of %d: %v", len(be.Failed), len(batch), be.Failed)
	}
	for i := 1; i < len(batch); i++ {
		if e := be.Failed[i]; e == nil || !stage.IsPermanent(e) {
			t.Fatalf("message %d: %v, want permanent", i, e)
		}
	}
	f.check(f.picture(), f.want(map[string]string{"ok": "1"}))
}

// The share guard refuses a sweep that would delete most of the scope,
// records it, and --force (Sweep with Force) goes through.
func TestShareGuard(t *testing.T) {
	var reports []SweepReport
	f := newFixture(t, WithSweepReporter(func(_ context.Context, r SweepReport) { reports = append(reports, r) }))
	var nodes []schemas.Node
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		nodes = append(nodes, f.svc(n, 1))
	}
	f.write(f.sync(1000, nodes, nil, 10, true)...)
	f.write(f.sync(2000, nodes[:2], nil, 10, true)...) // would delete 4 of 6
	f.check(f.picture(), f.want(map[string]string{"a": "1", "b": "1", "c": "1", "d": "1", "e": "1", "f": "1"}))
	y := f.syncStatus(2000)
	if y.Status != statusRefused || !strings.Contains(y.Reason, "sweep_max_share") {
		t.Fatalf("sync 2000: %+v, want refused", y)
	}
	if last := reports[len(reports)-1]; last.Result != statusRefused || last.StaleNodes != 4 {
		t.Fatalf("report: %+v", last)
	}
	dry, err := f.s.Sweep(context.Background(), f.scope, SweepOptions{DryRun: true})
	if err != nil || dry.Result != "dry-run" || dry.StaleNodes != 4 || !strings.Contains(dry.Reason, "refused") || dry.StaleByLabel[tSvc] != 4 || len(dry.Sample) != 4 {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	rep, err := f.s.Sweep(context.Background(), f.scope, SweepOptions{Force: true})
	if err != nil || rep.Result != statusSwept || rep.DeletedNodes != 4 {
		t.Fatalf("forced sweep: %+v %v", rep, err)
	}
	f.check(f.picture(), f.want(map[string]string{"a": "1", "b": "1"}))
	// A snapshot marked force no longer sweeps past the guard by itself
	// (TestProducerForceIgnored): forcing is the operator's call.
	d := schemas.SnapshotData{Scope: f.scope, Tag: 3000, Final: true, Count: 1, Force: true,
		Nodes: []schemas.Node{f.svc("z", 3)}}
	f.write(syncPart(t, d))
	f.check(f.picture(), f.want(map[string]string{"a": "1", "b": "1", "z": "3"}))
	if y := f.syncStatus(3000); y.Status != statusRefused {
		t.Fatalf("sync 3000 marked force: %+v, want refused", y)
	}
}

// Neo4j unreachable mid-sync: writes fail transiently (the router would
// nak), succeed once it is back, and the sync completes with nothing lost.
func TestNeo4jOutageMidSync(t *testing.T) {
	cfg := testConfig(t)
	target := strings.TrimPrefix(strings.TrimPrefix(cfg.URI, "bolt://"), "neo4j://")
	proxy := newProxy(t, target)
	cfg.URI = "bolt://" + proxy.Addr()
	cfg.RetryTime = 2 * time.Second
	s := newTestSink(t, cfg)
	f := &fixture{t: t, s: s, scope: testScope(t, s), px: randHex(3) + "-"}
	f.write(f.sync(1000, []schemas.Node{f.svc("old", 1)}, nil, 10, true)...)

	var nodes []schemas.Node
	var rels []schemas.Relationship
	want := map[string]string{}
	for i := range 200 {
		name := fmt.Sprintf("n%03d", i)
		nodes = append(nodes, f.svc(name, 2))
		want[name] = "2"
		if i > 0 {
			rels = append(rels, f.dep(name, "n000"))
		}
	}
	msgs := f.sync(2000, nodes, rels, 40, true)
	f.write(msgs[:3]...)
	proxy.Cut()
	// Restore a second after the first failed Write (under load a Write
	// can outlast a fixed outage), or after 60s at worst.
	restored := make(chan struct{})
	failed := make(chan struct{})
	go func() {
		select {
		case <-failed:
			time.Sleep(time.Second)
		case <-time.After(60 * time.Second):
		}
		proxy.Restore()
		close(restored)
	}()

	// What the router does: redeliver what failed until it is stored.
	pending := msgs[3:]
	sawFailure := false
	deadline := time.Now().Add(90 * time.Second)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sync did not complete after Neo4j came back; %d parts pending", len(pending))
		}
		err := s.Write(context.Background(), pending)
		if err == nil {
			pending = nil
			break
		}
		if !sawFailure {
			close(failed)
		}
		sawFailure = true
		var be *stage.BatchError
		if errors.As(err, &be) {
			var again []*stage.Message
			for i, m := range pending {
				if e, ok := be.Failed[i]; ok {
					if stage.IsPermanent(e) {
						t.Fatalf("part %d failed permanently during the outage: %v", i, e)
					}
					again = append(again, m)
				}
			}
			pending = again
		} else if stage.IsPermanent(err) {
			t.Fatalf("permanent error during the outage: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	<-restored
	if !sawFailure {
		t.Fatalf("no write failed while the proxy was cut: the outage was not exercised")
	}
	got := f.picture()
	if len(got.Nodes) != 200 || len(got.Rels) != 199 {
		t.Fatalf("after outage: %d nodes, %d rels, want 200 and 199", len(got.Nodes), len(got.Rels))
	}
	f.check(got, world{Nodes: f.want(want).Nodes, Rels: got.Rels})
	if y := f.syncStatus(2000); y.Status != statusSwept || y.Applied != 399 {
		t.Fatalf("sync 2000 after outage: %+v", y)
	}
}
