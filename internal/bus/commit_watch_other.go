//go:build !linux

package bus

import "errors"

// Without inotify every round walks the store.
type watcher struct{}

func newWatcher() (*watcher, error) { return nil, errors.ErrUnsupported }

func (w *watcher) close() {}

var errWatchFailed = errors.New("file system events unsupported")

func (c *committer) watchRound() error { return errWatchFailed }
