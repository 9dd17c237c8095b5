package index

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
)

func TestCLISearchers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idx")
	e := openEmbedded(t, path)
	cid, want := traceFixture(t, e)

	// While the server holds the index, opening it fails quickly with a hint...
	start := time.Now()
	cfg := DefaultConfig()
	cfg.EmbeddedPath = path
	if _, _, err := OpenSearcher(cfg, ""); err == nil || !strings.Contains(err.Error(), "--api") {
		t.Fatalf("open a held index: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
	// ...and the HTTP API serves the same answers.
	srv := httptest.NewServer(NewAPI(e, nil))
	t.Cleanup(srv.Close)
	s, closeFn, err := OpenSearcher(cfg, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	checkTrace(t, s, cid, want)
	tl, _ := Trace(ctx, s, cid, StreamLocator)
	var out bytes.Buffer
	if err := PrintTimeline(&out, tl); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "+37.0ms") || !strings.Contains(out.String(), "SIGHTLINE_EVENTS:") || strings.Count(out.String(), "\n") < len(want)+2 {
		t.Fatalf("timeline text:\n%s", out.String())
	}

	// Once the server is gone, the CLI opens the index read-only.
	_ = e.Close(ctx)
	s2, close2, err := OpenSearcher(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	checkTrace(t, s2, cid, want)
	_ = close2()
}

func TestFollow(t *testing.T) {
	e := openEmbedded(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Now().UTC()
	var mu sync.Mutex
	var got []string
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, e, Query{Kinds: []string{"log"}, From: now.Add(-time.Minute)}, 20*time.Millisecond, time.Second, func(d Document) error {
			mu.Lock()
			got = append(got, d.ID)
			mu.Unlock()
			return nil
		})
	}()
	for i := range 5 {
		if err := e.Write(ctx, []*stage.Message{event("f", "log", "api", "svc", now.Add(time.Duration(i)*time.Millisecond), "f"+string(rune('a'+i)), 1),
			event("f", "metric", "m", "svc", now, "m"+string(rune('a'+i)), 1)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "fa,fb,fc,fd,fe" {
		t.Fatalf("followed %v", got)
	}
}
