package archive

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sightline/sightline/internal/fsync"
)

// The local directory store writes objects itself rather than through
// fileblob, whose writer renames its temporary file into place without an
// fsync: the sink acknowledges its messages once Write returns, so an
// acknowledged event must be on disk by then, not only in the page cache
// (a power loss or kernel crash would lose it, or leave a renamed file
// without its data). Each object is written to <name>.<hex>.tmp beside its
// final path (cleanTemp removes those a killed writer left), fsynced,
// renamed into place, and the directory fsynced so the rename itself is
// durable. A new partition directory is only as durable as its name in its
// parent: mkdirDurable fsyncs the parent of every level it creates.

// localPath is where fileblob keeps key under dir: the sink's keys hold no
// character fileblob escapes (control characters, "//", "../", a trailing
// "/"), so the key is the relative path.
func localPath(dir, key string) (string, error) {
	p := filepath.Join(dir, filepath.FromSlash(key))
	if rel, err := filepath.Rel(dir, p); err != nil || rel == ".." || filepath.IsAbs(rel) || len(rel) >= 3 && rel[:3] == "../" {
		return "", fmt.Errorf("key %q escapes the archive directory", key)
	}
	return p, nil
}

// writeLocalDurable writes body as the object at key under dir, durably.
// With create, an existing object is left alone and errChanged returned
// (the caller holds the directory's lock, so the check cannot race another
// writer of this sink).
func writeLocalDurable(dir, key string, body []byte, create bool) error {
	path, err := localPath(dir, key)
	if err != nil {
		return err
	}
	if create {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("put %s: %w", key, errChanged)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("put %s: %w", key, err)
		}
	}
	parent := filepath.Dir(path)
	if err := mkdirDurable(parent); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := path + "." + hex.EncodeToString(rnd[:]) + ".tmp"
	if err := writeSynced(tmp, body); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := fsync.Path(parent); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// syncLocalFile fsyncs the object at key and every directory from its
// own up to dir (for objects written through fileblob's streaming writer,
// which creates the partition directories without fsyncing their parents).
func syncLocalFile(dir, key string) error {
	path, err := localPath(dir, key)
	if err != nil {
		return err
	}
	for d := filepath.Dir(filepath.Dir(path)); len(d) >= len(filepath.Clean(dir)) && d != filepath.Dir(d); d = filepath.Dir(d) {
		if err := fsync.Path(d); err != nil {
			return fmt.Errorf("fsync %s: %w", key, err)
		}
	}
	if err := fsync.Path(path); err != nil {
		return fmt.Errorf("fsync %s: %w", key, err)
	}
	if err := fsync.Path(filepath.Dir(path)); err != nil {
		return fmt.Errorf("fsync %s: %w", key, err)
	}
	return nil
}

func writeSynced(path string, body []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// mkdirDurable creates dir and its missing parents (as os.MkdirAll) and
// fsyncs the parent of each directory it creates, so that the new names
// survive a power loss: fsyncing a file or a directory makes its contents
// durable, not its own entry in its parent.
func mkdirDurable(dir string) error {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err == nil {
			if !info.IsDir() {
				return fmt.Errorf("mkdir %s: %s is not a directory", dir, d)
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		// Another writer may create it at the same time: sync the parent
		// either way, so the name is durable before this one returns.
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := fsync.Path(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}
