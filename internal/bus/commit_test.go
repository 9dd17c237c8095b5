package bus

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
)

// Every caller waits for a round that started after it called, and
// concurrent callers share rounds.
func TestGroupCommitCoalescesWaiters(t *testing.T) {
	dir := t.TempDir()
	c := newCommitter(dir)
	defer c.close()
	f, err := os.Create(filepath.Join(dir, "1.blk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const writers = 200
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Write([]byte("message\n")); err != nil {
				errs <- err
				return
			}
			errs <- c.Wait(context.Background())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rounds := c.rounds.Load()
	if rounds == 0 || rounds >= writers {
		t.Fatalf("%d rounds for %d concurrent writers: want shared rounds", rounds, writers)
	}
	t.Logf("%d writers, %d rounds, %d fsyncs", writers, rounds, c.synced.Load())
}

// A round syncs only what changed since the previous one: a file written
// again (or a new file) is synced again, an untouched one is not — whether
// the committer learns it from file system events or by walking the store.
func TestGroupCommitSyncsWhatChanged(t *testing.T) {
	t.Run("watch", func(t *testing.T) { testSyncsWhatChanged(t, true) })
	t.Run("walk", func(t *testing.T) { testSyncsWhatChanged(t, false) })
}

func testSyncsWhatChanged(t *testing.T, watch bool) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "streams", "S", "msgs"), 0o750); err != nil {
		t.Fatal(err)
	}
	blk := filepath.Join(dir, "streams", "S", "msgs", "1.blk")
	if err := os.WriteFile(blk, []byte("a"), 0o640); err != nil {
		t.Fatal(err)
	}
	c := newWalkCommitter(dir)
	if watch {
		c = watchingCommitter(t, dir)
	}
	defer c.close()
	ctx := context.Background()
	age(t, dir)
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	first := c.synced.Load()
	if first != 5 { // dir, streams, S, msgs, 1.blk
		t.Fatalf("first round synced %d paths, want 5", first)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.synced.Load(); got != first {
		t.Fatalf("a round with nothing changed synced %d paths", got-first)
	}
	fh, err := os.OpenFile(blk, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	age(t, blk)
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.synced.Load() - first; got != 1 {
		t.Fatalf("after one append %d paths synced, want 1", got)
	}
	// A new block: the file and its directory.
	if err := os.WriteFile(filepath.Join(dir, "streams", "S", "msgs", "2.blk"), []byte("c"), 0o640); err != nil {
		t.Fatal(err)
	}
	before := c.synced.Load()
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.synced.Load() - before; got != 2 {
		t.Fatalf("after a new block %d paths synced, want 2 (the file and its directory)", got)
	}
	if watch {
		before = c.synced.Load()
		if err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if got := c.synced.Load() - before; got != 0 {
			t.Fatalf("a round with nothing written synced %d paths", got)
		}
		if w := c.walks.Load(); w != 1 {
			t.Fatalf("%d walks of the store, want the first round's only", w)
		}
		return
	}
	// Written a moment ago: synced again by the next round whatever its
	// stamp (coarse modification times).
	before = c.synced.Load()
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.synced.Load() - before; got != 2 {
		t.Fatalf("a round right after a write synced %d paths, want the 2 still settling", got)
	}
}

// age sets the modification time of everything under root an hour in the
// past (a distinct time per call), as if written long before the round.
func age(t *testing.T, dir string) {
	t.Helper()
	ageN++
	old := time.Now().Add(-time.Hour - time.Duration(ageN)*time.Second)
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

var ageN int

// A caller whose context ends stops waiting; the round still completes.
func TestGroupCommitWaitHonoursContext(t *testing.T) {
	c := newCommitter(t.TempDir())
	defer c.close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Wait(ctx); err == nil {
		// The round may have finished first; either answer is fine, but it
		// must not hang.
		t.Log("round finished before the cancelled context was seen")
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.rounds.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Under nats.sync: group a Publish returns only after a commit round ran
// (Wait joins only rounds that start after it is called).
func TestPublishWaitsForGroupCommit(t *testing.T) {
	dir := t.TempDir()
	b, err := Connect(context.Background(), Options{Port: -1, StoreDir: dir, Sync: SyncGroup})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.EnsureStreams(ctx, DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	c := b.committer
	for i := 0; i < 20; i++ {
		before := c.rounds.Load()
		msg := &stage.Message{Subject: stage.RawPrefix + "metric.commit", ID: "commit-" + strconv.Itoa(i), Data: []byte(`{"n":1}`)}
		if _, err := b.Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if c.rounds.Load() == before {
			t.Fatalf("publish %d returned without a commit round", i)
		}
	}
}

// watchingCommitter returns a committer over dir that learns what changed
// from file system events, skipping the test where there are none.
func watchingCommitter(t *testing.T, dir string) *committer {
	t.Helper()
	c := newCommitter(dir)
	if c.watch == nil {
		t.Skip("no file system events on this platform: every round walks the store")
	}
	return c
}
