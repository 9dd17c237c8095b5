// Package termsafetest holds hostile strings and golden-file checks for
// the tests of printers that must escape data (internal/termsafe).
package termsafetest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// Hostile is event data meant to take over a terminal: colours, a screen
// clear, a window title (OSC), NUL, CR overwriting the line, a C1 CSI,
// invalid UTF-8, a bidi override and a fake newline.
const Hostile = "\x1b[31mRED\x1b[0m \x1b[2J\x1b]0;pwned\x07 nul\x00 cr\rOVERWRITE c1\u009b31m bad\xff\xfe rtl\u202etxt.exe fake\nline"

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// Golden compares got with testdata/name (rewritten with -update).
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (-update rewrites it):\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

// CheckSafe fails when out holds a control character other than newline
// and tab, a C1 control, a bidi control or invalid UTF-8.
func CheckSafe(t testing.TB, out []byte) {
	t.Helper()
	if !utf8.Valid(out) {
		t.Errorf("output is not valid UTF-8: %q", out)
	}
	for i, r := range string(out) {
		switch {
		case r == '\n' || r == '\t':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			t.Errorf("raw control %U at byte %d of output:\n%q", r, i, out)
			return
		}
	}
}
