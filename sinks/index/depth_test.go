package index

import (
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/limits"
)

// nested is {"a":{"a":…1…}} with n objects inside the outer one.
func nested(n int) string {
	return `{"v":0,"d":` + strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) + "}"
}

// TestDeepDataKeptWithinTheServersDepth: Elasticsearch's flattened field
// refuses a document whose data holds more than 20 nested objects (its
// depth_limit), so the index cuts deeper values even in a small payload
// (it used to keep any payload under 8 KiB as it came).
func TestDeepDataKeptWithinTheServersDepth(t *testing.T) {
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	for _, n := range []int{limits.IndexDataDepth - 1, limits.IndexDataDepth, limits.IndexDataDepth + 1, 200} {
		m := event("c1", "metric", "m", "s", at, "e1", 1)
		m.Data = []byte(strings.Replace(string(m.Data), `"query":"cats"`, `"query":`+nested(n), 1))
		d, err := FromMessage(m)
		if err != nil {
			t.Fatalf("depth %d: %v", n, err)
		}
		if got := jsonDepth(d.Data); got > limits.IndexDataDepth+1 {
			t.Errorf("data nested %d deep: the document's data is %d levels (data object included), want at most %d", n+2, got, limits.IndexDataDepth+1)
		}
		if cut := strings.Contains(string(d.Data), "(too deep)"); cut != (n+2 > limits.IndexDataDepth+1) {
			t.Errorf("data nested %d deep: cut = %v", n+2, cut)
		}
	}
}
