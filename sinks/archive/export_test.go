package archive

import (
	"bytes"
	"encoding/json"
)

// DecodeForTest decodes a JSON object keeping numbers exact.
func DecodeForTest(b []byte) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	err := dec.Decode(&m)
	return m, err
}

// CanonicalForTest encodes a decoded value with sorted keys.
func CanonicalForTest(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// FailPutsForTest makes f decide whether each window object's PUT fails,
// before it is stored (written false) or after (true).
func FailPutsForTest(s *Sink, f func(key string, written bool) error) { s.putFault = f }
