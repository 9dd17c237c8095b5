package schemas

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestShapeCacheOnlyForKeySetSchemas(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	if v.shapes[KindMetric] == nil {
		t.Error("metric schema reads only property names but has no shape cache")
	}
	for _, k := range []string{KindLog, KindSnapshot} {
		if v.shapes[k] != nil {
			t.Errorf("%s schema constrains values but got a shape cache", k)
		}
	}
	if keySetOnly(v.envelope) {
		t.Error("envelope schema constrains values but is reported key-set-only")
	}
}

// The cache must give the library's verdict for every object: random
// objects with valid and invalid names, counts around maxProperties and
// shapes repeated many times, checked against an uncached validation.
func TestShapeCacheAgreesWithLibrary(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	s := v.payload[KindMetric]
	names := []string{"query", "n_results", "user_id", "a.b", "@ts", "$x", "bad name", "1starts_with_digit", "ok-dash", "", strings.Repeat("n", 129), "é"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		obj := map[string]any{}
		n := rng.IntN(5)
		for range n {
			obj[names[rng.IntN(len(names))]] = i
		}
		if i%500 == 0 { // around maxProperties (512)
			for j := range 510 + rng.IntN(5) {
				obj[fmt.Sprintf("k%d", j)] = j
			}
		}
		want := readable(s.Validate(obj))
		got := v.ValidatePayload(KindMetric, obj)
		if (got == nil) != (want == nil) {
			t.Fatalf("object with names %v: cached verdict %v, library %v", keysOf(obj), got, want)
		}
		if want != nil && got.Error() != want.Error() {
			t.Fatalf("rejection reason changed by the cache: %q vs %q", got, want)
		}
	}
	if len(v.shapes[KindMetric].valid) == 0 {
		t.Fatal("no valid shape was cached")
	}
}

func TestShapeKeyIsUnambiguous(t *testing.T) {
	a := string(shapeKey(nil, map[string]any{"ab": 1, "c": 1}))
	b := string(shapeKey(nil, map[string]any{"a": 1, "bc": 1}))
	c := string(shapeKey(nil, map[string]any{"c": 2, "ab": 2}))
	if a == b {
		t.Error("{ab,c} and {a,bc} share a key")
	}
	if a != c {
		t.Error("the same names in another order got another key")
	}
}

func TestShapeCacheIsBounded(t *testing.T) {
	c := newShapeCache()
	c.maxSize = 100
	for i := range 1000 {
		if err := c.validate(map[string]any{fmt.Sprintf("name%04d", i): 1}, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if c.bytes > 100 || len(c.valid) > 100/9 {
		t.Fatalf("cache holds %d bytes in %d shapes, over its 100-byte bound", c.bytes, len(c.valid))
	}
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
