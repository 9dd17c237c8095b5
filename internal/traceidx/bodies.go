package traceidx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Document bodies are not kept in the LSM tree, where every compaction
// would copy them again: they are appended to body files (bodies/<n>.log),
// synced before the keys that point to them are committed, and read back
// by offset. A new file is started at each open and past MaxBodyFileBytes;
// retention deletes a file once every document in it has expired (its
// newest event time is recorded under the key "b<n>").

// MaxBodyFileBytes is the size past which a new body file is started.
const MaxBodyFileBytes = 64 << 20

const pfxBodyFile = 'b'

// bodyRef locates a body: file number, offset, length.
type bodyRef struct {
	file     uint64
	off, len int64
}

func appendBodyRef(b []byte, r bodyRef) []byte {
	b = binary.AppendUvarint(b, r.file)
	b = binary.AppendUvarint(b, uint64(r.off))
	return binary.AppendUvarint(b, uint64(r.len))
}

func readBodyRef(b []byte) (bodyRef, error) {
	var r bodyRef
	var v [3]uint64
	for i := range v {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return r, errors.New("traceidx: corrupt body reference")
		}
		v[i], b = n, b[k:]
	}
	return bodyRef{file: v[0], off: int64(v[1]), len: int64(v[2])}, nil
}

// bodyLog is the set of body files of a store.
type bodyLog struct {
	fs  vfs.FS
	dir string

	mu      sync.Mutex // the current file and its offset
	cur     vfs.File
	curNum  uint64
	curSize int64

	rmu     sync.Mutex // open files for reading
	readers map[uint64]vfs.File
}

func openBodyLog(fs vfs.FS, dir string, readOnly bool) (*bodyLog, error) {
	if !readOnly {
		if err := fs.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("traceidx: %s: %w", dir, err)
		}
	}
	return &bodyLog{fs: fs, dir: dir, readers: map[uint64]vfs.File{}}, nil
}

func (l *bodyLog) name(n uint64) string {
	return path.Join(l.dir, fmt.Sprintf("%016x.log", n))
}

// files lists the numbers of the body files, oldest first.
func (l *bodyLog) files() ([]uint64, error) {
	names, err := l.fs.List(l.dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, n := range names {
		if s, ok := strings.CutSuffix(n, ".log"); ok {
			if v, err := strconv.ParseUint(s, 16, 64); err == nil {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// append writes bodies to the current file, syncs it, and returns their
// references in order.
func (l *bodyLog) append(bodies [][]byte) ([]bodyRef, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil || l.curSize >= MaxBodyFileBytes {
		if err := l.rotate(); err != nil {
			return nil, err
		}
	}
	refs := make([]bodyRef, len(bodies))
	total := 0
	for _, b := range bodies {
		total += len(b)
	}
	buf := make([]byte, 0, total)
	for i, b := range bodies {
		refs[i] = bodyRef{file: l.curNum, off: l.curSize + int64(len(buf)), len: int64(len(b))}
		buf = append(buf, b...)
	}
	if _, err := l.cur.Write(buf); err != nil {
		l.cur = nil // a partial write: start a new file next time
		return nil, fmt.Errorf("traceidx: write bodies: %w", err)
	}
	if err := l.cur.SyncData(); err != nil {
		l.cur = nil
		return nil, fmt.Errorf("traceidx: sync bodies: %w", err)
	}
	l.curSize += int64(len(buf))
	return refs, nil
}

// rotate starts a new file, numbered after every existing one.
func (l *bodyLog) rotate() error {
	files, err := l.files()
	if err != nil {
		return fmt.Errorf("traceidx: list bodies: %w", err)
	}
	n := l.curNum + 1
	if len(files) > 0 {
		n = max(n, files[len(files)-1]+1)
	}
	f, err := l.fs.Create(l.name(n), vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("traceidx: create body file: %w", err)
	}
	if d, err := l.fs.OpenDir(l.dir); err == nil {
		_ = d.Sync() // the new name survives a crash
		d.Close()
	}
	if l.cur != nil {
		l.cur.Close()
	}
	l.cur, l.curNum, l.curSize = f, n, 0
	return nil
}

// read returns a body.
func (l *bodyLog) read(r bodyRef) ([]byte, error) {
	l.rmu.Lock()
	f, ok := l.readers[r.file]
	if !ok {
		var err error
		f, err = l.fs.Open(l.name(r.file))
		if err != nil {
			l.rmu.Unlock()
			return nil, err
		}
		l.readers[r.file] = f
	}
	l.rmu.Unlock()
	b := make([]byte, r.len)
	if _, err := f.ReadAt(b, r.off); err != nil {
		return nil, fmt.Errorf("traceidx: read body %d@%d: %w", r.file, r.off, err)
	}
	return b, nil
}

// current reports whether n is the file being appended to.
func (l *bodyLog) current(n uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur != nil && l.curNum == n
}

// remove deletes body file n.
func (l *bodyLog) remove(n uint64) error {
	l.rmu.Lock()
	if f, ok := l.readers[n]; ok {
		f.Close()
		delete(l.readers, n)
	}
	l.rmu.Unlock()
	return l.fs.Remove(l.name(n))
}

func (l *bodyLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.cur != nil {
		err = l.cur.Close()
		l.cur = nil
	}
	l.rmu.Lock()
	for n, f := range l.readers {
		f.Close()
		delete(l.readers, n)
	}
	l.rmu.Unlock()
	return err
}

func bodyFileKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pfxBodyFile}, n)
}

// newestTime is the later of a recorded time key and t.
func newestTime(rec []byte, t time.Time) []byte {
	k := appendTime(nil, t)
	if len(rec) == 8 && string(rec) > string(k) {
		return slices.Clone(rec)
	}
	return k
}
