package traceidx

import (
	"bytes"
	"time"
)

// Cursor is a position in the time order of documents: a search with
// Query.After set continues past it (later documents, or earlier ones when
// Newest), so a caller pages through any number of matches.
type Cursor struct {
	Time time.Time
	ID   string
}

// orderKey is the part of a posting key after its prefix: time then id.
func (c *Cursor) orderKey() []byte { return append(appendTime(nil, c.Time), c.ID...) }

// applyCursor narrows the time bounds of the posting lists' keys to what
// comes after q.After in q's order.
func (q *Query) applyCursor(lo, hi []byte) ([]byte, []byte) {
	if q.After == nil {
		return lo, hi
	}
	k := q.After.orderKey()
	if q.Newest {
		if bytes.Compare(k, hi) < 0 {
			hi = k // exclusive
		}
		return lo, hi
	}
	k = append(k, 0) // the smallest key after the cursor's
	if bytes.Compare(k, lo) > 0 {
		lo = k
	}
	return lo, hi
}
