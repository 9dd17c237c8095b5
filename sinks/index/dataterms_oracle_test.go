package index

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/traceidx"
	"github.com/sightline/sightline/sinks/index/querylang"
)

// dataTermsOracle is the first dataTerms, on encoding/json (each level
// decoded again): what the one-pass dataTerms must answer for every input
// (TestDataTermsAgreeWithOracle, FuzzDataTermsAgreeWithOracle).
// It appends to terms those of the event's data, one per distinct
// (path, scalar value) that a data.<path> condition matches (dataHas): a
// string's value, a number or true/false as written; through arrays,
// each element; keys that no query path can name skipped. Past the bounds
// (limits.IndexData*), the term dataOver.
func dataTermsOracle(terms []traceidx.Term, data json.RawMessage) []traceidx.Term {
	start := len(terms)
	over := false
	var walk func(raw json.RawMessage, path string)
	walk = func(raw json.RawMessage, path string) {
		raw = bytes.TrimSpace(raw)
		if over || len(raw) == 0 {
			return
		}
		switch raw[0] {
		case '[':
			var elems []json.RawMessage
			if json.Unmarshal(raw, &elems) == nil {
				for _, e := range elems {
					walk(e, path)
				}
			}
			return
		case '{':
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) != nil {
				return
			}
			keys := make([]string, 0, len(obj))
			for k := range obj {
				if querylang.ValidPathSegment(k) {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			for _, k := range keys {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(obj[k], p)
			}
			return
		case 'n':
			return // null
		}
		if path == "" {
			return
		}
		v := string(raw) // a number or true/false, as written
		if raw[0] == '"' {
			if json.Unmarshal(raw, &v) != nil || v == "" {
				return
			}
		}
		f := querylang.DataPrefix + path
		switch {
		case len(path) > limits.IndexDataPathBytes || !dataValueIndexed(v):
			over = true
		case slices.Contains(terms[start:], traceidx.Term{Field: f, Value: v}):
		case len(terms)-start >= limits.IndexDataTerms:
			over = true
		default:
			terms = append(terms, traceidx.Term{Field: f, Value: v})
		}
	}
	walk(data, "")
	if over {
		terms = append(terms, traceidx.Term{Field: dataOver, Value: "1"})
	}
	return terms
}
