package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sightline/sightline/schemas"
)

// stdDecode is the reference: encoding/json with UseNumber, one value,
// only whitespace after it, and json.Compact for the compact form.
func stdDecode(b []byte) (any, []byte, error) {
	if !json.Valid(b) {
		return nil, nil, errors.New("invalid")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, nil, err
	}
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		return nil, nil, err
	}
	return v, c.Bytes(), nil
}

var decodeSeeds = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e-7`, `-12E+3`, `"x"`,
	` { "a" : [ 1 , 2 , { "b" : null } ] , "c" : "d" } `,
	`{"a":1,"a":2}`,
	`"\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r"`,
	`"\ud83d"`, `"\ude00"`, `"\ud83d\u0041"`, `"\ud83dx"`, `"\ud83d\ud83d\ude00"`,
	`{"\uD800k":["a\ud800b<&>\u00e9",{"x":"\\ud800"}],"p":"\ud83d\ude00\udc00"}`, `"\ud83d\\ude00"`, `"\ud83d\n"`,
	"\"caf\xc3\xa9 \xff bad\"",
	"{\"k\xff\":\"v\"}",
	`{"query":"cats and dogs","n_results":3,"user_id":"1234"}`,
	`{"a":[[[[]]]],"b":{"c":{"d":{}}}}`,
	"\t\n\r [1,\n2]\n",
	// invalid
	``, ` `, `{`, `}`, `[1,]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{a:1}`, `01`, `1.`, `.5`, `1e`, `-`, `+1`,
	`tru`, `nul`, `"abc`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"a\nb\"", `{"a":1}}`, `[1] 2`, `{"a":1} x`,
	`NaN`, `Infinity`, `[1 2]`, `{"a":1 "b":2}`, `'a'`,
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, s := range decodeSeeds {
		checkDecode(t, []byte(s))
	}
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	if _, err := schemas.Decode([]byte(deep)); err == nil {
		t.Error("10001 nested arrays decoded; want a max-depth error")
	}
	ok := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	if _, err := schemas.Decode([]byte(ok)); err != nil {
		t.Errorf("10000 nested arrays: %v", err)
	}
}

func TestDecodeErrorsNameTheOffset(t *testing.T) {
	_, err := schemas.Decode([]byte(`{"a": tru}`))
	var se *schemas.SyntaxError
	if !errors.As(err, &se) || se.Offset != 9 || !strings.Contains(err.Error(), "in literal true") {
		t.Fatalf("err = %v, want a SyntaxError at offset 9 about literal true", err)
	}
	_, err = schemas.Decode([]byte(`{"a":1`))
	if err == nil || !strings.Contains(err.Error(), "unexpected end of JSON input") {
		t.Fatalf("err = %v, want unexpected end", err)
	}
}

func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	want, wantC, wantErr := stdDecode(b)
	got, gotC, err := schemas.DecodeCompact(b, []byte("prefix:"))
	if errors.Is(err, schemas.ErrNumberTooLong) {
		// A raw body's limit encoding/json does not have: Decode, which
		// reads whole events, has none.
		if wantErr != nil || !strings.Contains(err.Error(), "over the limit of") {
			t.Fatalf("DecodeCompact(%q) error = %v, encoding/json error = %v", b, err, wantErr)
		}
		return
	}
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("DecodeCompact(%q) error = %v, encoding/json error = %v", b, err, wantErr)
	}
	if err != nil {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeCompact(%q) = %#v, encoding/json = %#v", b, got, want)
	}
	gotC, ok := bytes.CutPrefix(gotC, []byte("prefix:"))
	if !ok {
		t.Fatalf("DecodeCompact(%q) compact = %q lost what dst held", b, gotC)
	}
	if !bytes.Equal(gotC, wantC) {
		// Only a string with a lone surrogate escape is written anew, as
		// its decoded value: the same value, the escape gone.
		again, err := schemas.Decode(gotC)
		if !bytes.Contains(bytes.ToLower(b), []byte(`\ud`)) || err != nil || !reflect.DeepEqual(again, want) || !json.Valid(gotC) {
			t.Fatalf("DecodeCompact(%q) compact = %q, json.Compact = %q (%v)", b, gotC, wantC, err)
		}
	}
	if schemas.LoneSurrogateEscape(gotC) {
		t.Fatalf("DecodeCompact(%q) compact = %q keeps a lone surrogate escape", b, gotC)
	}
	got2, err := schemas.Decode(b)
	if err != nil || !reflect.DeepEqual(got2, want) {
		t.Fatalf("Decode(%q) = %#v, %v", b, got2, err)
	}
}

// FuzzDecodeMatchesEncodingJSON: the one-pass decoder accepts exactly what
// encoding/json accepts and returns the same value and compact bytes.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
	})
}

// BenchmarkDecode compares the one-pass decode+compact with what it
// replaced (encoding/json Decoder with UseNumber, then json.Compact).
func BenchmarkDecode(b *testing.B) {
	body := []byte(`{"query":"cats and dogs","n_results":7,"user_id":"u0000042","session":"s-977","page":"/search","ab_bucket":"b","pad":"` + strings.Repeat("x", 400) + `"}`)
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				b.Fatal(err)
			}
			var c bytes.Buffer
			if err := json.Compact(&c, body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-pass", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := schemas.DecodeCompact(body, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
