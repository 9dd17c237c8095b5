package archive

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sightline/sightline/internal/lazyfs"
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

// TestLocalObjectSurvivesPowerCut writes objects into new partition
// directories of an archive on a lazyfs mount (strict POSIX: a new name is
// durable once its directory is fsynced), cuts the power, and reads what
// survived: every object Write returned for must be there.
func TestLocalObjectSurvivesPowerCut(t *testing.T) {
	backing, mnt := t.TempDir(), t.TempDir()
	fsys := lazyfs.MountForTest(t, mnt, backing, lazyfs.Options{})
	defer func() { _ = fsys.Unmount() }()
	// The archive directory as the sink opens it: created if missing.
	dir := filepath.Join(mnt, "data", "archive")
	b, err := OpenBucket(context.Background(), Config{URL: dir})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	keys := []string{
		"kind=metric/type=x/date=2026-12-07/hour=16/events-1.ndjson.gz",
		"kind=metric/type=y/date=2026-12-07/hour=16/events-2.ndjson.gz",
	}
	for _, k := range keys {
		if err := writeLocalDurable(dir, k, []byte("event\n"), true); err != nil {
			t.Fatal(err)
		}
	}
	// An object written the way fileblob's streaming writer does (its
	// directories made with MkdirAll), then synced by the sink.
	streamed := "kind=log/type=z/date=2026-12-07/hour=16/events-3.ndjson.gz"
	p := filepath.Join(dir, filepath.FromSlash(streamed))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("event\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syncLocalFile(dir, streamed); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, streamed)
	fsys.Cut()
	if err := fsys.Unmount(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join(backing, "data", "archive", filepath.FromSlash(k)))
		if err != nil || string(b) != "event\n" {
			t.Errorf("after the power cut, %s: %q, %v", k, b, err)
		}
	}
}
