package archive

import (
	"testing"

	"github.com/cespare/xxhash/v2"
)

// The bloom filters of stored manifests were written with these two
// hashes: a reader (and the next manifest of an object) must take the same.
func TestBloomHashesAreTheStoredOnes(t *testing.T) {
	for _, s := range []string{"", "cid-1", "9b3e2c1a-4f5d-4e6b-8a7c-0d1e2f3a4b5c", string(make([]byte, 300))} {
		want := bloomHash{xxhash.Sum64String(s), xxhash.Sum64String("\x00sightline\x00"+s) | 1}
		if got := bloomHashOf(s); got != want {
			t.Errorf("bloomHashOf(%q) = %v, want %v", s, got, want)
		}
	}
}
