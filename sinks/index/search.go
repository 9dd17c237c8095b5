package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/locate"
)

// ErrNotFound is returned by Trace when no document carries the ID.
var ErrNotFound = errors.New("index: no event carries this correlation id")

// MaxResults caps how many documents one query returns.
const MaxResults = 10000

// Query selects documents. Empty fields do not filter.
type Query struct {
	CorrelationID string
	Services      []string
	Types         []string // exact types, e.g. metric.search_made
	Kinds         []string // metric, log, snapshot, dlq
	Levels        []string
	From, To      time.Time // To is exclusive
	Text          string    // free text over message, type, service, host, reason
	Limit         int       // default 100, at most MaxResults
	// Newest returns the newest Limit matches (still sorted oldest first);
	// otherwise the oldest Limit.
	Newest bool
	// After continues a search past a document (the Next of the previous
	// page): later ones, or earlier ones when Newest.
	After *Cursor
}

// LimitOrDefault is the number of matches q asks for: Limit, 100 when
// unset, at most MaxResults.
func (q Query) LimitOrDefault() int { return clampLimit(q.Limit, 100, MaxResults) }

// clampLimit is n, or def when n is unset (≤ 0), at most most.
func clampLimit(n, def, most int) int {
	switch {
	case n <= 0:
		return def
	case n > most:
		return most
	}
	return n
}

// Result is the answer to a Query: matching documents oldest first.
type Result struct {
	Total int        `json:"total"` // matches, possibly more than returned
	Docs  []Document `json:"events"`
	// TotalCapped says Total is a lower bound: the embedded index stops
	// counting at MaxTotal matches.
	TotalCapped bool `json:"total_capped,omitempty"`
	// Next is the cursor of the next page (Query.After) when this page
	// is full: the last document in the query's order.
	Next *Cursor `json:"next,omitempty"`
}

// MaxTotal is where the embedded index stops counting the matches of a
// search (the remote one counts them all).
const MaxTotal = 10000

// Searcher is the query side of an index: the remote one and the embedded
// one implement it.
type Searcher interface {
	Search(ctx context.Context, q Query) (Result, error)
}

// Location says where else a correlation ID lives (internal/locate).
type Location = locate.Location

// Locator finds where else a correlation ID lives. Sinks other than the
// index (graph, archive) implement it and are passed to Trace / searchapi.New.
type Locator interface {
	Locate(ctx context.Context, correlationID string, docs []Document) ([]Location, error)
}

// LocatorFunc adapts a function to Locator.
type LocatorFunc func(ctx context.Context, correlationID string, docs []Document) ([]Location, error)

// Locate calls f.
func (f LocatorFunc) Locate(ctx context.Context, id string, docs []Document) ([]Location, error) {
	return f(ctx, id, docs)
}

// SpanLocator adapts a store that searches by time (the archive) to
// Locator: it searches an hour either side of the documents the index
// found, or all time when it found none (e.g. after the index's retention).
func SpanLocator(f locate.InSpan) Locator {
	return LocatorFunc(func(ctx context.Context, correlationID string, docs []Document) ([]Location, error) {
		var span locate.Span
		for _, d := range docs {
			if d.Time.IsZero() {
				continue
			}
			if span.From.IsZero() || d.Time.Before(span.From) {
				span.From = d.Time
			}
			if d.Time.After(span.To) {
				span.To = d.Time
			}
		}
		if !span.From.IsZero() {
			span.From, span.To = span.From.Add(-time.Hour), span.To.Add(time.Hour)
		}
		return f(ctx, correlationID, span)
	})
}

// StreamLocator lists the stream sequences the index saw each event at
// (recorded by the sink from the JetStream metadata).
var StreamLocator Locator = LocatorFunc(func(_ context.Context, _ string, docs []Document) ([]Location, error) {
	var out []Location
	for _, d := range docs {
		if d.Stream != "" && d.Sequence > 0 {
			out = append(out, Location{Where: "stream", Ref: d.Stream + ":" + strconv.FormatUint(d.Sequence, 10), Detail: d.Type + " " + d.ID})
		}
		if d.DLQ != nil && d.DLQ.Stream != "" && d.DLQ.Sequence > 0 {
			out = append(out, Location{Where: "stream", Ref: d.DLQ.Stream + ":" + strconv.FormatUint(d.DLQ.Sequence, 10), Detail: "input rejected by " + d.DLQ.Stage})
		}
	}
	return out, nil
})

// Entry is one event of a timeline.
type Entry struct {
	Offset   time.Duration `json:"-"`
	OffsetMs float64       `json:"offset_ms"`
	Document
}

// Timeline is every event carrying one correlation ID, oldest first.
type Timeline struct {
	CorrelationID string    `json:"correlation_id"`
	Start         time.Time `json:"start"`
	DurationMs    float64   `json:"duration_ms"`
	Services      []string  `json:"services"`
	Kinds         []string  `json:"kinds"`
	Events        []Entry   `json:"events"`
	Truncated     bool      `json:"truncated,omitempty"`
	// Next and Total are set on a page of a trace (TracePage): the cursor
	// of the next page while events remain, and how many the trace has
	// (a lower bound when TotalCapped).
	Next         *Cursor    `json:"next,omitempty"`
	Total        int        `json:"total,omitempty"`
	TotalCapped  bool       `json:"total_capped,omitempty"`
	Locations    []Location `json:"locations,omitempty"`
	LocateErrors []string   `json:"locate_errors,omitempty"`
}

// Trace builds the timeline of a correlation ID: every document carrying
// it, ordered by time (then ingest time, then id), with offsets from the
// first, and the locations the locators report. ErrNotFound when none.
func Trace(ctx context.Context, s Searcher, id string, locators ...Locator) (*Timeline, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return nil, errors.New("index: trace: empty correlation id")
	}
	res, err := searchAll(ctx, s, Query{CorrelationID: id, Limit: MaxResults}, MaxTraceEvents)
	if err != nil {
		return nil, fmt.Errorf("index: trace %s: %w", id, err)
	}
	tl := &Timeline{CorrelationID: id, Services: []string{}, Kinds: []string{}, Events: []Entry{}}
	if len(res.Docs) == 0 {
		return tl, ErrNotFound
	}
	SortDocs(res.Docs)
	tl.Truncated = res.Total > len(res.Docs)
	tl.Start = res.Docs[0].Time
	tl.add(res.Docs)
	tl.DurationMs = tl.Events[len(tl.Events)-1].OffsetMs
	tl.locate(ctx, res.Docs, locators)
	return tl, nil
}

// add appends docs as entries with offsets from tl.Start.
func (tl *Timeline) add(docs []Document) {
	for _, d := range docs {
		off := d.Time.Sub(tl.Start)
		tl.Events = append(tl.Events, Entry{Offset: off, OffsetMs: float64(off.Microseconds()) / 1000, Document: d})
		if d.Service != "" && !slices.Contains(tl.Services, d.Service) {
			tl.Services = append(tl.Services, d.Service)
		}
		if !slices.Contains(tl.Kinds, d.Kind) {
			tl.Kinds = append(tl.Kinds, d.Kind)
		}
	}
}

// locate adds the locations the locators report for docs.
func (tl *Timeline) locate(ctx context.Context, docs []Document, locators []Locator) {
	for _, l := range locators {
		locs, err := l.Locate(ctx, tl.CorrelationID, docs)
		if err != nil {
			tl.LocateErrors = append(tl.LocateErrors, err.Error())
			continue
		}
		tl.Locations = append(tl.Locations, locs...)
	}
}

// SortDocs orders documents by time, then ingest time, then id.
func SortDocs(docs []Document) {
	slices.SortStableFunc(docs, func(a, b Document) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		ai, bi := a.IngestTime, b.IngestTime
		if ai != nil && bi != nil {
			if c := ai.Compare(*bi); c != 0 {
				return c
			}
		}
		return strings.Compare(a.ID, b.ID)
	})
}
