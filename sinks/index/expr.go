package index

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/traceidx"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/index/querylang"
)

// The search language (Query.Text) is package querylang; this file gives
// its meaning on both indexes, the same on each:
//
//   - free text: every word of it among the words of a log's message or a
//     dead letter's message and reason, or exactly the event's type,
//     service, host, name, correlation id or id;
//   - host, service, level, kind, type, name, site, env, source,
//     correlation_id, id: the document's field equals the value;
//   - data.<path>: a value at that path of the event's data (a string, or
//     a number or true/false as written) equals the value; through arrays,
//     any element.

// ParseText parses a search text (Query.Text): nil for an empty one.
// Errors are *querylang.SyntaxError.
func ParseText(s string) (*querylang.Node, error) { return querylang.Parse(s) }

// docField is the document's JSON name of a query field.
func docField(f string) string {
	if f == "correlation_id" {
		return "correlationid"
	}
	return f
}

// textKinds are the kinds whose message words are indexed (the embedded
// index's text: a log's message, a dead letter's message and reason; a
// metric's message is its name, a snapshot's a summary).
var textKinds = []string{schemas.KindLog, KindDLQ}

// textExactFields are the fields a free-text term also matches exactly.
var textExactFields = []string{"type", "service", "host", "name", "correlationid", "id"}

// embeddedTermFields are the fields every document of the embedded index
// keeps as terms (storedDoc); site, env, source and the data paths are
// terms of the documents written since they are posted (complete).
var embeddedTermFields = []string{"id", "correlationid", "kind", "type", "service", "level", "host", "name"}

// storeExpr is n as a condition of the embedded index; complete says
// whether a field's terms and lists cover every document searched (else
// its condition reads the stored document).
func storeExpr(n *querylang.Node, complete func(field string) bool) *traceidx.Expr {
	switch n.Op {
	case querylang.Text:
		return &traceidx.Expr{Op: traceidx.ExprText, Text: n.Value, TextFields: textExactFields}
	case querylang.Field:
		f := docField(n.Field)
		term := &traceidx.Expr{Op: traceidx.ExprTerm, Field: f, Values: []string{n.Value}}
		body := &traceidx.Expr{Op: traceidx.ExprBody, Body: bodyField(f, n.Value)}
		switch {
		case slices.Contains(embeddedTermFields, f):
			return term
		case !complete(f) || !complete(dataOver):
			return body
		case !strings.HasPrefix(f, querylang.DataPrefix):
			return term // site, env, source
		}
		// A data path: its term, or, on a document whose data passed the
		// bounds of its terms (dataTerms), its stored document.
		over := &traceidx.Expr{Op: traceidx.ExprAnd, Kids: []*traceidx.Expr{
			{Op: traceidx.ExprTerm, Field: dataOver, Values: []string{"1"}}, body}}
		if !dataValueIndexed(n.Value) {
			return over
		}
		return &traceidx.Expr{Op: traceidx.ExprOr, Kids: []*traceidx.Expr{term, over}}
	}
	e := &traceidx.Expr{Op: map[querylang.Op]traceidx.ExprOp{querylang.And: traceidx.ExprAnd, querylang.Or: traceidx.ExprOr, querylang.Not: traceidx.ExprNot}[n.Op]}
	for _, k := range n.Kids {
		e.Kids = append(e.Kids, storeExpr(k, complete))
	}
	return e
}

// dataOver is the term (value "1") of a document whose data has more
// values than limits.IndexDataTerms, or one longer than
// limits.IndexDataValueBytes or under a path longer than
// limits.IndexDataPathBytes: its data conditions read its stored document.
const dataOver = "dataover"

// dataValueIndexed reports whether a data value can be a term.
func dataValueIndexed(v string) bool {
	return v != "" && len(v) <= limits.IndexDataValueBytes && strings.IndexByte(v, 0) < 0
}

// bodyField is a condition on a stored document's field (site, env,
// source) or data path (data.a.b) equal to value.
func bodyField(field, value string) func([]byte) bool {
	path, isData := strings.CutPrefix(field, querylang.DataPrefix)
	return func(body []byte) bool {
		var d struct {
			Site   string          `json:"site"`
			Env    string          `json:"env"`
			Source string          `json:"source"`
			Data   json.RawMessage `json:"data"`
		}
		if json.Unmarshal(body, &d) != nil {
			return false
		}
		if !isData {
			return map[string]string{"site": d.Site, "env": d.Env, "source": d.Source}[field] == value
		}
		return dataHas(d.Data, strings.Split(path, "."), value)
	}
}

// dataHas reports whether the JSON value raw has value at path: through
// objects by key, through arrays at any element (as the servers' flattened
// fields do).
func dataHas(raw json.RawMessage, path []string, value string) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	switch raw[0] {
	case '[':
		var elems []json.RawMessage
		if json.Unmarshal(raw, &elems) != nil {
			return false
		}
		for _, e := range elems {
			if dataHas(e, path, value) {
				return true
			}
		}
		return false
	case '{':
		if len(path) == 0 {
			return false
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return false
		}
		v, ok := obj[path[0]]
		return ok && dataHas(v, path[1:], value)
	}
	if len(path) > 0 {
		return false
	}
	switch raw[0] {
	case '"':
		var s string
		return json.Unmarshal(raw, &s) == nil && s == value
	case 'n':
		return false // null
	}
	return string(raw) == value // a number or true/false, as written
}

// remoteExpr is n as OpenSearch / Elasticsearch query DSL.
func remoteExpr(n *querylang.Node) map[string]any {
	term := func(f, v string) map[string]any { return map[string]any{"term": map[string]any{f: v}} }
	switch n.Op {
	case querylang.Text:
		should := []any{
			map[string]any{"bool": map[string]any{
				"filter": []any{map[string]any{"terms": map[string]any{"kind": textKinds}}},
				"must": []any{map[string]any{"multi_match": map[string]any{
					"query": n.Value, "fields": []string{"message", "dlq.reason"},
					"type": "cross_fields", "operator": "and",
				}}},
			}},
		}
		for _, f := range textExactFields {
			should = append(should, term(f, n.Value))
		}
		return map[string]any{"bool": map[string]any{"should": should, "minimum_should_match": 1}}
	case querylang.Field:
		return term(docField(n.Field), n.Value)
	case querylang.Not:
		return map[string]any{"bool": map[string]any{"must_not": []any{remoteExpr(n.Kids[0])}}}
	}
	kids := make([]any, len(n.Kids))
	for i, k := range n.Kids {
		kids[i] = remoteExpr(k)
	}
	if n.Op == querylang.Or {
		return map[string]any{"bool": map[string]any{"should": kids, "minimum_should_match": 1}}
	}
	return map[string]any{"bool": map[string]any{"filter": kids}}
}

// badQuery wraps a query that does not parse.
func badQuery(err error) error { return fmt.Errorf("index: search: %w", err) }
