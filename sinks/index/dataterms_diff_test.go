package index

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/poison"
	"github.com/sightline/sightline/internal/traceidx"
)

// The embedded index's data terms are read in one pass of the JSON
// scanner (dataTerms); the first implementation, on encoding/json, is kept
// as the oracle (dataTermsOracle). They must give the same terms, in the
// same order, for every input: duplicate keys, escapes, invalid UTF-8,
// arrays, nesting, the bounds and invalid JSON.

// dataSeeds are data objects and other texts for the data terms' tests.
func dataSeeds() []string {
	long := strings.Repeat("v", limits.IndexDataValueBytes)
	longPath := strings.Repeat("p", limits.IndexDataPathBytes)
	many := func(n int, val func(i int) string) string {
		var b strings.Builder
		b.WriteByte('{')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"k%02d":%s`, i, val(i))
		}
		return b.String() + "}"
	}
	seeds := []string{
		``, ` `, `null`, `{}`, `[]`, `"s"`, `12`, `true`, ` {"a":1} `, "\v{\"a\":1}\f", "\u00a0{\"a\":1}\u0085",
		"{\"a\":1}\u00a0", "{\"a\":\u00a01}",
		`{"a":1}`, `{"a":"x","b":2,"c":true,"d":false,"e":null,"f":""}`, `{"a":1.50,"b":-0,"c":1e5,"d":-0.5E+10}`,
		`{"a":1,"a":2}`, `{"a":1,"b":0,"a":2}`, `{"a":{"x":1},"a":"s"}`, `{"a":"s","a":{"x":1}}`,
		`{"a":1,"\u0061":2}`, `{"\u0061":2,"a":1}`, `{"a\u0062":1,"ab":2}`, `{"é":1,"a b":2,"":3,"a.b":4,"a-_@$9":5}`,
		`{"\u00e9":1}`, `{"k\u0000":1}`, `{"\ud800":1}`, "{\"\xff\":1}", "{\"a\xff\":1,\"b\":2}",
		`{"a":"\u0000"}`, `{"a":"x\u0000y"}`, `{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud83d"}`, `{"a":"\ude00\ud83d"}`,
		`{"a":"\ud83d\u0041"}`, "{\"a\":\"\xff\xfe\"}", "{\"a\":\"ok \xc3\"}", "{\"a\":\"\xed\xa0\x80\"}", `{"a":"\/\"\\\b\f\n\r\t"}`,
		`{"a":"é"}`, `{"a":"\u00e9"}`, `{"a":"` + long + `"}`, `{"a":"` + long + `x"}`, `{"a":"` + long[:63] + `é"}`,
		`{"a":"` + long + `","b":1}`, `{"b":1,"a":"` + long + `x","c":2}`, `{"` + longPath + `":1}`, `{"` + longPath + `x":1}`,
		`{"a":{"` + longPath[:126] + `":1}}`, `{"a":{"` + longPath[:127] + `":1}}`,
		`{"tags":["a","b","a"]}`, `{"tags":["a",["b",{"c":1}]]}`, `{"a":[{"b":1},{"b":1},{"b":2}]}`, `[{"a":1},{"a":2}]`, `[[{"a":1}],"x",3]`,
		`{"user":{"id":7},"tags":["a","b"]}`, `{"user":{"id":"7"}}`, `{"a.b":"x","a":{"b":"y"}}`, `{"a":{"b":"x"},"a.b":"x"}`,
		`{"a":[]}`, `{"a":{}}`, `{"a":[null,[],{}]}`, `{"a" : [ 1 , 2 ] , "b" : { } }`,
		`{"query":"cats and dogs","n_results":7,"user_id":"u0000001","session":"s-7","page":"/search","ab_bucket":"b","pad":"` + strings.Repeat("x", 300) + `"}`,
		many(limits.IndexDataTerms, func(i int) string { return fmt.Sprint(i) }),
		many(limits.IndexDataTerms+1, func(i int) string { return fmt.Sprint(i) }),
		many(limits.IndexDataTerms+1, func(int) string { return "1" }),
		many(40, func(i int) string { return fmt.Sprintf(`[%d,%d,"x"]`, i%3, i%5) }),
		many(20, func(i int) string { return fmt.Sprintf(`{"x":%d,"y":[%d]}`, i, i) }),
		// Not JSON, or not one value.
		`{"a":1`, `{"a":1}}`, `{"a":1} {"b":2}`, `{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, "{\"a\":\"\x01\"}", `{"a":tru}`,
		`{"a":[1,]}`, `{"a":1,}`, `[1,`, `{"a":[1,2}`, `{"a":"\u12"}`, `{a:1}`, `{"a" 1}`, `{"a":1 "b":2}`, `["a":1]`,
		levels(100), levels(limits.DecoderMaxDepth + 1), `{"a":` + strings.Repeat("[", 300) + `1` + strings.Repeat("]", 300) + `}`,
		`{"a":` + strings.Repeat("[", limits.DecoderMaxDepth+1) + strings.Repeat("]", limits.DecoderMaxDepth+1) + `}`,
	}
	return append(seeds, scanSeeds...)
}

// checkDataTerms compares dataTerms with the oracle on data, with terms
// already in the slice (as storedDoc passes them) and a reused walker.
func checkDataTerms(t *testing.T, w *dataWalker, data []byte) {
	t.Helper()
	pre := []traceidx.Term{{Field: "id", Value: "x"}, {Field: "kind", Value: "metric"}}
	want := dataTermsOracle(slices.Clone(pre), data)
	got := w.terms(slices.Clone(pre), data)
	if !slices.Equal(got, want) {
		t.Fatalf("data %.300q:\n got  %q\n want %q", data, got, want)
	}
	if fresh := dataTerms(slices.Clone(pre), data); !slices.Equal(fresh, want) {
		t.Fatalf("data %.300q, fresh walker:\n got  %q\n want %q", data, fresh, want)
	}
}

func TestDataTermsAgreeWithOracle(t *testing.T) {
	var w dataWalker
	for _, s := range dataSeeds() {
		checkDataTerms(t, &w, []byte(s))
	}
	// The hostile corpus: each body as data, and inside an object.
	cases, err := poison.Load("../../internal/poison/testdata")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cases {
		b, err := c.Body()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1<<20 {
			continue // the oracle is quadratic in the nesting
		}
		checkDataTerms(t, &w, b)
		checkDataTerms(t, &w, []byte(`{"d":`+string(b)+`,"e":[`+string(b)+`]}`))
		n++
	}
	if n < 50 {
		t.Fatalf("%d corpus bodies", n)
	}
	// The events of the benchmarks and random nested data.
	for _, m := range benchBatch(2, 300, time.Now().UTC()) {
		var ev struct{ Data json.RawMessage }
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		checkDataTerms(t, &w, ev.Data)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		checkDataTerms(t, &w, randomData(r, 0))
	}
}

// TestDataTermsDepthLimit: data as deep as the decoder takes is read (its
// path is past the bounds: marked), one level more is not JSON to it.
func TestDataTermsDepthLimit(t *testing.T) {
	over := []traceidx.Term{{Field: dataOver, Value: "1"}}
	if got := dataTerms(nil, []byte(levels(limits.DecoderMaxDepth))); !slices.Equal(got, over) {
		t.Fatalf("%d levels: %q", limits.DecoderMaxDepth, got)
	}
	if got := dataTerms(nil, []byte(levels(limits.DecoderMaxDepth+1))); len(got) != 0 {
		t.Fatalf("%d levels: %q", limits.DecoderMaxDepth+1, got)
	}
	if json.Valid([]byte(levels(limits.DecoderMaxDepth+1))) || !json.Valid([]byte(levels(limits.DecoderMaxDepth))) {
		t.Fatal("encoding/json's depth limit is not limits.DecoderMaxDepth")
	}
}

// randomData is a random JSON value (now and then not valid), with few
// distinct keys so that duplicates, shared paths and the bounds are met.
func randomData(r *rand.Rand, depth int) []byte {
	keys := []string{`"a"`, `"b"`, `"\u0061"`, `"a b"`, `"é"`, `"c_1"`, `""`, `"\u0000"`, "\"\xff\"", `"D"`, `"a.b"`}
	vals := []string{`1`, `-2.50`, `1e3`, `true`, `false`, `null`, `""`, `"x"`, `"\u00e9"`, "\"\xfe\"", `"\ud800"`,
		`"x\u0000"`, `"` + strings.Repeat("y", 64) + `"`, `"` + strings.Repeat("y", 65) + `"`, `"a\nb"`}
	var b strings.Builder
	var gen func(depth int)
	gen = func(depth int) {
		switch k := r.IntN(10); {
		case depth < 5 && k < 4:
			b.WriteByte('{')
			for i := range r.IntN(8) {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(keys[r.IntN(len(keys))])
				b.WriteString([]string{":", " : "}[r.IntN(2)])
				gen(depth + 1)
			}
			b.WriteByte('}')
		case depth < 5 && k < 6:
			b.WriteByte('[')
			for i := range r.IntN(5) {
				if i > 0 {
					b.WriteString(", "[:1+r.IntN(2)])
				}
				gen(depth + 1)
			}
			b.WriteByte(']')
		default:
			b.WriteString(vals[r.IntN(len(vals))])
		}
	}
	if r.IntN(4) == 0 {
		gen(depth)
	} else {
		b.WriteByte('{')
		for i := range 1 + r.IntN(40) {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"k%d":`, r.IntN(30))
			gen(depth + 1)
		}
		b.WriteByte('}')
	}
	out := []byte(b.String())
	if r.IntN(20) == 0 && len(out) > 1 {
		out = out[:r.IntN(len(out))] // cut: not JSON
	}
	return out
}

// FuzzDataTermsAgreeWithOracle is the differential test of the two
// readings of an event's data.
//
//	go test -run '^$' -fuzz FuzzDataTermsAgreeWithOracle -fuzztime 60s ./sinks/index/
func FuzzDataTermsAgreeWithOracle(f *testing.F) {
	for _, s := range dataSeeds() {
		if len(s) < 4096 {
			f.Add([]byte(s))
		}
	}
	var w dataWalker
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		checkDataTerms(t, &w, data)
	})
}

// BenchmarkDataTerms reads the data of sightline-load's metric event and
// of the benchmarks' events, one pass (dataTerms, a walker reused as
// Embedded.Write does) against the oracle (encoding/json at each level).
//
//	go test -run '^$' -bench DataTerms -benchmem ./sinks/index/
func BenchmarkDataTerms(b *testing.B) {
	var datas [][]byte
	for _, m := range append(loadBatch(0, 3, time.Now()), benchBatch(0, 3, time.Now())...) {
		var ev struct{ Data json.RawMessage }
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			b.Fatal(err)
		}
		datas = append(datas, ev.Data)
	}
	names := []string{"load", "metric", "log", "snapshot"}
	for i, data := range datas[2:] {
		b.Run(names[i]+"/scan", func(b *testing.B) {
			var w dataWalker
			terms := make([]traceidx.Term, 0, 40)
			b.ReportAllocs()
			for b.Loop() {
				terms = w.terms(terms[:0], data)
			}
		})
		b.Run(names[i]+"/oracle", func(b *testing.B) {
			terms := make([]traceidx.Term, 0, 40)
			b.ReportAllocs()
			for b.Loop() {
				terms = dataTermsOracle(terms[:0], data)
			}
		})
	}
}
