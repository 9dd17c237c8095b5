package archive

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/sightline/sightline/internal/limits"
)

// The window cache keeps at most ArchiveWindowCache objects and
// ArchiveWindowCacheEvents events, forgets the least recently stored
// first, never keeps a window larger than the whole bound, and answers
// only for the very bytes a state was kept with.
func TestWindowCacheBounds(t *testing.T) {
	var c windowCache
	body := func(k string) []byte { return []byte("body of " + k) }
	put := func(k string, lines int) {
		sum := sha256.Sum256(body(k))
		c.put(k, &objectState{lines: lines}, int64(len(body(k))), sum[:])
	}
	kept := func(k string) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.entries[k]
		return ok
	}
	for i := range limits.ArchiveWindowCache + 2 {
		put(fmt.Sprint(i), 1)
	}
	if kept("0") || kept("1") || !kept("2") || len(c.entries) != limits.ArchiveWindowCache {
		t.Errorf("after %d objects: %d kept, 0 kept %v, 1 kept %v, 2 kept %v", limits.ArchiveWindowCache+2, len(c.entries), kept("0"), kept("1"), kept("2"))
	}
	put("big", limits.ArchiveWindowCacheEvents-2)
	if kept("2") || kept("3") || !kept("big") || c.lines > limits.ArchiveWindowCacheEvents {
		t.Errorf("over the event bound: %d lines kept, 2 kept %v, 3 kept %v", c.lines, kept("2"), kept("3"))
	}
	put("huge", limits.ArchiveWindowCacheEvents+1)
	if kept("huge") || !kept("big") {
		t.Errorf("a window larger than the bound was kept (or pushed the others out)")
	}
	if st, _ := c.take("big", []byte("other bytes")); st != nil || kept("big") {
		t.Errorf("take answered for other bytes (%v) or kept the state (%v)", st != nil, kept("big"))
	}
	put("x", 5)
	if st, _ := c.take("x", body("x")); st == nil || st.lines != 5 || kept("x") {
		t.Errorf("take of the very bytes: %v, still kept %v", st, kept("x"))
	}
	n := 0
	for _, e := range c.entries {
		n += e.st.lines
	}
	if n != c.lines {
		t.Errorf("lines counted %d, kept %d", c.lines, n)
	}
}
