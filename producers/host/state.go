package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// State is the collector's memory between runs: what was last sent per
// object, and the last update tag.
type State struct {
	Host    string                `json:"host"`
	LastTag int64                 `json:"last_tag"`
	Objects map[string]StateEntry `json:"objects"`
}

// StateEntry is what was last sent of one object.
type StateEntry struct {
	MD5      string    `json:"md5"`
	Updated  time.Time `json:"updated"`   // first collected with this md5
	FullSent time.Time `json:"full_sent"` // last time the content itself was sent
	// Truncated says whether the content last sent was cut (at
	// max_object_bytes, or to fit a part): the store holds only its head,
	// and every "still the same" record of this md5 says so. Nil in a state
	// file of an earlier release (the object's own cut is used then).
	Truncated *bool `json:"truncated,omitempty"`
}

// LoadState reads the state file; a missing file is an empty state. A
// state file written for another host name is ignored (everything is sent
// in full).
func LoadState(path, hostname string) (*State, error) {
	s := &State{Host: hostname, Objects: map[string]StateEntry{}}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("host: state %s: %w", path, err)
	}
	var got State
	if err := json.Unmarshal(b, &got); err != nil {
		return nil, fmt.Errorf("host: state %s: %w (delete it to resend everything)", path, err)
	}
	if got.Host != hostname {
		return s, nil
	}
	if got.Objects == nil {
		got.Objects = map[string]StateEntry{}
	}
	return &got, nil
}

// Save writes the state file atomically.
func (s *State) Save(path string) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("host: state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("host: state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("host: state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("host: state: %w", err)
	}
	return nil
}

// Sent records that parts carry the objects as sent: an object whose
// content Split cut to fit a part is truncated in the store, and its later
// "still the same" records say so.
func (s *State) Sent(parts []Part) {
	for i := range parts {
		for _, o := range parts[i].Objects {
			if e, ok := s.Objects[o.Name]; ok && !o.Unchanged && o.MD5 == e.MD5 {
				e.Truncated = ptr(o.Truncated)
				s.Objects[o.Name] = e
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// NextTag returns max(now in ms, last tag + 1).
func (s *State) NextTag(now time.Time) int64 {
	t := now.UnixMilli()
	if t <= s.LastTag {
		t = s.LastTag + 1
	}
	return t
}

// Mark turns objects whose md5 equals what was last sent into "still the
// same" records (no content), unless fullEvery has passed since the
// content was last sent in full (0: never resend). It fills Updated on
// every object and returns the new state to save after a successful
// publish.
func (s *State) Mark(objs []Object, now time.Time, fullEvery time.Duration, forceFull bool) *State {
	next := &State{Host: s.Host, LastTag: s.LastTag, Objects: make(map[string]StateEntry, len(objs))}
	for i := range objs {
		o := &objs[i]
		if o.MD5 == "" { // an error object without content
			continue
		}
		prev, ok := s.Objects[o.Name]
		if ok && prev.MD5 == o.MD5 {
			upd := prev.Updated
			o.Updated = &upd
			stale := fullEvery > 0 && now.Sub(prev.FullSent) >= fullEvery
			if !forceFull && !stale {
				// "Still the same": no content, but the truncation of the
				// content the store holds for this md5 (the record
				// replaces the object's metadata in the store).
				o.Unchanged = true
				o.Content, o.Encoding = "", ""
				if prev.Truncated != nil {
					o.Truncated = *prev.Truncated
				}
				next.Objects[o.Name] = prev
				continue
			}
			next.Objects[o.Name] = StateEntry{MD5: o.MD5, Updated: prev.Updated, FullSent: now, Truncated: ptr(o.Truncated)}
			continue
		}
		upd := o.Collected
		o.Updated = &upd
		next.Objects[o.Name] = StateEntry{MD5: o.MD5, Updated: upd, FullSent: now, Truncated: ptr(o.Truncated)}
	}
	return next
}
