//go:build linux

package bus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
)

// A watcher learns from inotify which paths of the store were written,
// created, renamed or removed, so a round fsyncs those without looking at
// the rest. The kernel queues an event before the write, create or rename
// that causes it returns, so an event for every write made before a
// caller's Wait is in the queue when the round it joins starts and
// drains it.
//
// Each directory has a watch for its names (created, removed, renamed);
// each file a one-shot watch for its data: the first write after the
// watch is armed raises one event and disarms it, so the writes that
// follow cost the kernel nothing until the round that syncs the file
// arms the watch again — before its fsync, so a write is either covered
// by that fsync or raises the next event. Whatever the events cannot say
// exactly — a directory created, removed or renamed (its files need
// watching or its watches name the wrong path), a queue overflow, a
// directory's watch removed — makes the next round resync: arm every
// watch, then fsync every file and directory of the store.
type watcher struct {
	fd     int
	dirs   map[int32]string    // directory watch → the directory
	files  map[int32]string    // armed file watch → the file
	dirty  map[string]struct{} // files to arm and fsync, kept until synced
	dirtyD map[string]struct{} // directories to fsync, kept until synced
	resync bool                // the next round watches and fsyncs everything
	buf    []byte
	path   []byte // scratch for dir + "/" + name
	events uint64 // events read
}

// dirEvents are the changes a directory's watch reports: names created,
// removed and renamed, and the directory itself removed or renamed.
const dirEvents = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM |
	syscall.IN_MOVED_TO | syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF |
	syscall.IN_ONLYDIR | syscall.IN_DONT_FOLLOW

// fileEvents: a file's data written (write, truncate, fallocate), once.
const fileEvents = syscall.IN_MODIFY | syscall.IN_ONESHOT | syscall.IN_DONT_FOLLOW

func newWatcher() (*watcher, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1 (fs.inotify.max_user_instances): %w", err)
	}
	return &watcher{
		fd:     fd,
		dirs:   map[int32]string{},
		files:  map[int32]string{},
		dirty:  map[string]struct{}{},
		dirtyD: map[string]struct{}{},
		resync: true,
		buf:    make([]byte, 64<<10), // holds any one event (a name is at most 255 bytes)
	}, nil
}

func (w *watcher) close() { _ = syscall.Close(w.fd) }

// drain reads every queued event.
func (w *watcher) drain() error {
	for {
		n, err := syscall.Read(w.fd, w.buf)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return nil
		case err != nil:
			return err
		case n <= 0:
			return fmt.Errorf("inotify read returned %d", n)
		}
		w.parse(w.buf[:n])
	}
}

// parse takes in the events of one read (struct inotify_event: wd, mask,
// cookie, len, then len bytes of NUL-padded name).
func (w *watcher) parse(b []byte) {
	const head = syscall.SizeofInotifyEvent
	for len(b) >= head {
		wd := int32(binary.NativeEndian.Uint32(b[0:]))
		mask := binary.NativeEndian.Uint32(b[4:])
		n := int(binary.NativeEndian.Uint32(b[12:]))
		if head+n > len(b) {
			w.resync = true // cannot happen: the kernel returns whole events
			return
		}
		name := b[head : head+n]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		w.event(wd, mask, name)
		b = b[head+n:]
	}
}

func (w *watcher) event(wd int32, mask uint32, name []byte) {
	w.events++
	if mask&syscall.IN_Q_OVERFLOW != 0 {
		w.resync = true
		return
	}
	if file, ok := w.files[wd]; ok {
		// A one-shot watch fired (IN_MODIFY, then IN_IGNORED), or the
		// file is gone (IN_IGNORED): either way the watch is disarmed.
		delete(w.files, wd)
		if mask&syscall.IN_MODIFY != 0 {
			w.markFile(file)
		}
		return
	}
	dir, ok := w.dirs[wd]
	if !ok {
		return // a watch already dropped
	}
	if mask&(syscall.IN_IGNORED|syscall.IN_DELETE_SELF|syscall.IN_MOVE_SELF|syscall.IN_UNMOUNT) != 0 {
		w.resync = true
		return
	}
	if mask&syscall.IN_ISDIR != 0 {
		w.resync = true // a directory created, removed or renamed
		return
	}
	w.markDir(dir)
	if mask&(syscall.IN_CREATE|syscall.IN_MOVED_TO) != 0 && len(name) > 0 {
		// A new name: the file needs its watch armed, and syncing (a
		// file renamed into place was written under another name).
		w.path = append(append(append(w.path[:0], dir...), filepath.Separator), name...)
		if _, ok := w.dirty[string(w.path)]; !ok {
			w.dirty[string(w.path)] = struct{}{}
		}
	}
}

func (w *watcher) markFile(p string) {
	if _, ok := w.dirty[p]; !ok {
		w.dirty[p] = struct{}{}
	}
}

func (w *watcher) markDir(dir string) {
	if _, ok := w.dirtyD[dir]; !ok {
		w.dirtyD[dir] = struct{}{}
	}
}

// arm arms file's one-shot watch (again); false when the file is gone.
func (w *watcher) arm(file string) (bool, error) {
	wd, err := syscall.InotifyAddWatch(w.fd, file, fileEvents)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			return false, nil
		}
		return false, fmt.Errorf("%w: %s: %v", errWatchFailed, file, err)
	}
	w.files[int32(wd)] = file
	return true, nil
}

// errWatchFailed: the watch cannot tell what changed any more; the
// committer walks the store from then on.
var errWatchFailed = errors.New("inotify watch failed")

// watchRound fsyncs the paths written since the previous round, or, when
// the events cannot say, resyncs.
func (c *committer) watchRound() error {
	w := c.watch
	before := w.events
	err := w.drain()
	c.events.Add(w.events - before)
	if err != nil {
		return fmt.Errorf("%w: %v", errWatchFailed, err)
	}
	if w.resync {
		return c.resyncRound()
	}
	var errs []error
	for p := range w.dirty {
		// Armed before the fsync: a write after the arm raises the next
		// event, one before it is covered by the fsync.
		there, err := w.arm(p)
		if err != nil {
			return err
		}
		if there {
			err = c.syncPath(p)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err) // kept: the next round tries again
			continue
		}
		delete(w.dirty, p) // synced, or removed (its directory is marked)
		if there && err == nil {
			c.synced.Add(1)
		}
	}
	for p := range w.dirtyD {
		err := c.syncPath(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		delete(w.dirtyD, p)
		if err == nil {
			c.synced.Add(1)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bus: group commit: %w", err)
	}
	return nil
}

// resyncRound watches every directory of the store, each before it is
// listed (whatever is created in it after the listing raises an event),
// arms every file's watch before its fsync, fsyncs every directory, and
// drops the watches of paths no longer in the store.
func (c *committer) resyncRound() error {
	c.walks.Add(1)
	w := c.watch
	w.resync = false
	clear(w.dirty) // everything is synced below
	clear(w.dirtyD)
	oldDirs, oldFiles := w.dirs, w.files
	w.dirs = make(map[int32]string, len(oldDirs))
	w.files = make(map[int32]string, len(oldFiles))
	var errs []error
	walkErr := filepath.WalkDir(c.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil // removed while walking: its parent's event resyncs
		}
		switch {
		case d.IsDir():
			wd, err := syscall.InotifyAddWatch(w.fd, path, dirEvents)
			if err != nil {
				if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
					return fs.SkipDir
				}
				return fmt.Errorf("%w: %s: %v", errWatchFailed, path, err)
			}
			w.dirs[int32(wd)] = path
		case d.Type().IsRegular():
			there, err := w.arm(path)
			if err != nil {
				return err
			}
			if !there {
				return nil
			}
		default:
			return nil
		}
		if err := c.syncPath(path); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil
		}
		c.synced.Add(1)
		return nil
	})
	if errors.Is(walkErr, errWatchFailed) {
		return walkErr
	}
	if walkErr != nil {
		errs = append(errs, walkErr)
	}
	for wd := range oldDirs {
		if _, ok := w.dirs[wd]; !ok {
			_, _ = syscall.InotifyRmWatch(w.fd, uint32(wd))
		}
	}
	for wd := range oldFiles {
		if _, ok := w.files[wd]; !ok {
			_, _ = syscall.InotifyRmWatch(w.fd, uint32(wd))
		}
	}
	if err := errors.Join(errs...); err != nil {
		w.resync = true
		return fmt.Errorf("bus: group commit: %w", err)
	}
	return nil
}
