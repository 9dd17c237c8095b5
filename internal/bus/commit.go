package bus

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sightline/sightline/internal/fsync"
)

// Group commit (nats.sync: group).
//
// Under SyncAlways the embedded server fsyncs after every single message,
// so a stream takes about one message per disk flush. Under group commit
// the server writes every message to its files at once (a process crash
// loses nothing: the bytes are in the kernel) and this process makes them
// durable itself, once per group of writers: before the bus acknowledges
// anything — an input whose outputs and dead letters were published, a
// Publish that HTTP ingest answers 202 for — it waits for a commit round
// that started after its PubAcks arrived. A round fsyncs every file and
// directory of the store that changed since the previous round — the ones
// inotify named (commit_watch_linux.go), or, without it, the ones a walk
// of the store finds changed; all the writers that arrive while one
// round runs share the next. A background
// round runs every groupCommitInterval while the store changes, which
// bounds how long a PubAck the server gave straight to an outside
// JetStream publisher waits before it is on disk.

// groupCommitInterval is how often a background commit round runs while
// the store changes (limits the loss window of PubAcks the embedded
// server gives to outside publishers; see docs/consumers.md).
const groupCommitInterval = 10 * time.Millisecond

// committer runs commit rounds over one store directory.
type committer struct {
	dir string

	mu      sync.Mutex
	running *commitRound // the round in progress
	next    *commitRound // the round that starts after it (joined by new waiters)
	closing bool         // close was called: the last round closes the watch

	// watch, when the platform has one (Linux: inotify), tells a round
	// which paths were written since the previous one; without it a
	// round walks the store and compares stamps. Both are read only by
	// the round goroutine.
	watch *watcher
	// stamps holds what each file and directory looked like when it was
	// last synced (walk rounds).
	stamps map[string]fileStamp
	// syncPath makes one path durable (fsync.Path; tests record).
	syncPath func(string) error

	// warn, when set, is told once when the watch cannot be had or
	// fails: rounds then cost a walk of the store (more CPU per round).
	warn func(msg string, err error)
	// watchErr is why newCommitter has no watch (nil with one).
	watchErr error

	rounds atomic.Uint64 // rounds run
	synced atomic.Uint64 // files and directories fsynced
	walks  atomic.Uint64 // rounds that walked the whole store
	events atomic.Uint64 // file system events read
}

type commitRound struct {
	done chan struct{}
	err  error
}

type fileStamp struct {
	size  int64
	mtime int64
	ino   uint64
}

// stampSettle: a file or directory modified less than this long before a
// round is synced again by the next round, whatever its stamp says. File
// systems keep modification times in coarse ticks (ext4: the kernel's
// jiffy), so a write of the same size in the same tick as the stamp would
// otherwise look unchanged.
const stampSettle = 50 * time.Millisecond

// newCommitter returns a committer over dir that learns what changed from
// file system events where it can, by walking the store otherwise.
func newCommitter(dir string) *committer {
	c := newWalkCommitter(dir)
	w, err := newWatcher()
	if err != nil {
		c.watchErr = err
		return c
	}
	c.watch = w
	return c
}

// newWalkCommitter returns a committer whose every round walks the store.
func newWalkCommitter(dir string) *committer {
	return &committer{dir: dir, stamps: map[string]fileStamp{}, syncPath: fsync.Path}
}

// close releases the watch (now, or when the round in progress ends);
// rounds after it walk the store.
func (c *committer) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if c.running == nil {
		c.closeWatch()
	}
}

// closeWatch closes the watch; the caller holds mu with no round running,
// or is the round goroutine.
func (c *committer) closeWatch() {
	if c.watch != nil {
		c.watch.close()
		c.watch = nil
	}
}

// Wait returns once everything written to the store before it was called
// is on disk: it joins the next round to start (never one already
// running, which may have looked at a file before the caller's write).
func (c *committer) Wait(ctx context.Context) error {
	c.mu.Lock()
	var r *commitRound
	if c.running == nil {
		r = &commitRound{done: make(chan struct{})}
		c.running = r
		go c.run(r)
	} else {
		if c.next == nil {
			c.next = &commitRound{done: make(chan struct{})}
		}
		r = c.next
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("bus: group commit: %w", ctx.Err())
	}
}

// run runs r and then every round queued behind it, one at a time.
func (c *committer) run(r *commitRound) {
	for r != nil {
		r.err = c.round()
		close(r.done)
		c.mu.Lock()
		r, c.next = c.next, nil
		c.running = r
		if r == nil && c.closing {
			c.closeWatch()
		}
		c.mu.Unlock()
	}
}

// background runs a round every interval until ctx ends, so PubAcks the
// server gives to outside publishers are on disk within about interval
// plus one round.
func (c *committer) background(ctx context.Context, interval time.Duration, log func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.Wait(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil && !failing {
			log(err)
		}
		failing = err != nil
	}
}

// round fsyncs what was written to the store since the previous round:
// the paths the watch names, or, without a watch, what a walk finds
// changed.
func (c *committer) round() error {
	c.rounds.Add(1)
	if c.watch != nil {
		err := c.watchRound()
		if !errors.Is(err, errWatchFailed) {
			return err
		}
		// The watch can no longer say what changed (out of inotify
		// watches, say): walk from now on, syncing everything once.
		c.closeWatch()
		clear(c.stamps)
		if c.warn != nil {
			c.warn("group commit: the file system watch failed; every commit round now walks the store (more CPU per round, the same guarantee)", err)
		}
	}
	return c.walkRound()
}

// walkRound fsyncs every regular file and directory under the store whose
// size or modification time changed since it was last synced. A file is
// stamped before its fsync, so a write that lands during the fsync
// changes the stamp and is synced again by the next round.
func (c *committer) walkRound() error {
	c.walks.Add(1)
	start := time.Now()
	var errs []error
	seen := make(map[string]bool, len(c.stamps))
	walkErr := filepath.WalkDir(c.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (a deleted block, a temp file)
			}
			errs = append(errs, err)
			return nil
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil
		}
		seen[path] = true
		st := fileStamp{size: info.Size(), mtime: info.ModTime().UnixNano(), ino: inode(info)}
		if old, ok := c.stamps[path]; ok && old == st {
			return nil
		}
		if err := c.syncPath(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			errs = append(errs, err)
			return nil
		}
		c.synced.Add(1)
		if start.Sub(info.ModTime()) > stampSettle {
			c.stamps[path] = st
		} else {
			delete(c.stamps, path)
		}
		return nil
	})
	if walkErr != nil {
		errs = append(errs, walkErr)
	}
	for p := range c.stamps {
		if !seen[p] {
			delete(c.stamps, p)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bus: group commit: %w", err)
	}
	return nil
}

// syncParents fsyncs dir's parent and grandparent, so a store directory
// made by MkdirAll (.sightline/jetstream) survives a power cut: a
// directory's own entry lives in its parent.
func syncParents(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	parent := filepath.Dir(abs)
	if err := fsync.Path(parent); err != nil {
		return err
	}
	return fsync.Path(filepath.Dir(parent))
}

// Commit waits for a group commit round when the bus runs one (nats.sync:
// group); otherwise the server's own policy applies and it returns nil.
// Call it after PubAcks and before acknowledging anything they cover.
func (b *Bus) Commit(ctx context.Context) error {
	if b == nil || b.committer == nil {
		return nil
	}
	return b.committer.Wait(ctx)
}

func inode(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
