package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
func TestAttackGraphScopeFreeze(t *testing.T) {
	info := testsvc.Neo4j(t)
	dir := t.TempDir()
	natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	base := "http://" + httpAddr
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	scope := "test:freeze:" + hex.EncodeToString(b)
	t.Setenv("SIGHTLINE_GRAPH_PASSWORD", info.Password)
	graphSets := []string{"--set", "graph.enabled=true", "--set", "graph.uri=" + info.URI, "--set", "graph.user=" + info.User}
	ctx, stop := runInProcess(t, append(embeddedSets(dir, natsAddr, httpAddr), graphSets...))
	defer func() { _ = stop() }()
	waitHTTP(t, base+"/readyz", 200, 90*time.Second)

	cfg := graph.DefaultConfig()
	cfg.URI, cfg.User, cfg.Password = info.URI, info.User, info.Password
	sink, err := graph.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sink.DeleteScope(context.Background(), scope)
		_ = sink.Close(context.Background())
	})
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
