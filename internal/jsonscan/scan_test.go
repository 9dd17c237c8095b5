package jsonscan_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/jsonscan"
)

// seeds are JSON texts, valid and not.
var seeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"d\u00e9\n"}`, `{"a":-0.5E+10,"b":true,"c":false}`,
	`{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, "{\"a\":\"\x01\"}", `{"a":tru}`, `{"a":[1,]}`, `{"a":1,}`,
	`{"a":1} x`, `[1]`, `"s"`, `12`, ``, `{"a":"\ud800"}`, "{\"a\":\"\xff\xfe\"}", `{"a":{"b":{"c":[[[]]]}}}`,
	`{"data":{"message":"hi","level":"WARN"},"id":"x"}`, `{"a":1e5,"b":-0,"c":0.0e-0}`, `{"a" : "b" ,"c" :[ ] }`,
	`"\ud83d\ude00 \ud83d x \ude00 \u00e9"`, `"a\/b\\c\"d\b\f\r\t"`, `-`, `1e`, `nul`, `[1 2]`, `{"a" 1}`, `{1:2}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000), strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
}

// check compares the scanner with encoding/json on b: the same verdict,
// and for an object the same members with the same string values.
func check(t *testing.T, b []byte) {
	err := jsonscan.Valid(b, 10000) // encoding/json's nesting limit
	if (err == nil) != json.Valid(b) {
		t.Fatalf("%.200q: jsonscan %v, json.Valid %v", b, err, json.Valid(b))
	}
	var se *jsonscan.SyntaxError
	if err != nil && !errors.As(err, &se) {
		t.Fatalf("%.200q: %T is not a SyntaxError", b, err)
	}
	var want any
	if err != nil || json.Unmarshal(b, &want) != nil {
		return
	}
	if s, ok := want.(string); ok {
		i := jsonscan.SkipSpace(b, 0)
		j := bytes.LastIndexByte(b, '"') + 1
		if got := jsonscan.Text(string(b), b, i, j); got != s {
			t.Fatalf("%q: Text %q, encoding/json %q", b, got, s)
		}
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(b, &obj) != nil {
		return
	}
	s := jsonscan.Scanner{B: b, MaxDepth: 10000}
	var members []jsonscan.Member
	if s.Members(jsonscan.SkipSpace(b, 0), 1, &members, nil) < 0 {
		t.Fatalf("%q: Members: %v", b, s.Err)
	}
	src := string(b)
	got := map[string]jsonscan.Member{}
	for _, m := range members {
		got[m.Key(src, b)] = m
	}
	if len(got) != len(obj) {
		t.Fatalf("%q: %d members, encoding/json %d", b, len(got), len(obj))
	}
	for k, v := range obj {
		m := got[k]
		if src[m.V0:m.V1] != string(bytes.TrimSpace(v)) {
			t.Fatalf("%q: member %q = %q, encoding/json %q", b, k, src[m.V0:m.V1], v)
		}
		var sv string
		if json.Unmarshal(v, &sv) == nil && m.Value(src, b) != sv {
			t.Fatalf("%q: member %q value %q, encoding/json %q", b, k, m.Value(src, b), sv)
		}
	}
}

func TestScannerMatchesEncodingJSON(t *testing.T) {
	for _, s := range seeds {
		check(t, []byte(s))
	}
}

// FuzzScanner: the scanner accepts exactly what encoding/json accepts and
// splits objects and decodes strings as it does.
//
//	go test -run '^$' -fuzz FuzzScanner -fuzztime 60s ./internal/jsonscan/
func FuzzScanner(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(check)
}

func TestErrorsNameTheOffsetAndDepth(t *testing.T) {
	err := jsonscan.Valid([]byte(`{"a": tru}`), 10)
	var se *jsonscan.SyntaxError
	if !errors.As(err, &se) || se.Offset != 9 || !strings.Contains(err.Error(), "in literal true (expecting 'e')") {
		t.Fatalf("err = %v", err)
	}
	if err := jsonscan.Valid([]byte(`[[1]]`), 2); err != nil {
		t.Fatalf("two levels at a limit of two: %v", err)
	}
	err = jsonscan.Valid([]byte(`[{"a":[1]}]`), 2)
	if !errors.Is(err, jsonscan.ErrTooDeep) || !errors.As(err, &se) || se.Offset != 6 {
		t.Fatalf("three levels at a limit of two: %v", err)
	}
	if err := jsonscan.Valid([]byte(`{"a":1`), 10); err == nil || !strings.Contains(err.Error(), "unexpected end of JSON input") {
		t.Fatalf("err = %v", err)
	}
}

// TestScanStringEveryOffset puts each kind of special byte at every offset
// of strings around the scanner's 8-byte steps.
func TestScanStringEveryOffset(t *testing.T) {
	var s jsonscan.Scanner
	for n := 0; n <= 20; n++ {
		for p := 0; p < n; p++ {
			for _, ins := range []string{`"`, `\`, `\"`, `\n`, `\u00e9`, "\x01", "\x1f", "\x7f", "é", "\xff", "<", " "} {
				v := strings.Repeat("a", p) + ins + strings.Repeat("b", n-p)
				in := []byte(`{"k":"` + v + `","z":1}`)
				s.Reset(in, 10)
				var top []jsonscan.Member
				s.Members(0, 1, &top, nil)
				err := s.Err
				if (err == nil) != json.Valid(in) {
					t.Fatalf("%q: scanner %v, json.Valid %v", in, err, json.Valid(in))
				}
				if err != nil {
					continue
				}
				mb := top[0]
				var want string
				_ = json.Unmarshal(in[mb.V0:mb.V1], &want)
				plain := !strings.ContainsAny(v, "\\") && strings.IndexFunc(v, func(r rune) bool { return r >= 0x80 }) < 0 && utf8.ValidString(v)
				if mb.VPlain != plain || mb.Value(string(in), in) != want {
					t.Fatalf("%q: plain %v (want %v), value %q (want %q)", in, mb.VPlain, plain, mb.Value(string(in), in), want)
				}
			}
		}
	}
}
