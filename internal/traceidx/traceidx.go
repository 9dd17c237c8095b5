// Package traceidx is the storage of the embedded index: documents kept by
// id in an LSM key-value store (Pebble), with posting lists ordered by
// time for a few exact-match fields (correlation id, kind, type, …) and
// for the words of a free-text field.
//
// It is built for one workload: every event is written once (sometimes
// redelivered, identical), and the questions are "every document carrying
// this correlation id" (one short posting list) and log searches that
// filter on a few keyword fields and words, oldest or newest first.
// Writing a document is a handful of keys appended to a write-ahead log
// and a memtable: no read before the write, no analysis beyond splitting
// words, no merging of an inverted index.
//
// Keys (one keyspace, one byte of prefix):
//
//	d <id>                              → time, terms, text, body
//	p <field> 0 <value> 0 <time> <id>   → terms   (one per posted term; empty when bare)
//	w <word> 0 <time> <id>              → terms   (one per distinct word)
//	b <file>                            → newest time of a body file
//	m                                   → the fields posted on every document (meta.go)
//
// A posting's value is the document's terms (but the Unchecked ones), so
// filters on other fields are checked without reading the document; a
// bare posting (Options.Bare, Options.Prefixes) carries none, and a
// candidate read from it reads its document's terms. The first posted field is on
// every document: its posting lists together list every document by time
// (what a query without clauses and retention read).
//
// Writes are blind: rewriting an id with the same content writes the same
// keys (idempotent). Rewriting it with another time or other terms — which
// a conformed event never is: one id is one event — leaves the old
// postings behind; a search checks each hit against its document, so a
// stale posting never takes a hit's place (a limit of 10 returns 10 hits
// when there are), but the matches counted beyond the hits may include
// stale postings in Total (model_test.go).
//
// Size: ~1,800 lines, over the project's usual bound: it is a storage
// engine (keys, writes, queries, retention, cursors, groups) whose
// invariants are tested together by one model-based test.
package traceidx

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Limits of the free-text field, defined once.
const (
	// MaxWords is how many distinct words of a document's text are posted.
	MaxWords = 256
	// MaxWordBytes is the longest word posted; longer ones are cut.
	MaxWordBytes = 64
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("traceidx: closed")

// Term is one exact-match field of a document.
type Term struct{ Field, Value string }

// Doc is one document.
type Doc struct {
	ID    string
	Time  time.Time
	Terms []Term // filterable exact values; those of Options.Posted get a posting list
	Text  string // free text: its words get posting lists
	Body  []byte // returned as is by Search
}

// Options configure a Store.
type Options struct {
	// Path is the directory; "" keeps the store in memory (tests).
	Path string
	// ReadOnly opens an existing store for reading only.
	ReadOnly bool
	// Posted are the fields with posting lists. The first must be on every
	// document (its lists are the time order of all documents).
	Posted []string
	// Unchecked fields are left out of the terms a posting carries (it is
	// smaller): a query can drive by them (when posted) but not check them
	// on the candidates of another list.
	Unchecked []string
	// Bare are posted fields whose postings carry no terms (a posting is
	// its key alone): a candidate read from one has its terms read from
	// its document. For selective fields, where that read is paid for by
	// the candidates not read.
	Bare []string
	// Prefixes: every field starting with one of these is posted, bare and
	// unchecked (an open family of fields, as the paths of a JSON object).
	Prefixes []string
	// LegacyPosted are the fields posted on every document of a store that
	// has not recorded its posted fields (written by an earlier version);
	// nil: Posted. The others are read from their lists only for searches
	// of documents written since (see Complete).
	LegacyPosted []string
	// CacheBytes is the block cache size (default 8 MiB).
	CacheBytes int64
	// MemTableBytes is the size of one memtable (default 4 MiB).
	MemTableBytes uint64
	// L0Compaction is how many sublevels of flushed tables L0 holds
	// before they are compacted into the level below (default Pebble's,
	// 4); writes stall at twice as many. The number of L0 files alone
	// does not start a compaction then.
	L0Compaction int
	// NoSync commits batches without waiting for the write-ahead log to
	// reach the disk (benchmarks only).
	NoSync bool
	// Tune, when set, adjusts the Pebble options last (benchmarks).
	Tune func(*pebble.Options)
}

// Store is an open index.
type Store struct {
	o      Options
	db     *pebble.DB
	bodies *bodyLog
	wmu    sync.Mutex // one Put at a time
	meta   atomic.Pointer[meta]
	mu     sync.RWMutex // readers and writers hold R; Close holds W
	closed bool
}

// Open opens (or creates) a store.
func Open(o Options) (*Store, error) {
	if len(o.Posted) == 0 {
		return nil, errors.New("traceidx: Options.Posted is empty")
	}
	po := &pebble.Options{ReadOnly: o.ReadOnly, ErrorIfNotExists: o.ReadOnly, Logger: quietLogger{}}
	// Searches read documents by id: bloom filters skip the tables that
	// do not hold it.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	po.FS = vfs.Default
	if o.Path == "" {
		po.FS = vfs.NewMem()
	}
	if o.CacheBytes > 0 {
		c := pebble.NewCache(o.CacheBytes)
		defer c.Unref()
		po.Cache = c
	}
	if o.MemTableBytes > 0 {
		po.MemTableSize = o.MemTableBytes
	}
	if o.L0Compaction > 0 {
		po.L0CompactionThreshold = o.L0Compaction
		po.L0StopWritesThreshold = max(2*o.L0Compaction, 12)
		po.L0CompactionFileThreshold = 1 << 20
	}
	if o.Tune != nil {
		o.Tune(po)
	}
	db, err := pebble.Open(o.Path, po)
	if err != nil {
		return nil, fmt.Errorf("traceidx: open %s: %w", o.Path, err)
	}
	bodies, err := openBodyLog(po.FS, po.FS.PathJoin(o.Path, "bodies"), o.ReadOnly)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{o: o, db: db, bodies: bodies}
	if err := s.loadMeta(); err != nil {
		bodies.close()
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close flushes and closes the store; later calls fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	berr := s.bodies.close()
	// Memtables written out now make the next open read no write-ahead
	// log (200,000 documents: 285 ms to reopen without, 3 ms with); after
	// a crash the open replays the log, at most the unflushed memtables.
	var ferr error
	if !s.o.ReadOnly {
		ferr = s.db.Flush()
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("traceidx: close: %w", err)
	}
	if err := errors.Join(berr, ferr); err != nil {
		return fmt.Errorf("traceidx: close: %w", err)
	}
	return nil
}

func (s *Store) rlock() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

const (
	pfxDoc  = 'd'
	pfxPost = 'p'
	pfxWord = 'w'
)

// appendTime appends t as 8 bytes that order like the times.
func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano())^(1<<63))
}

func readTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

func docKey(b []byte, id string) []byte { return append(append(b, pfxDoc), id...) }

func postPrefix(b []byte, field, value string) []byte {
	b = append(b, pfxPost)
	b = append(b, field...)
	b = append(b, 0)
	b = append(b, value...)
	return append(b, 0)
}

func wordPrefix(b []byte, word string) []byte {
	b = append(b, pfxWord)
	b = append(b, word...)
	return append(b, 0)
}

// appendTerms encodes terms: uvarint length and bytes, field then value.
func appendTerms(b []byte, terms []Term) []byte {
	for _, t := range terms {
		b = binary.AppendUvarint(b, uint64(len(t.Field)))
		b = append(b, t.Field...)
		b = binary.AppendUvarint(b, uint64(len(t.Value)))
		b = append(b, t.Value...)
	}
	return b
}

// eachTerm calls f with every encoded term until it returns false.
func eachTerm(enc []byte, f func(field, value []byte) bool) {
	for len(enc) > 0 {
		n, k := binary.Uvarint(enc)
		if k <= 0 || uint64(len(enc)-k) < n {
			return
		}
		field := enc[k : k+int(n)]
		enc = enc[k+int(n):]
		n, k = binary.Uvarint(enc)
		if k <= 0 || uint64(len(enc)-k) < n {
			return
		}
		value := enc[k : k+int(n)]
		enc = enc[k+int(n):]
		if !f(field, value) {
			return
		}
	}
}

func decodeTerms(enc []byte) []Term {
	var terms []Term
	eachTerm(enc, func(f, v []byte) bool {
		terms = append(terms, Term{string(f), string(v)})
		return true
	})
	return terms
}

// appendDocValue: time (8), uvarint len(terms) terms, uvarint len(text)
// text, where the body is.
func appendDocValue(b []byte, d *Doc, terms []byte, ref bodyRef) []byte {
	b = appendTime(b, d.Time)
	b = binary.AppendUvarint(b, uint64(len(terms)))
	b = append(b, terms...)
	b = binary.AppendUvarint(b, uint64(len(d.Text)))
	b = append(b, d.Text...)
	return appendBodyRef(b, ref)
}

type docParts struct {
	timeKey          []byte
	terms, text, ref []byte
}

func splitDocValue(v []byte) (docParts, error) {
	var p docParts
	if len(v) < 8 {
		return p, errors.New("traceidx: short document")
	}
	p.timeKey = v[:8]
	v = v[8:]
	for _, dst := range []*[]byte{&p.terms, &p.text} {
		n, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < n {
			return p, errors.New("traceidx: corrupt document")
		}
		*dst = v[k : k+int(n)]
		v = v[k+int(n):]
	}
	p.ref = v
	return p, nil
}

// Put writes docs and commits them durably: their bodies are appended to
// the current body file and synced, then their keys are committed with
// the write-ahead log synced. Puts take turns.
func (s *Store) Put(docs []Doc) error {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if len(docs) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	bodies := make([][]byte, len(docs))
	newest := docs[0].Time
	for i := range docs {
		bodies[i] = docs[i].Body
		if docs[i].Time.After(newest) {
			newest = docs[i].Time
		}
	}
	refs, err := s.bodies.append(bodies)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	// The newest event time of the body file, for retention.
	fk := bodyFileKey(refs[0].file)
	rec, closer, err := s.db.Get(fk)
	switch {
	case err == nil:
		rec = newestTime(rec, newest)
		closer.Close()
	case errors.Is(err, pebble.ErrNotFound):
		rec = newestTime(nil, newest)
	default:
		return fmt.Errorf("traceidx: read %x: %w", fk, err)
	}
	if err := b.Set(fk, rec, nil); err != nil {
		return err
	}
	var (
		key, val, terms, post []byte
		words                 []string
	)
	for i := range docs {
		d := &docs[i]
		terms = appendTerms(terms[:0], d.Terms)
		post = s.appendChecked(post[:0], d.Terms)
		val = appendDocValue(val[:0], d, terms, refs[i])
		key = docKey(key[:0], d.ID)
		if err := b.Set(key, val, nil); err != nil {
			return err
		}
		err := s.eachPosting(d.ID, appendTime(nil, d.Time), d.Terms, d.Text, &words, func(k []byte, bare bool) error {
			if bare {
				return b.Set(k, nil, nil)
			}
			return b.Set(k, post, nil)
		})
		if err != nil {
			return err
		}
	}
	wo := pebble.Sync
	if s.o.NoSync {
		wo = pebble.NoSync
	}
	if err := b.Commit(wo); err != nil {
		return fmt.Errorf("traceidx: commit %d documents: %w", len(docs), err)
	}
	return nil
}

// appendChecked encodes the terms a posting carries (all but Unchecked).
func (s *Store) appendChecked(b []byte, terms []Term) []byte {
	for _, t := range terms {
		if !s.unchecked(t.Field) {
			b = appendTerms(b, []Term{t})
		}
	}
	return b
}

// eachPosting calls f with every posting key of a document, and whether
// the posting is bare (carries no terms).
func (s *Store) eachPosting(id string, ts []byte, terms []Term, text string, words *[]string, f func(k []byte, bare bool) error) error {
	k := make([]byte, 0, 64)
	for _, tm := range terms {
		// A value with a NUL byte cannot be in a key (NUL ends it): such
		// a document is found through its other fields only.
		if tm.Value == "" || strings.IndexByte(tm.Value, 0) >= 0 || strings.IndexByte(tm.Field, 0) >= 0 || !s.posted(tm.Field) {
			continue
		}
		k = append(append(postPrefix(k[:0], tm.Field, tm.Value), ts...), id...)
		if err := f(k, s.bare(tm.Field)); err != nil {
			return err
		}
	}
	if text == "" {
		return nil
	}
	*words = Words((*words)[:0], text, MaxWords)
	for _, w := range *words {
		k = append(append(wordPrefix(k[:0], w), ts...), id...)
		if err := f(k, false); err != nil {
			return err
		}
	}
	return nil
}

// Clause is one condition of a Query: the document has Field equal to one
// of Values; or, when Text is set, every word of Text is among the
// document's words, or Text equals the value of one of TextFields.
type Clause struct {
	Field  string
	Values []string

	Text       string
	TextFields []string
}

// Query selects documents: every clause holds, and From ≤ time < To (zero
// bounds are open). The first clause drives the search (its posting
// lists are read in time order; the others are checked on each candidate
// from the posting's terms), so put the most selective first.
type Query struct {
	Clauses  []Clause
	From, To time.Time
	Limit    int
	Newest   bool // the newest Limit matches (returned oldest first)
	// MaxTotal stops counting matches there (0 counts them all): Total
	// is then a lower bound and TotalCapped is set.
	MaxTotal int
	// After, when set, keeps the matches past it in the query's order
	// (paging); Total then counts only those.
	After *Cursor
	// Expr, when set, must hold too (checked on each candidate's
	// document); without Clauses it also chooses the lists read.
	Expr *Expr
}

// Hit is a matching document.
type Hit struct {
	ID   string
	Time time.Time
	Body []byte
}

// Result is the matches, oldest first, and how many there are in all.
type Result struct {
	Total       int
	TotalCapped bool
	Hits        []Hit
}

// source is one ordered posting list (keys prefix + time + id), or one
// document read by id.
type source struct {
	it     *pebble.Iterator
	prefix []byte
	valid  bool
	single []byte    // order key (time + id) of a document read by id
	terms  []byte    // its terms
	and    []*source // an intersection: the keys on every one of these lists
	text   string    // the text clause every document of this source matches, if any
	bare   bool      // its postings carry no terms: they are read from the document
	term   Term      // the field and value of a posting list (every document on it has it)
}

func (src *source) orderKey() []byte {
	switch {
	case src.single != nil:
		return src.single
	case src.and != nil:
		return src.and[0].orderKey()
	}
	return src.it.Key()[len(src.prefix):]
}

func (src *source) value() ([]byte, error) {
	switch {
	case src.single != nil:
		return src.terms, nil
	case src.and != nil:
		return src.and[0].value()
	}
	return src.it.ValueAndErr()
}

func (src *source) advance(back bool) {
	switch {
	case src.single != nil:
		src.valid = false
	case src.and != nil:
		src.and[0].advance(back)
		src.align(back)
	case back:
		src.valid = src.it.Prev()
	default:
		src.valid = src.it.Next()
	}
}

// align moves the lists of an intersection forward (backward when back)
// until they are all on one key, leapfrogging with seeks.
func (src *source) align(back bool) {
	for {
		var target []byte
		for _, m := range src.and {
			if !m.valid {
				src.valid = false
				return
			}
			k := m.orderKey()
			if target == nil || (!back && bytes.Compare(k, target) > 0) || (back && bytes.Compare(k, target) < 0) {
				target = k
			}
		}
		target = slices.Clone(target)
		aligned := true
		for _, m := range src.and {
			if bytes.Equal(m.orderKey(), target) {
				continue
			}
			aligned = false
			// A few steps first: a seek reads blocks again, and lists of
			// common words are mostly on the same keys.
			stepped := false
			for range 16 {
				m.advance(back)
				if !m.valid {
					src.valid = false
					return
				}
				c := bytes.Compare(m.orderKey(), target)
				if (!back && c >= 0) || (back && c <= 0) {
					stepped = true
					break
				}
			}
			if stepped {
				continue
			}
			seek := append(slices.Clip(m.prefix), target...)
			if back {
				m.valid = m.it.SeekLT(append(seek, 0))
			} else {
				m.valid = m.it.SeekGE(seek)
			}
		}
		if aligned {
			src.valid = true
			return
		}
	}
}

// timeBounds are the time parts of a range's keys.
func timeBounds(from, to time.Time) (lo, hi []byte) {
	lo = appendTime(nil, time.Unix(0, math.MinInt64))
	if !from.IsZero() {
		lo = appendTime(nil, from)
	}
	hi = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if !to.IsZero() {
		hi = appendTime(nil, to)
	}
	return lo, hi
}

// values returns the distinct values of a posted field, skipping from one
// to the next.
func (s *Store) values(field string) ([]string, error) {
	p := postPrefix(nil, field, "")
	p = p[:len(p)-1] // "p<field>\x00"
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: append(slices.Clip(p[:len(p)-1]), 1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; {
		rest := it.Key()[len(p):]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			ok = it.Next()
			continue
		}
		v := string(rest[:i])
		out = append(out, v)
		ok = it.SeekGE(append(append(slices.Clip(p), v...), 1))
	}
	return out, it.Error()
}

// Search runs q.
func (s *Store) Search(q Query) (Result, error) {
	return s.SearchContext(context.Background(), q)
}

// searchCheckEvery is how many candidates a search reads between two
// looks at its context.
const searchCheckEvery = 256

// SearchContext runs q until ctx ends: then it stops reading and returns
// ctx's error (wrapped), without hits.
func (s *Store) SearchContext(ctx context.Context, q Query) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("traceidx: search: %w", err)
	}
	if err := s.rlock(); err != nil {
		return Result{}, err
	}
	defer s.mu.RUnlock()
	lo, hi := q.applyCursor(timeBounds(q.From, q.To))
	var (
		prefixes  [][]byte
		prefixFor []string // the text clause a prefix's list answers ("" for none)
		bare      []bool   // the prefix's postings carry no terms
		lists     knowledge
		prefixOf  []Term // the field and value of a prefix's list
		singles   []*source
		rest      []Clause
		wordLists [][]string
		wordsFor  []string
		drive     []Clause
	)
	switch {
	case len(q.Clauses) > 0 && (q.Clauses[0].Text != "" || s.readable(q.Clauses[0].Field, lo)):
		drive, rest = q.Clauses[:1], q.Clauses[1:]
	case q.Expr != nil:
		rest, drive = q.Clauses, s.drivers(q.Expr, lo, hi)
	default:
		rest = q.Clauses
	}
	if drive == nil {
		vals, err := s.values(s.o.Posted[0])
		if err != nil {
			return Result{}, fmt.Errorf("traceidx: search: %w", err)
		}
		for _, v := range vals {
			prefixes = append(prefixes, postPrefix(nil, s.o.Posted[0], v))
			prefixFor = append(prefixFor, "")
			bare = append(bare, s.bare(s.o.Posted[0]))
			prefixOf = append(prefixOf, Term{s.o.Posted[0], v})
		}
		if q.Expr != nil {
			// Every document is read; the lists of the condition's parts
			// are read along, so a document missing from one is known
			// not to have that value or those words (without reading it).
			drive = s.listed(q.Expr, lo, nil)
			for _, c := range drive {
				if c.Text == "" {
					for _, v := range c.Values {
						lists.listedTerms = append(lists.listedTerms, Term{c.Field, v})
					}
					continue
				}
				lists.listedTexts = append(lists.listedTexts, c.Text)
				for _, f := range c.TextFields {
					if s.readable(f, lo) {
						lists.listedTerms = append(lists.listedTerms, Term{f, c.Text})
					}
				}
			}
		}
	}
	for _, c := range drive {
		if c.Text == "" {
			for _, v := range c.Values {
				prefixes = append(prefixes, postPrefix(nil, c.Field, v))
				prefixFor = append(prefixFor, "")
				bare = append(bare, s.bare(c.Field))
				prefixOf = append(prefixOf, Term{c.Field, v})
			}
			continue
		}
		// The documents on every word's list, and those whose field is
		// the text: all of them match the clause.
		if ws := Words(nil, c.Text, MaxWords); len(ws) > 0 {
			wordLists = append(wordLists, ws)
			wordsFor = append(wordsFor, c.Text)
		}
		for _, f := range c.TextFields {
			switch {
			case s.readable(f, lo):
				prefixes = append(prefixes, postPrefix(nil, f, c.Text))
				prefixFor = append(prefixFor, c.Text)
				bare = append(bare, s.bare(f))
				prefixOf = append(prefixOf, Term{f, c.Text})
			case f == "id":
				v, closer, err := s.db.Get(docKey(nil, c.Text))
				if errors.Is(err, pebble.ErrNotFound) {
					continue
				}
				if err != nil {
					return Result{}, fmt.Errorf("traceidx: search: %w", err)
				}
				p, err := splitDocValue(v)
				ok := append(slices.Clone(p.timeKey), c.Text...)
				if err == nil && bytes.Compare(ok, lo) >= 0 && bytes.Compare(ok, hi) < 0 {
					singles = append(singles, &source{single: append(slices.Clone(p.timeKey), c.Text...), terms: s.appendChecked(nil, decodeTerms(p.terms)), valid: true, text: c.Text})
				}
				closer.Close()
			}
		}
	}
	srcs := singles
	defer func() {
		for _, src := range srcs {
			if src.it != nil {
				src.it.Close()
			}
			for _, m := range src.and {
				m.it.Close()
			}
		}
	}()
	list := func(p []byte) (*source, error) {
		it, err := s.db.NewIter(&pebble.IterOptions{
			LowerBound: append(slices.Clip(p), lo...),
			UpperBound: append(slices.Clip(p), hi...),
		})
		if err != nil {
			return nil, fmt.Errorf("traceidx: search: %w", err)
		}
		src := &source{it: it, prefix: p}
		if q.Newest {
			src.valid = it.Last()
		} else {
			src.valid = it.First()
		}
		return src, nil
	}
	for i, p := range prefixes {
		src, err := list(p)
		if err != nil {
			return Result{}, err
		}
		src.text, src.bare, src.term = prefixFor[i], bare[i], prefixOf[i]
		srcs = append(srcs, src)
	}
	for i, words := range wordLists {
		and := &source{text: wordsFor[i]}
		for _, w := range words {
			src, err := list(wordPrefix(nil, w))
			if err != nil {
				for _, m := range and.and {
					m.it.Close()
				}
				return Result{}, err
			}
			and.and = append(and.and, src)
		}
		and.align(q.Newest)
		srcs = append(srcs, and)
	}
	type cand struct {
		key, terms []byte
		bare       bool // terms not read: the posting is checked on its time only
	}
	var (
		res   Result
		cands []cand
		key   []byte
	)
	for read := 1; ; read++ {
		if read%searchCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return Result{}, fmt.Errorf("traceidx: search stopped after %d candidates: %w", read, err)
			}
		}
		// The next key over every source (the smallest, or the largest
		// when newest first); equal keys of other sources are the same
		// document.
		var best *source
		for _, src := range srcs {
			if !src.valid {
				continue
			}
			if best == nil {
				best = src
				continue
			}
			c := bytes.Compare(src.orderKey(), best.orderKey())
			if (!q.Newest && c < 0) || (q.Newest && c > 0) || (c == 0 && best.bare && !src.bare) {
				best = src
			}
		}
		if best == nil {
			break
		}
		key = append(key[:0], best.orderKey()...)
		terms, err := best.value()
		if err != nil {
			return Result{}, fmt.Errorf("traceidx: search: %w", err)
		}
		// A bare posting under a condition alone is checked from what
		// its lists say of it (its document read only when a part needs
		// it); under clauses, with its document's terms, and a posting
		// of a document since rewritten or deleted is no candidate.
		ok, lazy := true, best.bare && len(rest) == 0 && q.Expr != nil
		if best.bare && !lazy {
			terms, ok, err = s.docTerms(key)
			if err != nil {
				return Result{}, err
			}
		}
		if lazy {
			terms = nil
		}
		if ok {
			ok, err = s.matches(rest, key[8:], terms)
		}
		if err == nil && ok && q.Expr != nil {
			// The texts and terms this document is known to match: those
			// of the lists it was read from.
			lists.known, lists.knownTerms = lists.known[:0], lists.knownTerms[:0]
			for _, src := range srcs {
				if src.valid && bytes.Equal(src.orderKey(), key) {
					if src.text != "" {
						lists.known = append(lists.known, src.text)
					}
					if src.term.Field != "" {
						lists.knownTerms = append(lists.knownTerms, src.term)
					}
				}
			}
			ok, err = s.check(key[8:], terms, q.Expr, &lists)
		}
		if err == nil && ok && len(cands) < q.Limit {
			// A hit is checked against its document now, so a posting
			// left behind by a rewrite takes no place among the hits
			// (a condition decided from the posting is decided again
			// from the document).
			ok, err = s.current(key, terms, q.Clauses, lazy)
			if err == nil && ok && q.Expr != nil {
				ok, err = s.check(key[8:], nil, q.Expr, &knowledge{})
			}
		}
		if err != nil {
			return Result{}, err
		}
		if ok {
			res.Total++
			if len(cands) < q.Limit {
				cands = append(cands, cand{slices.Clone(key), slices.Clone(terms), lazy})
			}
			if q.MaxTotal > 0 && res.Total >= q.MaxTotal && len(cands) >= q.Limit {
				res.TotalCapped = true
				break
			}
		}
		for _, src := range srcs {
			if src.valid && bytes.Equal(src.orderKey(), key) {
				src.advance(q.Newest)
			}
		}
	}
	for _, src := range srcs {
		for _, m := range append([]*source{src}, src.and...) {
			if m.it != nil {
				if err := m.it.Error(); err != nil {
					return Result{}, fmt.Errorf("traceidx: search: %w", err)
				}
			}
		}
	}
	res.Hits = make([]Hit, 0, len(cands))
	for _, c := range cands {
		h, ok, err := s.get(string(c.key[8:]), c.key[:8], c.terms, c.bare)
		if err != nil {
			return Result{}, err
		}
		if !ok {
			res.Total--
			continue
		}
		res.Hits = append(res.Hits, h)
	}
	if q.Newest {
		slices.Reverse(res.Hits)
	}
	return res, nil
}

// matches checks the clauses on a candidate from its terms; a text clause
// that no term answers reads the document's text.
func (s *Store) matches(cs []Clause, id, terms []byte) (bool, error) {
	for _, c := range cs {
		found := false
		switch {
		case c.Text == "" && s.unchecked(c.Field):
			// Not on the posting: on the document.
			ok, err := s.withDoc(id, func(p docParts) bool {
				eachTerm(p.terms, func(f, v []byte) bool {
					found = string(f) == c.Field && slices.Contains(c.Values, string(v))
					return !found
				})
				return found
			})
			if err != nil {
				return false, err
			}
			found = ok
		case c.Text == "":
			eachTerm(terms, func(f, v []byte) bool {
				found = string(f) == c.Field && slices.Contains(c.Values, string(v))
				return !found
			})
		default:
			eachTerm(terms, func(f, v []byte) bool {
				found = string(v) == c.Text && slices.Contains(c.TextFields, string(f))
				return !found
			})
			if !found && string(id) == c.Text && slices.Contains(c.TextFields, "id") {
				found = true
			}
			if !found {
				ok, err := s.hasWords(id, c.Text)
				if err != nil {
					return false, err
				}
				found = ok
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

// current reports whether the posting of order key key (time + id) with
// terms is the document's current one: the document has that time and
// those terms, and, when the first clause is a text clause (which drives
// by word lists), still matches it.
// (bare: its terms were not read, the time alone is compared)
func (s *Store) current(key, terms []byte, cs []Clause, bare bool) (bool, error) {
	id := key[8:]
	return s.withDoc(id, func(p docParts) bool {
		docTerms := decodeTerms(p.terms)
		if !bytes.Equal(p.timeKey, key[:8]) || (!bare && !s.samePosting(docTerms, terms)) {
			return false
		}
		if len(cs) == 0 || cs[0].Text == "" {
			return true
		}
		c := cs[0]
		for _, t := range docTerms {
			if t.Value == c.Text && slices.Contains(c.TextFields, t.Field) {
				return true
			}
		}
		if string(id) == c.Text && slices.Contains(c.TextFields, "id") {
			return true
		}
		return textHas(p.text, c.Text)
	})
}

// docTerms returns the terms a posting of order key key (time + id)
// would carry, from the document; ok false when the document is absent
// or has another time.
func (s *Store) docTerms(key []byte) (terms []byte, ok bool, err error) {
	ok, err = s.withDoc(key[8:], func(p docParts) bool {
		if !bytes.Equal(p.timeKey, key[:8]) {
			return false
		}
		terms = s.appendChecked([]byte{}, decodeTerms(p.terms))
		return true
	})
	return terms, ok, err
}

// samePosting reports whether a posting carrying terms was written for a
// document of docTerms: the same checked terms (a posting written while a
// field was still checked carries it too: it is left out of the
// comparison).
func (s *Store) samePosting(docTerms []Term, terms []byte) bool {
	want := s.appendChecked(nil, docTerms)
	if bytes.Equal(want, terms) {
		return true
	}
	return bytes.Equal(want, s.appendChecked(nil, decodeTerms(terms)))
}

// hasWords reports whether document id's text has every word of text.
func (s *Store) hasWords(id []byte, text string) (bool, error) {
	return s.withDoc(id, func(p docParts) bool { return textHas(p.text, text) })
}

// textHas reports whether text has every word of query (and query has
// words).
func textHas(text []byte, query string) bool {
	words := Words(nil, query, MaxWords)
	have := Words(nil, string(text), MaxWords)
	for _, w := range words {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return len(words) > 0
}

// withDoc reads document id and returns what f says of its parts (valid
// only during f); false when there is no such document.
func (s *Store) withDoc(id []byte, f func(docParts) bool) (bool, error) {
	v, closer, err := s.db.Get(docKey(nil, string(id)))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("traceidx: read %s: %w", id, err)
	}
	defer closer.Close()
	p, err := splitDocValue(v)
	if err != nil {
		return false, fmt.Errorf("traceidx: read %s: %w", id, err)
	}
	return f(p), nil
}

// get reads document id; with a posting's time and terms, a document that
// no longer matches them is reported absent (an old posting).
// (bare: the time alone is compared).
func (s *Store) get(id string, timeKey, terms []byte, bare bool) (Hit, bool, error) {
	v, closer, err := s.db.Get(docKey(nil, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return Hit{}, false, nil
	}
	if err != nil {
		return Hit{}, false, fmt.Errorf("traceidx: read %s: %w", id, err)
	}
	defer closer.Close()
	p, err := splitDocValue(v)
	if err != nil {
		return Hit{}, false, fmt.Errorf("traceidx: read %s: %w", id, err)
	}
	if timeKey != nil && (!bytes.Equal(p.timeKey, timeKey) || (!bare && !s.samePosting(decodeTerms(p.terms), terms))) {
		return Hit{}, false, nil
	}
	ref, err := readBodyRef(p.ref)
	if err != nil {
		return Hit{}, false, fmt.Errorf("traceidx: read %s: %w", id, err)
	}
	body, err := s.bodies.read(ref)
	if errors.Is(err, os.ErrNotExist) {
		return Hit{}, false, nil // expired while being read
	}
	if err != nil {
		return Hit{}, false, err
	}
	return Hit{ID: id, Time: readTime(p.timeKey), Body: body}, true, nil
}

// Get returns the body of document id (ok false when absent).
func (s *Store) Get(id string) ([]byte, bool, error) {
	if err := s.rlock(); err != nil {
		return nil, false, err
	}
	defer s.mu.RUnlock()
	h, ok, err := s.get(id, nil, nil, false)
	return h.Body, ok, err
}

// Count returns the number of documents.
func (s *Store) Count() (int, error) {
	res, err := s.Search(Query{})
	return res.Total, err
}

// DeleteBefore deletes every document older than cutoff, at most batch
// documents per commit, and returns how many it deleted.
func (s *Store) DeleteBefore(cutoff time.Time, batch int) (int, error) {
	n := 0
	for {
		k, err := s.deleteSome(cutoff, batch)
		n += k
		if err != nil {
			return n, err
		}
		if k == 0 {
			if err := s.deleteBodyFiles(cutoff); err != nil {
				return n, err
			}
			return n, s.completeAfter(cutoff)
		}
	}
}

// deleteBodyFiles deletes the body files whose newest document is older
// than cutoff, and the files no document points to (a crash between
// writing bodies and committing their keys).
func (s *Store) deleteBodyFiles(cutoff time.Time) error {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	s.wmu.Lock() // not while a Put records its file
	defer s.wmu.Unlock()
	files, err := s.bodies.files()
	if err != nil {
		return err
	}
	limit := appendTime(nil, cutoff)
	for _, n := range files {
		rec, closer, err := s.db.Get(bodyFileKey(n))
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			rec = nil
		case err != nil:
			return err
		default:
			rec = slices.Clone(rec)
			closer.Close()
		}
		if (rec != nil && bytes.Compare(rec, limit) >= 0) || s.bodies.current(n) {
			continue
		}
		if err := s.bodies.remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("traceidx: delete body file: %w", err)
		}
		if rec != nil {
			if err := s.db.Delete(bodyFileKey(n), pebble.Sync); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) deleteSome(cutoff time.Time, batch int) (int, error) {
	if err := s.rlock(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	vals, err := s.values(s.o.Posted[0])
	if err != nil {
		return 0, err
	}
	type old struct {
		id, timeKey, terms []byte
	}
	var olds []old
	for _, v := range vals {
		p := postPrefix(nil, s.o.Posted[0], v)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: appendTime(slices.Clip(p), cutoff)})
		if err != nil {
			return 0, err
		}
		for ok := it.First(); ok && len(olds) < batch; ok = it.Next() {
			k := it.Key()[len(p):]
			olds = append(olds, old{id: slices.Clone(k[8:]), timeKey: slices.Clone(k[:8]), terms: slices.Clone(it.Value())})
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return 0, err
		}
	}
	if len(olds) == 0 {
		return 0, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	var words []string
	del := func(k []byte, _ bool) error { return b.Delete(k, nil) }
	for _, o := range olds {
		// The document's own terms when it is still the one posted (the
		// posting lacks the unchecked ones), else the posting's.
		text, terms := "", decodeTerms(o.terms)
		dk := docKey(nil, string(o.id))
		v, closer, err := s.db.Get(dk)
		switch {
		case err == nil:
			if p, perr := splitDocValue(v); perr == nil && bytes.Equal(p.timeKey, o.timeKey) {
				text, terms = string(p.text), decodeTerms(p.terms)
				if err := b.Delete(dk, nil); err != nil {
					closer.Close()
					return 0, err
				}
			}
			closer.Close()
		case !errors.Is(err, pebble.ErrNotFound):
			return 0, err
		}
		if err := s.eachPosting(string(o.id), o.timeKey, terms, text, &words, del); err != nil {
			return 0, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("traceidx: delete: %w", err)
	}
	return len(olds), nil
}

// quietLogger drops Pebble's informational lines; its fatal errors (an
// invariant broken, corruption) still stop the process, as Pebble expects.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

var _ io.Closer = (*Store)(nil)
