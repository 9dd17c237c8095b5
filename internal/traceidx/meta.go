package traceidx

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// A store records which fields have posting lists on every one of its
// documents (key "m", terms "complete" and "completeprefix"), so that a
// store written before a field was posted still answers correctly: a
// field posted since is read from its lists only for searches whose range
// starts after the newest document the store held when the field was
// added ("partial", a time key); older ones drive by other lists and
// check it on each candidate. Retention past that time makes every
// posted field complete again.

var metaKey = []byte{pfxMeta}

const pfxMeta = 'm'

// meta is what the store knows of its posting lists.
type meta struct {
	complete []string // posted on every document
	prefixes []string // prefixes posted on every document
	partial  []byte   // time key: documents up to it may lack the other posted fields; nil: none
}

func (m *meta) encode() []byte {
	var terms []Term
	for _, f := range m.complete {
		terms = append(terms, Term{"complete", f})
	}
	for _, p := range m.prefixes {
		terms = append(terms, Term{"completeprefix", p})
	}
	if m.partial != nil {
		terms = append(terms, Term{"partial", string(m.partial)})
	}
	return appendTerms(nil, terms)
}

func decodeMeta(v []byte) *meta {
	m := &meta{}
	for _, t := range decodeTerms(v) {
		switch t.Field {
		case "complete":
			m.complete = append(m.complete, t.Value)
		case "completeprefix":
			m.prefixes = append(m.prefixes, t.Value)
		case "partial":
			m.partial = []byte(t.Value)
		}
	}
	return m
}

// posted reports whether documents written now post field.
func (s *Store) posted(field string) bool {
	return slices.Contains(s.o.Posted, field) || hasPrefix(field, s.o.Prefixes)
}

// bare reports whether field's postings carry no terms.
func (s *Store) bare(field string) bool {
	return slices.Contains(s.o.Bare, field) || hasPrefix(field, s.o.Prefixes)
}

// unchecked reports whether postings leave field out of their terms.
func (s *Store) unchecked(field string) bool {
	return slices.Contains(s.o.Unchecked, field) || hasPrefix(field, s.o.Prefixes)
}

func hasPrefix(field string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(field, p) {
			return true
		}
	}
	return false
}

// readable reports whether field's posting lists hold every document of
// a search whose keys start at time key lo.
func (s *Store) readable(field string, lo []byte) bool {
	if !s.posted(field) {
		return false
	}
	m := s.meta.Load()
	if slices.Contains(m.complete, field) || hasPrefix(field, m.prefixes) {
		return true
	}
	return m.partial == nil || bytes.Compare(lo[:8], m.partial) > 0
}

// Complete reports whether field has posting lists on every document of
// a search from time from (zero: the oldest): false for a field not
// posted, or posted only since after from (a store written before it was
// posted). A caller keeps, for such a search, a way to decide the field
// without its lists.
func (s *Store) Complete(field string, from time.Time) bool {
	lo, _ := timeBounds(from, time.Time{})
	return s.readable(field, lo)
}

// loadMeta reads (or, on a store without it, works out and writes) what
// the store knows of its posting lists.
func (s *Store) loadMeta() error {
	v, closer, err := s.db.Get(metaKey)
	var m *meta
	found := err == nil
	switch {
	case found:
		m = decodeMeta(v)
		closer.Close()
	case errors.Is(err, pebble.ErrNotFound):
		m = &meta{complete: s.o.LegacyPosted}
		if m.complete == nil {
			m.complete = s.o.Posted
		}
	default:
		return fmt.Errorf("traceidx: read meta: %w", err)
	}
	newest, any, err := s.newest()
	if err != nil {
		return err
	}
	was := m.encode()
	var added bool
	for _, f := range s.o.Posted {
		added = added || !slices.Contains(m.complete, f)
	}
	for _, p := range s.o.Prefixes {
		added = added || !slices.Contains(m.prefixes, p)
	}
	switch {
	case !any:
		m = &meta{complete: s.o.Posted, prefixes: s.o.Prefixes}
	case added:
		m.complete = slices.DeleteFunc(slices.Clone(m.complete), func(f string) bool { return !slices.Contains(s.o.Posted, f) })
		m.prefixes = slices.DeleteFunc(slices.Clone(m.prefixes), func(p string) bool { return !slices.Contains(s.o.Prefixes, p) })
		if m.partial == nil || bytes.Compare(newest, m.partial) > 0 {
			m.partial = newest
		}
	}
	s.meta.Store(m)
	if s.o.ReadOnly || (found && bytes.Equal(was, m.encode())) {
		return nil
	}
	return s.writeMeta(m)
}

func (s *Store) writeMeta(m *meta) error {
	if err := s.db.Set(metaKey, m.encode(), pebble.Sync); err != nil {
		return fmt.Errorf("traceidx: write meta: %w", err)
	}
	return nil
}

// completeAfter records that no document older than cutoff is left: a
// field posted since the partial time is complete if cutoff is past it
// (every document up to that time was written before: it is deleted).
func (s *Store) completeAfter(cutoff time.Time) error {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if s.o.ReadOnly {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	m := s.meta.Load()
	if m.partial == nil || bytes.Compare(appendTime(nil, cutoff), m.partial) <= 0 {
		return nil
	}
	n := &meta{complete: s.o.Posted, prefixes: s.o.Prefixes}
	if err := s.writeMeta(n); err != nil {
		return err
	}
	s.meta.Store(n)
	return nil
}

// newest is the time key of the newest document (any false when there
// is none).
func (s *Store) newest() (key []byte, any bool, err error) {
	vals, err := s.values(s.o.Posted[0])
	if err != nil {
		return nil, false, err
	}
	for _, v := range vals {
		p := postPrefix(nil, s.o.Posted[0], v)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: append(slices.Clip(p), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)})
		if err != nil {
			return nil, false, err
		}
		if it.Last() {
			k := it.Key()[len(p):]
			if len(k) >= 8 && (key == nil || bytes.Compare(k[:8], key) > 0) {
				key = slices.Clone(k[:8])
			}
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return nil, false, err
		}
	}
	return key, key != nil, nil
}
