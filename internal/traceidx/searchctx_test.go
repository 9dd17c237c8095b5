package traceidx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// errAfter is a context whose Err is nil for its first n calls, then
// DeadlineExceeded: a deadline that passes in the middle of a search,
// without depending on the machine's speed.
type errAfter struct {
	context.Context
	n int
}

func (c *errAfter) Err() error {
	if c.n <= 0 {
		return context.DeadlineExceeded
	}
	c.n--
	return nil
}

// TestSearchStopsAtItsDeadline: a search that reads every document (a
// condition no list answers) stops reading once its context ends, and
// says so, instead of running to the end of the index.
func TestSearchStopsAtItsDeadline(t *testing.T) {
	s := open(t, "")
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var docs []Doc
	for i := range 5000 {
		docs = append(docs, doc(fmt.Sprintf("d%05d", i), "log", "c1", "api", "web-1", at.Add(time.Duration(i)*time.Second), "ok"))
	}
	if err := s.Put(docs); err != nil {
		t.Fatal(err)
	}
	// host is not posted: every kind list is read, each document checked.
	q := Query{Limit: 10, Clauses: []Clause{{Field: "host", Values: []string{"nowhere"}}}}
	if _, total := ids(t, s, q); total != 0 {
		t.Fatalf("without a deadline: %d hits, want 0", total)
	}
	_, err := s.SearchContext(&errAfter{Context: context.Background(), n: 3}, q)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("search past its deadline: %v, want DeadlineExceeded", err)
	}
	// The look before reading and two in the loop passed, the third in
	// the loop stopped it: 3 × searchCheckEvery candidates of 5,000.
	if want := fmt.Sprintf("after %d candidates", 3*searchCheckEvery); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.SearchContext(ctx, q); !errors.Is(err, context.Canceled) {
		t.Fatalf("search with an ended context: %v", err)
	}
}
