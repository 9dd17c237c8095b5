package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/graph"
)

// The operator commands as an operator runs them: `graph sweep --force`
// sweeps a refused sync and leaves an audit line on stderr; `graph scope
// reset` prints its plan and changes nothing without --yes, then recovers a
// frozen scope; `inventory publish --force` is refused with the operator
// command to use instead.
func TestGraphOperatorCommands(t *testing.T) {
	info := testsvc.Neo4j(t)
	t.Setenv("SIGHTLINE_GRAPH_URI", info.URI)
	t.Setenv("SIGHTLINE_GRAPH_USERNAME", info.User)
	t.Setenv("SIGHTLINE_GRAPH_PASSWORD", info.Password)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := graph.DefaultConfig()
	cfg.URI, cfg.Username, cfg.Password = info.URI, info.User, info.Password
	cfg.MaxTagSkew = 400 * 24 * time.Hour // to write a far-future sync, as before the skew check
	sink, err := graph.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close(context.Background()) })
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	scope := "test:cli:" + hex.EncodeToString(b)
	t.Cleanup(func() { _ = sink.DeleteScope(context.Background(), scope) })
	write := func(tag int64, names ...string) {
		d := schemas.SnapshotData{Scope: scope, Tag: tag, Final: true, Count: len(names)}
		for _, n := range names {
			d.Nodes = append(d.Nodes, schemas.Node{Label: "SlTestService", Key: scope + "/" + n})
		}
		data, _ := json.Marshal(d)
		ev := schemas.Event{ID: fmt.Sprintf("%s:%d", scope, tag), Source: "urn:test", Type: "snapshot.graph",
			Time: time.Now().UTC(), CorrelationID: fmt.Sprintf("cid-%d", tag), SyncScope: scope, SyncTag: fmt.Sprint(tag), Data: data}
		if err := sink.Write(ctx, []*stage.Message{stage.EventMessage(&ev, "snapshot", "graph", "")}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UnixMilli()
	write(now-3000, "a", "b", "c", "d")
	write(now-2000, "a") // refused: 3 of 4 stale

	// The operator's decision goes on the events stream too.
	nb := bustest.New(t)
	t.Setenv("SIGHTLINE_NATS_URLS", nb.ClientURL())
	c := cli{t: t, bin: buildSightline(t)}
	r := c.run("graph", "sweep", "--force", scope)
	if r.code != 0 || !strings.Contains(r.stdout, "swept") || !strings.Contains(r.stdout, "deleted: 3 nodes") {
		t.Fatalf("graph sweep --force: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, `"audit":true`) || !strings.Contains(r.stderr, `"action":"graph sweep --force"`) ||
		!strings.Contains(r.stderr, `"deleted_nodes":3`) || !strings.Contains(r.stderr, `(neo4j user `+info.User+`)`) {
		t.Fatalf("no audit line on stderr:\n%s", r.stderr)
	}
	evs := bustest.Events(t, nb, "sightline.events.log.graph_sweep", 1)
	if evs[0].CorrelationID != fmt.Sprintf("cid-%d", now-2000) || !strings.Contains(string(evs[0].Data), `"forced":true`) {
		t.Fatalf("decision event: %+v %s", evs[0], evs[0].Data)
	}

	// Freeze the scope with a far-future sync, then recover it.
	future := time.Now().Add(300 * 24 * time.Hour).UnixMilli()
	write(future, "a", "x")
	for _, args := range [][]string{{"graph", "scope", "reset", "--dry-run", scope}, {"graph", "scope", "reset", scope}} {
		r = c.run(args...)
		if r.code != 0 || !strings.Contains(r.stdout, "would set the last completed tag") ||
			!strings.Contains(r.stdout, fmt.Sprint(future)) {
			t.Fatalf("%v: exit %d\nstdout %s\nstderr %s", args, r.code, r.stdout, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "rerun with --yes") {
		t.Fatalf("reset without --yes does not say how to apply: %s", r.stderr)
	}
	st, _ := sink.Status(ctx, scope)
	if st[0].LastCompleted != future {
		t.Fatalf("reset without --yes changed the scope: %+v", st[0])
	}
	r = c.run("graph", "scope", "reset", "--yes", scope)
	if r.code != 0 || !strings.Contains(r.stdout, "did set the last completed tag from "+fmt.Sprint(future)) ||
		!strings.Contains(r.stderr, `"action":"graph scope reset"`) {
		t.Fatalf("reset --yes: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	st, _ = sink.Status(ctx, scope)
	if st[0].LastCompleted != now-2000 {
		t.Fatalf("after reset: last completed %d, want %d", st[0].LastCompleted, now-2000)
	}

	r = c.run("inventory", "publish", "--source", "graph", "--file", "x.json", "--force", "--dry-run")
	if r.code == 0 || !strings.Contains(r.stderr, "sightline graph sweep --force SCOPE") {
		t.Fatalf("inventory publish --force: exit %d\nstderr %s", r.code, r.stderr)
	}
}
