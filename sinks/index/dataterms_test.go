package index

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/traceidx"
	"github.com/sightline/sightline/sinks/index/querylang"
)

// FuzzDataTermsAgreeWithDocuments checks the embedded index's data terms
// against the reading of the stored document they stand for: for any data
// and any data.<path>:value, the condition's meaning on the terms (the
// term, or the document marked past the bounds and read) equals dataHas
// on the data.
//
//	go test -run '^$' -fuzz FuzzDataTermsAgreeWithDocuments -fuzztime 60s ./sinks/index/
func FuzzDataTermsAgreeWithDocuments(f *testing.F) {
	f.Add(`{"user":{"id":7},"tags":["a","b"]}`, "user.id", "7")
	f.Add(`{"user":{"id":"7"}}`, "user.id", "7")
	f.Add(`{"tags":["a",["b",{"c":1}]]}`, "tags.c", "1")
	f.Add(`{"a.b":"x","a":{"b":"y"}}`, "a.b", "x")
	f.Add(`{"a":1.50,"b":true,"c":null,"d":""}`, "a", "1.50")
	f.Add(`{"a":"`+strings.Repeat("x", limits.IndexDataValueBytes+1)+`"}`, "a", strings.Repeat("x", limits.IndexDataValueBytes+1))
	f.Add(`{"a":1,"a":2}`, "a", "1")
	f.Add(`{"é":1,"a b":2,"":3}`, "a", "1")
	f.Fuzz(func(t *testing.T, data, path, value string) {
		if !json.Valid([]byte(data)) || value == "" {
			return
		}
		for _, seg := range strings.Split(path, ".") {
			if !querylang.ValidPathSegment(seg) {
				return // the parser refuses such a field
			}
		}
		terms := dataTerms(nil, json.RawMessage(data))
		field := querylang.DataPrefix + path
		has := slices.Contains(terms, traceidx.Term{Field: field, Value: value})
		over := slices.Contains(terms, traceidx.Term{Field: dataOver, Value: "1"})
		want := dataHas(json.RawMessage(data), strings.Split(path, "."), value)
		if has && !want {
			t.Fatalf("data %s: term %s=%q, but the document does not have it", data, field, value)
		}
		if want && !has && !over {
			t.Fatalf("data %s: the document has %s=%q, no term and not marked", data, field, value)
		}
		if n := len(terms) - btoi(over); n > limits.IndexDataTerms {
			t.Fatalf("data %s: %d terms", data, n)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
