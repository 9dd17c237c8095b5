package traceidx

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(Options{Path: path, Posted: []string{"kind", "cid", "service"}, Unchecked: []string{"id"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func doc(id, kind, cid, service, host string, at time.Time, text string) Doc {
	return Doc{ID: id, Time: at, Text: text, Body: []byte(`{"id":"` + id + `"}`), Terms: []Term{
		{"id", id}, {"kind", kind}, {"cid", cid}, {"service", service}, {"host", host}}}
}

func ids(t *testing.T, s *Store, q Query) ([]string, int) {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 100
	}
	res, err := s.Search(q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range res.Hits {
		out = append(out, h.ID)
	}
	return out, res.Total
}

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "st")
	s := open(t, path)
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var docs []Doc
	for i := range 30 {
		kind := []string{"metric", "log", "dlq"}[i%3]
		text := ""
		if kind != "metric" {
			text = fmt.Sprintf("Payment FAILED for order %d", i)
		}
		docs = append(docs, doc(fmt.Sprintf("e%02d", i), kind, fmt.Sprintf("c%d", i%5), fmt.Sprintf("svc%d", i%2), "web-1", t0.Add(time.Duration(30-i)*time.Second), text))
	}
	if err := s.Put(docs); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(docs[:10]); err != nil { // redelivered: idempotent
		t.Fatal(err)
	}
	if n, _ := s.Count(); n != 30 {
		t.Fatalf("count %d", n)
	}
	// One correlation id, oldest first (times run backwards with i).
	got, total := ids(t, s, Query{Clauses: []Clause{{Field: "cid", Values: []string{"c1"}}}})
	if want := []string{"e26", "e21", "e16", "e11", "e06", "e01"}; !slices.Equal(got, want) || total != 6 {
		t.Fatalf("cid: %v %d", got, total)
	}
	// Filters on other fields, an unposted one, a time range, newest.
	got, total = ids(t, s, Query{Clauses: []Clause{
		{Field: "cid", Values: []string{"c1", "c2"}}, {Field: "kind", Values: []string{"log"}}, {Field: "host", Values: []string{"web-1"}},
	}, From: t0.Add(5 * time.Second), To: t0.Add(25 * time.Second), Limit: 2, Newest: true})
	if want := []string{"e16", "e07"}; !slices.Equal(got, want) || total != 3 {
		t.Fatalf("filters: %v %d", got, total)
	}
	// Words (any case, any order), an exact field, an id.
	if got, total = ids(t, s, Query{Clauses: []Clause{{Text: "failed PAYMENT", TextFields: []string{"service", "id"}}}}); total != 20 {
		t.Fatalf("words: %v %d", got, total)
	}
	if got, _ = ids(t, s, Query{Clauses: []Clause{{Text: "order 7", TextFields: []string{"service", "id"}}}}); !slices.Equal(got, []string{"e07"}) {
		t.Fatalf("two words: %v", got)
	}
	if _, total = ids(t, s, Query{Clauses: []Clause{{Text: "svc1", TextFields: []string{"service", "id"}}}}); total != 15 {
		t.Fatalf("exact field: %d", total)
	}
	if got, _ = ids(t, s, Query{Clauses: []Clause{{Text: "e03", TextFields: []string{"service", "id"}}}}); !slices.Equal(got, []string{"e03"}) {
		t.Fatalf("id: %v", got)
	}
	// Counting stops at MaxTotal.
	if res, err := s.Search(Query{Limit: 2, MaxTotal: 5}); err != nil || res.Total != 5 || !res.TotalCapped || len(res.Hits) != 2 {
		t.Fatalf("capped: %d %v %d %v", res.Total, res.TotalCapped, len(res.Hits), err)
	}
	if res, _ := s.Search(Query{Limit: 2, MaxTotal: 31}); res.Total != 30 || res.TotalCapped {
		t.Fatalf("under the cap: %d %v", res.Total, res.TotalCapped)
	}
	// An unposted field drives nothing: every document is checked.
	if _, total = ids(t, s, Query{Clauses: []Clause{{Field: "host", Values: []string{"web-1"}}}}); total != 30 {
		t.Fatalf("unposted: %d", total)
	}
	// Rewritten with another time: the old posting is not returned.
	moved := doc("e01", "dlq", "c1", "svc1", "web-1", t0.Add(time.Hour), "moved")
	if err := s.Put([]Doc{moved}); err != nil {
		t.Fatal(err)
	}
	if got, _ = ids(t, s, Query{Clauses: []Clause{{Field: "cid", Values: []string{"c1"}}}}); slices.Index(got, "e01") != len(got)-1 || len(got) != 6 {
		t.Fatalf("after rewrite: %v", got)
	}
	// Reopened from disk; retention.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(docs); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after close: %v", err)
	}
	s = open(t, path)
	n, err := s.DeleteBefore(t0.Add(11*time.Second), 7)
	if err != nil || n != 10 { // e20..e29
		t.Fatalf("deleted %d %v", n, err)
	}
	if got, total = ids(t, s, Query{Clauses: []Clause{{Field: "cid", Values: []string{"c1"}}}}); total != 4 || got[0] != "e16" {
		t.Fatalf("after retention: %v %d", got, total)
	}
	if _, ok, _ := s.Get("e25"); ok {
		t.Fatal("e25 kept")
	}
	if _, total = ids(t, s, Query{Clauses: []Clause{{Text: "payment", TextFields: []string{"service"}}}}); total != 12 { // e01 now says "moved"
		t.Fatalf("words after retention: %d", total)
	}
	// A new body file per open; files go when all their documents have.
	if err := s.Put([]Doc{doc("late", "log", "c9", "svc0", "h", t0.Add(3*time.Hour), "late")}); err != nil {
		t.Fatal(err)
	}
	if files, _ := s.bodies.files(); len(files) != 2 {
		t.Fatalf("body files %v", files)
	}
	if n, err = s.DeleteBefore(t0.Add(2*time.Hour), 100); err != nil || n != 21 {
		t.Fatalf("deleted %d %v", n, err)
	}
	if files, _ := s.bodies.files(); len(files) != 1 {
		t.Fatalf("body files after retention %v", files)
	}
	if got, _ = ids(t, s, Query{}); !slices.Equal(got, []string{"late"}) {
		t.Fatalf("left %v", got)
	}
}

func TestWords(t *testing.T) {
	got := Words(nil, "Payment FAILED: order_id=42, payment été x"+string(make([]byte, 0)), 10)
	want := []string{"payment", "failed", "order_id", "42", "été", "x"}
	if !slices.Equal(got, want) {
		t.Fatalf("%q", got)
	}
	if got := Words(nil, "a b c d", 2); len(got) != 2 {
		t.Fatalf("max: %q", got)
	}
}
