package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// TagStore keeps the last update tag published per scope in a small JSON
// file, so tags are strictly increasing per scope even when the clock
// steps back or two syncs start in the same millisecond. It is meant for
// one publisher per scope at a time (a cron job), not concurrent writers.
type TagStore struct {
	Path string
	Now  func() time.Time
}

// Next returns max(now in ms, last tag + 1) for scope and records it.
func (s TagStore) Next(scope string) (int64, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	tag := now().UnixMilli()
	if s.Path == "" {
		return tag, nil
	}
	last := map[string]int64{}
	b, err := os.ReadFile(s.Path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &last); err != nil {
			return 0, fmt.Errorf("inventory: tag state %s: %w", s.Path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return 0, fmt.Errorf("inventory: tag state: %w", err)
	}
	if prev := last[scope]; tag <= prev {
		tag = prev + 1
	}
	last[scope] = tag
	out, _ := json.MarshalIndent(last, "", "  ")
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o755); err != nil {
		return 0, fmt.Errorf("inventory: tag state: %w", err)
	}
	tmp := s.Path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return 0, fmt.Errorf("inventory: tag state: %w", err)
	}
	if err := os.Rename(tmp, s.Path); err != nil {
		return 0, fmt.Errorf("inventory: tag state: %w", err)
	}
	return tag, nil
}
