package bus

import (
	"path/filepath"
	"syscall"
	"testing"
)

// When the watch fails (here its descriptor is gone) the
// committer walks the store from then on, syncing everything once.
func TestGroupCommitWatchFailureWalks(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "1.blk"), "a")
	c := watchingCommitter(t, dir)
	defer c.close()
	var warned []error
	c.warn = func(_ string, err error) { warned = append(warned, err) }
	rec := recordSyncs(t, c)
	wantSynced(t, "first round", rec.round(t, c), ".", "1.blk")
	fd := c.watch.fd
	c.watch.fd = -1 // reads fail with EBADF; nothing closes a reused number
	if err := syscall.Close(fd); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "1.blk"), "b")
	wantSynced(t, "the round the watch failed", rec.round(t, c), ".", "1.blk")
	if c.watch != nil {
		t.Fatal("still watching after the watch failed")
	}
	if len(warned) != 1 {
		t.Fatalf("the failure was reported %d times, want once: %v", len(warned), warned)
	}
	write(t, filepath.Join(dir, "2.blk"), "c")
	got := rec.round(t, c)
	if len(got) == 0 || got[len(got)-1] != "2.blk" {
		t.Fatalf("a walk round after the failure synced %q, want the new file among them", got)
	}
}
