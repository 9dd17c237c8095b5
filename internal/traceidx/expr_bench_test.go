package traceidx

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkCountExpr counts 10,000 matches of one posted term given as a
// clause and as a condition (Query.Expr, checked on the postings' terms).
func BenchmarkCountExpr(b *testing.B) {
	s, err := Open(Options{Posted: []string{"kind", "cid", "level"}, Unchecked: []string{"id", "cid"}, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	var docs []Doc
	for i := range 50000 {
		d := doc(fmt.Sprintf("d%06d", i), "log", fmt.Sprintf("c%d", i/100), "svc", "h1", t0.Add(time.Duration(i)*time.Millisecond), "")
		d.Terms = append(d.Terms, Term{"level", "info"}, Term{"type", "log.request"}, Term{"name", "request"})
		docs = append(docs, d)
	}
	if err := s.Put(docs); err != nil {
		b.Fatal(err)
	}
	for name, q := range map[string]Query{
		"clause": {Clauses: []Clause{{Field: "kind", Values: []string{"log"}}}},
		"expr":   {Expr: &Expr{Op: ExprAnd, Kids: []*Expr{{Op: ExprTerm, Field: "kind", Values: []string{"log"}}, {Op: ExprNot, Kids: []*Expr{{Op: ExprTerm, Field: "host", Values: []string{"h2"}}}}}}},
	} {
		q.Limit, q.MaxTotal, q.Newest = 200, 10001, true
		b.Run(name, func(b *testing.B) {
			for range b.N {
				if res, err := s.Search(q); err != nil || res.Total != 10001 {
					b.Fatal(res.Total, err)
				}
			}
		})
	}
}
