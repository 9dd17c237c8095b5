package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	cases := map[string]string{
		"plain text, ünïcode ✓":  "plain text, ünïcode ✓",
		"\x1b[31mred\x1b[0m":     `\x1b[31mred\x1b[0m`,
		"nul\x00byte":            `nul\x00byte`,
		"carriage\rreturn":       `carriage\rreturn`,
		"new\nline\ttab":         `new\nline\ttab`,
		"bell\a back\b del\x7f":  `bell\a back\b del\x7f`,
		"c1 \u009b31m csi":       `c1 \u009b31m csi`,
		"invalid \xff\xfe utf8":  `invalid \xff\xfe utf8`,
		"lone continuation \x80": `lone continuation \x80`,
		"truncated \xe2\x82":     `truncated \xe2\x82`,
		"bidi \u202eevil\u202c":  `bidi \u202eevil\u202c`,
		"isolate \u2066x\u2069":  `isolate \u2066x\u2069`,
		"osc \x1b]0;title\x07":   `osc \x1b]0;title\a`,
		"back\\slash stays":      `back\slash stays`,
		"":                       "",
	}
	for in, want := range cases {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTextKeepsLines(t *testing.T) {
	in := "line 1\tcol\nline 2 \x1b[2J\r\n\x00end"
	want := "line 1\tcol\nline 2 \\x1b[2J\\r\n\\x00end"
	if got := Text(in); got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"\x1b[31m", "a\x00b", "\xff", "\u009b", "ok", "\u202e", "\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, out := range []string{String(s), Text(s)} {
			if !utf8.ValidString(out) {
				t.Fatalf("invalid UTF-8 out of %q: %q", s, out)
			}
			for _, r := range out {
				if r == '\n' || r == '\t' {
					continue
				}
				if unsafe(r) {
					t.Fatalf("unsafe rune %U left in %q (from %q)", r, out, s)
				}
			}
		}
		if strings.ContainsAny(String(s), "\n\t") {
			t.Fatalf("String left a newline or tab: %q", String(s))
		}
		if Safe(s) != (String(s) == s) {
			t.Fatalf("Safe(%q) = %v but String changes it to %q", s, Safe(s), String(s))
		}
	})
}
