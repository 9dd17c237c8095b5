package index

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/limits"
)

// The sink's hot path reads each conformed event in one pass that both
// validates it (accepting exactly what json.Valid accepts) and splits its
// members, so the payload's bytes can be copied into the _bulk body as
// they are: nothing that is not valid JSON ever reaches the index server.
// It is kept apart from schemas.Decode, which builds values, because it
// costs a ninth of it (BENCHMARKS.md, "One JSON scanner"); the two accept
// the same input (scan_diff_test.go).

// maxNesting is encoding/json's nesting limit (limits.DecoderMaxDepth),
// counted from the envelope.
const maxNesting = limits.DecoderMaxDepth

// member is one member of a JSON object, as offsets into the scanned
// input: the key with its quotes, and the value.
type member struct {
	k0, k1         int
	v0, v1         int
	kPlain, vPlain bool // a string without escapes, all ASCII (see scanner.str)
}

// scanner validates a JSON object and records its members and, when its
// "data" member is an object, that object's members too. It is reused:
// scanning resets it.
type scanner struct {
	b    []byte
	err  error
	top  []member // members of the object, in input order
	data []member // members of the last "data" object
	dv0  int      // offset of the value data holds the members of; -1 when none

	plain bool // of the last string scanned
}

// scanObject validates b (one JSON object, surrounding white space
// allowed) and splits it.
func (s *scanner) scanObject(b []byte) error {
	s.b, s.err, s.top, s.data, s.dv0 = b, nil, s.top[:0], s.data[:0], -1
	i := skipWS(b, 0)
	if i < len(b) && b[i] == '{' {
		i = s.object(i, 1, true)
	} else {
		// Validate anyway, for the position of the error.
		if i = s.value(i, 0); i >= 0 {
			if i = s.end(i); i >= 0 {
				return fmt.Errorf("not a JSON object")
			}
		}
		return s.err
	}
	if i >= 0 {
		i = s.end(i)
	}
	if i < 0 {
		return s.err
	}
	return nil
}

// end checks that only white space follows offset i.
func (s *scanner) end(i int) int {
	i = skipWS(s.b, i)
	if i < len(s.b) {
		return s.fail(i, "after top-level value")
	}
	return i
}

// scanError is a syntax error with its offset.
type scanError struct {
	msg string
	off int
}

func (e *scanError) Error() string { return e.msg }

func (s *scanner) fail(i int, context string) int {
	if s.err != nil {
		return -1
	}
	if i >= len(s.b) {
		s.err = &scanError{msg: "unexpected end of JSON input", off: i}
		return -1
	}
	s.err = &scanError{msg: fmt.Sprintf("invalid character %s %s (offset %d)", quoteChar(s.b[i]), context, i), off: i}
	return -1
}

// quoteChar formats c like encoding/json's syntax errors.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := fmt.Sprintf("%q", string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// value validates the value at b[i] inside a container at nesting depth
// and returns the offset after it, or -1.
func (s *scanner) value(i, depth int) int {
	b := s.b
	if i >= len(b) {
		return s.fail(i, "looking for beginning of value")
	}
	switch c := b[i]; c {
	case '"':
		return s.str(i)
	case '{':
		return s.object(i, depth+1, false)
	case '[':
		return s.array(i, depth+1)
	case 't':
		return s.lit(i, "true")
	case 'f':
		return s.lit(i, "false")
	case 'n':
		return s.lit(i, "null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return s.number(i)
		}
	}
	return s.fail(i, "looking for beginning of value")
}

// object validates the object at b[i] == '{'. The top-level object
// records its members in s.top, and those of its "data" member, when an
// object, in s.data.
func (s *scanner) object(i, depth int, top bool) int {
	var rec *[]member
	if top {
		rec = &s.top
	}
	return s.membersInto(i, depth, top, rec)
}

// members is object for the payload: it records the members in s.data.
func (s *scanner) members(i, depth int) int {
	return s.membersInto(i, depth, false, &s.data)
}

// membersInto validates the object at b[i] == '{' and appends its members
// to rec when rec is not nil.
func (s *scanner) membersInto(i, depth int, top bool, rec *[]member) int {
	if depth > maxNesting {
		s.err = &scanError{msg: "exceeded max depth", off: i}
		return -1
	}
	b := s.b
	j := skipWS(b, i+1)
	if j < len(b) && b[j] == '}' {
		return j + 1
	}
	for {
		if j >= len(b) || b[j] != '"' {
			return s.fail(j, "looking for beginning of object key string")
		}
		k0 := j
		if j = s.str(j); j < 0 {
			return -1
		}
		k1, kPlain := j, s.plain
		j = skipWS(b, j)
		if j >= len(b) || b[j] != ':' {
			return s.fail(j, "after object key")
		}
		j = skipWS(b, j+1)
		v0 := j
		s.plain = false
		if top && j < len(b) && b[j] == '{' && string(b[k0:k1]) == `"data"` {
			// The payload: its members are recorded for the well-known
			// fields (message, level, ...).
			s.data, s.dv0 = s.data[:0], v0
			j = s.members(j, depth+1)
		} else {
			j = s.value(j, depth)
		}
		if j < 0 {
			return -1
		}
		if rec != nil {
			*rec = append(*rec, member{k0, k1, v0, j, kPlain, s.plain && b[v0] == '"'})
		}
		var end bool
		if j, end = s.next(j, '}', "after object key:value pair"); end {
			return j
		}
	}
}

func (s *scanner) array(i, depth int) int {
	if depth > maxNesting {
		s.err = &scanError{msg: "exceeded max depth", off: i}
		return -1
	}
	b := s.b
	j := skipWS(b, i+1)
	if j < len(b) && b[j] == ']' {
		return j + 1
	}
	for {
		if j = s.value(j, depth); j < 0 {
			return -1
		}
		var end bool
		if j, end = s.next(j, ']', "after array element"); end {
			return j
		}
	}
}

// next reads what follows a member or an element, from offset j: a comma
// (more follow: the offset of the next one, false) or closing (the
// container ends: the offset after it, true); anything else fails (-1,
// true).
func (s *scanner) next(j int, closing byte, context string) (int, bool) {
	b := s.b
	j = skipWS(b, j)
	if j >= len(b) {
		return s.fail(j, context), true
	}
	switch b[j] {
	case ',':
		return skipWS(b, j+1), false
	case closing:
		return j + 1, true
	}
	return s.fail(j, context), true
}

// strStop marks the bytes that end the fast run of a string: the quote,
// the backslash and control characters.
var strStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// str validates the string at b[i] == '"'. Like encoding/json, it does
// not check UTF-8 (invalid bytes are replaced when decoded). s.plain tells
// whether the string has neither escapes nor bytes >= 0x80: its content is
// then its value as is.
func (s *scanner) str(i int) int {
	const (
		lsb = 0x0101010101010101
		msb = 0x8080808080808080
	)
	b := s.b
	j := i + 1
	var seen uint64 // bytes ORed together, for bit 7
	plain := true
	for {
		// Eight bytes at a time up to a quote, backslash or control
		// character (the lowest flagged byte of t is exact).
		for j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j:])
			q, bs := x^(lsb*'"'), x^(lsb*'\\')
			t := ((x - lsb*0x20) & ^x) | ((q - lsb) & ^q) | ((bs - lsb) & ^bs)
			if t&msb != 0 {
				n := bits.TrailingZeros64(t&msb) >> 3
				seen |= x & (1<<(8*n) - 1)
				j += n
				break
			}
			seen |= x
			j += 8
		}
		for j < len(b) && !strStop[b[j]] {
			seen |= uint64(b[j])
			j++
		}
		if j >= len(b) {
			return s.fail(j, "in string literal")
		}
		switch b[j] {
		case '"':
			s.plain = plain && seen&msb == 0
			return j + 1
		case '\\':
			plain = false
			j++
			if j >= len(b) {
				return s.fail(j, "in string escape code")
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				j++
				for k := 0; k < 4; k++ {
					if j >= len(b) || !isHex(b[j]) {
						return s.fail(j, "in \\u hexadecimal character escape")
					}
					j++
				}
			default:
				return s.fail(j, "in string escape code")
			}
		default:
			return s.fail(j, "in string literal")
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number validates the number at b[i] ('-' or a digit).
func (s *scanner) number(i int) int {
	b := s.b
	j := i
	if b[j] == '-' {
		j++
	}
	switch {
	case j >= len(b):
		return s.fail(j, "in numeric literal")
	case b[j] == '0':
		j++
	case b[j] >= '1' && b[j] <= '9':
		j++
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	default:
		return s.fail(j, "in numeric literal")
	}
	if j < len(b) && b[j] == '.' {
		j++
		if j >= len(b) || !isDigit(b[j]) {
			return s.fail(j, "after decimal point in numeric literal")
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || !isDigit(b[j]) {
			return s.fail(j, "in exponent of numeric literal")
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	return j
}

func (s *scanner) lit(i int, want string) int {
	b := s.b
	for k := 0; k < len(want); k++ {
		if i+k >= len(b) || b[i+k] != want[k] {
			return s.fail(i+k, "in literal "+want+" (expecting "+quoteChar(want[k])+")")
		}
	}
	return i + len(want)
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// view returns the string of the JSON value b[v0:v1] of a validated input
// whose copy is src: a string's content without copying when it has no
// escape and is valid UTF-8, else decoded (invalid UTF-8 replaced, like
// encoding/json); any other value as its JSON text.
func view(src string, b []byte, v0, v1 int) string {
	if v1-v0 < 2 || b[v0] != '"' {
		return src[v0:v1]
	}
	in := b[v0+1 : v1-1]
	if !hasBackslash(in) && utf8.Valid(in) {
		return src[v0+1 : v1-1]
	}
	var out string
	_ = json.Unmarshal(b[v0:v1], &out) // valid: cannot fail
	return out
}

// key is the key of mb, a member of the input src (see view).
func (mb *member) key(src string, b []byte) string {
	if mb.kPlain {
		return src[mb.k0+1 : mb.k1-1]
	}
	return view(src, b, mb.k0, mb.k1)
}

// value is the value of mb (see view).
func (mb *member) value(src string, b []byte) string {
	if mb.vPlain {
		return src[mb.v0+1 : mb.v1-1]
	}
	return view(src, b, mb.v0, mb.v1)
}

func hasBackslash(b []byte) bool { return bytes.IndexByte(b, '\\') >= 0 }
