// Package termsafe makes text from data safe to print on a terminal: every
// human-readable output of the CLI passes event, host and graph data
// through it, so an event cannot move the cursor, change colours, set the
// window title, hide text (NUL, CR, bidi overrides) or break the line
// structure of a listing.
//
// String escapes, as Go-like escapes: C0 controls (\x1b, \x00, \r, \n, \t,
// \a, \b, ...), DEL (\x7f), C1 controls (\u009b), the Unicode bidi
// overrides and isolates (\u202e, \u2066, ...) and each byte of invalid
// UTF-8 (\xff). Text does the same but keeps \n and \t (multi-line text:
// diffs, file contents shown to a person). Printable text, including
// non-ASCII, is unchanged; a backslash stays a backslash (this is a display
// form, not a quoting one — use --json for a lossless form). Raw bytes stay
// available where piping them is the point (`search --contents`).
package termsafe

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// unsafe reports runes that are escaped in every mode (newline and tab
// included; Text lets those two through).
func unsafe(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true // bidi embeddings, overrides, isolates and marks
	}
	return false
}

// Safe reports whether String(s) == s.
func Safe(s string) bool { return clean(s, false) }

func clean(s string, keepLines bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && !(keepLines && (c == '\n' || c == '\t')) {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || unsafe(r) {
			return false
		}
		i += n
	}
	return true
}

// String is s with every control character, bidi control and invalid byte
// escaped: one line, safe for a terminal.
func String(s string) string { return escape(s, false) }

// Text is String keeping newlines and tabs.
func Text(s string) string { return escape(s, true) }

// Strings maps String over ss (a new slice).
func Strings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = String(s)
	}
	return out
}

func escape(s string, keepLines bool) string {
	if clean(s, keepLines) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && !(keepLines && (c == '\n' || c == '\t')) {
				writeControl(&b, c)
			} else {
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(c))
		case unsafe(r):
			b.WriteString(`\u`)
			h := strconv.FormatInt(int64(r), 16)
			b.WriteString(strings.Repeat("0", 4-len(h)))
			b.WriteString(h)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func writeControl(b *strings.Builder, c byte) {
	switch c {
	case '\a':
		b.WriteString(`\a`)
	case '\b':
		b.WriteString(`\b`)
	case '\f':
		b.WriteString(`\f`)
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	case '\t':
		b.WriteString(`\t`)
	case '\v':
		b.WriteString(`\v`)
	default:
		b.WriteString(`\x`)
		b.WriteString(hex2(c))
	}
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}
