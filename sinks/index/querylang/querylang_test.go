package querylang

import (
	"errors"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/limits"
)

func TestParse(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{"declined", `"declined"`},
		{"declined OR timeout", `("declined" OR "timeout")`},
		{"card declined", `("card" AND "declined")`},
		{"card AND declined", `("card" AND "declined")`},
		{"level:error AND NOT host:web-1", `(level:"error" AND NOT host:"web-1")`},
		{"level:error -host:web-1", `(level:"error" AND NOT host:"web-1")`},
		{"a OR b c", `("a" OR ("b" AND "c"))`},
		{"(a OR b) c", `(("a" OR "b") AND "c")`},
		{`service:"check out" "two words"`, `(service:"check out" AND "two words")`},
		{`data.user.id:7 site:par1`, `(data.user.id:"7" AND site:"par1")`},
		{`correlation_id:checkout-7`, `correlation_id:"checkout-7"`},
		{`web-1`, `"web-1"`},
		{`and or not`, `("and" AND "or" AND "not")`},
		{`"a \"q\" \\ b"`, `"a \"q\" \\ b"`},
		{`NOT NOT x`, `NOT NOT "x"`},
		{`host:a:b`, `host:"a:b"`},
	} {
		n, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got := n.String(); got != c.want {
			t.Errorf("Parse(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		in  string
		pos int
		msg string
	}{
		{"(a OR b", 1, `"(" not closed`},
		{"a OR b)", 7, `")" without a matching "("`},
		{"a OR", 3, "OR wants a term"},
		{"a AND OR b", 3, "AND wants a term"},
		{"OR a", 1, "expected a term, found OR"},
		{"level:error AND NOT", 17, "NOT wants a term"},
		{`"open`, 1, "quote not closed"},
		{`x "a\n"`, 5, `only \" and \\`},
		{"hots:web-1", 1, `unknown field "hots"`},
		{"level:", 7, "level: wants a value"},
		{"()", 1, "empty parentheses"},
		{"data.:x", 1, "a data path"},
		{"data.a..b:x", 1, "a data path"},
		{":x", 1, `":" without a field name`},
		{`a ""`, 3, "empty quoted string"},
		{"é (x", 3, `"(" not closed`}, // positions count characters
	} {
		_, err := Parse(c.in)
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want a syntax error", c.in, err)
			continue
		}
		if se.Pos != c.pos || !strings.Contains(se.Msg, c.msg) {
			t.Errorf("Parse(%q) = %v, want position %d and %q", c.in, err, c.pos, c.msg)
		}
	}
}

func TestParseLimits(t *testing.T) {
	if _, err := Parse(strings.Repeat("a", limits.SearchQueryBytes+1)); err == nil || !strings.Contains(err.Error(), "over the limit of 4096") {
		t.Errorf("long query: %v", err)
	}
	deep := strings.Repeat("(", limits.SearchQueryDepth) + "x" + strings.Repeat(")", limits.SearchQueryDepth)
	if _, err := Parse(deep); err != nil {
		t.Errorf("%d deep: %v", limits.SearchQueryDepth, err)
	}
	_, err := Parse("(" + deep + ")")
	var se *SyntaxError
	if !errors.As(err, &se) || se.Pos != limits.SearchQueryDepth+1 || !strings.Contains(se.Msg, "nested more than 16 deep") {
		t.Errorf("%d deep: %v", limits.SearchQueryDepth+1, err)
	}
	if _, err := Parse(strings.Repeat("NOT ", limits.SearchQueryDepth+1) + "x"); err == nil {
		t.Errorf("NOT %d deep: no error", limits.SearchQueryDepth+1)
	}
	many := strings.TrimSpace(strings.Repeat("w ", limits.SearchQueryTerms))
	if _, err := Parse(many); err != nil {
		t.Errorf("%d terms: %v", limits.SearchQueryTerms, err)
	}
	if _, err := Parse(many + " w"); !errors.As(err, &se) || se.Pos != 2*limits.SearchQueryTerms+1 || !strings.Contains(se.Msg, "more than 64 terms") {
		t.Errorf("%d terms: %v", limits.SearchQueryTerms+1, err)
	}
}

// FuzzParse: Parse never panics, its trees stay within the limits, and
// the canonical form of a tree parses back to the same tree.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"declined OR timeout", "level:error AND NOT host:web-1", `(a OR "b c") -data.x.y:1`,
		`"\\"`, "((((", "a:b:c", "NOT", `host:"x`, "é ( ) -", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q): %v is not a *SyntaxError", s, err)
			}
			return
		}
		terms, depth := 0, 0
		var walk func(*Node, int)
		walk = func(n *Node, d int) {
			depth = max(depth, d)
			switch n.Op {
			case Text, Field:
				terms++
				if n.Value == "" {
					t.Fatalf("Parse(%q): empty value", s)
				}
			case Not:
				if len(n.Kids) != 1 {
					t.Fatalf("Parse(%q): NOT with %d kids", s, len(n.Kids))
				}
			default:
				if len(n.Kids) < 2 {
					t.Fatalf("Parse(%q): %v with %d kids", s, n.Op, len(n.Kids))
				}
			}
			for _, k := range n.Kids {
				walk(k, d+1)
			}
		}
		if n != nil {
			walk(n, 0)
		}
		if terms > limits.SearchQueryTerms {
			t.Fatalf("Parse(%q): %d terms", s, terms)
		}
		// AND/OR nodes add a level per parenthesis, NOT one per NOT: at
		// most two tree levels per counted level, plus the top ones.
		if depth > 2*limits.SearchQueryDepth+2 {
			t.Fatalf("Parse(%q): tree %d deep", s, depth)
		}
		canon := n.String()
		n2, err := Parse(canon)
		if err != nil {
			// The canonical form adds quotes and parentheses: it may pass
			// a limit the original did not.
			if strings.Contains(err.Error(), "over the limit") || strings.Contains(err.Error(), "nested more than") {
				return
			}
			t.Fatalf("Parse(%q) = %s, which does not parse: %v", s, canon, err)
		}
		if got := n2.String(); got != canon {
			t.Fatalf("Parse(%q) = %s, reparsed %s", s, canon, got)
		}
	})
}
