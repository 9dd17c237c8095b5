package schemas

import (
	"encoding/binary"
	"reflect"
	"slices"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// A shape cache remembers the library's "valid" verdicts for a schema whose
// verdict on an object depends on nothing but the object's set of property
// names — the metric schema (an object, at most 512 properties, each name
// matching a pattern) is one. Producers send the same few shapes over and
// over, so after the first event of a shape the JSON Schema library is not
// asked again. The library still decides every verdict: the cache only
// repeats its answers, failures are never cached (the library explains
// each one), and a schema with any keyword that looks at values gets no
// cache at all.
type shapeCache struct {
	keys    sync.Pool // *[]byte buffers for shape keys
	mu      sync.RWMutex
	valid   map[string]struct{}
	bytes   int
	maxSize int // total key bytes kept
}

const shapeCacheBytes = 4 << 20

// keySetOnly reports whether s decides an object instance from its property
// names alone: only the type, property count, required names and
// propertyNames keywords (plus annotations) are set. Any other keyword, a
// $ref included, disables the cache for that schema.
func keySetOnly(s *jsonschema.Schema) bool {
	allowed := map[string]bool{
		"DraftVersion": true, "Location": true, "ID": true, "Types": true,
		"MaxProperties": true, "MinProperties": true, "Required": true, "PropertyNames": true,
		"Title": true, "Description": true, "Default": true, "Comment": true,
		"ReadOnly": true, "WriteOnly": true, "Examples": true, "Deprecated": true,
	}
	v := reflect.ValueOf(s).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || allowed[f.Name] {
			continue
		}
		if !v.Field(i).IsZero() {
			return false
		}
	}
	return true // the type keyword says the same of every object
}

func newShapeCache() *shapeCache {
	c := &shapeCache{valid: map[string]struct{}{}, maxSize: shapeCacheBytes}
	c.keys.New = func() any { b := make([]byte, 0, 512); return &b }
	return c
}

// validate returns check's verdict for obj, asking check only for a set of
// property names it has not seen valid before.
func (c *shapeCache) validate(obj map[string]any, check func() error) error {
	bp := c.keys.Get().(*[]byte)
	defer c.keys.Put(bp)
	*bp = shapeKey((*bp)[:0], obj)
	key := *bp
	c.mu.RLock()
	_, ok := c.valid[string(key)]
	c.mu.RUnlock()
	if ok {
		return nil
	}
	if err := check(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.bytes+len(key) <= c.maxSize {
		if _, ok := c.valid[string(key)]; !ok {
			c.valid[string(key)] = struct{}{}
			c.bytes += len(key)
		}
	}
	c.mu.Unlock()
	return nil
}

// shapeKey appends an unambiguous encoding of obj's sorted property names:
// each name as its length then its bytes.
func shapeKey(b []byte, obj map[string]any) []byte {
	var small [32]string
	names := small[:0]
	for k := range obj {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	return b
}
