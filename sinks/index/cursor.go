package index

import (
	"context"
	"errors"
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
