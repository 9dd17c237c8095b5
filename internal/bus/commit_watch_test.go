package bus

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// syncRecorder records the paths a committer fsyncs, relative to its
// store directory.
type syncRecorder struct {
	mu    sync.Mutex
	dir   string
	paths []string
}

func recordSyncs(t *testing.T, c *committer) *syncRecorder {
	t.Helper()
	r := &syncRecorder{dir: c.dir}
	next := c.syncPath
	c.syncPath = func(p string) error {
		err := next(p)
		if err == nil {
			rel, rerr := filepath.Rel(r.dir, p)
			if rerr != nil {
				t.Error(rerr)
			}
			r.mu.Lock()
			r.paths = append(r.paths, filepath.ToSlash(rel))
			r.mu.Unlock()
		}
		return err
	}
	return r
}

// round runs one round and returns the paths it fsynced, sorted.
func (r *syncRecorder) round(t *testing.T, c *committer) []string {
	t.Helper()
	r.mu.Lock()
	r.paths = nil
	r.mu.Unlock()
	if err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	got := slices.Clone(r.paths)
	slices.Sort(got)
	return got
}

func write(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func wantSynced(t *testing.T, step string, got []string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: synced %q, want %q", step, got, want)
	}
}

// What the embedded server does to its store — append to a block, write
// a file under a temporary name and rename it into place, make a stream's
// directories and write in them at once, rename a directory (a purge),
// remove files and directories — is each synced by the next round: the
// files written and the directories whose names changed.
func TestGroupCommitWatchFollowsTheStore(t *testing.T) {
	dir := t.TempDir()
	msgs := filepath.Join(dir, "streams", "S", "msgs")
	if err := os.MkdirAll(msgs, 0o750); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(msgs, "1.blk"), "a")
	c := watchingCommitter(t, dir)
	defer c.close()
	rec := recordSyncs(t, c)

	wantSynced(t, "first round", rec.round(t, c), ".", "streams", "streams/S", "streams/S/msgs", "streams/S/msgs/1.blk")
	wantSynced(t, "nothing written", rec.round(t, c))

	write(t, filepath.Join(msgs, "1.blk"), "b")
	wantSynced(t, "an append", rec.round(t, c), "streams/S/msgs/1.blk")

	// Many writes between two rounds cost the kernel one event (and the
	// watch's removal): the file's watch fires once until the round arms
	// it again.
	events := c.events.Load()
	for range 100 {
		write(t, filepath.Join(msgs, "1.blk"), "m")
	}
	wantSynced(t, "100 appends", rec.round(t, c), "streams/S/msgs/1.blk")
	if n := c.events.Load() - events; n > 2 {
		t.Fatalf("100 appends raised %d events, want the one-shot watch's 2", n)
	}
	write(t, filepath.Join(msgs, "1.blk"), "n")
	wantSynced(t, "an append after the watch was armed again", rec.round(t, c), "streams/S/msgs/1.blk")

	write(t, filepath.Join(dir, "streams", "S", "meta.inf.tmp"), "{}")
	if err := os.Rename(filepath.Join(dir, "streams", "S", "meta.inf.tmp"), filepath.Join(dir, "streams", "S", "meta.inf")); err != nil {
		t.Fatal(err)
	}
	wantSynced(t, "a file renamed into place", rec.round(t, c), "streams/S", "streams/S/meta.inf")
	write(t, filepath.Join(dir, "streams", "S", "meta.inf"), "+")
	wantSynced(t, "an append to the file renamed into place", rec.round(t, c), "streams/S/meta.inf")
	write(t, filepath.Join(msgs, "new.blk"), "1")
	wantSynced(t, "a new file", rec.round(t, c), "streams/S/msgs", "streams/S/msgs/new.blk")
	write(t, filepath.Join(msgs, "new.blk"), "2")
	wantSynced(t, "an append to the new file", rec.round(t, c), "streams/S/msgs/new.blk")

	// A new stream: its directories and the block written in them before
	// any round ran.
	tmsgs := filepath.Join(dir, "streams", "T", "msgs")
	if err := os.MkdirAll(tmsgs, 0o750); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(tmsgs, "1.blk"), "c")
	got := rec.round(t, c)
	for _, p := range []string{"streams", "streams/T", "streams/T/msgs", "streams/T/msgs/1.blk"} {
		if !slices.Contains(got, p) {
			t.Fatalf("after a new stream: synced %q, want %s among them", got, p)
		}
	}
	write(t, filepath.Join(tmsgs, "1.blk"), "d")
	wantSynced(t, "an append in the new stream", rec.round(t, c), "streams/T/msgs/1.blk")

	// A directory renamed: its files are followed under the new name.
	if err := os.Rename(filepath.Join(dir, "streams", "T"), filepath.Join(dir, "streams", "U")); err != nil {
		t.Fatal(err)
	}
	got = rec.round(t, c)
	if !slices.Contains(got, "streams") || !slices.Contains(got, "streams/U/msgs/1.blk") {
		t.Fatalf("after a directory rename: synced %q", got)
	}
	write(t, filepath.Join(dir, "streams", "U", "msgs", "1.blk"), "e")
	wantSynced(t, "an append after the rename", rec.round(t, c), "streams/U/msgs/1.blk")

	if err := os.Remove(filepath.Join(msgs, "1.blk")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(msgs, "new.blk")); err != nil {
		t.Fatal(err)
	}
	wantSynced(t, "a file removed", rec.round(t, c), "streams/S/msgs")

	if err := os.RemoveAll(filepath.Join(dir, "streams", "U")); err != nil {
		t.Fatal(err)
	}
	got = rec.round(t, c)
	if !slices.Contains(got, "streams") || slices.Contains(got, "streams/U") {
		t.Fatalf("after a directory removed: synced %q", got)
	}
	write(t, filepath.Join(dir, "streams", "S", "meta.inf"), "f")
	wantSynced(t, "an append after the removal", rec.round(t, c), "streams/S/meta.inf")
}

// A write that lands just after a round fsynced its file (here made from
// within the fsync) is synced by the next round: the file's watch is
// armed again before the fsync, not after.
func TestGroupCommitWatchWriteDuringFsync(t *testing.T) {
	dir := t.TempDir()
	blk := filepath.Join(dir, "1.blk")
	write(t, blk, "a")
	c := watchingCommitter(t, dir)
	defer c.close()
	rec := recordSyncs(t, c)
	wantSynced(t, "first round", rec.round(t, c), ".", "1.blk")
	write(t, blk, "b")
	recorded := c.syncPath
	var once sync.Once
	c.syncPath = func(p string) error {
		err := recorded(p)
		if p == blk {
			once.Do(func() { write(t, blk, "c") })
		}
		return err
	}
	wantSynced(t, "the round whose fsync a write follows", rec.round(t, c), "1.blk")
	wantSynced(t, "the next round", rec.round(t, c), "1.blk")
}
