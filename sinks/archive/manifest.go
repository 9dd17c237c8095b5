package archive

import (
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
)

// ManifestSuffix is appended to a data object's key to name its manifest.
const ManifestSuffix = ".manifest.json"

// ManifestVersion is the version of the manifest layout written now.
const ManifestVersion = 1

// Manifest describes one data object so readers can pick objects without
// opening them: what it holds, which time and sequence range, and which
// correlation IDs (verbatim, or as a bloom filter when there are many).
type Manifest struct {
	Version     int    `json:"version"`
	Key         string `json:"key"` // the data object's key, relative to the archive root
	Kind        string `json:"kind"`
	Type        string `json:"type"`
	Format      string `json:"format"`
	Compression string `json:"compression"`
	Count       int    `json:"count"`
	// Bytes is the stored (compressed) size; RawBytes the NDJSON size.
	Bytes         int64     `json:"bytes"`
	RawBytes      int64     `json:"raw_bytes"`
	FirstTime     time.Time `json:"first_time"` // earliest event time in the object
	LastTime      time.Time `json:"last_time"`  // latest event time in the object
	Stream        string    `json:"stream,omitempty"`
	FirstSequence uint64    `json:"first_sequence,omitempty"`
	LastSequence  uint64    `json:"last_sequence,omitempty"`
	// CorrelationIDs lists the sorted distinct correlation IDs when there are
	// at most Config.ManifestMaxIDs of them; otherwise Bloom is set.
	CorrelationIDs []string  `json:"correlation_ids,omitempty"`
	Bloom          *Bloom    `json:"bloom,omitempty"`
	WrittenAt      time.Time `json:"written_at"`
	IDs            int       `json:"distinct_correlation_ids"`
}

// MayContain reports whether the object may hold events of correlationID:
// exact with a list, with the bloom filter's false-positive rate otherwise.
func (m *Manifest) MayContain(correlationID string) bool {
	if m.Bloom != nil {
		return m.Bloom.MayContain(correlationID)
	}
	_, found := slices.BinarySearch(m.CorrelationIDs, correlationID)
	return found
}

// Overlaps reports whether the object's event times meet [from, to]; a zero
// bound is open.
func (m *Manifest) Overlaps(from, to time.Time) bool {
	if !from.IsZero() && m.LastTime.Before(from) {
		return false
	}
	if !to.IsZero() && m.FirstTime.After(to) {
		return false
	}
	return true
}

// Bloom is a bloom filter over strings (xxhash64, Kirsch–Mitzenmacher double
// hashing), serialised in manifests.
type Bloom struct {
	M    uint64 `json:"m"` // bits
	K    uint32 `json:"k"` // hash functions
	Bits []byte `json:"bits"`
}

// NewBloom sizes a filter for n items at false-positive rate p.
func NewBloom(n int, p float64) *Bloom {
	if n < 1 {
		n = 1
	}
	m := uint64(math.Ceil(-float64(n) * math.Log(p) / (math.Ln2 * math.Ln2)))
	if m < 64 {
		m = 64
	}
	k := uint32(math.Round(float64(m) / float64(n) * math.Ln2))
	if k < 1 {
		k = 1
	}
	return &Bloom{M: m, K: k, Bits: make([]byte, (m+7)/8)}
}

// bloomHash is the pair of hashes a Bloom filter takes of a string.
type bloomHash struct{ h1, h2 uint64 }

func bloomHashOf(s string) bloomHash {
	var d xxhash.Digest // the hash of "\x00sightline\x00" + s
	d.Reset()
	d.WriteString("\x00sightline\x00")
	d.WriteString(s)
	return bloomHash{xxhash.Sum64String(s), d.Sum64() | 1}
}

func (b *Bloom) hashes(s string) (uint64, uint64) {
	h := bloomHashOf(s)
	return h.h1, h.h2
}

// Add inserts s.
func (b *Bloom) Add(s string) { b.add(bloomHashOf(s)) }

func (b *Bloom) add(h bloomHash) {
	h1, h2 := h.h1, h.h2
	for i := uint64(0); i < uint64(b.K); i++ {
		bit := (h1 + i*h2) % b.M
		b.Bits[bit/8] |= 1 << (bit % 8)
	}
}

// MayContain reports whether s may have been added (never false for an added s).
func (b *Bloom) MayContain(s string) bool {
	if b == nil || b.M == 0 || uint64(len(b.Bits))*8 < b.M {
		return true // unreadable filter: do not hide the object
	}
	h1, h2 := b.hashes(s)
	for i := uint64(0); i < uint64(b.K); i++ {
		bit := (h1 + i*h2) % b.M
		if b.Bits[bit/8]&(1<<(bit%8)) == 0 {
			return false
		}
	}
	return true
}

func parseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}
