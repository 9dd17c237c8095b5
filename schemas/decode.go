package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/limits"
)

// ErrTooDeep is wrapped by the SyntaxError of a value nested deeper than
// the decoder's limit.
var ErrTooDeep = errors.New("too deeply nested")

// SyntaxError is a JSON syntax error with the byte offset where it was
// found.
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

// Decode parses one JSON value the way the validator expects: objects as
// map[string]any (a repeated key keeps its last value), arrays as []any,
// numbers as json.Number (kept exact), strings unescaped with invalid UTF-8
// replaced by U+FFFD — what encoding/json with UseNumber returns. Only JSON
// whitespace may follow the value. It reads values nested up to
// limits.DecoderMaxDepth, the depth every sink's decoder reads (a whole
// event).
func Decode(b []byte) (any, error) {
	v, _, err := decode(b, nil, false, limits.DecoderMaxDepth)
	return v, err
}

// DecodeBody is Decode for a raw input body: nesting deeper than
// limits.MaxBodyDepth fails with an error wrapping ErrTooDeep, so that the
// body, once wrapped in the envelope, stays readable by every sink.
func DecodeBody(b []byte) (any, error) {
	v, _, err := decode(b, nil, false, limits.MaxBodyDepth)
	return v, err
}

// DecodeCompact is Decode that also appends the value's compact form (the
// input without insignificant whitespace, the same bytes json.Compact
// writes) to dst, in the same single pass. With a nil dst and nothing to
// drop, the compact form is b itself (capacity-capped, so appending to it
// never writes into b). Like DecodeBody, it reads a raw input body: its
// depth limit is limits.MaxBodyDepth.
func DecodeCompact(b, dst []byte) (any, []byte, error) {
	return decode(b, dst, true, limits.MaxBodyDepth)
}

func decode(b, dst []byte, compact bool, maxDepth int) (any, []byte, error) {
	d := decoder{data: b, src: string(b), dst: dst, compact: compact, maxDepth: maxDepth}
	d.skipSpace()
	v, err := d.value(0)
	if err != nil {
		return nil, dst, err
	}
	d.skipSpace()
	if d.pos < len(d.data) {
		return nil, dst, d.errorf("unexpected data after the JSON value")
	}
	if compact {
		if d.dst == nil && d.seg == 0 {
			return v, d.data[:d.pos:d.pos], nil
		}
		d.dst = append(d.dst, d.data[d.seg:d.pos]...)
	}
	return v, d.dst, nil
}

// decoder is a recursive-descent JSON parser. With compact set it copies
// the input to dst segment by segment, leaving out the whitespace between
// tokens.
type decoder struct {
	data    []byte
	src     string // data as one string: keys, strings and numbers without escapes are substrings of it, not allocations of their own
	pos     int
	dst     []byte
	seg     int // start of the segment not yet copied to dst
	compact bool
	// maxDepth bounds nesting, so a hostile body of nested brackets costs
	// bounded stack.
	maxDepth int
}

func (d *decoder) errorf(format string, args ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, args...), Offset: int64(d.pos)}
}

func (d *decoder) unexpected(context string) error {
	if d.pos >= len(d.data) {
		return &SyntaxError{Msg: "unexpected end of JSON input", Offset: int64(d.pos)}
	}
	return d.errorf("invalid character %s %s", quoteChar(d.data[d.pos]), context)
}

func quoteChar(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c == '"':
		return `'"'`
	case c < 0x20 || c >= 0x7f:
		return strconv.Quote(string(rune(c)))
	}
	return "'" + string(rune(c)) + "'"
}

func (d *decoder) skipSpace() {
	start := d.pos
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
			continue
		}
		break
	}
	if d.compact && d.pos > start {
		d.dst = append(d.dst, d.data[d.seg:start]...)
		d.seg = d.pos
	}
}

func (d *decoder) value(depth int) (any, error) {
	if d.pos >= len(d.data) {
		return nil, d.unexpected("")
	}
	switch c := d.data[d.pos]; {
	case c == '{' || c == '[':
		if depth >= d.maxDepth {
			return nil, &SyntaxError{Msg: fmt.Sprintf("nested deeper than %d levels", d.maxDepth), Offset: int64(d.pos), Err: ErrTooDeep}
		}
		if c == '{' {
			return d.object(depth + 1)
		}
		return d.array(depth + 1)
	case c == '"':
		return d.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, d.unexpected("looking for beginning of value")
}

func (d *decoder) literal(word string) error {
	for i := 0; i < len(word); i++ {
		if d.pos >= len(d.data) {
			return d.unexpected("")
		}
		if d.data[d.pos] != word[i] {
			return d.unexpected(fmt.Sprintf("in literal %s (expecting %s)", word, quoteChar(word[i])))
		}
		d.pos++
	}
	return nil
}

func (d *decoder) object(depth int) (any, error) {
	d.pos++ // '{'
	m := map[string]any{}
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return m, nil
	}
	for {
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.unexpected("looking for beginning of object key string")
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.unexpected("after object key")
		}
		d.pos++
		d.skipSpace()
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
		if more, err := d.separator('}', "after object key:value pair"); !more {
			return m, err
		}
	}
}

func (d *decoder) array(depth int) (any, error) {
	d.pos++ // '['
	a := []any{}
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return a, nil
	}
	for {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		if more, err := d.separator(']', "after array element"); !more {
			return a, err
		}
	}
}

// separator reads what follows a member or an element: a comma (more
// follow) or the closing bracket.
func (d *decoder) separator(closing byte, context string) (more bool, err error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return false, d.unexpected("")
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		d.skipSpace()
		return true, nil
	case closing:
		d.pos++
		return false, nil
	}
	return false, d.unexpected(context)
}

// str reads a string starting at its opening quote. A string without
// escapes or invalid UTF-8 is converted directly; otherwise it is unescaped
// into a new buffer.
func (d *decoder) str() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			s := d.src[start:d.pos]
			d.pos++
			return s, nil
		case c == '\\':
			return d.strSlow(start)
		case c < 0x20:
			return "", d.unexpected("in string literal")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && size == 1 {
				return d.strSlow(start)
			}
			d.pos += size
		default:
			d.pos++
		}
	}
	return "", d.unexpected("")
}

func (d *decoder) strSlow(start int) (string, error) {
	buf := make([]byte, 0, d.pos-start+16)
	buf = append(buf, d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(buf), nil
		case c < 0x20:
			return "", d.unexpected("in string literal")
		case c == '\\':
			d.pos++
			if d.pos >= len(d.data) {
				return "", d.unexpected("")
			}
			switch e := d.data[d.pos]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := d.hex4(d.pos + 1)
				if !ok {
					return "", d.unexpected("in \\u hexadecimal character escape")
				}
				d.pos += 4
				if utf16.IsSurrogate(r) {
					// A surrogate followed by an escaped partner is one
					// character; anything else is U+FFFD.
					hi := r
					r = utf8.RuneError
					if d.pos+2 < len(d.data) && d.data[d.pos+1] == '\\' && d.data[d.pos+2] == 'u' {
						if lo, ok := d.hex4(d.pos + 3); ok {
							if dec := utf16.DecodeRune(hi, lo); dec != utf8.RuneError {
								r = dec
								d.pos += 6
							}
						}
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", d.unexpected("in string escape code")
			}
			d.pos++
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, d.data[d.pos:d.pos+size]...)
			}
			d.pos += size
		default:
			buf = append(buf, c)
			d.pos++
		}
	}
	return "", d.unexpected("")
}

// hex4 reads four hex digits at i.
func (d *decoder) hex4(i int) (rune, bool) {
	if i+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (d *decoder) number() (any, error) {
	start := d.pos
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos >= len(d.data) {
		return nil, d.unexpected("")
	}
	switch c := d.data[d.pos]; {
	case c == '0':
		d.pos++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return nil, d.unexpected("in numeric literal")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if d.pos >= len(d.data) || !isDigit(d.data[d.pos]) {
			return nil, d.unexpected("after decimal point in numeric literal")
		}
		d.digits()
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if d.pos >= len(d.data) || !isDigit(d.data[d.pos]) {
			return nil, d.unexpected("in exponent of numeric literal")
		}
		d.digits()
	}
	return json.Number(d.src[start:d.pos]), nil
}

func (d *decoder) digits() {
	for d.pos < len(d.data) && isDigit(d.data[d.pos]) {
		d.pos++
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
