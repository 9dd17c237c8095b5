package index

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/sightline/sightline/sinks/index/esclient"
)

// queryBody builds the OpenSearch / Elasticsearch query DSL of q.
func queryBody(q Query) (map[string]any, error) {
	var filter []any
	terms := func(field string, vals []string) {
		if len(vals) > 0 {
			filter = append(filter, map[string]any{"terms": map[string]any{field: vals}})
		}
	}
	if q.CorrelationID != "" {
		filter = append(filter, map[string]any{"term": map[string]any{"correlationid": q.CorrelationID}})
	}
	terms("service", q.Services)
	terms("type", q.Types)
	terms("kind", q.Kinds)
	terms("level", q.Levels)
	if !q.From.IsZero() || !q.To.IsZero() {
		rng := map[string]any{}
		if !q.From.IsZero() {
			rng["gte"] = q.From.UTC().Format(time.RFC3339Nano)
		}
		if !q.To.IsZero() {
			rng["lt"] = q.To.UTC().Format(time.RFC3339Nano)
		}
		filter = append(filter, map[string]any{"range": map[string]any{"time": rng}})
	}
	n, err := ParseText(q.Text)
	if err != nil {
		return nil, err
	}
	if n != nil {
		filter = append(filter, remoteExpr(n))
	}
	boolq := map[string]any{"filter": filter}
	order := "asc"
	if q.Newest {
		order = "desc"
	}
	body := map[string]any{
		"size":             q.LimitOrDefault(),
		"track_total_hits": true,
		"query":            map[string]any{"bool": boolq},
		"sort": []any{
			map[string]any{"time": map[string]any{"order": order}},
			map[string]any{"id": map[string]any{"order": order}},
		},
	}
	if q.After != nil {
		body["search_after"] = []any{q.After.Time.UTC().Format(time.RFC3339Nano), q.After.ID}
	}
	return body, nil
}

// Search runs q over every index of the prefix.
func (r *Remote) Search(ctx context.Context, q Query) (Result, error) {
	qb, err := queryBody(q)
	if err != nil {
		return Result{}, badQuery(err)
	}
	body, _ := json.Marshal(qb)
	total, docs, err := esclient.Search[Document](ctx, r.client, r.pattern(), body)
	if err != nil {
		return Result{}, err
	}
	res := Result{Total: total, Docs: docs}
	if q.Newest {
		slices.Reverse(res.Docs)
	}
	res.setNext(q)
	return res, nil
}
