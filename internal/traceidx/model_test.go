package traceidx

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// model is the plain in-memory store the index must answer like: the last
// write of each id wins, a query is a filter over every document sorted by
// (time, id).
type model struct {
	docs map[string]Doc
	// changed is set once an id was rewritten with another time, terms or
	// text: the index may then count stale postings in Total (package
	// doc), so Total is only checked as a bound.
	changed bool
}

func (m *model) put(docs []Doc) {
	for _, d := range docs {
		if old, ok := m.docs[d.ID]; ok && (!old.Time.Equal(d.Time) || !slices.Equal(old.Terms, d.Terms) || old.Text != d.Text) {
			m.changed = true
		}
		m.docs[d.ID] = d
	}
}

func (m *model) deleteBefore(cutoff time.Time) int {
	n := 0
	for id, d := range m.docs {
		if d.Time.Before(cutoff) {
			delete(m.docs, id)
			n++
		}
	}
	return n
}

func termValue(d Doc, field string) (string, bool) {
	for _, t := range d.Terms {
		if t.Field == field {
			return t.Value, true
		}
	}
	return "", false
}

func (m *model) matches(d Doc, q Query) bool {
	if (!q.From.IsZero() && d.Time.Before(q.From)) || (!q.To.IsZero() && !d.Time.Before(q.To)) {
		return false
	}
	for _, c := range q.Clauses {
		if c.Text == "" {
			v, ok := termValue(d, c.Field)
			if !ok || !slices.Contains(c.Values, v) {
				return false
			}
			continue
		}
		found := false
		for _, f := range c.TextFields {
			if v, ok := termValue(d, f); ok && v == c.Text {
				found = true
			}
		}
		if words := Words(nil, c.Text, MaxWords); !found && len(words) > 0 {
			have := Words(nil, d.Text, MaxWords)
			found = true
			for _, w := range words {
				found = found && slices.Contains(have, w)
			}
		}
		if !found {
			return false
		}
	}
	return q.Expr == nil || modelEval(d, q.Expr)
}

// modelEval is Expr's meaning, written plainly.
func modelEval(d Doc, e *Expr) bool {
	switch e.Op {
	case ExprTerm:
		v, ok := termValue(d, e.Field)
		return ok && slices.Contains(e.Values, v)
	case ExprText:
		return (&model{}).matches(d, Query{Clauses: []Clause{{Text: e.Text, TextFields: e.TextFields}}})
	case ExprBody:
		return e.Body(d.Body)
	case ExprAnd:
		for _, k := range e.Kids {
			if !modelEval(d, k) {
				return false
			}
		}
		return true
	case ExprOr:
		for _, k := range e.Kids {
			if modelEval(d, k) {
				return true
			}
		}
		return false
	}
	return !modelEval(d, e.Kids[0])
}

// randomExpr is a random condition at most depth deep.
func randomExpr(r *rand.Rand, depth int, ids []string) *Expr {
	if depth > 0 && r.IntN(2) == 0 {
		switch r.IntN(3) {
		case 0:
			return &Expr{Op: ExprNot, Kids: []*Expr{randomExpr(r, depth-1, ids)}}
		default:
			op := ExprAnd
			if r.IntN(2) == 0 {
				op = ExprOr
			}
			e := &Expr{Op: op}
			for range 2 + r.IntN(2) {
				e.Kids = append(e.Kids, randomExpr(r, depth-1, ids))
			}
			return e
		}
	}
	switch r.IntN(8) {
	case 6:
		return &Expr{Op: ExprTerm, Field: "site", Values: []string{modelSites[r.IntN(len(modelSites))]}}
	case 7:
		f, v := randomData(r)
		return &Expr{Op: ExprTerm, Field: f, Values: []string{v}}
	case 0:
		return &Expr{Op: ExprTerm, Field: "kind", Values: []string{modelKinds[r.IntN(3)]}}
	case 1:
		return &Expr{Op: ExprTerm, Field: "cid", Values: []string{fmt.Sprintf("c%d", r.IntN(6))}}
	case 2:
		return &Expr{Op: ExprTerm, Field: "host", Values: []string{modelHosts[r.IntN(2)]}}
	case 3:
		end := fmt.Sprint(r.IntN(10))
		return &Expr{Op: ExprBody, Body: func(b []byte) bool { return strings.HasSuffix(string(b), end+`"}`) }}
	case 4:
		if len(ids) > 0 && r.IntN(3) == 0 {
			return &Expr{Op: ExprText, Text: ids[r.IntN(len(ids))], TextFields: []string{"id"}}
		}
		fallthrough
	default:
		if r.IntN(3) == 0 { // a text that may equal a bare field's value
			return &Expr{Op: ExprText, Text: modelHosts[r.IntN(2)], TextFields: []string{"service", "host"}}
		}
		return &Expr{Op: ExprText, Text: modelWords[r.IntN(len(modelWords))], TextFields: []string{"service"}}
	}
}

// randomData is a data field and a value, present on some documents.
func randomData(r *rand.Rand) (string, string) {
	return modelData[r.IntN(len(modelData))], modelDataValues[r.IntN(len(modelDataValues))]
}

// search returns the ids the index must return, oldest first, and the
// number of matches.
func (m *model) search(q Query) ([]string, int) {
	var all []Doc
	for _, d := range m.docs {
		if m.matches(d, q) {
			all = append(all, d)
		}
	}
	slices.SortFunc(all, func(a, b Doc) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	total := len(all)
	if q.Newest && len(all) > q.Limit {
		all = all[len(all)-q.Limit:]
	} else if len(all) > q.Limit {
		all = all[:q.Limit]
	}
	out := make([]string, 0, len(all))
	for _, d := range all {
		out = append(out, d.ID)
	}
	return out, total
}

var (
	modelWords    = []string{"payment", "failed", "order", "timeout", "Declined", "retry", "ok", "été"}
	modelKinds    = []string{"log", "metric", "dlq"}
	modelServices = []string{"api", "web", "db"}
	modelHosts    = []string{"h1", "h2"}
	modelSites    = []string{"par1", "ams1", "fra1"}
	// Data paths: posted through Options.Prefixes ("data.").
	modelData       = []string{"data.a", "data.b.c", "data.d"}
	modelDataValues = []string{"1", "2", "x"}
	modelT0         = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
)

func randomDoc(r *rand.Rand, id string) Doc {
	var text []string
	for range r.IntN(5) {
		text = append(text, modelWords[r.IntN(len(modelWords))])
	}
	at := modelT0.Add(time.Duration(r.IntN(3600)) * time.Second)
	if r.IntN(4) == 0 {
		at = at.Add(time.Duration(r.IntN(1000)) * time.Millisecond)
	}
	d := doc(id, modelKinds[r.IntN(3)], fmt.Sprintf("c%d", r.IntN(6)), modelServices[r.IntN(3)], modelHosts[r.IntN(2)], at, strings.Join(text, " "))
	if r.IntN(4) > 0 {
		d.Terms = append(d.Terms, Term{"site", modelSites[r.IntN(len(modelSites))]})
	}
	for range r.IntN(3) {
		f, v := randomData(r)
		if _, ok := termValue(d, f); !ok {
			d.Terms = append(d.Terms, Term{f, v})
		}
	}
	return d
}

// modelOptions are the options of the model's store: kind, cid and
// service posted (carrying the terms but id), site posted and unchecked,
// host posted and bare, data paths posted by prefix. Upgraded is false
// for a store of an earlier version: kind, cid and service only.
func modelOptions(path string, upgraded bool) Options {
	o := Options{Path: path, Posted: []string{"kind", "cid", "service"}, Unchecked: []string{"id"}, NoSync: true}
	if upgraded {
		o.Posted = append(o.Posted, "site", "host")
		o.Unchecked = append(o.Unchecked, "site")
		o.Bare = []string{"host"}
		o.Prefixes = []string{"data."}
	}
	return o
}

func randomQuery(r *rand.Rand, ids []string) Query {
	q := Query{Limit: 1 + r.IntN(15), Newest: r.IntN(2) == 0}
	if r.IntN(3) == 0 {
		q.MaxTotal = 0 // counted to the end (MaxTotal is checked separately)
	}
	for range r.IntN(3) {
		switch r.IntN(6) {
		case 0:
			q.Clauses = append(q.Clauses, Clause{Field: "kind", Values: []string{modelKinds[r.IntN(3)]}})
		case 1:
			q.Clauses = append(q.Clauses, Clause{Field: "cid", Values: []string{fmt.Sprintf("c%d", r.IntN(6)), fmt.Sprintf("c%d", r.IntN(6))}})
		case 2:
			q.Clauses = append(q.Clauses, Clause{Field: "service", Values: []string{modelServices[r.IntN(3)]}})
		case 3:
			switch r.IntN(3) {
			case 0:
				q.Clauses = append(q.Clauses, Clause{Field: "host", Values: []string{modelHosts[r.IntN(2)]}})
			case 1:
				q.Clauses = append(q.Clauses, Clause{Field: "site", Values: []string{modelSites[r.IntN(3)], modelSites[r.IntN(3)]}})
			default:
				f, v := randomData(r)
				q.Clauses = append(q.Clauses, Clause{Field: f, Values: []string{v}})
			}
		case 4:
			text := modelWords[r.IntN(len(modelWords))]
			if r.IntN(2) == 0 {
				text = strings.ToUpper(text) + " " + modelWords[r.IntN(len(modelWords))]
			}
			q.Clauses = append(q.Clauses, Clause{Text: text, TextFields: []string{"service"}})
		case 5:
			text := modelServices[r.IntN(3)]
			if len(ids) > 0 && r.IntN(2) == 0 {
				text = ids[r.IntN(len(ids))]
			}
			q.Clauses = append(q.Clauses, Clause{Text: text, TextFields: []string{"service", "id"}})
		}
	}
	if r.IntN(2) == 0 {
		q.Expr = randomExpr(r, 3, ids)
	}
	if r.IntN(3) == 0 {
		q.From = modelT0.Add(time.Duration(r.IntN(3600)) * time.Second)
	}
	if r.IntN(3) == 0 {
		q.To = modelT0.Add(time.Duration(r.IntN(3600)) * time.Second)
	}
	return q
}

// TestModel runs random writes, redeliveries, rewrites, retention and
// reopenings against the store and the model, and checks every query's
// hits against the model's. The upgraded runs start as a store of an
// earlier version (fewer posted fields) and reopen it with every field
// posted a third of the way through: the fields posted since must answer
// alike on the documents written before.
func TestModel(t *testing.T) {
	seeds := []uint64{1, 2}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed, 300, false) })
		t.Run(fmt.Sprint(seed, "-upgraded"), func(t *testing.T) { runModel(t, seed, 300, true) })
	}
}

func runModel(t *testing.T, seed uint64, steps int, upgrade bool) {
	r := rand.New(rand.NewPCG(seed, seed))
	path := filepath.Join(t.TempDir(), "st")
	// NoSync: the model checks answers, not durability (crash_test.go).
	o := modelOptions(path, !upgrade)
	open := func(t *testing.T) *Store {
		s, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	s := open(t)
	m := &model{docs: map[string]Doc{}}
	var ids []string
	next := 0
	for step := range steps {
		if upgrade && step == steps/3 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			o = modelOptions(path, true)
			s = open(t)
		}
		switch op := r.IntN(20); {
		case op < 8: // a batch of new documents, some redelivered
			var batch []Doc
			for range 1 + r.IntN(6) {
				if len(ids) > 0 && r.IntN(4) == 0 {
					batch = append(batch, m.docs[ids[r.IntN(len(ids))]])
					if batch[len(batch)-1].ID == "" {
						batch = batch[:len(batch)-1] // deleted by retention
					}
					continue
				}
				id := fmt.Sprintf("e%04d", next)
				next++
				ids = append(ids, id)
				batch = append(batch, randomDoc(r, id))
			}
			if err := s.Put(batch); err != nil {
				t.Fatal(err)
			}
			m.put(batch)
		case op < 9 && len(ids) > 0: // an id rewritten with other content
			d := randomDoc(r, ids[r.IntN(len(ids))])
			if err := s.Put([]Doc{d}); err != nil {
				t.Fatal(err)
			}
			m.put([]Doc{d})
		case op < 10: // retention
			cutoff := modelT0.Add(time.Duration(r.IntN(900)) * time.Second)
			n, err := s.DeleteBefore(cutoff, 1+r.IntN(10))
			if err != nil {
				t.Fatal(err)
			}
			want := m.deleteBefore(cutoff)
			if n < want || (!m.changed && n != want) {
				t.Fatalf("step %d: DeleteBefore(%s) = %d, model %d", step, cutoff, n, want)
			}
		case op < 11: // reopened
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t)
		default:
			q := randomQuery(r, ids)
			checkQuery(t, step, s, m, q)
		}
	}
	for id, d := range m.docs {
		body, ok, err := s.Get(id)
		if err != nil || !ok || string(body) != string(d.Body) {
			t.Fatalf("Get(%s) = %q %v %v", id, body, ok, err)
		}
	}
}

func checkQuery(t *testing.T, step int, s *Store, m *model, q Query) {
	t.Helper()
	res, err := s.Search(q)
	if err != nil {
		t.Fatalf("step %d: %+v: %v", step, q, err)
	}
	got := make([]string, 0, len(res.Hits))
	for _, h := range res.Hits {
		got = append(got, h.ID)
		if d := m.docs[h.ID]; !h.Time.Equal(d.Time) || string(h.Body) != string(d.Body) {
			t.Fatalf("step %d: hit %s at %s %q, model %s %q", step, h.ID, h.Time, h.Body, d.Time, d.Body)
		}
	}
	want, total := m.search(q)
	if !slices.Equal(got, want) {
		t.Fatalf("step %d: query %+v\n index %v (total %d)\n model %v (total %d)", step, q, got, res.Total, want, total)
	}
	if res.Total < total || (!m.changed && res.Total != total) {
		t.Fatalf("step %d: query %+v: total %d, model %d", step, q, res.Total, total)
	}
}
