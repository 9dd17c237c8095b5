package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/traceidx"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/index/querylang"
)

// Embedded is the index `sightline run` keeps when no remote index is
// configured: documents by event id in a local LSM store
// (internal/traceidx, on Pebble) with time-ordered posting lists for the
// correlation id and the filtered fields, and for the words of the
// message and the dead-letter reason. It implements stage.Sink and
// Searcher like Remote.
type Embedded struct {
	cfg Config
	o   options
	st  *traceidx.Store

	closed atomic.Bool
}

// OpenEmbedded opens (or creates) the embedded index at cfg.EmbeddedPath;
// an empty path keeps it in memory.
func OpenEmbedded(cfg Config, opts ...Option) (*Embedded, error) {
	return openEmbeddedStore(cfg, false, opts...)
}

func openEmbeddedStore(cfg Config, readOnly bool, opts ...Option) (*Embedded, error) {
	cfg = cfg.withDefaults()
	if cfg.EmbeddedPath != "" {
		if _, err := os.Stat(filepath.Join(cfg.EmbeddedPath, "index_meta.json")); err == nil {
			return nil, fmt.Errorf("index.embedded_path %s holds an index of an earlier Sightline version (bleve), which is no longer read: "+
				"move or delete that directory (or set index.embedded_path elsewhere); new events are indexed from then on", cfg.EmbeddedPath)
		}
	}
	st, err := traceidx.Open(embeddedOptions(cfg.EmbeddedPath, readOnly))
	if err != nil {
		return nil, fmt.Errorf("index: embedded index %s: %w", cfg.EmbeddedPath, err)
	}
	return &Embedded{cfg: cfg, o: buildOptions(opts), st: st}, nil
}

// embeddedPosted are the fields with posting lists; kind, the first, is on
// every document. Postings of kind, correlationid, level, site, env and
// source carry the document's terms (but for id, correlationid, source
// and dataOver), so the other conditions are checked on a candidate
// without reading it; those of type, service, host, name, the data paths
// and dataOver are bare (the key alone): a candidate read from one is
// known to have that value, and reads its document's terms only when
// another condition needs them.
var embeddedPosted = []string{"kind", "correlationid", "level", "site", "env", "source", "type", "service", "host", "name", dataOver}

// embeddedLegacyPosted are the fields posted by the stores of earlier
// versions (before they recorded theirs): the others are read from their
// lists only for searches of documents written since (traceidx.Complete).
var embeddedLegacyPosted = []string{"kind", "correlationid", "level"}

func embeddedOptions(path string, readOnly bool) traceidx.Options {
	// The correlation id only ever drives a query, and the id is in every
	// key: postings carry neither.
	return traceidx.Options{Path: path, ReadOnly: readOnly, Posted: embeddedPosted, LegacyPosted: embeddedLegacyPosted,
		Unchecked: []string{"id", "correlationid", "source", dataOver},
		Bare:      []string{"type", "service", "host", "name", dataOver},
		Prefixes:  []string{querylang.DataPrefix}, MemTableBytes: embeddedMemTable, L0Compaction: embeddedL0Compaction}
}

// The embedded index's Pebble settings, for CPU per document. Every event
// writes a posting key of each of its fields, so the keys of each flushed
// memtable span the whole key space and each compaction of L0 rewrites
// the part of the level below it that it overlaps: all of it. Fewer,
// larger L0 compactions cost less. BENCHMARKS.md ("Embedded index: Pebble
// settings"): sightline-load's metric events, CPU µs per document against
// the previous settings (16 MiB, 4 sublevels) in the same run: at
// 1,000,000 documents 21.0 against 29.1 (64 MiB and 16: 18.3), at 100,000
// 14.2 against 19.1; a larger LBaseMaxBytes, blocks of 32 KiB, no
// compression or no bloom filters saved nothing measurable.
const (
	// embeddedMemTable is the size of one memtable (16 MiB before; 64 MiB:
	// 18.3 µs per document at 1,000,000 against 21.0 in the same run, but
	// 18.7 and 21.4 against 18.1 in runs of their own, within this
	// machine's noise, for 65 MiB more RSS). Pebble keeps up to two full
	// ones before it stalls writes, allocated outside the Go heap in a cgo
	// build (so outside the memory limit; with CGO_ENABLED=0 inside it):
	// the peak RSS of a 1,000,000-document write went from 100 to 131
	// MiB. After kill -9 the next open replays at most that much
	// write-ahead log.
	embeddedMemTable = 32 << 20
	// embeddedL0Compaction is the number of L0 sublevels that starts a
	// compaction (Pebble's default 4). At 1,000,000 documents in one run,
	// with 16 MiB memtables: 26.0 µs per document against 33.3 (8
	// sublevels 28.2; 64 MiB memtables alone 26.0, with 16 sublevels
	// 22.1). A search merges one iterator per sublevel: after 100,000
	// events, a trace is read as fast, a rare word's search takes 1.9 ms
	// instead of 0.2-0.5 (8 sublevels: 1.0-1.3 ms, 22.7 µs per document
	// against 20.9).
	embeddedL0Compaction = 16
)

// storedDoc is what the store keeps of a Document: the exact-match terms,
// the free text (message and dead-letter reason) and the JSON.
func storedDoc(w *dataWalker, d *Document, body []byte) traceidx.Doc {
	terms := make([]traceidx.Term, 0, 10)
	add := func(f, v string) {
		if v != "" {
			terms = append(terms, traceidx.Term{Field: f, Value: v})
		}
	}
	add("id", d.ID)
	add("correlationid", d.CorrelationID)
	add("kind", d.Kind)
	add("type", d.Type)
	add("service", d.Service)
	add("level", d.Level)
	add("host", d.Host)
	add("name", d.Name)
	add("site", d.Site)
	add("env", d.Env)
	add("source", d.Source)
	terms = w.terms(terms, d.Data)
	// Words are indexed for logs and dead letters: a metric's message is
	// its name and a snapshot's a summary, both found by type.
	var text string
	switch {
	case d.DLQ != nil:
		text = d.Message + "\n" + d.DLQ.Reason
	case d.Kind == schemas.KindLog:
		text = d.Message
	}
	return traceidx.Doc{ID: d.ID, Time: d.Time, Terms: terms, Text: text, Body: body}
}

// Write stores the batch in one durable commit keyed by event id
// (idempotent). Messages that cannot be documents fail permanently; a
// storage failure fails the whole batch.
func (e *Embedded) Write(ctx context.Context, batch []*stage.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	failed := map[int]error{}
	docs := make([]traceidx.Doc, 0, len(batch))
	dec := new(decoder)
	// One buffer for the batch's documents, sized up front: grown by
	// append it was the sink's largest allocation.
	size := 0
	for _, m := range batch {
		size += len(m.Data) + 512
	}
	body := make([]byte, 0, size)
	for i, m := range batch {
		d, err := dec.document(m)
		if err == nil {
			start := len(body)
			body, err = appendDoc(body, d)
			if err == nil {
				docs = append(docs, storedDoc(&dec.data, d, body[start:len(body):len(body)]))
				continue
			}
			err = stage.Reject("index_invalid", "cannot encode the document", err)
		}
		failed[i] = err
	}
	if len(docs) > 0 {
		if err := e.st.Put(docs); err != nil {
			if errors.Is(err, traceidx.ErrClosed) {
				return ErrClosed
			}
			return fmt.Errorf("index: embedded batch of %d: %w", len(docs), err)
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
	e.closed.Store(true)
	if err := e.st.Close(); err != nil {
		return fmt.Errorf("index: close embedded index: %w", err)
	}
	return nil
}

// Count returns the number of documents (tests).
func (e *Embedded) Count() (int, error) {
	n, err := e.st.Count()
	if errors.Is(err, traceidx.ErrClosed) {
		return 0, ErrClosed
	}
	return n, err
}

// storeQuery turns q into the store's query. Without a text, the
// clauses in the order correlation id, level, kind, type, service: the
// first drives, the others are checked on its candidates. With one,
// everything is one condition, and the store drives by the part whose
// lists are the smallest over the range.
//
// complete says whether a field has posting lists on every document of
// the range (an index written by an earlier version has none for site,
// env, source and data paths on its older documents): when not, its
// condition reads the stored document.
func storeQuery(q Query, complete func(field string) bool) (traceidx.Query, error) {
	sq := traceidx.Query{From: q.From, To: q.To, Limit: q.LimitOrDefault(), Newest: q.Newest, MaxTotal: MaxTotal + 1}
	if q.After != nil {
		sq.After = &traceidx.Cursor{Time: q.After.Time, ID: q.After.ID}
	}
	n, err := ParseText(q.Text)
	if err != nil {
		return sq, err
	}
	if q.CorrelationID != "" {
		sq.Clauses = append(sq.Clauses, traceidx.Clause{Field: "correlationid", Values: []string{q.CorrelationID}})
	}
	for _, f := range []struct {
		field string
		vals  []string
	}{{"level", q.Levels}, {"kind", q.Kinds}, {"type", q.Types}, {"service", q.Services}} {
		if len(f.vals) > 0 {
			sq.Clauses = append(sq.Clauses, traceidx.Clause{Field: f.field, Values: f.vals})
		}
	}
	if n == nil {
		return sq, nil
	}
	and := &traceidx.Expr{Op: traceidx.ExprAnd}
	for _, c := range sq.Clauses {
		and.Kids = append(and.Kids, &traceidx.Expr{Op: traceidx.ExprTerm, Field: c.Field, Values: c.Values})
	}
	and.Kids = append(and.Kids, storeExpr(n, complete))
	sq.Clauses, sq.Expr = nil, and
	return sq, nil
}

// Search runs q.
func (e *Embedded) Search(ctx context.Context, q Query) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	sq, err := storeQuery(q, func(f string) bool { return e.st.Complete(f, q.From) })
	if err != nil {
		return Result{}, badQuery(err)
	}
	sctx, cancel := context.WithTimeout(ctx, e.o.searchTime)
	defer cancel()
	sr, err := e.st.SearchContext(sctx, sq)
	if err != nil {
		if errors.Is(err, traceidx.ErrClosed) {
			return Result{}, ErrClosed
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return Result{}, fmt.Errorf("%w: search stopped after %s (limit SearchTime): narrow the time range, or add a host:, service:, level: or word condition", ErrSearchTooLong, e.o.searchTime)
		}
		return Result{}, fmt.Errorf("index: embedded search: %w", err)
	}
	res := Result{Total: sr.Total, TotalCapped: sr.TotalCapped, Docs: make([]Document, len(sr.Hits))}
	for i, h := range sr.Hits {
		if err := json.Unmarshal(h.Body, &res.Docs[i]); err != nil {
			return Result{}, fmt.Errorf("index: embedded search: document %s: %w", h.ID, err)
		}
	}
	res.setNext(q)
	return res, nil
}

// DeleteExpired deletes documents older than Retention and returns how many.
func (e *Embedded) DeleteExpired(ctx context.Context) (int, error) {
	if e.cfg.Retention <= 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n, err := e.st.DeleteBefore(e.o.now().Add(-e.cfg.Retention), 1000)
	if errors.Is(err, traceidx.ErrClosed) {
		return n, ErrClosed
	}
	if err != nil {
		return n, fmt.Errorf("index: embedded retention: %w", err)
	}
	return n, nil
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

// OpenStore opens the embedded index at path read-only with the options
// the sink writes it with, for tools that read its documents directly
// (the crash and power-cut tests count every document this way).
func OpenStore(path string) (*traceidx.Store, error) {
	return traceidx.Open(embeddedOptions(path, true))
}
