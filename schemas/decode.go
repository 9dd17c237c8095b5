package schemas

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sightline/sightline/internal/jsonscan"
	"github.com/sightline/sightline/internal/limits"
)

// ErrTooDeep is wrapped by the SyntaxError of a value nested deeper than
// the decoder's limit.
var ErrTooDeep = jsonscan.ErrTooDeep

// ErrNumberTooLong is wrapped by the error of DecodeBody and DecodeCompact
// for a number literal longer than limits.NumberBytes.
var ErrNumberTooLong = errors.New("number too long")

// SyntaxError is a JSON syntax error with the byte offset where it was
// found (the scanner's).
type SyntaxError = jsonscan.SyntaxError

// Decode parses one JSON value the way the validator expects: objects as
// map[string]any (a repeated key keeps its last value), arrays as []any,
// numbers as json.Number (kept exact), strings unescaped with invalid UTF-8
// replaced by U+FFFD — what encoding/json with UseNumber returns. Only JSON
// whitespace may follow the value. It reads values nested up to
// limits.DecoderMaxDepth, the depth every sink's decoder reads (a whole
// event).
func Decode(b []byte) (any, error) {
	v, _, err := decode(b, nil, false, limits.DecoderMaxDepth, 0)
	return v, err
}

// DecodeBody is Decode for a raw input body: nesting deeper than
// limits.MaxBodyDepth fails with an error wrapping ErrTooDeep, so that the
// body, once wrapped in the envelope, stays readable by every sink; a
// number literal longer than limits.NumberBytes fails with an error
// wrapping ErrNumberTooLong, so that every common JSON reader reads it.
func DecodeBody(b []byte) (any, error) {
	v, _, err := decode(b, nil, false, limits.MaxBodyDepth, limits.NumberBytes)
	return v, err
}

// DecodeCompact is Decode that also appends the value's compact form (the
// input without insignificant whitespace, the same bytes json.Compact
// writes) to dst, in the same single pass. With a nil dst and nothing to
// drop, the compact form is b itself (capacity-capped, so appending to it
// never writes into b). Like DecodeBody, it reads a raw input body: its
// depth limit is limits.MaxBodyDepth, its number limit limits.NumberBytes.
//
// A string holding a lone surrogate escape (\ud800 without its pair) is
// written in the compact form as encoding/json writes its decoded value
// (with U+FFFD in its place), so that a body kept compact carries the
// same text as one decoded and written again.
func DecodeCompact(b, dst []byte) (any, []byte, error) {
	return decode(b, dst, true, limits.MaxBodyDepth, limits.NumberBytes)
}

func decode(b, dst []byte, compact bool, maxDepth, maxNumber int) (any, []byte, error) {
	d := decoder{data: b, src: string(b), dst: dst, compact: compact, maxNumber: maxNumber}
	d.sc.Reset(b, maxDepth)
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

// decoder is a recursive-descent JSON parser building values on the
// tokens of the one scanner (internal/jsonscan). With compact set it copies
// the input to dst segment by segment, leaving out the whitespace between
// tokens.
type decoder struct {
	sc      jsonscan.Scanner // its MaxDepth bounds nesting, so a hostile body of nested brackets costs bounded stack
	data    []byte
	src     string // data as one string: keys, strings and numbers without escapes are substrings of it, not allocations of their own
	pos     int
	dst     []byte
	seg     int // start of the segment not yet copied to dst
	compact bool
	// maxNumber bounds a number literal's length (0: no bound).
	maxNumber int
}

func (d *decoder) errorf(format string, args ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, args...), Offset: int64(d.pos)}
}

func (d *decoder) unexpected(context string) error {
	d.sc.Fail(d.pos, context)
	return d.sc.Err
}

// token ends a token the scanner read: its end offset, or its error.
func (d *decoder) token(end int) error {
	if end < 0 {
		return d.sc.Err
	}
	d.pos = end
	return nil
}

func (d *decoder) skipSpace() {
	start := d.pos
	d.pos = jsonscan.SkipSpace(d.data, d.pos)
	if d.compact && d.pos > start {
		d.dst = append(d.dst, d.data[d.seg:start]...)
		d.seg = d.pos
	}
}

func (d *decoder) value(depth int) (any, error) {
	if d.pos >= len(d.data) {
		return nil, d.unexpected("looking for beginning of value")
	}
	switch c := d.data[d.pos]; {
	case c == '{' || c == '[':
		if depth >= d.sc.MaxDepth {
			return nil, &SyntaxError{Msg: fmt.Sprintf("nested deeper than %d levels", d.sc.MaxDepth), Offset: int64(d.pos), Err: ErrTooDeep}
		}
		if c == '{' {
			return d.object(depth + 1)
		}
		return d.array(depth + 1)
	case c == '"':
		return d.str()
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.pos
		if err := d.token(d.sc.Number(d.pos)); err != nil {
			return nil, err
		}
		if n := d.pos - start; d.maxNumber > 0 && n > d.maxNumber {
			return nil, &SyntaxError{Msg: fmt.Sprintf("a number of %d characters (%.20s…), over the limit of %d", n, d.src[start:d.pos], d.maxNumber),
				Offset: int64(start), Err: ErrNumberTooLong}
		}
		return json.Number(d.src[start:d.pos]), nil
	case c == 't':
		return true, d.token(d.sc.Literal(d.pos, "true"))
	case c == 'f':
		return false, d.token(d.sc.Literal(d.pos, "false"))
	case c == 'n':
		return nil, d.token(d.sc.Literal(d.pos, "null"))
	}
	return nil, d.unexpected("looking for beginning of value")
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
		return false, d.unexpected(context)
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

// str reads a string starting at its opening quote: a substring of the
// input when it has no escapes and is valid UTF-8, else decoded.
func (d *decoder) str() (string, error) {
	start := d.pos
	if err := d.token(d.sc.String(d.pos)); err != nil {
		return "", err
	}
	if d.sc.Plain {
		return d.src[start+1 : d.pos-1], nil
	}
	s := jsonscan.Text(d.src, d.data, start, d.pos)
	if d.compact && jsonscan.LoneSurrogate(d.data[start:d.pos]) {
		d.dst = append(d.dst, d.data[d.seg:start]...)
		d.dst = appendString(d.dst, s)
		d.seg = d.pos
	}
	return s, nil
}
