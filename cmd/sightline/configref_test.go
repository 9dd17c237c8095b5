package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/sightline/sightline/internal/config"
)

var updateRef = flag.Bool("update-config-reference", false, "rewrite docs/config-reference.md and each sink's sample.yaml")

// TestConfigReferenceIsCurrent fails when docs/config-reference.md or a
// sink's sample.yaml differs from what the configuration's types generate:
// `go generate ./cmd/sightline` rewrites them.
func TestConfigReferenceIsCurrent(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default(sinkSections()...)
	docs := c.Docs(root)
	files := map[string][]byte{filepath.Join(root, "docs", "config-reference.md"): config.Reference(docs)}
	for _, s := range sinkTable {
		sample, err := c.Sample(s.Section.Name, docs)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Join(root, "sinks", s.Name, "sample.yaml")] = sample
	}
	for path, want := range files {
		if *updateRef {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is stale (or missing: %v): run go generate ./cmd/sightline", path, err)
		}
	}
	// Every key is in the reference, and each sample loads as it is.
	for _, k := range c.Keys() {
		if !bytes.Contains(files[filepath.Join(root, "docs", "config-reference.md")], []byte("| `"+k+"` |")) {
			t.Errorf("key %s is not in the reference", k)
		}
	}
	for _, s := range sinkTable {
		if _, err := config.Load(filepath.Join(root, "sinks", s.Name, "sample.yaml"), nil, nil, sinkSections()...); err != nil && !*updateRef {
			t.Errorf("sinks/%s/sample.yaml does not load: %v", s.Name, err)
		}
	}
}
