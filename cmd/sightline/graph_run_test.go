package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/sinks/graph"
)

// The attacks as a user makes them, against `sightline run` with the graph
// sink on the real Neo4j: one unauthenticated POST /v1/events with an empty
// final part marked force no longer sweeps the scope (the sync is refused,
// and the decision is an event on the events stream under the sync's
// correlation ID); a part tagged 9007199254740991 goes to the DLQ with a
// reason naming graph.max_tag_skew instead of freezing the scope.
func TestRunGraphProducerCannotForceOrFreeze(t *testing.T) {
	g := startGraphAttack(t, "test:run:")
	ctx, scope, natsAddr, sink := g.ctx, g.scope, g.natsAddr, g.sink
	now := time.Now().UnixMilli()
	g.post(now-2000, 6)
	g.waitSync(now-2000, "nothing")

	// The attack of the report: an empty final part marked force.
	cid := g.postData(fmt.Sprintf(`{"scope":%q,"tag":%d,"final":true,"count":0,"force":true}`, scope, now))
	g.waitSync(now, "refused")
	if st, _ := sink.Status(ctx, scope); st[0].Nodes != 6 {
		t.Fatalf("the forced message deleted nodes: %+v", st[0])
	}

	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	decision := findMsg(t, js, "SIGHTLINE_EVENTS", "sightline.events.log.graph_sweep", `"result":"refused"`)
	var ev map[string]any
	_ = json.Unmarshal(decision, &ev)
	if ev["correlationid"] != cid || !strings.Contains(string(decision), "force flag is ignored") {
		t.Fatalf("refused decision event (want correlation id %s): %s", cid, decision)
	}

	// The freeze: a far-future tag goes to the DLQ with its reason.
	g.postData(fmt.Sprintf(`{"scope":%q,"tag":9007199254740991,"final":true,"count":1,"nodes":[{"label":"SlTestService","key":"%s/n0"}]}`,
		scope, scope))
	dl := findMsg(t, js, "SIGHTLINE_DLQ", ">", "graph.max_tag_skew")
	if !strings.Contains(string(dl), "9007199254740991") {
		t.Fatalf("dead letter without the future-tag reason: %s", dl)
	}
	if st, _ := sink.Status(ctx, scope); st[0].Frozen || st[0].LastCompleted != now-2000 {
		t.Fatalf("scope changed by the far-future part: %+v", st[0])
	}
}

// findMsg waits up to 30s for a message on stream (filter) whose data or
// headers contain want, and returns its data.
func findMsg(t *testing.T, js jetstream.JetStream, stream, filter, want string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			m, err := c.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				break
			}
			if strings.Contains(string(m.Data())+fmt.Sprint(m.Headers()), want) {
				return m.Data()
			}
		}
	}
	t.Fatalf("no message on %s %s containing %q within 30s", stream, filter, want)
	return nil
}

// A sweep killed (kill -9 of `sightline run`) between two of its delete
// transactions resumes when the restarted process gets the final part
// again, and then reports what it deleted in total, both runs: in
// `sightline graph status` and in its decision event on the events stream.
// Before, both said only what the run after the restart deleted.
func TestRunGraphSweepKilledReportsTotal(t *testing.T) {
	info := testsvc.Neo4j(t)
	bin := buildSightline(t)
	dir := t.TempDir()
	natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	base := "http://" + httpAddr
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	scope := "test:kill:" + hex.EncodeToString(b)
	graphSets := []string{"--set", "graph.enabled=true", "--set", "graph.uri=" + info.URI, "--set", "graph.username=" + info.User}
	// One node per sweep transaction: the sweep of 300 nodes takes long
	// enough to be killed in the middle on any machine.
	args := append(append([]string{"run"}, embeddedSets(dir, natsAddr, httpAddr)...), graphSets...)
	args = append(args, "--set", "graph.sweep_batch=2", "--set", "graph.sweep_window=0")
	env := []string{"SIGHTLINE_GRAPH_PASSWORD=" + info.Password}
	t.Setenv("SIGHTLINE_GRAPH_PASSWORD", info.Password) // for the graph status command
	start := time.Now()
	p := startSightline(t, bin, env, args...)
	waitHTTP(t, base+"/readyz", http.StatusOK, 2*time.Minute)

	ctx := context.Background()
	sink := graphSink(t, ctx, info, scope)
	post := func(tag int64, n int) {
		t.Helper()
		var nodes []string
		for i := range n {
			nodes = append(nodes, fmt.Sprintf(`{"label":"SlTestService","key":"%s/n%d"}`, scope, i))
		}
		body := fmt.Sprintf(`{"type":"snapshot.x","data":{"scope":%q,"tag":%d,"final":true,"count":%d,"nodes":[%s]}}`,
			scope, tag, n, strings.Join(nodes, ","))
		resp, err := http.Post(base+"/v1/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: HTTP %d", resp.StatusCode)
		}
	}
	sync := func(tag int64, within time.Duration, statuses ...string) graph.SyncStatus {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			st, _ := sink.Status(ctx, scope)
			for _, s := range st {
				for _, y := range s.Syncs {
					if y.Tag == tag && slices.Contains(statuses, y.Status) {
						return y
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("sync %d not %v within %s: %+v", tag, statuses, within, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	tag := time.Now().UnixMilli() - 60000
	post(tag, 600)
	sync(tag, 2*time.Minute, "nothing")
	t.Logf("%s: first sync applied", time.Since(start).Round(time.Millisecond))
	post(tag+1, 300) // 300 of 600 stale: 50 %, at the limit, swept
	sync(tag+1, 2*time.Minute, "sweeping")
	// Kill it once its first delete transaction committed.
	deadline := time.Now().Add(time.Minute)
	for {
		st, _ := sink.Status(ctx, scope)
		if st[0].Nodes < 600 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = p.cmd.Process.Kill()
	waited := <-p.done
	p.done <- waited // for startSightline's cleanup, which waits for it too
	st, _ := sink.Status(ctx, scope)
	before := 600 - st[0].Nodes
	if st[0].Syncs[0].Status != "sweeping" || before == 0 || before >= 300 {
		t.Fatalf("after kill -9: %d deleted, %+v; want the sweep stopped in the middle", before, st[0])
	}
	t.Logf("%s: kill -9 after %d of 300 deletions", time.Since(start).Round(time.Millisecond), before)

	// The same data directory: JetStream redelivers the unacknowledged
	// final part (after its ack wait) to the restarted process.
	startSightline(t, bin, env, args...)
	waitHTTP(t, base+"/readyz", http.StatusOK, 2*time.Minute)
	sync(tag+1, 3*time.Minute, "swept")
	t.Logf("%s: swept", time.Since(start).Round(time.Millisecond))
	out, err := sightlineOut(t, append([]string{"graph", "status", "--json", scope}, graphSets...)...)
	var list []graph.ScopeStatus
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Syncs[0].Deleted != 300 {
		t.Fatalf("graph status after the resumed sweep (err %v), want deleted 300:\n%s", err, out)
	}
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if ev := findMsg(t, js, "SIGHTLINE_EVENTS", "sightline.events.log.graph_sweep", `"result":"swept"`); !strings.Contains(string(ev), `"deleted_nodes":300`) {
		t.Fatalf("the resumed sweep's decision event does not report 300 deleted: %s", ev)
	}
	t.Logf("%s: checked", time.Since(start).Round(time.Millisecond))
}
