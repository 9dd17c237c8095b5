package bus

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/sightline/sightline/internal/lazyfs"
)

// powerStep is one change to a store the way the embedded server makes
// it, followed by a commit round, and what the store holds after it
// ("" for a path that must not exist).
type powerStep struct {
	name   string
	change func(t *testing.T, p func(string) string)
	holds  map[string]string
}

var powerSteps = []powerStep{
	{"append, a file renamed into place, a new block", func(t *testing.T, p func(string) string) {
		write(t, p("streams/S/msgs/1.blk"), "b")
		write(t, p("streams/S/meta.inf.tmp"), "meta")
		rename(t, p("streams/S/meta.inf.tmp"), p("streams/S/meta.inf"))
		write(t, p("streams/S/msgs/2.blk"), "e")
	}, map[string]string{"streams/S/msgs/1.blk": "ab", "streams/S/meta.inf": "meta", "streams/S/msgs/2.blk": "e"}},
	{"a new stream's directories and block", func(t *testing.T, p func(string) string) {
		if err := os.MkdirAll(p("streams/T/msgs"), 0o750); err != nil {
			t.Fatal(err)
		}
		write(t, p("streams/T/msgs/1.blk"), "c")
	}, map[string]string{"streams/T/msgs/1.blk": "c"}},
	{"a directory renamed", func(t *testing.T, p func(string) string) {
		rename(t, p("streams/T"), p("streams/U"))
	}, map[string]string{"streams/T/msgs/1.blk": "", "streams/U/msgs/1.blk": "c"}},
	{"append under the new name, a file renamed into place", func(t *testing.T, p func(string) string) {
		write(t, p("streams/U/msgs/1.blk"), "d")
		write(t, p("streams/S/msgs/2.blk"), "f")
		write(t, p("streams/S/meta.inf"), "2")
		write(t, p("streams/S/idx.tmp"), "idx")
		rename(t, p("streams/S/idx.tmp"), p("streams/S/idx"))
	}, map[string]string{"streams/U/msgs/1.blk": "cd", "streams/S/msgs/2.blk": "ef", "streams/S/meta.inf": "meta2", "streams/S/idx": "idx"}},
	{"appends again", func(t *testing.T, p func(string) string) {
		write(t, p("streams/S/msgs/2.blk"), "g")
		write(t, p("streams/S/idx"), "2")
	}, map[string]string{"streams/S/msgs/2.blk": "efg", "streams/S/idx": "idx2"}},
	{"a file removed", func(t *testing.T, p func(string) string) {
		if err := os.Remove(p("streams/S/msgs/1.blk")); err != nil {
			t.Fatal(err)
		}
	}, map[string]string{"streams/S/msgs/1.blk": ""}},
}

// TestGroupCommitSurvivesPowerCut changes a store step by step on a
// lazyfs mount (strict POSIX: a new name is durable once its directory is
// fsynced), waits for a commit round after each step, cuts the power
// after the step under test and reads what survived: everything written
// before the last Wait, nothing written after it. A fresh mount per step
// (a cut is final), with and without file system events.
func TestGroupCommitSurvivesPowerCut(t *testing.T) {
	for _, watch := range []bool{true, false} {
		for last := range powerSteps {
			t.Run(fmt.Sprintf("watch=%v/%s", watch, powerSteps[last].name), func(t *testing.T) {
				testSurvivesPowerCut(t, watch, last)
			})
		}
	}
}

func testSurvivesPowerCut(t *testing.T, watch bool, last int) {
	backing, mnt := t.TempDir(), t.TempDir()
	fsys := lazyfs.MountForTest(t, mnt, backing, lazyfs.Options{})
	defer func() { _ = fsys.Unmount() }()
	store := filepath.Join(mnt, "data", "jetstream")
	p := func(rel string) string { return filepath.Join(store, filepath.FromSlash(rel)) }
	if err := os.MkdirAll(p("streams/S/msgs"), 0o750); err != nil {
		t.Fatal(err)
	}
	write(t, p("streams/S/msgs/1.blk"), "a")
	c := newWalkCommitter(store)
	if watch {
		c = watchingCommitter(t, store)
	}
	defer c.close()
	if err := syncParents(store); err != nil {
		t.Fatal(err)
	}
	wait := func() {
		t.Helper()
		if err := c.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wait()
	holds := map[string]string{"streams/S/msgs/1.blk": "a"}
	for _, s := range powerSteps[:last+1] {
		s.change(t, p)
		wait()
		maps.Copy(holds, s.holds)
	}
	write(t, p("streams/S/late"), "late") // after the last round: lost
	holds["streams/S/late"] = ""

	fsys.Cut()
	if err := fsys.Unmount(); err != nil {
		t.Fatal(err)
	}
	survived := filepath.Join(backing, "data", "jetstream")
	for rel, want := range holds {
		b, err := os.ReadFile(filepath.Join(survived, filepath.FromSlash(rel)))
		switch {
		case want == "" && !errors.Is(err, fs.ErrNotExist):
			t.Errorf("after the power cut %s is there (%q, %v), want it gone", rel, b, err)
		case want != "" && (err != nil || string(b) != want):
			t.Errorf("after the power cut %s: %q, %v; want %q", rel, b, err, want)
		}
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}
