package inventory_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/producers/inventory"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/graph"
)

// The Cloud Map CLI output goes through the real processors (validate,
// conform) into the real graph sink: services, instances and DEPENDS_ON
// edges appear; a second sync without "pipeline" removes it.
func TestCloudMapIntoNeo4j(t *testing.T) {
	info := testsvc.Neo4j(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := graph.DefaultConfig()
	cfg.URI, cfg.User, cfg.Password = info.URI, info.User, info.Password
	sink, err := graph.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close(context.Background()) }) // after the scope cleanup below
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	pipe, _ := processors.Standard(processors.Config{}, v)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := "e2e-" + hex.EncodeToString(b)
	scope := "cloudmap:" + ns
	t.Cleanup(func() { _ = sink.DeleteScope(context.Background(), scope) })

	pub := inventory.PublisherFunc(func(ctx context.Context, m *stage.Message) error {
		outs, err := pipe.Process(ctx, m)
		if err != nil {
			return err
		}
		return sink.Write(ctx, outs)
	})
	s, err := inventory.LoadCloudMap("testdata/cloudmap", ns)
	if err != nil {
		t.Fatal(err)
	}
	s.Tag = 1000
	if _, err := inventory.Publish(ctx, s, pub, inventory.WithMaxPartBytes(1024)); err != nil {
		t.Fatal(err)
	}
	count := func(q string) int64 {
		res, err := neo4j.ExecuteQuery(ctx, sink.Driver(), q, map[string]any{"scope": scope}, neo4j.EagerResultTransformer)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := res.Records[0].Get("n")
		return n.(int64)
	}
	deps := `MATCH (:Service {syncscope: $scope})-[r:DEPENDS_ON]->(:Service) RETURN count(r) AS n`
	svcs := `MATCH (s:Service {syncscope: $scope}) RETURN count(s) AS n`
	if d, n := count(deps), count(svcs); d != 3 || n != 3 {
		t.Fatalf("after sync 1: %d DEPENDS_ON, %d services; want 3 and 3", d, n)
	}
	// pipeline disappears from Cloud Map (and from the tags naming it).
	s.Tag = 2000
	var nodes []schemas.Node
	for _, n := range s.Nodes {
		if n.Key != ns+"/pipeline" {
			nodes = append(nodes, n)
		}
	}
	var rels []schemas.Relationship
	for _, r := range s.Relationships {
		if r.To.Key != ns+"/pipeline" {
			rels = append(rels, r)
		}
	}
	s.Nodes, s.Relationships = nodes, rels
	if _, err := inventory.Publish(ctx, s, pub); err != nil {
		t.Fatal(err)
	}
	if d, n := count(deps), count(svcs); d != 1 || n != 2 {
		t.Fatalf("after sync 2: %d DEPENDS_ON, %d services; want 1 and 2", d, n)
	}
	st, err := sink.Status(ctx, scope)
	if err != nil || len(st) != 1 || st[0].LastCompleted != 2000 {
		t.Fatalf("status: %+v %v", st, err)
	}
}
