package graph

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/sinktest"
)

// Labels the tests use; keys carry a per-test random prefix so runs and
// tests never collide in the shared database.
const (
	tSvc  = "SlTestService"
	tInst = "SlTestInstance"
)

func testConfig(t testing.TB) Config {
	info := testsvc.Neo4j(t)
	cfg := DefaultConfig()
	cfg.URI, cfg.Username, cfg.Password = info.URI, info.User, info.Password
	cfg.SweepWindow = 0 // each sync judged alone; the window has its own test
	return cfg
}

func newTestSink(t testing.TB, cfg Config, opts ...Option) *Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts = append([]Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	s, err := New(ctx, cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testScope returns a unique scope and registers the cleanup of its data.
func testScope(t testing.TB, s *Sink) string {
	scope := "test:" + strings.ReplaceAll(t.Name(), "/", ".") + ":" + randHex(4)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := s.DeleteScope(ctx, scope); err != nil {
			t.Logf("cleanup %s: %v", scope, err)
		}
	})
	return scope
}

// syncPart builds the conformed message of one part.
func syncPart(t testing.TB, d schemas.SnapshotData) *stage.Message {
	t.Helper()
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%s:%d:%d", d.Scope, d.Tag, d.Part)
	ev := schemas.Event{
		ID: id, Source: "urn:test", Type: "snapshot.graph", Time: time.Now().UTC(),
		CorrelationID: "corr-" + id, SyncScope: d.Scope, SyncTag: fmt.Sprint(d.Tag), Data: data,
	}
	return stage.EventMessage(&ev, "snapshot", "graph", "")
}

// world is a picture of a scope: nodes "Label:key" → selected properties,
// relationships "TYPE:fromkey->tokey".
type world struct {
	Nodes map[string]string
	Rels  []string
}

func (w world) String() string {
	keys := make([]string, 0, len(w.Nodes))
	for k, v := range w.Nodes {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return fmt.Sprintf("nodes %v rels %v", keys, w.Rels)
}

// picture reads a scope from Neo4j.
func picture(t testing.TB, s *Sink, scope string) world {
	t.Helper()
	ctx := context.Background()
	res, err := neo4j.ExecuteQuery(ctx, s.Driver(), `
MATCH (n:SightlineNode) WHERE n.syncscope = $scope AND n.lastupdated > 0
RETURN [l IN labels(n) WHERE l <> 'SightlineNode'][0] + ':' + n.id AS k, coalesce(toString(n.version), '') AS v`,
		map[string]any{"scope": scope}, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatalf("picture: %v", err)
	}
	w := world{Nodes: map[string]string{}}
	for _, r := range res.Records {
		k, _ := r.Get("k")
		v, _ := r.Get("v")
		w.Nodes[fmt.Sprint(k)] = fmt.Sprint(v)
	}
	res, err = neo4j.ExecuteQuery(ctx, s.Driver(), `
MATCH (a)-[r]->(b) WHERE r.syncscope = $scope
RETURN type(r) + ':' + a.id + '->' + b.id AS k`, map[string]any{"scope": scope}, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatalf("picture: %v", err)
	}
	for _, r := range res.Records {
		k, _ := r.Get("k")
		w.Rels = append(w.Rels, fmt.Sprint(k))
	}
	sort.Strings(w.Rels)
	return w
}

// newProxy is the shared cuttable TCP proxy (sinks/sinktest).
func newProxy(t testing.TB, target string) *sinktest.Proxy { return sinktest.NewProxy(t, target) }
