package fleet

import (
	"bytes"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestRequiredLiteral(t *testing.T) {
	for pat, want := range map[string]string{
		"(?m)^net.core.netdev_budget ":    "netdev_budget ",
		"^net\\.core\\.netdev_budget ":    "net.core.netdev_budget ",
		"netdev":                          "netdev",
		"(?i)netdev":                      "",
		"a|b":                             "",
		"x(abc)+y":                        "abc",
		"foo.*barbaz":                     "barbaz",
		"(?m)^vm\\.max_map_count = \\d+$": "vm.max_map_count = ",
		"ab\\ncd":                         "",
		"[ab]":                            "",
		"":                                "",
	} {
		if got := requiredLiteral(pat); got != want {
			t.Errorf("requiredLiteral(%q) = %q, want %q", pat, got, want)
		}
	}
}

// naiveLines is grep: every line the regexp matches.
func naiveLines(re *regexp.Regexp, content []byte) []string {
	var out []string
	if len(content) == 0 {
		return nil
	}
	content = bytes.TrimSuffix(content, []byte("\n"))
	for _, l := range strings.Split(string(content), "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// TestLineMatcherIsGrep compares the prefiltered matcher with a line-by-line
// grep on random documents and patterns.
func TestLineMatcherIsGrep(t *testing.T) {
	pats := []string{"^net.core.netdev_budget ", "netdev", "budget = 3", "^vm\\.", "= \\d+$", "a.b", "(?i)NET", "x|net", "^$", "core.*300", "e "}
	words := []string{"net", ".", "core", "netdev_budget", " ", "=", "300", "600", "vm", "max_map_count", "\n", "\n", "x", "a", "b", "E"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		var doc strings.Builder
		for n := rng.IntN(60); n > 0; n-- {
			doc.WriteString(words[rng.IntN(len(words))])
		}
		pat := pats[rng.IntN(len(pats))]
		re := regexp.MustCompile("(?m)" + pat)
		got := newLineMatcher(re).lines([]byte(doc.String()))
		want := naiveLines(re, []byte(doc.String()))
		if strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
			t.Fatalf("pattern %q on %q:\n got %q\nwant %q", pat, doc.String(), got, want)
		}
	}
}

// sysctlDoc is a 40 KB sysctl -a like document.
func sysctlDoc() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 40<<10; i++ {
		for _, p := range []string{"net.core.", "net.ipv4.conf.eth0.", "kernel.", "vm.", "fs.", "net.ipv6.route."} {
			b.WriteString(p)
			b.WriteString("setting_")
			b.WriteString(strings.Repeat("x", i%7))
			b.WriteString(" = ")
			b.WriteString("12345\n")
		}
	}
	b.WriteString("net.core.netdev_budget = 300\n")
	return b.Bytes()
}

// BenchmarkGrepAnchored compares the prefilter literal of the README's
// anchored pattern: the literal prefix before the first '.' ("net", the
// previous rule) against the required literal of the parsed regexp.
func BenchmarkGrepAnchored(b *testing.B) {
	doc := sysctlDoc()
	re := regexp.MustCompile("(?m)^net.core.netdev_budget ")
	for name, m := range map[string]*lineMatcher{
		"prefix_literal":   {re: re, lit: []byte("net")},
		"required_literal": newLineMatcher(re),
		"no_literal":       {re: re},
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if got := m.lines(doc); len(got) != 1 {
					b.Fatal(got)
				}
			}
		})
	}
}
