package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/sinks/graph"
)

// TestAttackGraphScopeFreeze: a scope writer tags a sync now + 23 h (the
// old 24 h skew took it), which made every real sync "superseded" for a
// day, renewably, with `graph status` silent and `scope reset` finding
// nothing. Against `sightline run` with the graph sink on the real Neo4j:
// that tag is now a dead letter (skew limits.GraphMaxTagSkew, minutes), a
// tag inside the skew shows as frozen in `sightline graph status` (a real
// process) and `sightline graph scope reset --yes` releases the scope so
// the next real sync completes.
// graphAttack is `sightline run` with the graph sink on the real Neo4j, a
// fresh scope, and the ways to post its syncs and wait for their fate.
type graphAttack struct {
	ctx       context.Context
	scope     string
	natsAddr  string
	graphSets []string
	sink      *graph.Sink
	post      func(tag int64, n int)
	postData  func(data string) string // one snapshot event's data, as JSON; returns its correlation ID
	waitSync  func(tag int64, statuses ...string)
}

// graphSink opens the graph sink on the test Neo4j; it deletes scope and
// closes when the test ends.
func graphSink(t *testing.T, ctx context.Context, info testsvc.Neo4jInfo, scope string) *graph.Sink {
	t.Helper()
	cfg := graph.DefaultConfig()
	cfg.URI, cfg.Username, cfg.Password = info.URI, info.User, info.Password
	sink, err := graph.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sink.DeleteScope(context.Background(), scope)
		_ = sink.Close(context.Background())
	})
	return sink
}

func startGraphAttack(t *testing.T, prefix string) *graphAttack {
	t.Helper()
	info := testsvc.Neo4j(t)
	dir := t.TempDir()
	natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	base := "http://" + httpAddr
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	scope := prefix + hex.EncodeToString(b)
	t.Setenv("SIGHTLINE_GRAPH_PASSWORD", info.Password)
	graphSets := []string{"--set", "graph.enabled=true", "--set", "graph.uri=" + info.URI, "--set", "graph.username=" + info.User}
	ctx, stop := runInProcess(t, append(embeddedSets(dir, natsAddr, httpAddr), graphSets...))
	t.Cleanup(func() { _ = stop() })
	waitHTTP(t, base+"/readyz", 200, 90*time.Second)

	sink := graphSink(t, ctx, info, scope)
	postData := func(data string) string {
		t.Helper()
		resp, err := http.Post(base+"/v1/events", "application/json", strings.NewReader(`{"type":"snapshot.x","data":`+data+`}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			CorrelationID string `json:"correlationid"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: HTTP %d", data, resp.StatusCode)
		}
		return out.CorrelationID
	}
	post := func(tag int64, n int) {
		t.Helper()
		var nodes []string
		for i := range n {
			nodes = append(nodes, fmt.Sprintf(`{"label":"SlTestService","key":"%s/n%d"}`, scope, i))
		}
		postData(fmt.Sprintf(`{"scope":%q,"tag":%d,"final":true,"count":%d,"nodes":[%s]}`,
			scope, tag, n, strings.Join(nodes, ",")))
	}
	waitSync := func(tag int64, statuses ...string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			st, _ := sink.Status(ctx, scope)
			for _, s := range st {
				for _, y := range s.Syncs {
					for _, want := range statuses {
						if y.Tag == tag && y.Status == want {
							return
						}
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		st, _ := sink.Status(ctx, scope)
		t.Fatalf("sync %d not %v within 60s: %+v", tag, statuses, st)
	}
	return &graphAttack{ctx: ctx, scope: scope, natsAddr: natsAddr, graphSets: graphSets, sink: sink, post: post,
		postData: postData, waitSync: waitSync}
}

func TestAttackGraphScopeFreeze(t *testing.T) {
	g := startGraphAttack(t, "test:freeze:")
	ctx, scope, natsAddr, graphSets, sink, post, waitSync := g.ctx, g.scope, g.natsAddr, g.graphSets, g.sink, g.post, g.waitSync
	now := time.Now().UnixMilli()
	post(now-5000, 3)
	waitSync(now-5000, "nothing", "swept")

	// A day ahead: refused, the scope untouched.
	day := time.Now().Add(23 * time.Hour).UnixMilli()
	post(day, 3)
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if dl := findMsg(t, js, "SIGHTLINE_DLQ", ">", "graph.max_tag_skew"); !strings.Contains(string(dl), fmt.Sprint(day)) {
		t.Fatalf("the day-ahead part is not a future_tag dead letter: %s", dl)
	}
	if st, _ := sink.Status(ctx, scope); st[0].LastCompleted != now-5000 {
		t.Fatalf("the day-ahead part completed: %+v", st[0])
	}

	// Inside the skew: accepted, but visible and resettable.
	ahead := time.Now().Add(limits.GraphMaxTagSkew / 2).UnixMilli()
	post(ahead, 3)
	waitSync(ahead, "nothing", "swept")
	real := time.Now().UnixMilli()
	post(real, 2)
	waitSync(real, "superseded")
	out, err := sightlineOut(t, append([]string{"graph", "status", scope}, graphSets...)...)
	if err != nil || !strings.Contains(out, "frozen") {
		t.Fatalf("graph status does not show the frozen scope (err %v):\n%s", err, out)
	}
	out, err = sightlineOut(t, append([]string{"graph", "scope", "reset", "--yes", scope}, graphSets...)...)
	if err != nil || strings.Contains(out, "nothing to reset") {
		t.Fatalf("scope reset (err %v):\n%s", err, out)
	}
	if st, _ := sink.Status(ctx, scope); st[0].Frozen || st[0].LastCompleted >= ahead {
		t.Fatalf("after the reset: %+v", st[0])
	}
	again := time.Now().UnixMilli()
	post(again, 2)
	waitSync(again, "swept", "nothing")
}

// TestAttackGraphShareGuardWornDown: unforced syncs of 5, 3, 2 and 1 nodes
// took a scope of 8 nodes to 1 in seconds, each step under the 50 % share
// guard. The guard now bounds what a scope loses over a window
// (limits.GraphSweepWindow), tracked on the scope's node in Neo4j: the
// step that would take the loss past half of what the scope held when the
// window began is refused, with a reason naming the window.
func TestAttackGraphShareGuardWornDown(t *testing.T) {
	g := startGraphAttack(t, "test:wear:")
	tag := time.Now().UnixMilli() - 60000
	g.post(tag, 8)
	g.waitSync(tag, "nothing", "swept")
	tag++
	g.post(tag, 5) // 3 of 8 gone: 37.5 %
	g.waitSync(tag, "swept")
	tag++
	g.post(tag, 3) // 2 more of 5 (40 %), but 5 of 8 in the window (62.5 %)
	g.waitSync(tag, "refused")
	st, err := g.sink.Status(g.ctx, g.scope)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Nodes != 5 {
		t.Fatalf("the scope holds %d nodes, want 5: %+v", st[0].Nodes, st[0])
	}
	var reason string
	for _, y := range st[0].Syncs {
		if y.Tag == tag {
			reason = y.Reason
		}
	}
	if !strings.Contains(reason, "graph.sweep_max_share") || !strings.Contains(reason, "since") {
		t.Fatalf("refusal reason does not name the window: %q", reason)
	}
}

// TestAttackGraphForeignNodeTakeover: a scope writer named a node and a
// relationship another tool had created in the same Neo4j, then dropped
// them from its next sync; the first sync took the node over (Sightline's
// label and claim, its properties replaced) and the sweep deleted it with
// its relationship. Against `sightline run` on the real Neo4j: both are
// left exactly as the other tool wrote them.
func TestAttackGraphForeignNodeTakeover(t *testing.T) {
	g := startGraphAttack(t, "test:foreign:")
	key := func(n string) string { return g.scope + "/" + n }
	d := g.sink.Driver()
	cypher := func(q string) *neo4j.EagerResult {
		t.Helper()
		res, err := neo4j.ExecuteQuery(g.ctx, d, q, map[string]any{"a": key("cmdb"), "b": key("cmdb2")}, neo4j.EagerResultTransformer)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	cypher("CREATE (:SlTestService {id: $a, owner: 'cmdb'})-[:SL_TEST_DEPENDS_ON {owner: 'cmdb'}]->(:SlTestService {id: $b, owner: 'cmdb'})")
	t.Cleanup(func() { cypher("MATCH (n:SlTestService) WHERE n.id IN [$a, $b] DETACH DELETE n") })
	state := func() string {
		t.Helper()
		res := cypher(`OPTIONAL MATCH (n:SlTestService {id: $a}) OPTIONAL MATCH (n)-[r:SL_TEST_DEPENDS_ON]->(:SlTestService {id: $b})
RETURN n.owner AS owner, n.name AS name, n.syncscope AS scope, r.owner AS rowner, r.syncscope AS rscope`)
		return fmt.Sprint(res.Records[0].Values)
	}
	const intact = "[cmdb <nil> <nil> cmdb <nil>]"
	var own []string
	for i := range 6 {
		own = append(own, fmt.Sprintf(`{"label":"SlTestService","key":%q}`, key(fmt.Sprint("n", i))))
	}
	tag := time.Now().UnixMilli() - 60000
	g.postData(fmt.Sprintf(`{"scope":%q,"tag":%d,"final":true,"count":8,"nodes":[%s,{"label":"SlTestService","key":%q,"properties":{"name":"taken"}}],
"relationships":[{"type":"SL_TEST_DEPENDS_ON","from":{"label":"SlTestService","key":%q},"to":{"label":"SlTestService","key":%q}}]}`,
		g.scope, tag, strings.Join(own, ","), key("cmdb"), key("cmdb"), key("cmdb2")))
	g.waitSync(tag, "nothing", "swept")
	if got := state(); got != intact {
		t.Fatalf("after the scope named them: %s, want %s", got, intact)
	}
	g.postData(fmt.Sprintf(`{"scope":%q,"tag":%d,"final":true,"count":6,"nodes":[%s]}`, g.scope, tag+1, strings.Join(own, ",")))
	g.waitSync(tag+1, "nothing", "swept")
	if got := state(); got != intact {
		t.Fatalf("after the scope dropped them: %s, want %s", got, intact)
	}
}
