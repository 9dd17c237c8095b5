package index

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
)

func openEmbedded(t *testing.T, path string, opts ...Option) *Embedded {
	t.Helper()
	cfg := DefaultConfig()
	cfg.EmbeddedPath = path
	e, err := OpenEmbedded(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

func TestEmbeddedContract(t *testing.T) {
	ctx := context.Background()
	e := openEmbedded(t, filepath.Join(t.TempDir(), "idx"))
	batch := events("emb-"+randHex(4), 200, time.Now().UTC())
	for range 2 {
		if err := e.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := e.Count(); n != 200 {
		t.Fatalf("idempotent rewrite: %d docs, want 200", n)
	}
	bad := events("emb2-"+randHex(4), 5, time.Now().UTC())
	bad[2] = &stage.Message{Subject: "sightline.events.log.api", Data: []byte(`{"id":`), Header: stage.Header{}}
	err := e.Write(ctx, bad)
	var be *stage.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || !stage.IsPermanent(be.Failed[2]) {
		t.Fatalf("partial failure: %v", err)
	}
	if n, _ := e.Count(); n != 204 {
		t.Fatalf("%d docs, want 204", n)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Write(ctx, batch); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestEmbeddedPersistsAndTraces(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idx")
	cfg := DefaultConfig()
	cfg.EmbeddedPath = path
	e, err := OpenEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cid, want := traceFixture(t, e)
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e = openEmbedded(t, path) // reopened from disk
	checkTrace(t, e, cid, want)

	// Log search: filters and free text.
	res, err := e.Search(ctx, Query{Kinds: []string{"log"}, Services: []string{"billing"}, CorrelationID: cid})
	if err != nil || len(res.Docs) != 1 || res.Docs[0].Service != "billing" || res.Docs[0].Kind != "log" {
		t.Fatalf("filtered search: %+v %v", res, err)
	}
	res, err = e.Search(ctx, Query{Text: "value must be", CorrelationID: cid})
	if err != nil || len(res.Docs) != 1 || res.Docs[0].Kind != KindDLQ {
		t.Fatalf("free text over the DLQ reason: %+v %v", res, err)
	}
	res, err = e.Search(ctx, Query{Levels: []string{"info"}, Limit: 3, Newest: true})
	if err != nil || len(res.Docs) != 3 || res.Total < 10 || res.Docs[0].Time.After(res.Docs[2].Time) {
		t.Fatalf("newest: %+v %v", res, err)
	}
}

func TestEmbeddedRetention(t *testing.T) {
	now := time.Now().UTC()
	e := openEmbedded(t, "", WithClock(func() time.Time { return now }))
	e.cfg.Retention = 24 * time.Hour
	ctx := context.Background()
	err := e.Write(ctx, []*stage.Message{
		event("r", "metric", "m", "a", now.Add(-48*time.Hour), "old", 1),
		event("r", "metric", "m", "a", now.Add(-time.Hour), "new", 2),
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.DeleteExpired(ctx)
	if err != nil || n != 1 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	res, _ := e.Search(ctx, Query{CorrelationID: "r"})
	if len(res.Docs) != 1 || res.Docs[0].ID != "new" {
		t.Fatalf("left %+v", res.Docs)
	}
}
