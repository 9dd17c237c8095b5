package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/sinktest"
)

// The graph sink against the shared contract (sinks/sinktest) on the real
// Neo4j. Each event is one part of an open sync of a fresh scope: a host
// running a service (two nodes and a relationship), keyed per part.

const (
	cHost = "SlContractHost"
	cSvc  = "SlContractService"
)

func TestContractNeo4j(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{Name: "graph/neo4j", Open: graphTarget, Timeout: 3 * time.Minute})
}

func graphTarget(t *testing.T) *sinktest.Target {
	direct := testConfig(t)
	reader := newTestSink(t, direct) // reads back and cleans up, straight to Neo4j
	scope := "contract:" + randHex(6)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := reader.DeleteScope(ctx, scope); err != nil {
			t.Logf("cleanup %s: %v", scope, err)
		}
	})
	proxy := sinktest.NewProxy(t, strings.TrimPrefix(direct.URI, "bolt://"))
	cfg := direct
	cfg.URI = "bolt://" + proxy.Addr()
	cfg.RetryTime = 2 * time.Second
	gen := sinktest.NewGenerator(t)
	tag := time.Now().UnixMilli()
	var (
		mu   sync.Mutex
		part int
	)
	events := func(t testing.TB, n int) []*stage.Message {
		out := make([]*stage.Message, n)
		for i := range out {
			mu.Lock()
			part++
			k := part
			mu.Unlock()
			host, svc := fmt.Sprintf("%s-h%d", gen.Run(), k), fmt.Sprintf("%s-s%d", gen.Run(), k)
			body, err := json.Marshal(map[string]any{
				"scope": scope, "tag": tag, "part": k,
				"nodes": []any{
					map[string]any{"label": cHost, "key": host, "properties": map[string]any{"name": host, "cores": k % 64, "tags": []string{"a", "b"}}},
					map[string]any{"label": cSvc, "key": svc, "properties": map[string]any{"name": "svc " + svc, "port": 8000 + k%1000}},
				},
				"relationships": []any{
					map[string]any{"type": "RUNS", "from": map[string]any{"label": cHost, "key": host},
						"to": map[string]any{"label": cSvc, "key": svc}, "properties": map[string]any{"since": "2026"}},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			h := stage.Header{}
			h.Set(stage.HeaderCorrelationID, fmt.Sprintf("contract-%s-p%d", gen.Run(), k))
			out[i] = gen.Conform(t, "sightline.raw.snapshot.graph", h, body)
		}
		return out
	}
	return &sinktest.Target{
		NewSink: func(t testing.TB) stage.Sink {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, err := New(ctx, cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			if err != nil {
				t.Fatalf("graph.New: %v", err)
			}
			return s
		},
		Events: events,
		Read: func(ctx context.Context, evs []*stage.Message) (map[string]sinktest.Record, error) {
			return readGraph(ctx, reader.Driver(), scope, evs)
		},
		// An invalid label: the sink refuses it before Cypher (labels are
		// interpolated), permanently.
		Reject: func(t testing.TB, good *stage.Message) *stage.Message {
			bad := *good
			bad.Data = bytes.Replace(good.Data, []byte(`"label":"`+cSvc+`"`), []byte(`"label":"Svc) DETACH DELETE (n"`), 1)
			if bytes.Equal(bad.Data, good.Data) {
				t.Fatalf("no %s label in %s", cSvc, good.Data)
			}
			return &bad
		},
		Outage: func(testing.TB) func() {
			proxy.Cut()
			return proxy.Restore
		},
	}
}

// readGraph returns, per event (part), its nodes and relationship as
// sorted "Label:id{props}" strings; Copies is the largest number of graph
// elements sharing one identity (label and id, or type and endpoints).
func readGraph(ctx context.Context, d neo4j.DriverWithContext, scope string, evs []*stage.Message) (map[string]sinktest.Record, error) {
	byCid := map[string]string{}
	cids := make([]any, 0, len(evs))
	for _, m := range evs {
		cid := m.Header.Get(stage.HeaderCorrelationID)
		byCid[cid] = m.ID
		cids = append(cids, cid)
	}
	type acc struct {
		items  []string
		counts map[string]int
	}
	got := map[string]*acc{}
	add := func(cid, ident, item string) {
		id, ok := byCid[cid]
		if !ok {
			return
		}
		a := got[id]
		if a == nil {
			a = &acc{counts: map[string]int{}}
			got[id] = a
		}
		a.items = append(a.items, item)
		a.counts[ident]++
	}
	res, err := neo4j.ExecuteQuery(ctx, d, `
MATCH (n:SightlineNode) WHERE n.syncscope = $scope AND n.correlationid IN $cids
RETURN n.correlationid AS cid, [l IN labels(n) WHERE l <> 'SightlineNode'] AS labels, n.id AS id, properties(n) AS props`,
		map[string]any{"scope": scope, "cids": cids}, neo4j.EagerResultTransformer)
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	for _, r := range res.Records {
		cid, _ := r.Get("cid")
		labels, _ := r.Get("labels")
		id, _ := r.Get("id")
		props, _ := r.Get("props")
		ident := fmt.Sprintf("%v:%v", labels, id)
		add(fmt.Sprint(cid), ident, fmt.Sprintf("%s%v", ident, props))
	}
	res, err = neo4j.ExecuteQuery(ctx, d, `
MATCH (a)-[r]->(b) WHERE r.syncscope = $scope AND r.correlationid IN $cids
RETURN r.correlationid AS cid, type(r) + ':' + a.id + '->' + b.id AS ident, properties(r) AS props`,
		map[string]any{"scope": scope, "cids": cids}, neo4j.EagerResultTransformer)
	if err != nil {
		return nil, fmt.Errorf("read relationships: %w", err)
	}
	for _, r := range res.Records {
		cid, _ := r.Get("cid")
		ident, _ := r.Get("ident")
		props, _ := r.Get("props")
		add(fmt.Sprint(cid), fmt.Sprint(ident), fmt.Sprintf("%v%v", ident, props))
	}
	out := make(map[string]sinktest.Record, len(got))
	for id, a := range got {
		slices.Sort(a.items)
		copies := 0
		for _, c := range a.counts {
			copies = max(copies, c)
		}
		out[id] = sinktest.Record{Copies: copies, Value: strings.Join(a.items, " ")}
	}
	return out, nil
}
