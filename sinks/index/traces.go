package index

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/traceidx"
)

// Limits of a trace list (GET /v1/traces).
const (
	// MaxTraceList is the most correlation IDs one trace list returns.
	MaxTraceList = 1000
	// MaxTraceServices is the most service names one summary lists.
	MaxTraceServices = 32
)

// TraceQuery selects correlation IDs by their events in [From, To): the
// recent traces of the page and its trace search.
type TraceQuery struct {
	From, To time.Time
	// Services keeps the traces with an event of one of these services.
	Services []string
	// Attrs keeps the traces with an event having each of these exact
	// values (fields: service, kind, type, level, host, name).
	Attrs []Attr
	// MinDuration and MaxDuration bound the span between the first and
	// the last event (0: no bound).
	MinDuration, MaxDuration time.Duration
	Limit                    int // default 50, at most MaxTraceList
}

// Attr is one field = value condition of a TraceQuery.
type Attr struct{ Field, Value string }

// TraceAttrFields are the fields a TraceQuery's Attrs may name.
var TraceAttrFields = []string{"service", "kind", "type", "level", "host", "name"}

// ParseAttr reads "field=value" (or "field:value").
func ParseAttr(s string) (Attr, error) {
	i := strings.IndexAny(s, "=:")
	if i <= 0 {
		return Attr{}, fmt.Errorf("attribute %q: want field=value with field one of %s", s, strings.Join(TraceAttrFields, ", "))
	}
	a := Attr{Field: strings.TrimSpace(s[:i]), Value: strings.TrimSpace(s[i+1:])}
	if !slices.Contains(TraceAttrFields, a.Field) || a.Value == "" {
		return Attr{}, fmt.Errorf("attribute %q: want field=value with field one of %s", s, strings.Join(TraceAttrFields, ", "))
	}
	return a, nil
}

func (q TraceQuery) limit() int { return clampLimit(q.Limit, 50, MaxTraceList) }

// TraceSummary is one correlation ID of a trace list, counted over its
// events in the query's time range.
type TraceSummary struct {
	CorrelationID string    `json:"correlation_id"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	DurationMs    float64   `json:"duration_ms"`
	Events        int       `json:"events"`
	Errors        int       `json:"errors"`   // events at an error level (not warnings)
	Warnings      int       `json:"warnings"` // events at a warning level
	Rejected      int       `json:"rejected"` // dead letters
	Services      []string  `json:"services"` // sorted, at most MaxTraceServices
}

// TraceList is the answer to a TraceQuery: the matching correlation IDs
// whose last event is the newest first, and how many matched in all.
type TraceList struct {
	Total  int            `json:"total"`
	Traces []TraceSummary `json:"traces"`
}

// TraceLister lists correlation IDs: the embedded and the remote index
// implement it.
type TraceLister interface {
	Traces(ctx context.Context, q TraceQuery) (TraceList, error)
}

// ErrorLevel reports whether a level is an error (fatal, critical, …);
// warnings are not.
func ErrorLevel(l string) bool {
	switch strings.ToLower(l) {
	case "error", "err", "fatal", "crit", "critical", "alert", "emerg", "emergency", "panic":
		return true
	}
	return false
}

// WarnLevel reports whether a level is a warning.
func WarnLevel(l string) bool {
	switch strings.ToLower(l) {
	case "warn", "warning":
		return true
	}
	return false
}

// traceAcc accumulates one correlation ID's events.
type traceAcc struct {
	s     TraceSummary
	attrs []bool // which of the query's Attrs an event had
	svc   bool   // an event of one of the query's Services
}

func (a *traceAcc) add(q *TraceQuery, t time.Time, term func(string) string) {
	if a.s.Events == 0 || t.Before(a.s.Start) {
		a.s.Start = t
	}
	if a.s.Events == 0 || t.After(a.s.End) {
		a.s.End = t
	}
	a.s.Events++
	kind, level, svc := term("kind"), term("level"), term("service")
	switch {
	case kind == "dlq":
		a.s.Rejected++
	case ErrorLevel(level):
		a.s.Errors++
	case WarnLevel(level):
		a.s.Warnings++
	}
	if svc != "" && len(a.s.Services) < MaxTraceServices && !slices.Contains(a.s.Services, svc) {
		a.s.Services = append(a.s.Services, svc)
	}
	if len(q.Services) > 0 && slices.Contains(q.Services, svc) {
		a.svc = true
	}
	for i, at := range q.Attrs {
		if !a.attrs[i] && term(at.Field) == at.Value {
			a.attrs[i] = true
		}
	}
}

// done reports whether the trace matches q, and finishes its summary.
func (a *traceAcc) done(q *TraceQuery) bool {
	if a.s.Events == 0 || (len(q.Services) > 0 && !a.svc) || slices.Contains(a.attrs, false) {
		return false
	}
	d := a.s.End.Sub(a.s.Start)
	if (q.MinDuration > 0 && d < q.MinDuration) || (q.MaxDuration > 0 && d > q.MaxDuration) {
		return false
	}
	a.s.DurationMs = float64(d.Microseconds()) / 1000
	slices.Sort(a.s.Services)
	return true
}

// topTraces keeps the newest n summaries (by their last event).
type topTraces struct {
	n     int
	total int
	list  []TraceSummary
}

func (t *topTraces) push(s TraceSummary) {
	t.total++
	t.list = append(t.list, s)
	if len(t.list) >= 2*t.n+64 {
		t.cut()
	}
}

func (t *topTraces) cut() {
	slices.SortFunc(t.list, func(a, b TraceSummary) int {
		if c := b.End.Compare(a.End); c != 0 {
			return c
		}
		return cmp.Compare(a.CorrelationID, b.CorrelationID)
	})
	if len(t.list) > t.n {
		t.list = slices.Delete(t.list, t.n, len(t.list))
	}
}

// Traces lists the correlation IDs with events in q's range, grouped in
// the index: one pass over the correlation id's posting lists in the
// range (a seek per ID), counting from each posting's terms without
// reading a document.
func (e *Embedded) Traces(ctx context.Context, q TraceQuery) (TraceList, error) {
	if err := ctx.Err(); err != nil {
		return TraceList{}, err
	}
	top := topTraces{n: q.limit()}
	var (
		cur    traceAcc
		curID  []byte
		n      int
		ctxErr error
	)
	flush := func() {
		if cur.done(&q) {
			cur.s.CorrelationID = string(curID)
			top.push(cur.s)
		}
		cur = traceAcc{attrs: make([]bool, len(q.Attrs))}
	}
	cur.attrs = make([]bool, len(q.Attrs))
	err := e.st.EachPosting("correlationid", q.From, q.To, func(p *traceidx.Posting) bool {
		if n++; n%4096 == 0 {
			if ctxErr = ctx.Err(); ctxErr != nil {
				return false
			}
		}
		if string(p.Value) != string(curID) {
			if curID != nil {
				flush()
			}
			curID = append(curID[:0], p.Value...)
		}
		cur.add(&q, p.Time, p.Term)
		return true
	})
	if ctxErr != nil {
		return TraceList{}, ctxErr
	}
	if err != nil {
		if errors.Is(err, traceidx.ErrClosed) {
			return TraceList{}, ErrClosed
		}
		return TraceList{}, fmt.Errorf("index: embedded trace list: %w", err)
	}
	if curID != nil {
		flush()
	}
	top.cut()
	return TraceList{Total: top.total, Traces: append([]TraceSummary{}, top.list...)}, nil
}
