package archive

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteLocalDurable(t *testing.T) {
	dir := t.TempDir()
	key := "kind=metric/type=x/2026/12/01/05/w-0000000001.ndjson.gz"
	if err := writeLocalDurable(dir, key, []byte("one\n"), true); err != nil {
		t.Fatal(err)
	}
	// Create only: an object already there is left alone.
	if err := writeLocalDurable(dir, key, []byte("two\n"), true); !errors.Is(err, errChanged) {
		t.Fatalf("second create: %v, want errChanged", err)
	}
	if err := writeLocalDurable(dir, key, []byte("three\n"), false); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
	if err != nil || string(b) != "three\n" {
		t.Fatalf("object: %q %v", b, err)
	}
	if err := syncLocalFile(dir, key); err != nil {
		t.Fatal(err)
	}
	// Nothing temporary is left, and no key leaves the directory.
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, _ error) error {
		if filepath.Ext(p) == ".tmp" {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
	for _, k := range []string{"../escape", "a/../../escape"} {
		if err := writeLocalDurable(dir, k, []byte("x"), false); err == nil {
			t.Errorf("key %q was written outside the directory", k)
		}
	}
}
