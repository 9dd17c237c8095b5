package termsafe

import (
	"fmt"
	"io"
	"unicode/utf8"
)

// JSON rewrites encoded JSON so that it holds no rune a terminal acts on:
// encoding/json escapes C0 controls but writes DEL, C1 controls (U+009B
// starts a CSI sequence on many terminals) and the bidi overrides and
// isolates (U+202E reverses what follows) as they are. Those only occur
// inside strings, where \uXXXX is the same value: the output decodes to
// the same data. Other bytes are copied unchanged.
func JSON(b []byte) []byte {
	i := 0
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError && (r == 0x7f || r >= 0x80) && unsafe(r) {
			break
		}
		i += size
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	out = append(out, b[:i]...)
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError && (r == 0x7f || r >= 0x80) && unsafe(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}

// JSONWriter passes each Write through JSON. Every Write must hold whole
// runes, as json.Encoder's (one per value) do.
func JSONWriter(w io.Writer) io.Writer { return jsonWriter{w} }

type jsonWriter struct{ w io.Writer }

func (j jsonWriter) Write(p []byte) (int, error) {
	if _, err := j.w.Write(JSON(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// TextWriter passes what it is given through Text (newlines and tabs kept,
// every other control escaped): raw file contents shown on a terminal.
// A rune cut between two writes is held until the next; Flush writes what
// is held.
type TextWriter struct {
	W    io.Writer
	held []byte
}

func (t *TextWriter) Write(p []byte) (int, error) {
	b := append(t.held, p...)
	cut := len(b)
	// Hold back an incomplete rune at the end (at most utf8.UTFMax-1 bytes).
	for i := len(b) - 1; i >= 0 && i >= len(b)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				cut = i
			}
			break
		}
	}
	t.held = append([]byte(nil), b[cut:]...)
	if _, err := io.WriteString(t.W, Text(string(b[:cut]))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes a held incomplete rune (escaped).
func (t *TextWriter) Flush() error {
	if len(t.held) == 0 {
		return nil
	}
	_, err := io.WriteString(t.W, Text(string(t.held)))
	t.held = nil
	return err
}
