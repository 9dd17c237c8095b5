package index

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// errorLevels and warnLevels are the level values the remote index counts
// (keywords match exactly: both cases).
var (
	errorLevels = caseVariants("error", "err", "fatal", "crit", "critical", "alert", "emerg", "emergency", "panic")
	warnLevels  = caseVariants("warn", "warning")
)

func caseVariants(ls ...string) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l, strings.ToUpper(l), strings.ToUpper(l[:1])+l[1:])
	}
	return out
}

func timeRange(from, to time.Time) map[string]any {
	rng := map[string]any{}
	if !from.IsZero() {
		rng["gte"] = from.UTC().Format(time.RFC3339Nano)
	}
	if !to.IsZero() {
		rng["lt"] = to.UTC().Format(time.RFC3339Nano)
	}
	return map[string]any{"range": map[string]any{"time": rng}}
}

// Traces lists correlation IDs with a terms aggregation on correlationid
// ordered by the newest event. With Services or Attrs, a first
// aggregation finds the IDs with such an event (the newest MaxTraceList),
// a second counts all their events in the range. Total is the number of
// distinct IDs the server estimates (cardinality, exact up to 40,000).
func (r *Remote) Traces(ctx context.Context, q TraceQuery) (TraceList, error) {
	filter := []any{map[string]any{"exists": map[string]any{"field": "correlationid"}}}
	if !q.From.IsZero() || !q.To.IsZero() {
		filter = append(filter, timeRange(q.From, q.To))
	}
	n := q.limit()
	if q.MinDuration > 0 || q.MaxDuration > 0 {
		n = MaxTraceList // durations are checked here, on the newest IDs
	}
	var ids []string
	total := -1
	if len(q.Services) > 0 || len(q.Attrs) > 0 {
		f := slices.Clone(filter)
		if len(q.Services) > 0 {
			f = append(f, map[string]any{"terms": map[string]any{"service": q.Services}})
		}
		// Each attribute on some event of the trace: one aggregation per
		// attribute, intersected.
		sets := [][]any{nil}
		if len(q.Attrs) > 0 {
			sets = nil
			for _, a := range q.Attrs {
				sets = append(sets, []any{map[string]any{"term": map[string]any{a.Field: a.Value}}})
			}
		}
		var inAll map[string]int
		for i, extra := range sets {
			body := map[string]any{"size": 0, "query": map[string]any{"bool": map[string]any{"filter": append(slices.Clone(f), extra...)}},
				"aggs": map[string]any{"ids": map[string]any{"terms": map[string]any{"field": "correlationid", "size": MaxTraceList, "order": map[string]any{"end": "desc"}},
					"aggs": map[string]any{"end": map[string]any{"max": map[string]any{"field": "time"}}}}}}
			var resp struct {
				Aggregations struct {
					IDs struct {
						Buckets []struct {
							Key string `json:"key"`
						} `json:"buckets"`
					} `json:"ids"`
				} `json:"aggregations"`
			}
			if err := r.agg(ctx, body, &resp); err != nil {
				return TraceList{}, err
			}
			seen := map[string]int{}
			for _, b := range resp.Aggregations.IDs.Buckets {
				if i == 0 || inAll[b.Key] == i {
					seen[b.Key] = i + 1
					if i == len(sets)-1 {
						ids = append(ids, b.Key)
					}
				}
			}
			inAll = seen
		}
		if len(ids) == 0 {
			return TraceList{Total: 0, Traces: []TraceSummary{}}, nil
		}
		filter = append(filter, map[string]any{"terms": map[string]any{"correlationid": ids}})
		total = len(ids)
		n = min(len(ids), MaxTraceList)
	}
	levelF := func(levels []string) map[string]any {
		return map[string]any{"filter": map[string]any{"bool": map[string]any{
			"filter":   []any{map[string]any{"terms": map[string]any{"level": levels}}},
			"must_not": []any{map[string]any{"term": map[string]any{"kind": "dlq"}}}}}}
	}
	body := map[string]any{
		"size":  0,
		"query": map[string]any{"bool": map[string]any{"filter": filter}},
		"aggs": map[string]any{
			"total": map[string]any{"cardinality": map[string]any{"field": "correlationid", "precision_threshold": 40000}},
			"ids": map[string]any{
				"terms": map[string]any{"field": "correlationid", "size": n, "order": map[string]any{"end": "desc"}},
				"aggs": map[string]any{
					"start":    map[string]any{"min": map[string]any{"field": "time"}},
					"end":      map[string]any{"max": map[string]any{"field": "time"}},
					"rejected": map[string]any{"filter": map[string]any{"term": map[string]any{"kind": "dlq"}}},
					"errors":   levelF(errorLevels),
					"warnings": levelF(warnLevels),
					"services": map[string]any{"terms": map[string]any{"field": "service", "size": MaxTraceServices}},
				},
			},
		},
	}
	type count struct {
		N int `json:"doc_count"`
	}
	type stamp struct {
		S string `json:"value_as_string"`
	}
	var resp struct {
		Aggregations struct {
			Total struct {
				Value int `json:"value"`
			} `json:"total"`
			IDs struct {
				Buckets []struct {
					Key      string `json:"key"`
					N        int    `json:"doc_count"`
					Start    stamp  `json:"start"`
					End      stamp  `json:"end"`
					Rejected count  `json:"rejected"`
					Errors   count  `json:"errors"`
					Warnings count  `json:"warnings"`
					Services struct {
						Buckets []struct {
							Key string `json:"key"`
						} `json:"buckets"`
					} `json:"services"`
				} `json:"buckets"`
			} `json:"ids"`
		} `json:"aggregations"`
	}
	if err := r.agg(ctx, body, &resp); err != nil {
		return TraceList{}, err
	}
	out := TraceList{Total: resp.Aggregations.Total.Value, Traces: []TraceSummary{}}
	if total >= 0 {
		out.Total = total
	}
	dropped := 0
	for _, b := range resp.Aggregations.IDs.Buckets {
		s := TraceSummary{CorrelationID: b.Key, Events: b.N, Errors: b.Errors.N, Warnings: b.Warnings.N, Rejected: b.Rejected.N, Services: []string{}}
		s.Start, _ = time.Parse(time.RFC3339Nano, b.Start.S)
		s.End, _ = time.Parse(time.RFC3339Nano, b.End.S)
		for _, sb := range b.Services.Buckets {
			s.Services = append(s.Services, sb.Key)
		}
		slices.Sort(s.Services)
		d := s.End.Sub(s.Start)
		if (q.MinDuration > 0 && d < q.MinDuration) || (q.MaxDuration > 0 && d > q.MaxDuration) {
			dropped++
			continue
		}
		s.DurationMs = float64(d.Microseconds()) / 1000
		if len(out.Traces) < q.limit() {
			out.Traces = append(out.Traces, s)
		}
	}
	if q.MinDuration > 0 || q.MaxDuration > 0 {
		out.Total = len(resp.Aggregations.IDs.Buckets) - dropped
	}
	return out, nil
}

// agg runs an aggregation-only search over the prefix's indices.
func (r *Remote) agg(ctx context.Context, body map[string]any, into any) error {
	b, _ := json.Marshal(body)
	path := "/" + r.pattern() + "/_search?ignore_unavailable=true&allow_no_indices=true"
	code, resp, _, err := r.client.Do(ctx, http.MethodPost, path, "application/json", b)
	if err != nil {
		return fmt.Errorf("index: trace list: %w", err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("index: trace list: HTTP %d: %.300s", code, resp)
	}
	if err := json.Unmarshal(resp, into); err != nil {
		return fmt.Errorf("index: trace list: decode: %w", err)
	}
	return nil
}
