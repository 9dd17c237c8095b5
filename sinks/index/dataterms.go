package index

import (
	"bytes"
	"slices"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/jsonscan"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/traceidx"
	"github.com/sightline/sightline/sinks/index/querylang"
)

// dataTerms appends to terms those of the event's data, one per distinct
// (path, scalar value) that a data.<path> condition matches (dataHas): a
// string's value, a number or true/false as written; through arrays,
// each element; keys that no query path can name skipped; of duplicate
// keys, the last (as decoding into a map). Paths are walked in key order
// (so which terms fit the bounds does not depend on the producer's member
// order). Past the bounds (limits.IndexData*), the term dataOver. Data
// that is not valid JSON (nested deeper than limits.DecoderMaxDepth
// included) has no terms.
//
// The data is read in one pass of the JSON scanner (internal/jsonscan)
// into a tree of offsets, then walked; only the terms' strings are
// allocated.
func dataTerms(terms []traceidx.Term, data []byte) []traceidx.Term {
	var w dataWalker
	return w.terms(terms, data)
}

// reset empties w for the next data, keeping its buffers.
func (w *dataWalker) reset() {
	w.nodes, w.kids, w.stk, w.out = w.nodes[:0], w.kids[:0], w.stk[:0], nil
}

// dataWalker reads one data object (see dataTerms).
type dataWalker struct {
	s     jsonscan.Scanner
	nodes []dataNode
	kids  []dataKid // the kids of each container, contiguous
	stk   []dataKid // the kids of the containers being read
	path  []byte    // querylang.DataPrefix + the path walked
	val   []byte    // a decoded string value
	start int       // the first data term in out
	out   []traceidx.Term
	over  bool
}

// dataNode is one value: a scalar's bytes, or a container's kids
// (kids[first:first+n]; an object's sorted by key, one per key, only
// those a path can name).
type dataNode struct {
	v0, v1    int
	first, n  int
	cont, obj bool
}

// dataKid is a member (key: the decoded key) or an element (key nil) of
// a container.
type dataKid struct {
	key  []byte
	node int
}

func (w *dataWalker) terms(terms []traceidx.Term, data []byte) []traceidx.Term {
	w.reset()
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return terms
	}
	w.s.Reset(data, limits.DecoderMaxDepth)
	root, end := w.value(0, 0)
	if end < 0 || w.s.End(end) < 0 {
		return terms // not JSON: nothing
	}
	w.out, w.start, w.over = terms, len(terms), false
	w.path = append(w.path[:0], querylang.DataPrefix...)
	w.walk(root)
	if w.over {
		w.out = append(w.out, traceidx.Term{Field: dataOver, Value: "1"})
	}
	terms = w.out
	w.out = nil
	return terms
}

// value reads the value at B[i], inside a container at nesting level
// depth, into a node: its index and the offset after it (-1: an error).
func (w *dataWalker) value(i, depth int) (int, int) {
	b := w.s.B
	if i < len(b) && (b[i] == '{' || b[i] == '[') {
		return w.container(i, depth+1, b[i] == '{')
	}
	j := w.s.Value(i, depth)
	if j < 0 {
		return -1, -1
	}
	w.nodes = append(w.nodes, dataNode{v0: i, v1: j})
	return len(w.nodes) - 1, j
}

// container reads the object or array at B[i], at nesting level depth.
func (w *dataWalker) container(i, depth int, obj bool) (int, int) {
	s := &w.s
	if depth > s.MaxDepth {
		return -1, s.Fail(i, "(nested too deep)")
	}
	b := s.B
	mark := len(w.stk)
	closing, context := byte(']'), "after array element"
	if obj {
		closing, context = '}', "after object key:value pair"
	}
	j := jsonscan.SkipSpace(b, i+1)
	if j < len(b) && b[j] == closing {
		j++
	} else {
		for {
			var key []byte
			keep := true
			if obj {
				if j >= len(b) || b[j] != '"' {
					return -1, s.Fail(j, "looking for beginning of object key string")
				}
				k0 := j
				if j = s.String(j); j < 0 {
					return -1, -1
				}
				key, keep = w.key(k0, j, s.Plain)
				j = jsonscan.SkipSpace(b, j)
				if j >= len(b) || b[j] != ':' {
					return -1, s.Fail(j, "after object key")
				}
				j = jsonscan.SkipSpace(b, j+1)
			}
			var v int
			if v, j = w.value(j, depth); j < 0 {
				return -1, -1
			}
			if keep {
				w.stk = append(w.stk, dataKid{key: key, node: v})
			}
			var end bool
			if j, end = s.Next(j, closing, context); end {
				if j < 0 {
					return -1, -1
				}
				break
			}
		}
	}
	kids := w.stk[mark:]
	if obj && len(kids) > 1 {
		// In key order, the last of duplicate keys (a stable sort keeps
		// their order).
		slices.SortStableFunc(kids, func(a, b dataKid) int { return bytes.Compare(a.key, b.key) })
		out := kids[:0]
		for k, kid := range kids {
			if k+1 < len(kids) && bytes.Equal(kids[k+1].key, kid.key) {
				continue
			}
			out = append(out, kid)
		}
		kids = out
	}
	first := len(w.kids)
	w.kids = append(w.kids, kids...)
	w.stk = w.stk[:mark]
	w.nodes = append(w.nodes, dataNode{v0: i, v1: j, first: first, n: len(kids), cont: true, obj: obj})
	return len(w.nodes) - 1, j
}

// key is the decoded key of the string token B[k0:k1] and whether a path
// can name it (querylang.ValidPathSegment: the key is then ASCII, and
// plain keys are read in place).
func (w *dataWalker) key(k0, k1 int, plain bool) ([]byte, bool) {
	k := w.s.B[k0+1 : k1-1]
	if !plain {
		if bytes.IndexByte(k, '\\') < 0 {
			return nil, false // bytes >= 0x80, no escape: not ASCII
		}
		k = jsonscan.AppendUnquoted(nil, k)
	}
	return k, validPathSegment(k)
}

// validPathSegment is querylang.ValidPathSegment of bytes.
func validPathSegment(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c == '@' || c == '$' || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// walk appends the terms of node n, under w.path.
func (w *dataWalker) walk(n int) {
	if w.over {
		return
	}
	nd := w.nodes[n]
	if nd.cont {
		for _, kid := range w.kids[nd.first : nd.first+nd.n] {
			if !nd.obj {
				w.walk(kid.node)
				continue
			}
			at := len(w.path)
			if at > len(querylang.DataPrefix) {
				w.path = append(w.path, '.')
			}
			w.path = append(w.path, kid.key...)
			w.walk(kid.node)
			w.path = w.path[:at]
		}
		return
	}
	pathLen := len(w.path) - len(querylang.DataPrefix)
	b := w.s.B
	if pathLen == 0 || b[nd.v0] == 'n' {
		return // a scalar at the top, or null
	}
	v := b[nd.v0:nd.v1] // a number or true/false, as written
	if v[0] == '"' {
		v = v[1 : len(v)-1]
		if bytes.IndexByte(v, '\\') >= 0 || !utf8.Valid(v) {
			w.val = jsonscan.AppendUnquoted(w.val[:0], v)
			v = w.val
		}
		if len(v) == 0 {
			return
		}
	}
	switch {
	case pathLen > limits.IndexDataPathBytes || len(v) > limits.IndexDataValueBytes || bytes.IndexByte(v, 0) >= 0:
		w.over = true
	case w.seen(v):
	case len(w.out)-w.start >= limits.IndexDataTerms:
		w.over = true
	default:
		// One string holds the field and the value.
		fv := string(append(w.path, v...))
		w.out = append(w.out, traceidx.Term{Field: fv[:len(w.path)], Value: fv[len(w.path):]})
	}
}

// seen reports whether the data term (w.path, v) is already in w.out.
func (w *dataWalker) seen(v []byte) bool {
	for _, t := range w.out[w.start:] {
		if t.Field == string(w.path) && t.Value == string(v) {
			return true
		}
	}
	return false
}
