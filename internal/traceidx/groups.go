package traceidx

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Posting is one entry of a posted field's lists, as EachPosting reads it.
// Its slices are valid only during the call.
type Posting struct {
	Value []byte // the field's value
	Time  time.Time
	ID    []byte
	terms []byte
}

// Term returns the value of one of the document's checked terms (not the
// Unchecked fields) from the posting, without reading the document.
func (p *Posting) Term(field string) string {
	var out string
	eachTerm(p.terms, func(f, v []byte) bool {
		if string(f) == field {
			out = string(v)
			return false
		}
		return true
	})
	return out
}

// EachPosting calls fn with every posting of field (a posted field) whose
// time is in [from, to) (zero bounds are open), value by value in byte
// order and oldest first within a value, until fn returns false. It seeks
// from one value to the next, so a value with nothing in the range costs
// one seek: grouping by correlation id reads only the range's postings.
func (s *Store) EachPosting(field string, from, to time.Time, fn func(p *Posting) bool) error {
	if !slices.Contains(s.o.Posted, field) {
		return fmt.Errorf("traceidx: %s has no posting lists", field)
	}
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	lo, hi := timeBounds(from, to)
	fp := postPrefix(nil, field, "")
	fp = fp[:len(fp)-1] // "p<field>\x00"
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: fp, UpperBound: append(slices.Clip(fp[:len(fp)-1]), 1)})
	if err != nil {
		return fmt.Errorf("traceidx: scan %s: %w", field, err)
	}
	defer it.Close()
	var (
		p    Posting
		seek []byte
	)
	for ok := it.First(); ok; {
		rest := it.Key()[len(fp):]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			ok = it.Next()
			continue
		}
		vp := append(append(slices.Clip(fp), rest[:i]...), 0) // "p<field>\x00<value>\x00"
		// Into the range of this value, then along it.
		seek = append(append(seek[:0], vp...), lo...)
		for ok = it.SeekGE(seek); ok; ok = it.Next() {
			k := it.Key()
			if !bytes.HasPrefix(k, vp) || len(k) < len(vp)+8 {
				break
			}
			ok2 := k[len(vp):]
			if bytes.Compare(ok2, hi) >= 0 {
				break
			}
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("traceidx: scan %s: %w", field, err)
			}
			p = Posting{Value: vp[len(fp) : len(vp)-1], Time: readTime(ok2[:8]), ID: ok2[8:], terms: v}
			if !fn(&p) {
				return it.Error()
			}
		}
		// The next value.
		seek = append(append(seek[:0], vp[:len(vp)-1]...), 1)
		ok = it.SeekGE(seek)
	}
	return it.Error()
}
