// Package querylang parses the search language of the index (the q of
// GET /v1/search, the page's search box, `sightline logs`) into a tree that
// the embedded index and the OpenSearch / Elasticsearch query both
// evaluate (package index). docs/search.md describes it for users.
//
// Grammar (keywords AND, OR, NOT are upper-case; a lower-case "and" is a
// word):
//
//	query   = [ or ]
//	or      = and { "OR" and }
//	and     = unary { [ "AND" ] unary }      two terms side by side: AND
//	unary   = ( "NOT" | "-" ) unary | primary
//	primary = "(" or ")" | term
//	term    = field ":" value | value
//	value   = word | quoted
//	word    = one or more characters other than space, ( ) " and, at its start, -
//	quoted  = '"' { any character but " and \ | '\"' | '\\' } '"'
//	field   = host | site | env | service | level | kind | type | name |
//	          source | correlation_id | id | data.<path>
//	path    = segment { "." segment },  segment = [A-Za-z0-9_@$-]+
//
// A value without a field is free text: it matches when every word of it
// is among the words of the event's message or dead-letter reason, or
// when it equals the event's type, service, host, name, correlation id or
// id. A field's value matches exactly (case-sensitive). OR binds looser
// than AND: a OR b c is a OR (b AND c).
//
// Limits (internal/limits): SearchQueryBytes, SearchQueryDepth,
// SearchQueryTerms. Errors are *SyntaxError, naming the position (1-based,
// in characters) where the query goes wrong.
package querylang

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/limits"
)

// Op is the kind of a Node.
type Op int

// The kinds of Node.
const (
	Text  Op = iota // free text: Value
	Field           // Field:Value
	And             // every one of Kids
	Or              // one of Kids
	Not             // not Kids[0]
)

// Node is one node of a parsed query.
type Node struct {
	Op    Op
	Field string // Field: the field name (data.<path> for the event's data)
	Value string // Text, Field: the value, unquoted
	Kids  []*Node
	Pos   int // 1-based character position in the query
}

// Fields are the field names a term may use besides data.<path>. The
// correlation id is correlation_id (as in the API's parameter).
var Fields = []string{"host", "site", "env", "service", "level", "kind", "type", "name", "source", "correlation_id", "id"}

// DataPrefix starts the fields of an event's data: data.user.id.
const DataPrefix = "data."

// SyntaxError is a query that cannot be parsed or passes a limit.
type SyntaxError struct {
	Pos int // 1-based character position; 0 for the whole query
	Msg string
}

func (e *SyntaxError) Error() string {
	if e.Pos == 0 {
		return "query: " + e.Msg
	}
	return fmt.Sprintf("query: at position %d: %s", e.Pos, e.Msg)
}

// ErrSyntax matches every *SyntaxError with errors.Is.
var ErrSyntax = errors.New("query syntax")

// Is makes errors.Is(err, ErrSyntax) true.
func (e *SyntaxError) Is(target error) bool { return target == ErrSyntax }

type tokKind int

const (
	tEOF tokKind = iota
	tLParen
	tRParen
	tAnd
	tOr
	tNot
	tTerm
)

type token struct {
	kind   tokKind
	field  string
	value  string
	quoted bool
	pos    int // 1-based, characters
}

// Parse parses a query. An empty (or blank) query returns nil, nil: it
// matches everything.
func Parse(s string) (*Node, error) {
	if len(s) > limits.SearchQueryBytes {
		return nil, &SyntaxError{Msg: fmt.Sprintf("query is %d bytes, over the limit of %d", len(s), limits.SearchQueryBytes)}
	}
	if !utf8.ValidString(s) {
		return nil, &SyntaxError{Msg: "query is not valid UTF-8"}
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if p.peek().kind == tEOF {
		return nil, nil
	}
	n, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, &SyntaxError{Pos: t.pos, Msg: `")" without a matching "("`}
		}
		return nil, &SyntaxError{Pos: t.pos, Msg: "unexpected " + describe(t)}
	}
	return n, nil
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tAnd:
		return "AND"
	case tOr:
		return "OR"
	case tNot:
		return "NOT"
	}
	return strconv.Quote(t.value)
}

func isSpace(r rune) bool { return unicode.IsSpace(r) }

// singleRune are the tokens of one character.
var singleRune = map[rune]tokKind{'(': tLParen, ')': tRParen, '-': tNot}

// lex splits s into tokens.
func lex(s string) ([]token, error) {
	var toks []token
	terms := 0
	pos := 0 // characters consumed
	i := 0
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if k, single := singleRune[r]; single || isSpace(r) {
			if single {
				toks = append(toks, token{kind: k, pos: pos + 1})
			}
			i += w
			pos++
			continue
		}
		start := pos + 1
		t := token{kind: tTerm, pos: start}
		if r == '"' {
			v, n, chars, err := quoted(s[i:], start)
			if err != nil {
				return nil, err
			}
			if v == "" {
				return nil, &SyntaxError{Pos: start, Msg: "empty quoted string"}
			}
			t.value, t.quoted = v, true
			i += n
			pos += chars
		} else {
			// A word: up to a space, a parenthesis or a quote.
			j := i
			chars := 0
			for j < len(s) {
				r, w := utf8.DecodeRuneInString(s[j:])
				if isSpace(r) || r == '(' || r == ')' || r == '"' {
					break
				}
				j += w
				chars++
			}
			word := s[i:j]
			i = j
			pos += chars
			switch word {
			case "AND":
				toks = append(toks, token{kind: tAnd, pos: start})
				continue
			case "OR":
				toks = append(toks, token{kind: tOr, pos: start})
				continue
			case "NOT":
				toks = append(toks, token{kind: tNot, pos: start})
				continue
			}
			if k := strings.IndexByte(word, ':'); k >= 0 {
				f := word[:k]
				if err := checkField(f, start); err != nil {
					return nil, err
				}
				t.field = f
				v := word[k+1:]
				if v == "" && i < len(s) && s[i] == '"' {
					qv, n, chars, err := quoted(s[i:], pos+1)
					if err != nil {
						return nil, err
					}
					v, t.quoted = qv, true
					i += n
					pos += chars
				}
				if v == "" {
					return nil, &SyntaxError{Pos: start + utf8.RuneCountInString(word), Msg: fmt.Sprintf("%s: wants a value (%s:web-1, or quoted: %s:\"a b\")", f, f, f)}
				}
				t.value = v
			} else {
				t.value = word
			}
		}
		if terms++; terms > limits.SearchQueryTerms {
			return nil, &SyntaxError{Pos: start, Msg: fmt.Sprintf("more than %d terms in one query", limits.SearchQueryTerms)}
		}
		toks = append(toks, t)
	}
	return append(toks, token{kind: tEOF, pos: pos + 1}), nil
}

// quoted reads a quoted string at the start of s (s[0] == '"'): its value,
// its length in bytes and in characters. start is its position.
func quoted(s string, start int) (string, int, int, error) {
	var b strings.Builder
	chars := 1
	for i := 1; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		i += w
		chars++
		switch r {
		case '"':
			return b.String(), i, chars, nil
		case '\\':
			if i >= len(s) {
				return "", 0, 0, &SyntaxError{Pos: start + chars - 1, Msg: `"\" at the end of the query`}
			}
			r2, w2 := utf8.DecodeRuneInString(s[i:])
			if r2 != '"' && r2 != '\\' {
				return "", 0, 0, &SyntaxError{Pos: start + chars - 1, Msg: `only \" and \\ are escapes in a quoted string`}
			}
			b.WriteRune(r2)
			i += w2
			chars++
		default:
			b.WriteRune(r)
		}
	}
	return "", 0, 0, &SyntaxError{Pos: start, Msg: `quote not closed (a " is missing)`}
}

// checkField checks a field name at position pos.
func checkField(f string, pos int) error {
	if slices.Contains(Fields, f) {
		return nil
	}
	if path, ok := strings.CutPrefix(f, DataPrefix); ok {
		for _, seg := range strings.Split(path, ".") {
			if !ValidPathSegment(seg) {
				return &SyntaxError{Pos: pos, Msg: fmt.Sprintf("field %q: a data path is names of [A-Za-z0-9_@$-] joined by dots (data.user.id)", f)}
			}
		}
		return nil
	}
	if f == "" {
		return &SyntaxError{Pos: pos, Msg: `":" without a field name before it (quote the text to search for it: "` + ":" + `")`}
	}
	return &SyntaxError{Pos: pos, Msg: fmt.Sprintf("unknown field %q: fields are %s and data.<path> (quote the text to search for it)", f, strings.Join(Fields, ", "))}
}

// ValidPathSegment reports whether seg can be one name of a data path:
// [A-Za-z0-9_@$-]+ (a key with other characters, a dot among them, is
// reached by no query).
func ValidPathSegment(seg string) bool {
	return seg != "" && strings.IndexFunc(seg, func(r rune) bool {
		return !(r == '_' || r == '@' || r == '$' || r == '-' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9'))
	}) < 0
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) deeper(depth int, t token) error {
	if depth >= limits.SearchQueryDepth {
		return &SyntaxError{Pos: t.pos, Msg: fmt.Sprintf("nested more than %d deep (parentheses and NOT)", limits.SearchQueryDepth)}
	}
	return nil
}

func (p *parser) or(depth int) (*Node, error) {
	first, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	kids := []*Node{first}
	for p.peek().kind == tOr {
		t := p.next()
		if k := p.peek().kind; k == tEOF || k == tRParen || k == tOr || k == tAnd {
			return nil, &SyntaxError{Pos: t.pos, Msg: "OR wants a term after it, found " + describe(p.peek())}
		}
		n, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &Node{Op: Or, Kids: kids, Pos: first.Pos}, nil
}

func (p *parser) and(depth int) (*Node, error) {
	first, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	kids := []*Node{first}
	for {
		t := p.peek()
		switch t.kind {
		case tAnd:
			p.next()
			if k := p.peek().kind; k == tEOF || k == tRParen || k == tOr || k == tAnd {
				return nil, &SyntaxError{Pos: t.pos, Msg: "AND wants a term after it, found " + describe(p.peek())}
			}
		case tTerm, tNot, tLParen:
		default:
			if len(kids) == 1 {
				return first, nil
			}
			return &Node{Op: And, Kids: kids, Pos: first.Pos}, nil
		}
		n, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
}

func (p *parser) unary(depth int) (*Node, error) {
	t := p.next()
	switch t.kind {
	case tNot:
		if err := p.deeper(depth, t); err != nil {
			return nil, err
		}
		if k := p.peek().kind; k != tTerm && k != tNot && k != tLParen {
			return nil, &SyntaxError{Pos: t.pos, Msg: "NOT wants a term after it, found " + describe(p.peek())}
		}
		n, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &Node{Op: Not, Kids: []*Node{n}, Pos: t.pos}, nil
	case tLParen:
		if err := p.deeper(depth, t); err != nil {
			return nil, err
		}
		if p.peek().kind == tRParen {
			return nil, &SyntaxError{Pos: t.pos, Msg: "empty parentheses"}
		}
		n, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, &SyntaxError{Pos: t.pos, Msg: `"(" not closed (a ")" is missing)`}
		}
		return n, nil
	case tTerm:
		if t.field != "" {
			return &Node{Op: Field, Field: t.field, Value: t.value, Pos: t.pos}, nil
		}
		return &Node{Op: Text, Value: t.value, Pos: t.pos}, nil
	case tRParen:
		return nil, &SyntaxError{Pos: t.pos, Msg: `")" without a matching "("`}
	default:
		return nil, &SyntaxError{Pos: t.pos, Msg: "expected a term, found " + describe(t)}
	}
}

// String is the query in a canonical form that Parse reads back to the
// same tree: fully parenthesised, every value quoted.
func (n *Node) String() string {
	if n == nil {
		return ""
	}
	q := func(v string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
	}
	switch n.Op {
	case Text:
		return q(n.Value)
	case Field:
		return n.Field + ":" + q(n.Value)
	case Not:
		return "NOT " + n.Kids[0].String()
	}
	sep := " AND "
	if n.Op == Or {
		sep = " OR "
	}
	parts := make([]string, len(n.Kids))
	for i, k := range n.Kids {
		parts[i] = k.String()
	}
	return "(" + strings.Join(parts, sep) + ")"
}

// Walk calls f on n and every node below it.
func (n *Node) Walk(f func(*Node)) {
	if n == nil {
		return
	}
	f(n)
	for _, k := range n.Kids {
		k.Walk(f)
	}
}
