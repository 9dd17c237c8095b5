package traceidx

import (
	"errors"
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

// docView is what an Expr is checked against: one document's parts, its
// terms decoded once, its body read when first asked.
type docView struct {
	s     *Store
	id    string
	p     docParts
	terms []Term
	words []string
	body  []byte
	read  bool
	err   error
}

func (v *docView) hasWords(text string) bool {
	if v.words == nil {
		v.words = Words([]string{}, string(v.p.text), MaxWords)
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
	if !v.read {
		v.read = true
		ref, err := readBodyRef(v.p.ref)
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

func (e *Expr) eval(v *docView) bool {
	switch e.Op {
	case ExprTerm:
		if e.Field == "id" && slices.Contains(e.Values, v.id) {
			return true
		}
		for _, t := range v.terms {
			if t.Field == e.Field && slices.Contains(e.Values, t.Value) {
				return true
			}
		}
		return false
	case ExprText:
		if slices.Contains(e.TextFields, "id") && v.id == e.Text {
			return true
		}
		for _, t := range v.terms {
			if t.Value == e.Text && slices.Contains(e.TextFields, t.Field) {
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
// document is a candidate.
func (s *Store) drivers(e *Expr) []Clause {
	switch e.Op {
	case ExprTerm:
		if slices.Contains(s.o.Posted, e.Field) {
			return []Clause{{Field: e.Field, Values: e.Values}}
		}
	case ExprText:
		return []Clause{{Text: e.Text, TextFields: e.TextFields}}
	case ExprAnd:
		// One kid's lists are enough; the most selective kind first: an
		// exact posted value, then words, then the rest.
		var best []Clause
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
			if d := s.drivers(k); d != nil && (best == nil || rank(d) < rank(best)) {
				best = d
			}
		}
		return best
	case ExprOr:
		var all []Clause
		for _, k := range e.Kids {
			d := s.drivers(k)
			if d == nil {
				return nil
			}
			all = append(all, d...)
		}
		return all
	}
	return nil
}

// fromTerms reports whether e can be checked on a posting's terms alone:
// only terms of fields the postings carry (not Unchecked), no text, no body.
func (s *Store) fromTerms(e *Expr) bool {
	switch e.Op {
	case ExprTerm:
		return !slices.Contains(s.o.Unchecked, e.Field)
	case ExprText, ExprBody:
		return false
	}
	for _, k := range e.Kids {
		if !s.fromTerms(k) {
			return false
		}
	}
	return true
}

// check checks e on the candidate id whose posting carries terms: on the
// terms when they are enough (terms only), else on the document read.
// False when the document is absent.
func (s *Store) check(id, terms []byte, e *Expr, termsOnly bool) (bool, error) {
	if termsOnly {
		return e.eval(&docView{s: s, id: string(id), terms: decodeTerms(terms)}), nil
	}
	var (
		ok  bool
		err error
	)
	_, rerr := s.withDoc(id, func(p docParts) bool {
		v := &docView{s: s, id: string(id), p: p, terms: decodeTerms(p.terms)}
		ok = e.eval(v)
		err = v.err
		return ok
	})
	if rerr != nil {
		return false, rerr
	}
	return ok, err
}
