package lazyfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"
)

// ErrCut is returned by every operation after Cut: the power is off.
var ErrCut = errors.New("lazyfs: power cut")

// node is one inode: a regular file or a directory. Its current state is
// what readers see (the page cache); its durable state is what a power
// cut leaves.
type node struct {
	ino   uint64
	dir   bool
	perm  uint32
	mtime time.Time
	nlink int // current directory entries naming it

	// Regular file: current bytes, durable bytes, and the hull of the
	// bytes changed since the last sync (the only ones a sync copies).
	data   []byte
	dur    []byte
	dirty  bool
	lo, hi int64

	// Directory: current and durable entries.
	kids    map[string]*node
	durKids map[string]*node
}

// tree is the in-memory state of a mounted filesystem: every inode,
// current and durable. It knows nothing of FUSE (the model the tests
// check against a plain map).
type tree struct {
	mu        sync.Mutex
	root      *node
	next      uint64
	cut       bool
	journaled bool
	dirs      []*node // every directory ever made (journaled commits)
	syncs     uint64  // fsync calls that made something durable
}

func newTree(journaled bool) *tree {
	t := &tree{journaled: journaled, next: 1}
	t.root = t.newNode(true, 0o755)
	t.root.nlink = 1
	return t
}

func (t *tree) newNode(dir bool, perm uint32) *node {
	t.next++
	n := &node{ino: t.next, dir: dir, perm: perm & 0o7777, mtime: time.Now()}
	if dir {
		n.kids, n.durKids = map[string]*node{}, map[string]*node{}
		t.dirs = append(t.dirs, n)
	}
	return n
}

// load reads a directory on disk into the tree as durable state.
func (t *tree) load(dir string) error {
	var walk func(d *node, path string) error
	walk = func(d *node, path string) error {
		ents, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range ents {
			p := filepath.Join(path, e.Name())
			info, err := os.Lstat(p)
			if err != nil {
				return err
			}
			switch {
			case info.IsDir():
				c := t.newNode(true, uint32(info.Mode().Perm()))
				if err := walk(c, p); err != nil {
					return err
				}
				t.link(d, e.Name(), c)
			case info.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				c := t.newNode(false, uint32(info.Mode().Perm()))
				c.data, c.dur = b, slices.Clone(b)
				c.mtime = info.ModTime()
				t.link(d, e.Name(), c)
			default:
				return fmt.Errorf("lazyfs: %s: only regular files and directories are supported", p)
			}
		}
		d.durKids = clone(d.kids)
		return nil
	}
	return walk(t.root, dir)
}

func clone(m map[string]*node) map[string]*node {
	c := make(map[string]*node, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (t *tree) link(d *node, name string, c *node) {
	d.kids[name] = c
	c.nlink++
	d.mtime = time.Now()
}

func (t *tree) unlinkEntry(d *node, name string) {
	if c := d.kids[name]; c != nil {
		c.nlink--
		delete(d.kids, name)
		d.mtime = time.Now()
	}
}

// check returns ErrCut-as-errno once the power is off.
func (t *tree) check() syscall.Errno {
	if t.cut {
		return syscall.EIO
	}
	return 0
}

func (t *tree) lookup(d *node, name string) (*node, syscall.Errno) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return nil, e
	}
	if !d.dir {
		return nil, syscall.ENOTDIR
	}
	c := d.kids[name]
	if c == nil {
		return nil, syscall.ENOENT
	}
	return c, 0
}

func (t *tree) mknode(d *node, name string, dir bool, perm uint32) (*node, syscall.Errno) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return nil, e
	}
	if d.kids[name] != nil {
		return nil, syscall.EEXIST
	}
	c := t.newNode(dir, perm)
	t.link(d, name, c)
	return c, 0
}

func (t *tree) hardlink(d *node, name string, c *node) syscall.Errno {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return e
	}
	if c.dir {
		return syscall.EPERM
	}
	if d.kids[name] != nil {
		return syscall.EEXIST
	}
	t.link(d, name, c)
	return 0
}

func (t *tree) remove(d *node, name string, dir bool) syscall.Errno {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return e
	}
	c := d.kids[name]
	switch {
	case c == nil:
		return syscall.ENOENT
	case dir && !c.dir:
		return syscall.ENOTDIR
	case !dir && c.dir:
		return syscall.EISDIR
	case dir && len(c.kids) > 0:
		return syscall.ENOTEMPTY
	}
	t.unlinkEntry(d, name)
	return 0
}

// RENAME_NOREPLACE and RENAME_EXCHANGE (linux/fs.h).
const (
	renameNoReplace = 1
	renameExchange  = 2
)

func (t *tree) rename(d *node, name string, nd *node, nname string, flags uint32) syscall.Errno {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return e
	}
	if flags&renameExchange != 0 {
		return syscall.EINVAL
	}
	c := d.kids[name]
	if c == nil {
		return syscall.ENOENT
	}
	if d == nd && name == nname {
		return 0
	}
	if c.dir && t.isAncestor(c, nd) {
		return syscall.EINVAL
	}
	if old := nd.kids[nname]; old != nil {
		if flags&renameNoReplace != 0 {
			return syscall.EEXIST
		}
		if old == c {
			t.unlinkEntry(d, name)
			return 0
		}
		switch {
		case c.dir && !old.dir:
			return syscall.ENOTDIR
		case !c.dir && old.dir:
			return syscall.EISDIR
		case old.dir && len(old.kids) > 0:
			return syscall.ENOTEMPTY
		}
		t.unlinkEntry(nd, nname)
	}
	t.unlinkEntry(d, name)
	t.link(nd, nname, c)
	return 0
}

// isAncestor reports whether a is d or one of d's ancestors (current tree).
func (t *tree) isAncestor(a, d *node) bool {
	if a == d {
		return true
	}
	var walk func(n *node) bool
	walk = func(n *node) bool {
		for _, c := range n.kids {
			if c == d {
				return true
			}
			if c.dir && walk(c) {
				return true
			}
		}
		return false
	}
	return walk(a)
}

func (n *node) mark(lo, hi int64) {
	if lo > hi {
		lo, hi = hi, lo
	}
	if !n.dirty {
		n.lo, n.hi, n.dirty = lo, hi, true
		return
	}
	n.lo, n.hi = min(n.lo, lo), max(n.hi, hi)
}

// resize sets the current length, zeroing bytes a grown file exposes.
func (n *node) resize(size int64) {
	old := int64(len(n.data))
	switch {
	case size < old:
		n.data = n.data[:size]
	case size > old:
		n.data = slices.Grow(n.data, int(size-old))[:size]
		clear(n.data[old:])
	}
	if size != old {
		n.mark(old, size)
	}
}

func (t *tree) write(n *node, p []byte, off int64, sync bool) (int, syscall.Errno) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return 0, e
	}
	if n.dir {
		return 0, syscall.EISDIR
	}
	end := off + int64(len(p))
	if end > int64(len(n.data)) {
		n.resize(end)
	}
	copy(n.data[off:], p)
	n.mark(off, end)
	n.mtime = time.Now()
	if sync {
		t.syncFile(n)
	}
	return len(p), 0
}

func (t *tree) read(n *node, dest []byte, off int64) ([]byte, syscall.Errno) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return nil, e
	}
	if off >= int64(len(n.data)) {
		return nil, 0
	}
	k := copy(dest, n.data[off:])
	return dest[:k], 0
}

func (t *tree) truncate(n *node, size int64) syscall.Errno {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return e
	}
	if n.dir {
		return syscall.EISDIR
	}
	n.resize(size)
	n.mtime = time.Now()
	return 0
}

// fsync makes n durable: a file's bytes and size, a directory's entries.
// Under journaled metadata it also commits every directory's entries, as
// a journaling filesystem's fsync commits the whole running transaction.
func (t *tree) fsync(n *node) syscall.Errno {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return e
	}
	t.syncs++
	if n.dir {
		n.durKids = clone(n.kids)
	} else {
		t.syncFile(n)
	}
	if t.journaled {
		for _, d := range t.dirs {
			d.durKids = clone(d.kids)
		}
	}
	return 0
}

func (t *tree) syncFile(n *node) {
	size := int64(len(n.data))
	if int64(len(n.dur)) > size {
		n.dur = n.dur[:size]
	} else if int64(len(n.dur)) < size {
		old := len(n.dur)
		n.dur = slices.Grow(n.dur, int(size)-old)[:size]
		clear(n.dur[old:])
	}
	if n.dirty {
		lo, hi := min(n.lo, size), min(n.hi, size)
		copy(n.dur[lo:hi], n.data[lo:hi])
		n.dirty = false
	}
}

// syncAll makes everything durable (a clean unmount).
func (t *tree) syncAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	var walk func(d *node)
	seen := map[*node]bool{}
	walk = func(d *node) {
		if seen[d] {
			return
		}
		seen[d] = true
		d.durKids = clone(d.kids)
		for _, c := range d.kids {
			if c.dir {
				walk(c)
			} else {
				t.syncFile(c)
			}
		}
	}
	walk(t.root)
}

// entry is one name of the durable tree, for writing it out.
type entry struct {
	path string
	n    *node
}

// durable lists the durable tree: what a reboot finds, parents first.
func (t *tree) durable() []entry {
	var out []entry
	var walk func(d *node, path string, onPath map[*node]bool)
	walk = func(d *node, path string, onPath map[*node]bool) {
		names := make([]string, 0, len(d.durKids))
		for k := range d.durKids {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, name := range names {
			c := d.durKids[name]
			p := filepath.Join(path, name)
			if c.dir {
				if onPath[c] {
					continue // a cycle the unsynced renames left
				}
				out = append(out, entry{p, c})
				onPath[c] = true
				walk(c, p, onPath)
				delete(onPath, c)
				continue
			}
			out = append(out, entry{p, c})
		}
	}
	walk(t.root, "", map[*node]bool{t.root: true})
	return out
}

// writeOut replaces the contents of dir with the durable tree.
func (t *tree) writeOut(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	for _, e := range t.durable() {
		p := filepath.Join(dir, e.path)
		if e.n.dir {
			if err := os.Mkdir(p, fs.FileMode(e.n.perm)|0o700); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(p, e.n.dur, fs.FileMode(e.n.perm)|0o600); err != nil {
			return err
		}
	}
	return nil
}
