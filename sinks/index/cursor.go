package index

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxTraceEvents is the most events one timeline (Trace, GET /v1/trace/{id})
// holds; a trace with more is marked truncated. Trace reads them in pages
// of MaxResults.
const MaxTraceEvents = 200000

// Cursor is a position in the (time, id) order of documents: Result.Next,
// passed back as Query.After, pages past MaxResults.
type Cursor struct {
	Time time.Time `json:"time"`
	ID   string    `json:"id"`
}

// String is the cursor as the API's `after` parameter: RFC 3339 time, "|", id.
func (c Cursor) String() string { return c.Time.UTC().Format(time.RFC3339Nano) + "|" + c.ID }

// ParseCursor reads Cursor.String.
func ParseCursor(s string) (*Cursor, error) {
	ts, id, ok := strings.Cut(s, "|")
	if !ok || id == "" {
		return nil, errors.New("want <RFC 3339 time>|<event id> (the next cursor of a result)")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return nil, errors.New("want <RFC 3339 time>|<event id> (the next cursor of a result)")
	}
	return &Cursor{Time: t, ID: id}, nil
}

// setNext sets r.Next when the page is full: the last document in q's
// order (the oldest one when newest first).
func (r *Result) setNext(q Query) {
	if len(r.Docs) == 0 || len(r.Docs) < q.LimitOrDefault() {
		return
	}
	d := r.Docs[len(r.Docs)-1]
	if q.Newest {
		d = r.Docs[0]
	}
	r.Next = &Cursor{Time: d.Time, ID: d.ID}
}

// searchAll runs q page after page (q.Limit each) until max documents or
// the last match. Total is the number of matches (a lower bound when one
// page's was).
func searchAll(ctx context.Context, s Searcher, q Query, max int) (Result, error) {
	var all Result
	for {
		res, err := s.Search(ctx, q)
		if err != nil {
			return all, err
		}
		if all.Docs == nil {
			all.Total, all.TotalCapped = res.Total, res.TotalCapped
		}
		all.Docs = append(all.Docs, res.Docs...)
		if len(all.Docs) > all.Total {
			all.Total = len(all.Docs)
		}
		if res.Next == nil || len(all.Docs) >= max {
			if res.Next != nil {
				all.TotalCapped, all.Total = true, len(all.Docs)+1
			}
			if len(all.Docs) > max {
				all.Docs = all.Docs[:max]
			}
			return all, nil
		}
		q.After = res.Next
	}
}

// TracePage is one page of a trace, for a reader that shows the first
// events at once and loads the rest behind them: up to limit events (at
// most MaxResults) past after (nil: from the first), in (time, id) order,
// with offsets from the trace's first event and DurationMs to its last,
// Total, and Next while events remain. ErrNotFound when none.
func TracePage(ctx context.Context, s Searcher, id string, after *Cursor, limit int, locators ...Locator) (*Timeline, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return nil, errors.New("index: trace: empty correlation id")
	}
	tl := &Timeline{CorrelationID: id, Services: []string{}, Kinds: []string{}, Events: []Entry{}}
	first, err := s.Search(ctx, Query{CorrelationID: id, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("index: trace %s: %w", id, err)
	}
	if len(first.Docs) == 0 {
		return tl, ErrNotFound
	}
	last, err := s.Search(ctx, Query{CorrelationID: id, Limit: 1, Newest: true})
	if err != nil || len(last.Docs) == 0 {
		return nil, fmt.Errorf("index: trace %s: the last event: %w", id, err)
	}
	q := Query{CorrelationID: id, Limit: limit, After: after}
	page, err := s.Search(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("index: trace %s: %w", id, err)
	}
	tl.Start = first.Docs[0].Time
	tl.DurationMs = float64(last.Docs[0].Time.Sub(tl.Start).Microseconds()) / 1000
	tl.Total, tl.TotalCapped = first.Total, first.TotalCapped
	tl.Next = page.Next
	tl.add(page.Docs)
	tl.locate(ctx, page.Docs, locators)
	return tl, nil
}

// MaxHistogramBuckets is the most buckets one histogram has.
const MaxHistogramBuckets = 100

// Bucket is one bar of a histogram: the matches in [From, From+width).
type Bucket struct {
	From   time.Time `json:"from"`
	Count  int       `json:"count"`
	Capped bool      `json:"capped,omitempty"` // Count is a lower bound (MaxTotal)
}

// Histogram counts q's matches in n equal time buckets over q's range
// (from the oldest match when From is unset, to now when To is), one count
// per bucket (the embedded index stops counting a bucket at MaxTotal).
func Histogram(ctx context.Context, s Searcher, q Query, n int, now time.Time) ([]Bucket, error) {
	n = min(max(n, 1), MaxHistogramBuckets)
	q.After, q.Newest, q.Limit = nil, false, 1
	from, to := q.From, q.To
	if to.IsZero() {
		to = now
	}
	if from.IsZero() {
		first, err := s.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		if len(first.Docs) == 0 {
			return []Bucket{}, nil
		}
		from = first.Docs[0].Time
	}
	if !to.After(from) {
		return []Bucket{}, nil
	}
	width := to.Sub(from) / time.Duration(n)
	if width <= 0 {
		width, n = to.Sub(from), 1
	}
	out := make([]Bucket, 0, n)
	for i := range n {
		b := Bucket{From: from.Add(time.Duration(i) * width)}
		bq := q
		bq.From, bq.To = b.From, b.From.Add(width)
		if i == n-1 {
			bq.To = to
		}
		res, err := s.Search(ctx, bq)
		if err != nil {
			return nil, err
		}
		b.Count, b.Capped = res.Total, res.TotalCapped
		out = append(out, b)
	}
	return out, nil
}
