// Package fsync makes what was written to a path durable.
package fsync

import "os"

// Path opens path (a file, or a directory to make the names created,
// renamed or removed in it durable), fsyncs it and closes it. It returns
// the first error.
func Path(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
