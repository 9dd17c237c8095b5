package traceidx

import (
	"errors"
	"math"
	"os"
	"slices"
)

// ExprOp is the kind of an Expr.
type ExprOp int

// The kinds of Expr.
const (
	// ExprTerm: the document has the term Field with one of Values.
	ExprTerm ExprOp = iota
	// ExprText: every word of Text is among the document's words, or Text
	// equals the value of one of TextFields (as a text Clause).
	ExprText
	// ExprBody: Body says true of the document's stored body.
	ExprBody
	// ExprAnd: every one of Kids holds.
	ExprAnd
	// ExprOr: one of Kids holds.
	ExprOr
	// ExprNot: Kids[0] does not hold.
	ExprNot
)

// Expr is a boolean condition on a document (Query.Expr). It is checked
// on each candidate against the document itself (its terms, its text, and
// its body only when an ExprBody asks); the candidates are read from the
// posting lists that the condition implies (the words of a text, a posted
// field's values; the lists of every alternative of an OR), or from every
// document when it implies none (a NOT alone, a field without lists).
type Expr struct {
	Op     ExprOp
	Field  string
	Values []string

	Text       string
	TextFields []string

	Body func(body []byte) bool

	Kids []*Expr
}

// knowledge is what the lists read say of one candidate.
type knowledge struct {
	known      []string // texts the document matches (from the lists it was read from)
	knownTerms []Term   // terms it has (the lists it was read from)
	// Lists read along every document (a search that reads them all):
	// a text or a term of these that the document was not read from, it
	// does not match.
	listedTexts []string
	listedTerms []Term
}

// docView is what an Expr is checked against: one candidate, from its
// posting's terms (raw) and the texts its lists are known to match; the
// document is read only when a condition needs it (text not known, an
// unchecked field, the body), once.
type docView struct {
	s   *Store
	id  string
	raw []byte // the posting's terms (not the Unchecked fields)
	*knowledge

	loaded  bool
	missing bool
	terms   []Term
	text    []byte
	ref     []byte
	words   []string
	body    []byte
	read    bool
	err     error
}

func (v *docView) load() bool {
	if !v.loaded {
		v.loaded = true
		ok, err := v.s.withDoc([]byte(v.id), func(p docParts) bool {
			v.terms, v.text, v.ref = decodeTerms(p.terms), slices.Clone(p.text), slices.Clone(p.ref)
			return true
		})
		v.missing, v.err = !ok, err
	}
	return !v.missing && v.err == nil
}

// hasTerm reports whether the document has field equal to one of values:
// from the posting's terms when it carries the field, else the document's.
func (v *docView) hasTerm(field string, values []string) bool {
	if field == "id" { // the key's id is the document's
		return slices.Contains(values, v.id)
	}
	for _, t := range v.knownTerms {
		if t.Field == field && slices.Contains(values, t.Value) {
			return true
		}
	}
	if v.listedAll(field, values) {
		return false
	}
	if v.raw != nil && !v.s.unchecked(field) {
		found := false
		eachTerm(v.raw, func(f, val []byte) bool {
			if string(f) == field {
				for _, x := range values {
					if string(val) == x {
						found = true
						break
					}
				}
			}
			return !found
		})
		return found
	}
	if !v.load() {
		return false
	}
	for _, t := range v.terms {
		if t.Field == field && slices.Contains(values, t.Value) {
			return true
		}
	}
	return false
}

// listedAll reports whether the lists of field = each of values were
// read along (the document is on none of them: not known).
func (v *docView) listedAll(field string, values []string) bool {
	for _, x := range values {
		if !slices.Contains(v.listedTerms, Term{field, x}) {
			return false
		}
	}
	return len(values) > 0
}

func (v *docView) hasWords(text string) bool {
	if slices.Contains(v.known, text) {
		return true
	}
	if slices.Contains(v.listedTexts, text) {
		return false // not on the intersection of its words' lists
	}
	if !v.load() {
		return false
	}
	if v.words == nil {
		v.words = Words([]string{}, string(v.text), MaxWords)
	}
	words := Words(nil, text, MaxWords)
	for _, w := range words {
		if !slices.Contains(v.words, w) {
			return false
		}
	}
	return len(words) > 0
}

func (v *docView) getBody() []byte {
	if !v.read && v.load() {
		v.read = true
		ref, err := readBodyRef(v.ref)
		if err != nil {
			v.err = err
			return nil
		}
		v.body, v.err = v.s.bodies.read(ref)
		if errors.Is(v.err, os.ErrNotExist) {
			v.body, v.err = nil, nil // expired while being read
		}
	}
	return v.body
}

// quick is e's value when it follows from the posting's terms and the
// known texts alone (ok false when the document is needed).
func (e *Expr) quick(v *docView) (val, ok bool) {
	switch e.Op {
	case ExprTerm:
		for _, t := range v.knownTerms {
			if t.Field == e.Field && slices.Contains(e.Values, t.Value) {
				return true, true
			}
		}
		if v.listedAll(e.Field, e.Values) {
			return false, true
		}
		if v.raw != nil && !v.s.unchecked(e.Field) {
			return v.hasTerm(e.Field, e.Values), true
		}
	case ExprText:
		if slices.Contains(v.known, e.Text) {
			return true, true
		}
		if slices.Contains(v.listedTexts, e.Text) && v.raw != nil {
			// Not on its words' lists: it matches if a field equals it.
			for _, f := range e.TextFields {
				if f != "id" && !slices.Contains(v.listedTerms, Term{f, e.Text}) && v.s.unchecked(f) {
					return false, false
				}
			}
			for _, f := range e.TextFields {
				if v.hasTerm(f, []string{e.Text}) {
					return true, true
				}
			}
			return false, true
		}
	case ExprNot:
		val, ok := e.Kids[0].quick(v)
		return !val, ok
	case ExprAnd, ExprOr:
		// AND is false at one false part, OR true at one true part.
		decisive := e.Op == ExprOr
		all := true
		for _, k := range e.Kids {
			val, ok := k.quick(v)
			if ok && val == decisive {
				return decisive, true
			}
			all = all && ok
		}
		return !decisive, all
	}
	return false, false
}

func (e *Expr) eval(v *docView) bool {
	switch e.Op {
	case ExprTerm:
		return v.hasTerm(e.Field, e.Values)
	case ExprText:
		if slices.Contains(v.known, e.Text) {
			return true
		}
		for _, f := range e.TextFields {
			if v.hasTerm(f, []string{e.Text}) {
				return true
			}
		}
		return v.hasWords(e.Text)
	case ExprBody:
		b := v.getBody()
		return v.err == nil && b != nil && e.Body(b)
	case ExprAnd:
		for _, k := range e.Kids {
			if !k.eval(v) {
				return false
			}
		}
		return true
	case ExprOr:
		for _, k := range e.Kids {
			if k.eval(v) {
				return true
			}
		}
		return false
	case ExprNot:
		return !e.Kids[0].eval(v)
	}
	return false
}

// drivers are the clauses whose posting lists together hold every
// document e matches (a union), or nil when e implies none: then every
// document is a candidate. lo and hi are the time bounds of the search's
// keys (a field posted since is not read for older documents).
func (s *Store) drivers(e *Expr, lo, hi []byte) []Clause {
	switch e.Op {
	case ExprTerm:
		if s.readable(e.Field, lo) {
			return []Clause{{Field: e.Field, Values: e.Values}}
		}
	case ExprText:
		// The word lists, and the lists of the fields the text may equal:
		// every one of them is needed.
		for _, f := range e.TextFields {
			if f != "id" && !s.readable(f, lo) {
				return nil
			}
		}
		return []Clause{{Text: e.Text, TextFields: e.TextFields}}
	case ExprAnd:
		// One kid's lists are enough: the smallest on disk over the range
		// (Pebble's estimate), then the most selective kind: an exact
		// posted value, then words, then the rest.
		var (
			best     []Clause
			bestCost uint64
		)
		rank := func(cs []Clause) int {
			r := 0
			for _, c := range cs {
				switch {
				case c.Field != "" && c.Field == s.o.Posted[0]:
					r = max(r, 3) // the field every document has: the least selective
				case c.Field != "":
					r = max(r, 1)
				default:
					r = max(r, 2)
				}
			}
			return r*100 + len(cs)
		}
		for _, k := range e.Kids {
			d := s.drivers(k, lo, hi)
			if d == nil {
				continue
			}
			c := s.cost(d, lo, hi)
			if best == nil || c < bestCost || (c == bestCost && rank(d) < rank(best)) {
				best, bestCost = d, c
			}
		}
		return best
	case ExprOr:
		var all []Clause
		for _, k := range e.Kids {
			d := s.drivers(k, lo, hi)
			if d == nil {
				return nil
			}
			all = append(all, d...)
		}
		return all
	}
	return nil
}

// listed appends to cs the clauses whose lists e's parts name: a term of
// a field with lists, a text (its words; the lists of its fields).
func (s *Store) listed(e *Expr, lo []byte, cs []Clause) []Clause {
	switch e.Op {
	case ExprTerm:
		if s.readable(e.Field, lo) {
			cs = append(cs, Clause{Field: e.Field, Values: e.Values})
		}
	case ExprText:
		if len(Words(nil, e.Text, 1)) > 0 {
			cs = append(cs, Clause{Text: e.Text, TextFields: e.TextFields})
		}
	}
	for _, k := range e.Kids {
		cs = s.listed(k, lo, cs)
	}
	return cs
}

// bareCost is how many bytes of ordinary postings one byte of a bare
// list is worth: each of its candidates is a read of its document.
const bareCost = 4

// cost estimates the work of reading the lists of cs over lo..hi: their
// size on disk (Pebble's estimate from its tables' indexes; what is still
// in the memtable counts nothing), a word clause counting its smallest
// list (they are intersected).
func (s *Store) cost(cs []Clause, lo, hi []byte) uint64 {
	est := func(p []byte, bare bool) uint64 {
		n, err := s.db.EstimateDiskUsage(append(slices.Clip(p), lo...), append(slices.Clip(p), hi...))
		if err != nil {
			return math.MaxUint32
		}
		if bare {
			n *= bareCost
		}
		return n
	}
	var n uint64
	for _, c := range cs {
		if c.Text == "" {
			for _, v := range c.Values {
				n += est(postPrefix(nil, c.Field, v), s.bare(c.Field))
			}
			continue
		}
		var words uint64
		for i, w := range Words(nil, c.Text, MaxWords) {
			if e := est(wordPrefix(nil, w), false); i == 0 || e < words {
				words = e
			}
		}
		n += words
		for _, f := range c.TextFields {
			if f != "id" {
				n += est(postPrefix(nil, f, c.Text), s.bare(f))
			}
		}
	}
	return n
}

// check checks e on the candidate id whose posting carries terms, known
// to match the texts known. False when its document is absent (and e
// needed it).
func (s *Store) check(id, terms []byte, e *Expr, kn *knowledge) (bool, error) {
	v := &docView{s: s, id: string(id), raw: terms, knowledge: kn}
	if val, ok := e.quick(v); ok {
		return val, nil
	}
	ok := e.eval(v)
	return ok && v.err == nil, v.err
}
