package graph

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
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
	cfg.URI, cfg.User, cfg.Password = info.URI, info.User, info.Password
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
	return processors.Output(&ev, "snapshot", "graph", "")
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

// tcpProxy forwards connections to a target; Cut drops every connection
// and refuses new ones until Restore.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newProxy(t testing.TB, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.Cut() })
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 3*time.Second)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *tcpProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}
