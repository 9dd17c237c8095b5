package jsonscan

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// Text returns the value of the string token b[v0:v1] (quotes included) of
// a validated input whose copy is src: its content without copying when
// it has no escape and is valid UTF-8, else decoded (Unquote). Any other
// value is returned as its JSON text.
func Text(src string, b []byte, v0, v1 int) string {
	if v1-v0 < 2 || b[v0] != '"' {
		return src[v0:v1]
	}
	in := b[v0+1 : v1-1]
	if bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return src[v0+1 : v1-1]
	}
	return string(AppendUnquoted(nil, in))
}

// Key is the key of m, a member of the input src (see Text).
func (m *Member) Key(src string, b []byte) string {
	if m.KPlain {
		return src[m.K0+1 : m.K1-1]
	}
	return Text(src, b, m.K0, m.K1)
}

// Value is the value of m (see Text).
func (m *Member) Value(src string, b []byte) string {
	if m.VPlain {
		return src[m.V0+1 : m.V1-1]
	}
	return Text(src, b, m.V0, m.V1)
}

// AppendUnquoted appends the value of the content of a validated string
// token (between its quotes) to dst the way encoding/json decodes it:
// escapes resolved, a surrogate pair escaped as two \u escapes joined, and
// invalid UTF-8 or a lone surrogate replaced by U+FFFD.
func AppendUnquoted(dst, in []byte) []byte {
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case c == '\\' && i+1 < len(in):
			e := in[i+1]
			i += 2
			switch e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := hex4(in, i)
				if !ok {
					return append(dst, string(utf8.RuneError)...) // not validated input
				}
				i += 4
				if utf16.IsSurrogate(r) {
					// A surrogate followed by an escaped partner is one
					// character; anything else is U+FFFD.
					hi := r
					r = utf8.RuneError
					if i+1 < len(in) && in[i] == '\\' && in[i+1] == 'u' {
						if lo, ok := hex4(in, i+2); ok {
							if dec := utf16.DecodeRune(hi, lo); dec != utf8.RuneError {
								r = dec
								i += 6
							}
						}
					}
				}
				dst = utf8.AppendRune(dst, r)
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, in[i:i+size]...)
			}
			i += size
		default:
			dst = append(dst, c)
			i++
		}
	}
	return dst
}

// hex4 reads four hex digits at in[i:].
func hex4(in []byte, i int) (rune, bool) {
	if i+4 > len(in) {
		return 0, false
	}
	var r rune
	for _, c := range in[i : i+4] {
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

// LoneSurrogate reports whether the JSON text t (a string token, quotes
// included, or any valid JSON: backslashes appear only in strings) holds a
// \uD800-\uDFFF escape that is not half of a pair, which a decoder reads
// as U+FFFD.
func LoneSurrogate(t []byte) bool {
	for i := 0; i < len(t)-1; i++ {
		if t[i] != '\\' {
			continue
		}
		if t[i+1] != 'u' {
			i++ // \", \\, \n...: the escaped byte cannot start an escape
			continue
		}
		r, ok := hex4(t, i+2)
		if !ok {
			return false // not valid JSON
		}
		i += 5
		switch {
		case r < 0xD800 || r > 0xDFFF:
		case r <= 0xDBFF && i+2 < len(t) && t[i+1] == '\\' && t[i+2] == 'u':
			if lo, ok := hex4(t, i+3); !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		default:
			return true
		}
	}
	return false
}
