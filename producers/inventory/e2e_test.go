package inventory_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
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
	ctx, sink, pub, ns := e2e(t)
	scope := "cloudmap:" + ns
	t.Cleanup(func() { _ = sink.DeleteScope(context.Background(), scope) })
	s := loadOne(t, cloudMapCopy(t, "testdata/cloudmap", map[string]string{"ns-shop00000000001": ns}))
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

// e2e wires the real processors (validate, conform) into the real graph
// sink; it returns a fresh namespace name.
func e2e(t *testing.T) (context.Context, *graph.Sink, stage.Publisher, string) {
	info := testsvc.Neo4j(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cfg := graph.DefaultConfig()
	cfg.URI, cfg.Username, cfg.Password = info.URI, info.User, info.Password
	sink, err := graph.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close(context.Background()) }) // after the scope cleanups
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	pipe, _ := processors.Standard(processors.Config{}, v)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	pub := stage.PublisherFunc(func(ctx context.Context, msgs ...*stage.Message) ([]stage.PublishResult, error) {
		for _, m := range msgs {
			outs, err := pipe.Process(ctx, m)
			if err != nil {
				return nil, err
			}
			if err := sink.Write(ctx, outs); err != nil {
				return nil, err
			}
		}
		return make([]stage.PublishResult, len(msgs)), nil
	})
	return ctx, sink, pub, "e2e-" + hex.EncodeToString(b)
}

// A file inventory and a Cloud Map inventory naming the same namespace
// share the Service node "<ns>/backend". When Cloud Map drops backend, its
// sweep releases its claim only: the file scope's Service node and its
// DEPENDS_ON edge stay; Cloud Map's own edges to backend go.
func TestFileAndCloudMapShareNamespace(t *testing.T) {
	ctx, sink, pub, ns := e2e(t)
	t.Cleanup(func() {
		_ = sink.DeleteScope(context.Background(), "cloudmap:"+ns)
		_ = sink.DeleteScope(context.Background(), "file:"+ns)
	})
	file, err := inventory.FromServiceMap(&inventory.ServiceMap{Namespace: ns, Services: []inventory.Service{
		{Name: "backend", DependsOn: []string{"db"}, Properties: map[string]any{"team": "core"}}, {Name: "db"}}})
	if err != nil {
		t.Fatal(err)
	}
	file.Tag = 1000
	if _, err := inventory.Publish(ctx, file, pub); err != nil {
		t.Fatal(err)
	}
	cm := loadOne(t, cloudMapCopy(t, "testdata/cloudmap", map[string]string{"ns-shop00000000001": ns}))
	cm.Tag = time.Now().UnixMilli()
	if _, err := inventory.Publish(ctx, cm, pub); err != nil {
		t.Fatal(err)
	}
	count := func(q string) int64 {
		res, err := neo4j.ExecuteQuery(ctx, sink.Driver(), q, map[string]any{"k": ns + "/backend"}, neo4j.EagerResultTransformer)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := res.Records[0].Get("n")
		return n.(int64)
	}
	backend := `MATCH (s:Service {id: $k}) RETURN count(s) AS n`
	fileEdge := `MATCH (:Service {id: $k})-[r:DEPENDS_ON]->(d:Service) WHERE d.id ENDS WITH '/db' RETURN count(r) AS n`
	cmEdges := `MATCH (:Service {id: $k})-[r]-() WHERE r.syncscope STARTS WITH 'cloudmap:' RETURN count(r) AS n`
	if count(backend) != 1 || count(fileEdge) != 1 || count(cmEdges) == 0 {
		t.Fatalf("before: backend %d, file edge %d, cloud map edges %d", count(backend), count(fileEdge), count(cmEdges))
	}
	// Cloud Map drops backend.
	var nodes []schemas.Node
	for _, n := range cm.Nodes {
		if !strings.HasPrefix(n.Key, ns+"/backend") {
			nodes = append(nodes, n)
		}
	}
	var rels []schemas.Relationship
	for _, r := range cm.Relationships {
		if !strings.HasPrefix(r.From.Key, ns+"/backend") && r.To.Key != ns+"/backend" {
			rels = append(rels, r)
		}
	}
	cm.Nodes, cm.Relationships, cm.Tag = nodes, rels, cm.Tag+1
	if _, err := inventory.Publish(ctx, cm, pub); err != nil {
		t.Fatal(err)
	}
	st, err := sink.Status(ctx, "cloudmap:"+ns)
	if err != nil || len(st) != 1 || st[0].LastCompleted != cm.Tag {
		t.Fatalf("cloud map sync not swept: %+v %v", st, err)
	}
	if n := count(backend); n != 1 {
		t.Fatalf("the Cloud Map sweep deleted the file scope's Service node (%d left)", n)
	}
	if n := count(fileEdge); n != 1 {
		t.Fatalf("the Cloud Map sweep deleted the file scope's relationship (%d left)", n)
	}
	if n := count(cmEdges); n != 0 {
		t.Fatalf("Cloud Map's own edges to backend kept: %d", n)
	}
}

// cloudMapCopy copies a directory of Cloud Map CLI output, replacing the
// namespace ids (keys of replace) so tests sharing one Neo4j never meet.
func cloudMapCopy(t *testing.T, src string, replace map[string]string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for from, to := range replace {
			b = []byte(strings.ReplaceAll(string(b), from, to))
		}
		rel, _ := filepath.Rel(src, p)
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o700); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func loadOne(t *testing.T, dir string) *inventory.Sync {
	t.Helper()
	syncs, err := inventory.LoadCloudMap(dir, "")
	if err != nil || len(syncs) != 1 {
		t.Fatalf("LoadCloudMap: %d syncs, %v", len(syncs), err)
	}
	return syncs[0]
}

// An account with two namespaces, published as `sightline inventory
// publish --source cloudmap` does (one sync per namespace), through the
// real processors into the real graph sink: each namespace is a Namespace
// node with its name and type, with HAS_SERVICE edges to its own services
// only (api, a name both namespaces use, is two services). Before, every
// service hung under the first service's namespace.
func TestCloudMapTwoNamespacesIntoNeo4j(t *testing.T) {
	ctx, sink, pub, suffix := e2e(t)
	shop, pay := "ns-shop-"+suffix, "ns-pay-"+suffix
	dir := cloudMapCopy(t, "testdata/cloudmap-two", map[string]string{"ns-shop00000000001": shop, "ns-pay000000000001": pay})
	syncs, err := inventory.LoadCloudMap(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range syncs {
		t.Cleanup(func() { _ = sink.DeleteScope(context.Background(), s.Scope) })
		s.Tag = int64(1000 + i)
		if _, err := inventory.Publish(ctx, s, pub); err != nil {
			t.Fatal(err)
		}
	}
	res, err := neo4j.ExecuteQuery(ctx, sink.Driver(), `
MATCH (n:Namespace) WHERE n.id IN $ids
OPTIONAL MATCH (n)-[h:HAS_SERVICE]->(s:Service)
WITH n, s ORDER BY s.id
WITH n, collect(s.id) AS svcs
RETURN n.id + ' ' + n.name + ' ' + n.type + ' ' + n.syncscope + ': ' + reduce(a = '', x IN svcs | a + ' ' + x) AS line
ORDER BY line`, map[string]any{"ids": []any{shop, pay}}, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Records {
		l, _ := r.Get("line")
		got = append(got, fmt.Sprint(l))
	}
	want := []string{
		fmt.Sprintf("%s payments.local DNS_PRIVATE cloudmap:%s:  %s/api %s/ledger", pay, pay, pay, pay),
		fmt.Sprintf("%s shop.local HTTP cloudmap:%s:  %s/api %s/backend %s/frontend", shop, shop, shop, shop, shop),
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Namespace nodes and HAS_SERVICE edges in Neo4j:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// No edge crosses namespaces.
	res, err = neo4j.ExecuteQuery(ctx, sink.Driver(), `
MATCH (a)-[r]->(b) WHERE r.syncscope IN $scopes AND split(a.id, '/')[0] <> split(b.id, '/')[0]
RETURN count(r) AS n`, map[string]any{"scopes": []any{"cloudmap:" + shop, "cloudmap:" + pay}}, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.Records[0].Get("n"); n != int64(0) {
		t.Fatalf("%v relationships cross namespaces", n)
	}
}
