package lazyfs_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sightline/sightline/internal/lazyfs"
)

// mount mounts a lazy filesystem over a fresh backing directory (or the
// given one). Without FUSE the test fails under CI=true and skips
// otherwise.
func mount(t *testing.T, backing string, o lazyfs.Options) (*lazyfs.FS, string) {
	t.Helper()
	if backing == "" {
		backing = t.TempDir()
	}
	mnt := t.TempDir()
	f := lazyfs.MountForTest(t, mnt, backing, o)
	t.Cleanup(func() { _ = f.Unmount() })
	return f, mnt
}

// powerCut cuts the power, unmounts, and returns what survived.
func powerCut(t *testing.T, f *lazyfs.FS, backing string) {
	t.Helper()
	f.Cut()
	if err := f.Unmount(); err != nil {
		t.Fatal(err)
	}
}

func syncPath(t *testing.T, p string) {
	t.Helper()
	d, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", p, err)
	}
}

func write(t *testing.T, p, s string, fsync bool) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if fsync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func content(t *testing.T, p string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func TestUnsyncedWriteIsGoneAfterCut(t *testing.T) {
	backing := t.TempDir()
	if err := os.WriteFile(filepath.Join(backing, "old"), []byte("durable"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, mnt := mount(t, backing, lazyfs.Options{})
	write(t, filepath.Join(mnt, "new"), "pending", false)
	// An existing, durable file overwritten without fsync.
	write(t, filepath.Join(mnt, "old"), "overwritten", false)
	if got, _ := content(t, filepath.Join(mnt, "old")); got != "overwritten" {
		t.Fatalf("read before the cut = %q, want the pending write", got)
	}
	syncPath(t, mnt)
	powerCut(t, f, backing)
	if got, ok := content(t, filepath.Join(backing, "new")); !ok || got != "" {
		t.Fatalf("new file after cut = %q (exists %v), want an empty file (its name was synced, not its bytes)", got, ok)
	}
	if got, _ := content(t, filepath.Join(backing, "old")); got != "durable" {
		t.Fatalf("old file after cut = %q, want %q", got, "durable")
	}
}

func TestNewFileNeedsItsDirectorySynced(t *testing.T) {
	backing := t.TempDir()
	f, mnt := mount(t, backing, lazyfs.Options{})
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	syncPath(t, mnt)
	write(t, filepath.Join(mnt, "d", "only-file-synced"), "a", true)
	write(t, filepath.Join(mnt, "d", "both-synced"), "b", true)
	syncPath(t, filepath.Join(mnt, "d"))
	write(t, filepath.Join(mnt, "d", "created-after-dir-sync"), "c", true)
	if err := os.MkdirAll(filepath.Join(mnt, "e", "f"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mnt, "e", "f", "x"), "x", true)
	syncPath(t, filepath.Join(mnt, "e", "f")) // e itself is not in the synced root
	powerCut(t, f, backing)
	if got, ok := content(t, filepath.Join(backing, "d", "both-synced")); !ok || got != "b" {
		t.Fatalf("file and directory synced: %q exists=%v, want %q", got, ok, "b")
	}
	if got, _ := content(t, filepath.Join(backing, "d", "only-file-synced")); got != "a" {
		t.Fatalf("synced file created before the directory sync = %q, want a", got)
	}
	if _, ok := content(t, filepath.Join(backing, "d", "created-after-dir-sync")); ok {
		t.Fatal("a file synced but created after its directory's last sync survived")
	}
	if _, err := os.Stat(filepath.Join(backing, "e")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a directory whose parent was never synced survived: %v", err)
	}
}

func TestJournaledMetadataKeepsNames(t *testing.T) {
	backing := t.TempDir()
	f, mnt := mount(t, backing, lazyfs.Options{JournaledMetadata: true})
	if err := os.MkdirAll(filepath.Join(mnt, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mnt, "a", "g"), "unsynced", false)
	write(t, filepath.Join(mnt, "a", "b", "f"), "data", true) // commits every name made before
	powerCut(t, f, backing)
	if got, _ := content(t, filepath.Join(backing, "a", "b", "f")); got != "data" {
		t.Fatalf("journaled: synced file = %q, want data", got)
	}
	if got, ok := content(t, filepath.Join(backing, "a", "g")); !ok || got != "" {
		t.Fatalf("journaled: unsynced file = %q exists=%v, want its name with no bytes", got, ok)
	}
}

func TestRenameIsDurableOnlyAfterDirectorySync(t *testing.T) {
	backing := t.TempDir()
	f, mnt := mount(t, backing, lazyfs.Options{})
	write(t, filepath.Join(mnt, "a.tmp"), "A", true)
	write(t, filepath.Join(mnt, "b.tmp"), "B", true)
	write(t, filepath.Join(mnt, "c"), "old C", true)
	syncPath(t, mnt)
	// a: renamed and its directory synced; b: renamed, not synced; c:
	// replaced by a rename, not synced (the old content stays).
	if err := os.Rename(filepath.Join(mnt, "a.tmp"), filepath.Join(mnt, "a")); err != nil {
		t.Fatal(err)
	}
	syncPath(t, mnt)
	if err := os.Rename(filepath.Join(mnt, "b.tmp"), filepath.Join(mnt, "b")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mnt, "c.tmp"), "new C", true)
	if err := os.Rename(filepath.Join(mnt, "c.tmp"), filepath.Join(mnt, "c")); err != nil {
		t.Fatal(err)
	}
	if got, _ := content(t, filepath.Join(mnt, "c")); got != "new C" {
		t.Fatalf("read after rename = %q", got)
	}
	powerCut(t, f, backing)
	for name, want := range map[string]string{"a": "A", "b.tmp": "B", "c": "old C"} {
		if got, ok := content(t, filepath.Join(backing, name)); !ok || got != want {
			t.Errorf("%s after cut = %q exists=%v, want %q", name, got, ok, want)
		}
	}
	for _, name := range []string{"a.tmp", "b", "c.tmp"} {
		if _, ok := content(t, filepath.Join(backing, name)); ok {
			t.Errorf("%s exists after the cut", name)
		}
	}
}

func TestReadsSeePendingStateAndOSyncIsDurable(t *testing.T) {
	backing := t.TempDir()
	f, mnt := mount(t, backing, lazyfs.Options{})
	p := filepath.Join(mnt, "f")
	fd, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_SYNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.WriteAt([]byte("hello world"), 0); err != nil {
		t.Fatal(err)
	}
	syncPath(t, mnt)
	// Plain descriptor: pwrite in the middle, truncate, not synced.
	g, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteAt([]byte("WORLD!!"), 6); err != nil {
		t.Fatal(err)
	}
	if err := g.Truncate(12); err != nil {
		t.Fatal(err)
	}
	if got, _ := content(t, p); got != "hello WORLD!" {
		t.Fatalf("read = %q, want the pending writes", got)
	}
	if err := os.Remove(p); err != nil { // unlinked, not synced
		t.Fatal(err)
	}
	_, _ = g.WriteAt([]byte("X"), 0) // an open descriptor still writes
	_ = g.Close()
	_ = fd.Close()
	powerCut(t, f, backing)
	if got, _ := content(t, filepath.Join(backing, "f")); got != "hello world" {
		t.Fatalf("after cut = %q, want the O_SYNC write only", got)
	}
	// Operations after a cut fail.
	if _, err := os.Stat(filepath.Join(mnt, "f")); err == nil {
		t.Fatal("stat after the cut and unmount succeeded on the mount")
	}
}

func TestCleanUnmountKeepsEverythingAndRemountReads(t *testing.T) {
	backing := t.TempDir()
	f, mnt := mount(t, backing, lazyfs.Options{})
	if err := os.MkdirAll(filepath.Join(mnt, "x", "y"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mnt, "x", "y", "z"), "zz", false)
	if err := f.Unmount(); err != nil {
		t.Fatal(err)
	}
	_, mnt2 := mount(t, backing, lazyfs.Options{})
	if got, _ := content(t, filepath.Join(mnt2, "x", "y", "z")); got != "zz" {
		t.Fatalf("remounted = %q, want zz", got)
	}
	ents, err := os.ReadDir(filepath.Join(mnt2, "x"))
	if err != nil || len(ents) != 1 || ents[0].Name() != "y" {
		t.Fatalf("readdir = %v, %v", ents, err)
	}
	if err := syscall.Rmdir(filepath.Join(mnt2, "x")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir of a non-empty directory: %v", err)
	}
}
