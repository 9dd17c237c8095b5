// Package jsonscan is the one JSON scanner of the readers of conformed
// events: it validates JSON in place, reporting offsets instead of building
// values, and accepts exactly what encoding/json accepts (FuzzScanner). The
// processors' decoder (schemas.Decode) builds its values on its tokens, the
// index records object members with it (Members), and the archive reads an
// event's head with it.
//
// A Scanner keeps the first error; every method returns the offset after
// what it read, or -1 once an error is recorded.
package jsonscan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
)

// ErrTooDeep is wrapped by the SyntaxError of a value nested deeper than
// the scanner's MaxDepth.
var ErrTooDeep = errors.New("too deeply nested")

// SyntaxError is a JSON syntax error with the byte offset where it was
// found; its message is encoding/json's.
type SyntaxError struct {
	Msg    string
	Offset int64
	Err    error // ErrTooDeep, or nil
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s (at byte offset %d)", e.Msg, e.Offset)
}

// Unwrap returns ErrTooDeep for a depth error.
func (e *SyntaxError) Unwrap() error { return e.Err }

// Scanner validates the JSON text B. Depths count containers: the value
// inside a container at nesting level depth is read with that depth, and
// a container opened at a level above MaxDepth fails with ErrTooDeep.
type Scanner struct {
	B        []byte
	MaxDepth int
	// Err is the first error met (a *SyntaxError).
	Err error
	// Plain tells whether the last string read has neither escapes nor
	// bytes >= 0x80: its content is then its value as is.
	Plain bool
}

// Reset readies s for b.
func (s *Scanner) Reset(b []byte, maxDepth int) {
	s.B, s.MaxDepth, s.Err, s.Plain = b, maxDepth, nil, false
}

// Valid reports whether b is one JSON value (white space around it
// allowed) nested at most maxDepth levels; the error says where not.
func Valid(b []byte, maxDepth int) error {
	s := Scanner{B: b, MaxDepth: maxDepth}
	if i := s.Value(SkipSpace(b, 0), 0); i >= 0 {
		s.End(i)
	}
	return s.Err
}

// Fail records a syntax error at offset i met in context (encoding/json's
// words: "after object key", ...) and returns -1.
func (s *Scanner) Fail(i int, context string) int {
	if s.Err != nil {
		return -1
	}
	if i >= len(s.B) {
		s.Err = &SyntaxError{Msg: "unexpected end of JSON input", Offset: int64(i)}
		return -1
	}
	s.Err = &SyntaxError{Msg: fmt.Sprintf("invalid character %s %s", QuoteChar(s.B[i]), context), Offset: int64(i)}
	return -1
}

// tooDeep records the depth error of a container at offset i.
func (s *Scanner) tooDeep(i int) int {
	if s.Err == nil {
		s.Err = &SyntaxError{Msg: fmt.Sprintf("nested deeper than %d levels", s.MaxDepth), Offset: int64(i), Err: ErrTooDeep}
	}
	return -1
}

// QuoteChar formats c like encoding/json's syntax errors.
func QuoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

// SkipSpace returns the offset of the first byte at or after i that is not
// JSON white space.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// End checks that only white space follows offset i.
func (s *Scanner) End(i int) int {
	i = SkipSpace(s.B, i)
	if i < len(s.B) {
		return s.Fail(i, "after top-level value")
	}
	return i
}

// Value validates the value at B[i], inside a container at nesting level
// depth (0 at the top).
func (s *Scanner) Value(i, depth int) int {
	b := s.B
	if i >= len(b) {
		return s.Fail(i, "looking for beginning of value")
	}
	switch c := b[i]; c {
	case '"':
		return s.String(i)
	case '{':
		return s.Members(i, depth+1, nil, nil)
	case '[':
		return s.Array(i, depth+1)
	case 't':
		return s.Literal(i, "true")
	case 'f':
		return s.Literal(i, "false")
	case 'n':
		return s.Literal(i, "null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return s.Number(i)
		}
	}
	return s.Fail(i, "looking for beginning of value")
}

// Member is one member of a JSON object, as offsets into the scanned
// input: the key with its quotes (K0:K1) and the value (V0:V1).
type Member struct {
	K0, K1, V0, V1 int
	KPlain, VPlain bool // a string without escapes, all ASCII (Scanner.Plain)
}

// Members validates the object at B[i] == '{', a container at nesting
// level depth, and appends its members to *rec when rec is not nil. When
// sub is not nil it is asked, for each member whose value is an object,
// where to record that object's members (nil: nowhere).
func (s *Scanner) Members(i, depth int, rec *[]Member, sub func(k0, k1, v0 int) *[]Member) int {
	if depth > s.MaxDepth {
		return s.tooDeep(i)
	}
	b := s.B
	j := SkipSpace(b, i+1)
	if j < len(b) && b[j] == '}' {
		return j + 1
	}
	for {
		if j >= len(b) || b[j] != '"' {
			return s.Fail(j, "looking for beginning of object key string")
		}
		k0 := j
		if j = s.String(j); j < 0 {
			return -1
		}
		k1, kPlain := j, s.Plain
		j = SkipSpace(b, j)
		if j >= len(b) || b[j] != ':' {
			return s.Fail(j, "after object key")
		}
		j = SkipSpace(b, j+1)
		v0 := j
		s.Plain = false
		if sub != nil && j < len(b) && b[j] == '{' {
			j = s.Members(j, depth+1, sub(k0, k1, v0), nil)
		} else {
			j = s.Value(j, depth)
		}
		if j < 0 {
			return -1
		}
		if rec != nil {
			*rec = append(*rec, Member{k0, k1, v0, j, kPlain, s.Plain && b[v0] == '"'})
		}
		var end bool
		if j, end = s.Next(j, '}', "after object key:value pair"); end {
			return j
		}
	}
}

// Array validates the array at B[i] == '[', a container at nesting level
// depth.
func (s *Scanner) Array(i, depth int) int {
	if depth > s.MaxDepth {
		return s.tooDeep(i)
	}
	b := s.B
	j := SkipSpace(b, i+1)
	if j < len(b) && b[j] == ']' {
		return j + 1
	}
	for {
		if j = s.Value(j, depth); j < 0 {
			return -1
		}
		var end bool
		if j, end = s.Next(j, ']', "after array element"); end {
			return j
		}
	}
}

// Next reads what follows a member or an element, from offset j: a comma
// (more follow: the offset of the next one, false) or closing (the
// container ends: the offset after it, true); anything else fails (-1,
// true).
func (s *Scanner) Next(j int, closing byte, context string) (int, bool) {
	b := s.B
	j = SkipSpace(b, j)
	if j >= len(b) {
		return s.Fail(j, context), true
	}
	switch b[j] {
	case ',':
		return SkipSpace(b, j+1), false
	case closing:
		return j + 1, true
	}
	return s.Fail(j, context), true
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

// String validates the string at B[i] == '"'. Like encoding/json, it does
// not check UTF-8 (invalid bytes are replaced when decoded: Unquote). It
// sets Plain.
func (s *Scanner) String(i int) int {
	const (
		lsb = 0x0101010101010101
		msb = 0x8080808080808080
	)
	b := s.B
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
			return s.Fail(j, "in string literal")
		}
		switch b[j] {
		case '"':
			s.Plain = plain && seen&msb == 0
			return j + 1
		case '\\':
			plain = false
			j++
			if j >= len(b) {
				return s.Fail(j, "in string escape code")
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				j++
				for k := 0; k < 4; k++ {
					if j >= len(b) || !isHex(b[j]) {
						return s.Fail(j, "in \\u hexadecimal character escape")
					}
					j++
				}
			default:
				return s.Fail(j, "in string escape code")
			}
		default:
			return s.Fail(j, "in string literal")
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// IsDigit reports whether c is an ASCII digit.
func IsDigit(c byte) bool { return c >= '0' && c <= '9' }

// Number validates the number at B[i] ('-' or a digit):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *Scanner) Number(i int) int {
	b := s.B
	j := i
	if b[j] == '-' {
		j++
	}
	switch {
	case j >= len(b):
		return s.Fail(j, "in numeric literal")
	case b[j] == '0':
		j++
	case b[j] >= '1' && b[j] <= '9':
		j = digits(b, j+1)
	default:
		return s.Fail(j, "in numeric literal")
	}
	if j < len(b) && b[j] == '.' {
		j++
		if j >= len(b) || !IsDigit(b[j]) {
			return s.Fail(j, "after decimal point in numeric literal")
		}
		j = digits(b, j)
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || !IsDigit(b[j]) {
			return s.Fail(j, "in exponent of numeric literal")
		}
		j = digits(b, j)
	}
	return j
}

func digits(b []byte, j int) int {
	for j < len(b) && IsDigit(b[j]) {
		j++
	}
	return j
}

// Literal validates the literal word (true, false, null) at B[i].
func (s *Scanner) Literal(i int, word string) int {
	b := s.B
	for k := 0; k < len(word); k++ {
		if i+k >= len(b) || b[i+k] != word[k] {
			return s.Fail(i+k, "in literal "+word+" (expecting "+QuoteChar(word[k])+")")
		}
	}
	return i + len(word)
}
