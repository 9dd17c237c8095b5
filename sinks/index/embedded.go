package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/standard"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/sightline/sightline/internal/stage"
)

// Embedded is the index `sightline run` keeps when no remote index is
// configured: a bleve index on local disk (or in memory for tests). It
// implements stage.Sink and Searcher like Remote.
type Embedded struct {
	cfg    Config
	o      options
	idx    bleve.Index
	closed atomic.Bool
	mu     sync.RWMutex // writers/searchers hold R; Close holds W
}

// keywordFields are indexed as exact terms (and sortable).
var keywordFields = []string{"id", "kind", "type", "name", "correlationid", "source", "service",
	"host", "site", "env", "level", "producer", "subject", "syncscope", "synctag", "stream", "dlq_class", "dlq_stage"}

func embeddedMapping() mapping.IndexMapping {
	m := bleve.NewIndexMapping()
	doc := bleve.NewDocumentStaticMapping()
	for _, f := range keywordFields {
		fm := bleve.NewKeywordFieldMapping()
		fm.Analyzer = keyword.Name
		fm.Store = false
		fm.IncludeInAll = false
		fm.IncludeTermVectors = false // exact terms: no phrases, no highlighting
		fm.DocValues = f == "id"      // sorted on (with time); the others are only matched
		doc.AddFieldMappingsAt(f, fm)
	}
	// No "_all" composite field: every query names its fields, and building
	// it cost ~10% of indexing.
	doc.AddSubDocumentMapping("_all", bleve.NewDocumentDisabledMapping())
	tm := bleve.NewDateTimeFieldMapping()
	tm.Store = false
	tm.IncludeInAll = false
	doc.AddFieldMappingsAt("time", tm)
	for _, f := range []string{"message", "reason"} {
		txt := bleve.NewTextFieldMapping()
		txt.Analyzer = standard.Name
		txt.Store = false
		txt.IncludeInAll = false
		doc.AddFieldMappingsAt(f, txt)
	}
	src := bleve.NewTextFieldMapping()
	src.Index = false
	src.Store = true
	src.IncludeInAll = false
	src.DocValues = false
	doc.AddFieldMappingsAt("src", src)
	m.DefaultMapping = doc
	m.DefaultAnalyzer = keyword.Name
	return m
}

// OpenEmbedded opens (or creates) the embedded index at cfg.EmbeddedPath;
// an empty path keeps it in memory.
func OpenEmbedded(cfg Config, opts ...Option) (*Embedded, error) {
	cfg = cfg.withDefaults()
	e := &Embedded{cfg: cfg, o: buildOptions(opts)}
	var err error
	switch {
	case cfg.EmbeddedPath == "":
		e.idx, err = bleve.NewMemOnly(embeddedMapping())
	default:
		if _, serr := os.Stat(cfg.EmbeddedPath); serr == nil {
			e.idx, err = bleve.Open(cfg.EmbeddedPath)
		} else {
			e.idx, err = bleve.New(cfg.EmbeddedPath, embeddedMapping())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("index: embedded index %s: %w", cfg.EmbeddedPath, err)
	}
	return e, nil
}

// bleveDoc is what bleve indexes of a Document; src keeps the whole JSON.
func bleveDoc(d *Document) (map[string]any, error) {
	src, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	m := map[string]any{"id": d.ID, "time": d.Time, "src": string(src)}
	// Empty fields are left out: an empty term per field per document is
	// index work and space that no query uses.
	for k, v := range map[string]string{
		"kind": d.Kind, "type": d.Type, "name": d.Name,
		"correlationid": d.CorrelationID, "source": d.Source, "service": d.Service,
		"host": d.Host, "site": d.Site, "env": d.Env, "level": d.Level, "producer": d.Producer,
		"subject": d.Subject, "syncscope": d.SyncScope, "synctag": d.SyncTag, "stream": d.Stream,
		"message": d.Message,
	} {
		if v != "" {
			m[k] = v
		}
	}
	if d.DLQ != nil {
		m["reason"] = d.DLQ.Reason
		m["dlq_class"] = d.DLQ.Class
		m["dlq_stage"] = d.DLQ.Stage
	}
	return m, nil
}

// Write indexes the batch in one bleve batch keyed by event id
// (idempotent). Messages that cannot be documents fail permanently; a
// storage failure fails the whole batch.
func (e *Embedded) Write(ctx context.Context, batch []*stage.Message) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	failed := map[int]error{}
	b := e.idx.NewBatch()
	dec := new(decoder)
	for i, m := range batch {
		d, err := dec.document(m)
		if err != nil {
			failed[i] = err
			continue
		}
		bd, err := bleveDoc(d)
		if err != nil {
			failed[i] = stage.Reject("index_invalid", "cannot encode the document", err)
			continue
		}
		if err := b.Index(d.ID, bd); err != nil {
			failed[i] = stage.Reject("index_rejected", "embedded index refused the document", err)
		}
	}
	if b.Size() > 0 {
		if err := e.idx.Batch(b); err != nil {
			return fmt.Errorf("index: embedded batch of %d: %w", b.Size(), err)
		}
	}
	if len(failed) > 0 {
		return &stage.BatchError{Failed: failed}
	}
	return nil
}

// Close waits for in-flight writes and searches and closes the index;
// Write and Search fail after it.
func (e *Embedded) Close(context.Context) error {
	if e.closed.Swap(true) {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.idx.Close(); err != nil {
		return fmt.Errorf("index: close embedded index: %w", err)
	}
	return nil
}

// Count returns the number of documents (tests).
func (e *Embedded) Count() (int, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return 0, ErrClosed
	}
	n, err := e.idx.DocCount()
	return int(n), err
}

func keywordsQuery(field string, vals []string) query.Query {
	var qs []query.Query
	for _, v := range vals {
		t := bleve.NewTermQuery(v)
		t.SetField(field)
		qs = append(qs, t)
	}
	return bleve.NewDisjunctionQuery(qs...)
}

func bleveQuery(q Query) query.Query {
	var must []query.Query
	if q.CorrelationID != "" {
		must = append(must, keywordsQuery("correlationid", []string{q.CorrelationID}))
	}
	for _, f := range []struct {
		field string
		vals  []string
	}{{"service", q.Services}, {"type", q.Types}, {"kind", q.Kinds}, {"level", q.Levels}} {
		if len(f.vals) > 0 {
			must = append(must, keywordsQuery(f.field, f.vals))
		}
	}
	if !q.From.IsZero() || !q.To.IsZero() {
		// A zero end is open (bleve takes either bound, not both, as open).
		from, to := q.From, q.To
		if from.IsZero() {
			from = time.Unix(0, 0)
		}
		incl, excl := true, false
		r := bleve.NewDateRangeInclusiveQuery(from, to, &incl, &excl)
		r.SetField("time")
		must = append(must, r)
	}
	if q.Text != "" {
		var any []query.Query
		for _, f := range []string{"message", "reason"} {
			mq := bleve.NewMatchQuery(q.Text)
			mq.SetField(f)
			mq.SetOperator(query.MatchQueryOperatorAnd)
			any = append(any, mq)
		}
		for _, f := range []string{"type", "service", "host", "name", "correlationid", "id"} {
			t := bleve.NewTermQuery(q.Text)
			t.SetField(f)
			any = append(any, t)
		}
		must = append(must, bleve.NewDisjunctionQuery(any...))
	}
	if len(must) == 0 {
		return bleve.NewMatchAllQuery()
	}
	return bleve.NewConjunctionQuery(must...)
}

// Search runs q.
func (e *Embedded) Search(ctx context.Context, q Query) (Result, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return Result{}, ErrClosed
	}
	req := bleve.NewSearchRequestOptions(bleveQuery(q), q.limit(), 0, false)
	if q.Newest {
		req.SortBy([]string{"-time", "-id"})
	} else {
		req.SortBy([]string{"time", "id"})
	}
	req.Fields = []string{"src"}
	sr, err := e.idx.SearchInContext(ctx, req)
	if err != nil {
		return Result{}, fmt.Errorf("index: embedded search: %w", err)
	}
	res := Result{Total: int(sr.Total), Docs: make([]Document, 0, len(sr.Hits))}
	for _, h := range sr.Hits {
		s, _ := h.Fields["src"].(string)
		var d Document
		if err := json.Unmarshal([]byte(s), &d); err != nil {
			return Result{}, fmt.Errorf("index: embedded search: document %s: %w", h.ID, err)
		}
		res.Docs = append(res.Docs, d)
	}
	if q.Newest {
		slices.Reverse(res.Docs)
	}
	return res, nil
}

// DeleteExpired deletes documents older than Retention and returns how many.
func (e *Embedded) DeleteExpired(ctx context.Context) (int, error) {
	if e.cfg.Retention <= 0 {
		return 0, nil
	}
	cutoff := e.o.now().Add(-e.cfg.Retention)
	n := 0
	for {
		e.mu.RLock()
		if e.closed.Load() {
			e.mu.RUnlock()
			return n, ErrClosed
		}
		incl := false
		r := bleve.NewDateRangeInclusiveQuery(time.Unix(0, 0), cutoff, &incl, &incl)
		r.SetField("time")
		sr, err := e.idx.SearchInContext(ctx, bleve.NewSearchRequestOptions(r, 1000, 0, false))
		if err != nil {
			e.mu.RUnlock()
			return n, fmt.Errorf("index: embedded retention: %w", err)
		}
		if len(sr.Hits) == 0 {
			e.mu.RUnlock()
			return n, nil
		}
		b := e.idx.NewBatch()
		for _, h := range sr.Hits {
			b.Delete(h.ID)
		}
		err = e.idx.Batch(b)
		e.mu.RUnlock()
		if err != nil {
			return n, fmt.Errorf("index: embedded retention: %w", err)
		}
		n += len(sr.Hits)
	}
}

// RunRetention deletes expired documents now and every RetentionInterval.
func (e *Embedded) RunRetention(ctx context.Context) {
	runRetention(ctx, e.cfg, e.o.log, func(ctx context.Context) error {
		n, err := e.DeleteExpired(ctx)
		if n > 0 {
			e.o.log.Info("deleted expired documents from the embedded index", "documents", n)
		}
		if errors.Is(err, ErrClosed) {
			return nil
		}
		return err
	})
}
