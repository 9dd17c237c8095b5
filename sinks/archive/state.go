package archive

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"slices"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
)

// objectState is what the sink knows of the events in one NDJSON window
// object: their ids (a merge adds only the events the object lacks) and
// what its manifest says of them. It is built by reading the object
// (scanObject) or, after the sink stored the object itself, kept in memory
// (windowCache) with the size and SHA-256 of the bytes it describes.
type objectState struct {
	lines       int                 // non-empty NDJSON lines: events, and lines the sink did not write
	ids         map[string]struct{} // event ids
	cids        map[string]struct{} // correlation ids
	cidList     []string            // the same, in the order first met
	cidHashes   []bloomHash         // bloomHashOf of cidList[:len(cidHashes)]
	first, last time.Time           // earliest and latest event time (UTC)
	raw         int64               // NDJSON bytes

	// man is the manifest this process stored for the object, manBytes
	// its stored bytes (nil when none is known).
	man      *Manifest
	manBytes []byte

	// size and sum identify the stored bytes the state describes (set
	// when it is kept in the cache).
	size int64
	sum  [sha256.Size]byte
}

func newObjectState(n int) *objectState {
	return &objectState{ids: make(map[string]struct{}, n), cids: make(map[string]struct{}, n)}
}

// add notes one line of the object: h is its head, zero for a line that
// is not an event the sink wrote (kept as it is, not indexed).
func (st *objectState) add(h head) {
	st.lines++
	if h.ID == "" {
		return
	}
	st.ids[h.ID] = struct{}{}
	if st.first.IsZero() || h.Time.Before(st.first) {
		st.first = h.Time.UTC()
	}
	if h.Time.After(st.last) {
		st.last = h.Time.UTC()
	}
	if _, ok := st.cids[h.CorrelationID]; !ok && h.CorrelationID != "" {
		st.cids[h.CorrelationID] = struct{}{}
		st.cidList = append(st.cidList, h.CorrelationID)
	}
}

// setCorrelationIDs fills m's CorrelationIDs (the sorted distinct ids, at
// most maxIDs of them) or else its Bloom filter (false-positive rate fp).
// The ids' hashes are kept for the next manifest of the object.
func (st *objectState) setCorrelationIDs(m *Manifest, maxIDs int, fp float64) {
	m.IDs = len(st.cidList)
	if len(st.cidList) <= maxIDs {
		m.CorrelationIDs = slices.Clone(st.cidList)
		slices.Sort(m.CorrelationIDs)
		return
	}
	for _, id := range st.cidList[len(st.cidHashes):] {
		st.cidHashes = append(st.cidHashes, bloomHashOf(id))
	}
	m.Bloom = NewBloom(len(st.cidList), fp)
	for _, h := range st.cidHashes {
		m.Bloom.add(h)
	}
}

// has reports whether the object holds an event with id.
func (st *objectState) has(id string) bool {
	_, ok := st.ids[id]
	return ok
}

// scanObject reads the stored bytes of the NDJSON object at key: every
// line's head (storedHead), the NDJSON size, and errNotAppendable when the
// object does not end with a newline.
func scanObject(key string, body []byte) (*objectState, error) {
	dr, err := decompressor(key, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer dr.Close()
	st := newObjectState(64)
	tail := &tailReader{r: dr}
	err = eachLine(tail, func(line []byte) error {
		st.add(storedHead(&stage.Message{Data: line}))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if tail.n > 0 && tail.last != '\n' {
		return nil, errNotAppendable
	}
	st.raw = tail.n
	return st, nil
}

// windowCache keeps, for the window objects this process stored last, the
// objectState of the bytes it stored, so that the next merge into one of
// them skips decompressing and scanning every stored line. A state is used
// only when the object read back is the very bytes it describes (same size
// and SHA-256): an object another writer replaced, a PUT that failed after
// all, or any other change sends the merge back to reading the object. A
// merge takes the state out of the cache and puts it back only once its
// PUT succeeded, so a failed merge never leaves a state behind. At most
// limits.ArchiveWindowCache objects holding limits.ArchiveWindowCacheEvents
// lines in all are kept (the least recently stored is dropped first).
type windowCache struct {
	mu      sync.Mutex
	tick    uint64
	lines   int // of the states kept
	entries map[string]cacheEntry
}

type cacheEntry struct {
	st   *objectState
	used uint64
}

// take removes the state of key from the cache and returns it when it
// describes body, with a SHA-256 hash that has read body (to go on with
// the bytes appended to it). It returns a nil state otherwise.
func (c *windowCache) take(key string, body []byte) (*objectState, hash.Hash) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.remove(key)
	c.mu.Unlock()
	h := sha256.New()
	h.Write(body)
	if !ok || e.st.size != int64(len(body)) {
		return nil, h
	}
	var sum [sha256.Size]byte
	if h.Sum(sum[:0]); sum != e.st.sum {
		return nil, h
	}
	return e.st, h
}

// put keeps st as the state of the object at key, whose stored bytes hash
// to sum (size bytes).
func (c *windowCache) put(key string, st *objectState, size int64, sum []byte) {
	st.size = size
	copy(st.sum[:], sum)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(key)
	if st.lines > limits.ArchiveWindowCacheEvents {
		return // larger than the whole cache: read through next time
	}
	if c.entries == nil {
		c.entries = make(map[string]cacheEntry, limits.ArchiveWindowCache)
	}
	c.tick++
	c.entries[key] = cacheEntry{st: st, used: c.tick}
	c.lines += st.lines
	for len(c.entries) > limits.ArchiveWindowCache || c.lines > limits.ArchiveWindowCacheEvents {
		oldest, at := "", ^uint64(0)
		for k, e := range c.entries {
			if e.used < at {
				oldest, at = k, e.used
			}
		}
		c.remove(oldest)
	}
}

// drop forgets the state of key.
func (c *windowCache) drop(key string) {
	c.mu.Lock()
	c.remove(key)
	c.mu.Unlock()
}

// remove forgets the state of key; c.mu is held.
func (c *windowCache) remove(key string) {
	if e, ok := c.entries[key]; ok {
		c.lines -= e.st.lines
		delete(c.entries, key)
	}
}
