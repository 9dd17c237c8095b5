package index

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenReader(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idx")
	e := openEmbedded(t, path)
	cid, want := traceFixture(t, e)

	// While the server holds the index, opening it fails quickly with a hint...
	start := time.Now()
	cfg := DefaultConfig()
	cfg.EmbeddedPath = path
	if _, _, err := OpenReader(cfg); err == nil || !strings.Contains(err.Error(), "--api") {
		t.Fatalf("open a held index: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
	// (The HTTP API serving the same answers is tested in searchapi.)

	// Once the server is gone, the CLI opens the index read-only.
	_ = e.Close(ctx)
	s2, close2, err := OpenReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkTrace(t, s2, cid, want)
	_ = close2()
}
