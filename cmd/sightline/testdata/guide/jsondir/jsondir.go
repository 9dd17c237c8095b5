// Package jsondir is a sink that writes every event to its own file,
// <dir>/<event id>.json: the example of docs/contributing.md.
package jsondir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/sightline/sightline/internal/stage"
)

// ErrClosed is returned by a Write after Close.
var ErrClosed = errors.New("jsondir: closed")

// safeID is what an event id must look like to name a file (no path).
var safeID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Sink writes events as files. It is safe for concurrent use.
type Sink struct {
	dir    string
	life   sync.RWMutex // Writes hold it shared, Close exclusively
	closed bool
}

// New opens the sink on dir, creating it.
func New(dir string) (*Sink, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("jsondir.dir: %w", err)
	}
	return &Sink{dir: dir}, nil
}

// Write stores every message as <id>.json (written to a temporary file,
// synced, then renamed: a crash leaves the old file or the new one, and
// writing the same event again leaves one file). A message that can never
// be stored is named in a *stage.BatchError; a failing disk fails the
// whole batch, which is redelivered.
func (s *Sink) Write(ctx context.Context, batch []*stage.Message) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return ErrClosed
	}
	failed := map[int]error{}
	for i, m := range batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case !safeID.MatchString(m.ID):
			failed[i] = stage.Rejectf("bad_id", "event id %q cannot name a file", m.ID)
		case !json.Valid(m.Data):
			failed[i] = stage.Rejectf("not_json", "event %s is not JSON", m.ID)
		default:
			if err := s.store(m); err != nil {
				return err
			}
		}
	}
	if len(failed) > 0 {
		return &stage.BatchError{Failed: failed}
	}
	return nil
}

func (s *Sink) store(m *stage.Message) error {
	f, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("jsondir: %w", err)
	}
	_, err = f.Write(m.Data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(s.dir, m.ID+".json"))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("jsondir: event %s: %w", m.ID, err)
	}
	return nil
}

// Close waits for the Writes under way; later Writes fail.
func (s *Sink) Close(context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	s.closed = true
	return nil
}
