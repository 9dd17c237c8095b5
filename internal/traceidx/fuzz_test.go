package traceidx

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// FuzzSearch runs fuzzed queries (any text, values, bounds and limits)
// against a store and the model: the same hits, a total of at least the
// model's, and no error or panic.
//
//	go test -run '^$' -fuzz FuzzSearch -fuzztime 60s ./internal/traceidx/
func FuzzSearch(f *testing.F) {
	f.Add("payment", "api", uint8(0), int64(0), int64(0), uint8(10), false)
	f.Add("FAILED order", "c1", uint8(1), int64(100), int64(2000), uint8(3), true)
	f.Add("e0003", "\x00", uint8(5), int64(-1), int64(1<<62), uint8(0), true)
	f.Add("été\xff", "log", uint8(2), int64(3599), int64(3600), uint8(255), false)
	f.Add("1", "a", uint8(6), int64(0), int64(0), uint8(20), true)
	f.Add("h1", "par1", uint8(7), int64(10), int64(0), uint8(5), false)
	f.Add("h2", "ams1", uint8(8), int64(0), int64(3000), uint8(7), true)
	s, err := Open(modelOptions("", true))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	m := &model{docs: map[string]Doc{}}
	r := rand.New(rand.NewPCG(5, 5))
	var docs []Doc
	for i := range 200 {
		docs = append(docs, randomDoc(r, fmt.Sprintf("e%04d", i)))
	}
	if err := s.Put(docs); err != nil {
		f.Fatal(err)
	}
	m.put(docs)
	f.Fuzz(func(t *testing.T, text, value string, kind uint8, from, to int64, limit uint8, newest bool) {
		q := Query{Limit: int(limit), Newest: newest}
		switch kind % 9 {
		case 0, 1, 2:
			q.Clauses = []Clause{{Field: []string{"kind", "cid", "service"}[kind%3], Values: []string{value, text}}}
		case 3:
			q.Clauses = []Clause{{Text: text, TextFields: []string{"service", "id"}}, {Field: "host", Values: []string{value}}}
		case 4:
			q.Clauses = []Clause{{Field: "kind", Values: []string{value}}, {Text: text, TextFields: []string{"service"}}}
		case 5:
			q.Clauses = []Clause{{Text: text, TextFields: []string{"id"}}}
		case 6: // a data path, posted by prefix and bare
			q.Expr = &Expr{Op: ExprOr, Kids: []*Expr{{Op: ExprTerm, Field: "data." + value, Values: []string{text}}, {Op: ExprTerm, Field: "data.a", Values: []string{text}}}}
		case 7: // a text that may equal a bare field's value
			q.Expr = &Expr{Op: ExprAnd, Kids: []*Expr{{Op: ExprText, Text: text, TextFields: []string{"host", "service"}}, {Op: ExprTerm, Field: "site", Values: []string{value}}}}
		case 8:
			q.Clauses = []Clause{{Field: "site", Values: []string{value, text}}, {Field: "host", Values: []string{text}}}
		}
		if from != 0 {
			q.From = modelT0.Add(time.Duration(from%10000) * time.Second)
		}
		if to != 0 {
			q.To = modelT0.Add(time.Duration(to%10000) * time.Second)
		}
		checkQuery(t, 0, s, m, q)
	})
}
