// Package lazyfs is a FUSE filesystem that loses what a power cut loses.
//
// Mount serves a directory whose every change lives in memory (the page
// cache) until it is made durable the way POSIX says: a file's bytes and
// size by fsync or fdatasync of that file (or a write through an O_SYNC /
// O_DSYNC descriptor), a directory's entries — a created, renamed or
// removed name — by fsync of that directory. Cut turns the power off: every
// later operation fails with EIO, and Unmount then writes to the backing
// directory exactly the durable state, the files a reboot would find.
// Without a Cut, Unmount writes everything (a clean shutdown).
//
// LazyFS (dsrhaslab/lazyfs) is the reference design. See README.md.
package lazyfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Options of a mount.
type Options struct {
	// JournaledMetadata makes any fsync also commit every directory's
	// entries, as ext4 (data=ordered) and XFS do: their fsync commits the
	// whole journal transaction. Off (the default) is strict POSIX: a
	// directory's entries are durable only once that directory is fsynced.
	JournaledMetadata bool
}

// FS is one mounted filesystem.
type FS struct {
	t          *tree
	server     *fuse.Server
	mountpoint string
	backing    string
	unmounted  bool
}

// Mount loads backing (an existing directory: what survived so far) and
// serves it at mountpoint (an existing empty directory) until Unmount.
func Mount(mountpoint, backing string, o Options) (*FS, error) {
	t := newTree(o.JournaledMetadata)
	if err := t.load(backing); err != nil {
		return nil, fmt.Errorf("lazyfs: load %s: %w", backing, err)
	}
	f := &FS{t: t, mountpoint: mountpoint, backing: backing}
	root := &fnode{fs: f, n: t.root}
	sec := time.Second
	server, err := fs.Mount(mountpoint, root, &fs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		MountOptions: fuse.MountOptions{
			FsName:        "lazyfs",
			Name:          "lazyfs",
			DisableXAttrs: true,
			DirectMount:   true,
			MaxWrite:      1 << 20,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount %s: %w", mountpoint, err)
	}
	f.server = server
	return f, nil
}

// Cut cuts the power: from now on every operation fails with EIO, and what
// was not durable is gone. Kill the processes using the mount, then
// Unmount to write the durable state to the backing directory.
func (f *FS) Cut() {
	f.t.mu.Lock()
	f.t.cut = true
	f.t.mu.Unlock()
}

// Syncs is how many fsync calls the filesystem received so far.
func (f *FS) Syncs() uint64 {
	f.t.mu.Lock()
	defer f.t.mu.Unlock()
	return f.t.syncs
}

// Unmount unmounts (detaching it if it is still busy) and writes the
// backing directory: the durable state after a Cut, everything otherwise.
func (f *FS) Unmount() error {
	if f.unmounted {
		return nil
	}
	var err error
	for i := 0; i < 50; i++ {
		if err = f.server.Unmount(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		// Still busy: detach it, as `umount -l` does.
		if derr := syscall.Unmount(f.mountpoint, syscall.MNT_DETACH); derr != nil {
			_ = exec.Command("fusermount", "-u", "-z", f.mountpoint).Run()
		}
	}
	f.unmounted = true
	f.t.mu.Lock()
	cut := f.t.cut
	f.t.cut = true
	f.t.mu.Unlock()
	if !cut {
		f.t.syncAll()
	}
	f.t.mu.Lock()
	defer f.t.mu.Unlock()
	return f.t.writeOut(f.backing)
}

// fnode is the FUSE face of one node.
type fnode struct {
	fs.Inode
	fs *FS
	n  *node
}

// handle is an open file: whether its writes are synchronous.
type handle struct {
	sync bool
}

var (
	_ fs.NodeLookuper  = (*fnode)(nil)
	_ fs.NodeGetattrer = (*fnode)(nil)
	_ fs.NodeSetattrer = (*fnode)(nil)
	_ fs.NodeCreater   = (*fnode)(nil)
	_ fs.NodeMkdirer   = (*fnode)(nil)
	_ fs.NodeUnlinker  = (*fnode)(nil)
	_ fs.NodeRmdirer   = (*fnode)(nil)
	_ fs.NodeRenamer   = (*fnode)(nil)
	_ fs.NodeLinker    = (*fnode)(nil)
	_ fs.NodeReaddirer = (*fnode)(nil)
	_ fs.NodeOpener    = (*fnode)(nil)
	_ fs.NodeReader    = (*fnode)(nil)
	_ fs.NodeWriter    = (*fnode)(nil)
	_ fs.NodeFsyncer   = (*fnode)(nil)
	_ fs.NodeFlusher   = (*fnode)(nil)
	_ fs.NodeAllocater = (*fnode)(nil)
	_ fs.NodeStatfser  = (*fnode)(nil)
)

func (f *fnode) child(ctx context.Context, c *node, out *fuse.EntryOut) *fs.Inode {
	f.fs.t.mu.Lock()
	f.fs.attr(c, &out.Attr)
	f.fs.t.mu.Unlock()
	mode := uint32(syscall.S_IFREG)
	if c.dir {
		mode = syscall.S_IFDIR
	}
	return f.NewInode(ctx, &fnode{fs: f.fs, n: c}, fs.StableAttr{Mode: mode, Ino: c.ino})
}

// attr fills a from n; the tree's lock is held.
func (f *FS) attr(n *node, a *fuse.Attr) {
	a.Ino = n.ino
	a.Nlink = uint32(max(n.nlink, 1))
	if n.dir {
		a.Mode = syscall.S_IFDIR | n.perm
		a.Size = 4096
	} else {
		a.Mode = syscall.S_IFREG | n.perm
		a.Size = uint64(len(n.data))
	}
	a.Blocks = (a.Size + 511) / 512
	a.Blksize = 4096
	a.SetTimes(&n.mtime, &n.mtime, &n.mtime)
	a.Uid, a.Gid = uint32(os.Getuid()), uint32(os.Getgid())
}

func (f *fnode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	c, e := f.fs.t.lookup(f.n, name)
	if e != 0 {
		return nil, e
	}
	return f.child(ctx, c, out), 0
}

func (f *fnode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.fs.t.mu.Lock()
	defer f.fs.t.mu.Unlock()
	if e := f.fs.t.check(); e != 0 {
		return e
	}
	f.fs.attr(f.n, &out.Attr)
	return 0
}

func (f *fnode) Setattr(ctx context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		if e := f.fs.t.truncate(f.n, int64(size)); e != 0 {
			return e
		}
	}
	t := f.fs.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return e
	}
	if mode, ok := in.GetMode(); ok {
		f.n.perm = mode & 0o7777
	}
	if m, ok := in.GetMTime(); ok {
		f.n.mtime = m
	}
	f.fs.attr(f.n, &out.Attr)
	return 0
}

func (f *fnode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	c, e := f.fs.t.mknode(f.n, name, false, mode)
	if e != 0 {
		return nil, nil, 0, e
	}
	return f.child(ctx, c, out), openHandle(flags), 0, 0
}

func (f *fnode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	c, e := f.fs.t.mknode(f.n, name, true, mode)
	if e != 0 {
		return nil, e
	}
	return f.child(ctx, c, out), 0
}

func (f *fnode) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	tn, ok := target.(*fnode)
	if !ok {
		return nil, syscall.EXDEV
	}
	if e := f.fs.t.hardlink(f.n, name, tn.n); e != 0 {
		return nil, e
	}
	return f.child(ctx, tn.n, out), 0
}

func (f *fnode) Unlink(ctx context.Context, name string) syscall.Errno {
	return f.fs.t.remove(f.n, name, false)
}

func (f *fnode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return f.fs.t.remove(f.n, name, true)
}

func (f *fnode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*fnode)
	if !ok {
		return syscall.EXDEV
	}
	return f.fs.t.rename(f.n, name, np.n, newName, flags)
}

func (f *fnode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	t := f.fs.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return nil, e
	}
	list := make([]fuse.DirEntry, 0, len(f.n.kids))
	for name, c := range f.n.kids {
		mode := uint32(syscall.S_IFREG)
		if c.dir {
			mode = syscall.S_IFDIR
		}
		list = append(list, fuse.DirEntry{Name: name, Mode: mode, Ino: c.ino})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return fs.NewListDirStream(list), 0
}

func openHandle(flags uint32) *handle {
	return &handle{sync: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}
}

func (f *fnode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		if e := f.fs.t.truncate(f.n, 0); e != 0 {
			return nil, 0, e
		}
	}
	return openHandle(flags), 0, 0
}

func (f *fnode) Read(ctx context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	b, e := f.fs.t.read(f.n, dest, off)
	if e != 0 {
		return nil, e
	}
	return fuse.ReadResultData(b), 0
}

func (f *fnode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	h, _ := fh.(*handle)
	k, e := f.fs.t.write(f.n, data, off, h != nil && h.sync)
	return uint32(k), e
}

func (f *fnode) Fsync(ctx context.Context, _ fs.FileHandle, flags uint32) syscall.Errno {
	return f.fs.t.fsync(f.n)
}

func (f *fnode) Flush(ctx context.Context, _ fs.FileHandle) syscall.Errno { return 0 }

// FALLOC_FL_KEEP_SIZE (linux/falloc.h).
const fallocKeepSize = 1

func (f *fnode) Allocate(ctx context.Context, _ fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if mode&^fallocKeepSize != 0 {
		return syscall.EOPNOTSUPP
	}
	if mode&fallocKeepSize != 0 {
		return 0
	}
	t := f.fs.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.check(); e != 0 {
		return e
	}
	if end := int64(off + size); end > int64(len(f.n.data)) {
		f.n.resize(end)
	}
	return 0
}

func (f *fnode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var s syscall.Statfs_t
	if err := syscall.Statfs(f.fs.backing, &s); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatfsT(&s)
	return 0
}
