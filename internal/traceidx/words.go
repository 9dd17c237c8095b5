package traceidx

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Words appends to dst the distinct words of text, lowercased, in order of
// first appearance, at most max of them, each at most MaxWordBytes long.
// A word is a run of letters, digits and underscores; the same function
// splits documents and queries, so a query matches what it would match
// word for word.
func Words(dst []string, text string, max int) []string {
	start := -1
	flush := func(end int) {
		w := text[start:end]
		start = -1
		if len(w) > MaxWordBytes {
			w = w[:MaxWordBytes]
			for len(w) > 0 && !utf8.ValidString(w) {
				w = w[:len(w)-1]
			}
		}
		w = lower(w)
		if !slices.Contains(dst, w) {
			dst = append(dst, w)
		}
	}
	for i, r := range text {
		if len(dst) >= max {
			return dst
		}
		word := r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
		switch {
		case word && start < 0:
			start = i
		case !word && start >= 0:
			flush(i)
		}
	}
	if start >= 0 && len(dst) < max {
		flush(len(text))
	}
	return dst
}

// lower lowercases w without allocating when it is already lower-case ASCII.
func lower(w string) string {
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return strings.ToLower(w)
		}
	}
	return w
}
