// Package indextest opens an embedded index for the tests of the packages
// that read one (the search API, the page, the terminal output).
package indextest

import (
	"context"
	"testing"

	"github.com/sightline/sightline/sinks/index"
)

// Open opens the embedded index at path ("" keeps it in memory) on its
// defaults, and closes it when the test ends.
func Open(t testing.TB, path string) *index.Embedded {
	t.Helper()
	cfg := index.DefaultConfig()
	cfg.EmbeddedPath = path
	e, err := index.OpenEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}
