package schemas_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/schemas"
)

func newValidator(t testing.TB) *schemas.Validator {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// golden reads testdata/<dir>/*.json into name -> decoded document.
func golden(t testing.TB, dir string) map[string]map[string]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no goldens in testdata/%s: %v", dir, err)
	}
	out := map[string]map[string]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := schemas.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = d.(map[string]any)
	}
	return out
}

// rawBody returns the body bytes of a testdata/raw case.
func rawBody(t testing.TB, c map[string]any) []byte {
	t.Helper()
	switch {
	case c["body"] != nil:
		return []byte(c["body"].(string))
	case c["body_json"] != nil:
		b, err := json.Marshal(c["body_json"])
		if err != nil {
			t.Fatal(err)
		}
		return b
	default:
		b, err := base64.StdEncoding.DecodeString(c["body_base64"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func TestGoldenEventsValidate(t *testing.T) {
	v := newValidator(t)
	for name, g := range golden(t, "events") {
		t.Run(name, func(t *testing.T) {
			doc := g["event"]
			if err := v.ValidateEvent(doc); err != nil {
				t.Fatalf("golden event does not validate: %v", err)
			}
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			var ev schemas.Event
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatalf("does not decode into schemas.Event: %v", err)
			}
			if ev.Kind()+"."+ev.Name() != ev.Type || ev.Time.IsZero() || ev.CorrelationID == "" {
				t.Fatalf("decoded event lost fields: %+v", ev)
			}
			// The Go types of the payloads match the schemas.
			switch ev.Kind() {
			case schemas.KindSnapshot:
				var sd schemas.SnapshotData
				if err := json.Unmarshal(ev.Data, &sd); err != nil {
					t.Fatalf("data does not decode into SnapshotData: %v", err)
				}
				if sd.Scope != ev.SyncScope || sd.Tag <= 0 {
					t.Fatalf("snapshot data scope %q tag %d, envelope %q %q", sd.Scope, sd.Tag, ev.SyncScope, ev.SyncTag)
				}
			case schemas.KindLog:
				var ld schemas.LogData
				if err := json.Unmarshal(ev.Data, &ld); err != nil {
					t.Fatalf("data does not decode into LogData: %v", err)
				}
				if ld.Service == "" {
					t.Fatalf("log data without service: %s", ev.Data)
				}
			}
		})
	}
}

// TestGoldenRejectedPayloads checks that the bodies the pipeline rejects
// for their schema are rejected by the schema alone, with every problem
// naming the JSON pointer of the offending value.
func TestGoldenRejectedPayloads(t *testing.T) {
	v := newValidator(t)
	raw := golden(t, "raw")
	n := 0
	for name, d := range golden(t, "dlq") {
		if d["class"] != "schema" {
			continue
		}
		c := raw[name]
		if c == nil {
			t.Fatalf("dlq/%s.json has no raw input", name)
		}
		if c["headers"] != nil {
			continue // its payload is completed from headers by the processor
		}
		n++
		t.Run(name, func(t *testing.T) {
			kind := strings.Split(c["subject"].(string), ".")[2]
			doc, err := schemas.Decode(rawBody(t, c))
			if err != nil {
				t.Fatal(err)
			}
			err = v.ValidatePayload(kind, doc)
			var se *schemas.SchemaError
			if !errors.As(err, &se) {
				t.Fatalf("want a *SchemaError, got %v", err)
			}
			for _, p := range se.Problems {
				if !strings.HasPrefix(p, "at /") {
					t.Errorf("problem %q does not name a location", p)
				}
			}
			for _, frag := range d["reason_contains"].([]any) {
				if f := frag.(string); strings.HasPrefix(f, "/") && !strings.Contains(err.Error(), f) {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
		})
	}
	if n < 4 {
		t.Fatalf("only %d schema rejections in the goldens", n)
	}
}

// goodEvent is a valid snapshot event to mutate.
func goodEvent() map[string]any {
	return map[string]any{
		"specversion": "1.0", "id": "e1", "source": "urn:x", "type": "snapshot.graph",
		"time": "2024-05-01T12:00:00Z", "datacontenttype": "application/json",
		"correlationid": "c1", "syncscope": "lab", "synctag": "42", "lagms": json.Number("0"),
		"site": "lab1",
		"data": map[string]any{"scope": "lab", "tag": json.Number("42")},
	}
}

func TestEnvelopeRejects(t *testing.T) {
	v := newValidator(t)
	if err := v.ValidateEvent(goodEvent()); err != nil {
		t.Fatalf("the base event must validate: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(m map[string]any)
		want   string
	}{
		{"missing id", func(m map[string]any) { delete(m, "id") }, "at /: missing property 'id'"},
		{"missing correlationid", func(m map[string]any) { delete(m, "correlationid") }, "missing property 'correlationid'"},
		{"specversion", func(m map[string]any) { m["specversion"] = "0.3" }, "at /specversion"},
		{"unknown kind in type", func(m map[string]any) { m["type"] = "trace.x" }, "at /type"},
		{"time not RFC 3339", func(m map[string]any) { m["time"] = "yesterday" }, "at /time"},
		{"synctag with leading zero", func(m map[string]any) { m["synctag"] = "042" }, "at /synctag"},
		{"snapshot without syncscope", func(m map[string]any) { delete(m, "syncscope") }, "missing property 'syncscope'"},
		{"bad traceparent", func(m map[string]any) { m["traceparent"] = "00-xyz" }, "at /traceparent"},
		{"attribute name upper case", func(m map[string]any) { m["Site"] = "x" }, "at /"},
		{"attribute is an object", func(m map[string]any) { m["site"] = map[string]any{"a": "b"} }, "at /site"},
		{"lagms not integer", func(m map[string]any) { m["lagms"] = json.Number("1.5") }, "at /lagms"},
		{"data violates payload", func(m map[string]any) { delete(m["data"].(map[string]any), "tag") }, "data: at /: missing property 'tag'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := goodEvent()
			c.mutate(m)
			err := v.ValidateEvent(m)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestPayloadSchemas(t *testing.T) {
	v := newValidator(t)
	cases := []struct {
		kind, body string
		want       string // "" when valid
	}{
		{"metric", `{"query":"cats","n_results":3,"nested":{"any":["thing"]}}`, ""},
		{"metric", `{}`, ""},
		{"metric", `[1]`, "at /: got array, want object"},
		{"metric", `{"a b":1}`, `at /: property name "a b"`},
		{"log", `{"message":"x","level":"warn","service":"s","host":"h","extra":{"k":1}}`, ""},
		{"log", `{"level":"info"}`, "missing property 'message'"},
		{"log", `{"message":"x","level":"loud"}`, "at /level"},
		{"log", `{"message":"x","host":3}`, "at /host"},
		{"snapshot", `{"scope":"aws:1:eu-west-1","tag":1,"nodes":[{"label":"Host","labels":["Machine"],"key":"h","properties":{"cores":8,"tags":["a","b"],"gone":null}}],"relationships":[{"type":"RUNS_ON","from":{"label":"S","key":"s"},"to":{"label":"Host","key":"h"}}],"objects":[{"host":"h","name":"/etc/hosts","anything":1}]}`, ""},
		{"snapshot", `{"scope":"s","tag":0}`, "at /tag"},
		{"snapshot", `{"scope":"s","tag":9007199254740992}`, "at /tag"},
		{"snapshot", `{"scope":"-s","tag":1}`, "at /scope"},
		{"snapshot", `{"scope":"s","tag":1,"extra":true}`, "at /"},
		{"snapshot", `{"scope":"s","tag":1,"final":true}`, "missing property 'count'"},
		{"snapshot", `{"scope":"s","tag":1,"nodes":[{"label":"Host","key":""}]}`, "at /nodes/0/key"},
		{"snapshot", `{"scope":"s","tag":1,"nodes":[{"label":"Host","key":"k","properties":{"id":"x"}}]}`, "at /nodes/0/properties/id: not allowed"},
		{"snapshot", `{"scope":"s","tag":1,"nodes":[{"label":"Host","key":"k","properties":{"m":{"a":1}}}]}`, "at /nodes/0/properties/m"},
		{"snapshot", `{"scope":"s","tag":1,"relationships":[{"type":"RUNS ON","from":{"label":"A","key":"a"},"to":{"label":"B","key":"b"}}]}`, "at /relationships/0/type"},
		{"snapshot", `{"scope":"s","tag":1,"relationships":[{"type":"R","from":{"label":"A"},"to":{"label":"B","key":"b"}}]}`, "at /relationships/0/from: missing property 'key'"},
		{"snapshot", `{"scope":"s","tag":1,"objects":[{"host":"h"}]}`, "at /objects/0: missing property 'name'"},
	}
	for _, c := range cases {
		t.Run(c.kind+" "+c.body, func(t *testing.T) {
			doc, err := schemas.Decode([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			err = v.ValidatePayload(c.kind, doc)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("accepted, want %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
	if err := v.ValidatePayload("trace", map[string]any{}); err == nil || !strings.Contains(err.Error(), `unknown kind "trace"`) {
		t.Fatalf("unknown kind: %v", err)
	}
}

// TestSchemaErrorIsBounded keeps a DLQ reason short on a body with many
// problems.
func TestSchemaErrorIsBounded(t *testing.T) {
	v := newValidator(t)
	var b strings.Builder
	b.WriteString(`{"scope":"s","tag":1,"nodes":[`)
	for i := 0; i < 50; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"label":"bad label","key":""}`)
	}
	b.WriteString(`]}`)
	doc, _ := schemas.Decode([]byte(b.String()))
	var se *schemas.SchemaError
	if err := v.ValidatePayload("snapshot", doc); !errors.As(err, &se) {
		t.Fatalf("want *SchemaError, got %v", err)
	}
	if len(se.Problems) != 6 || !strings.HasPrefix(se.Problems[5], "and ") {
		t.Fatalf("want 5 problems and a count, got %d: %v", len(se.Problems), se.Problems)
	}
}

func TestDecode(t *testing.T) {
	cases := []struct {
		in   string
		want any
		err  bool
	}{
		{`{"a":1}`, map[string]any{"a": json.Number("1")}, false},
		{" \n{\"a\":1}\t\r\n ", map[string]any{"a": json.Number("1")}, false},
		{`9007199254740993`, json.Number("9007199254740993"), false}, // kept exact
		{`1.7e9`, json.Number("1.7e9"), false},
		{`"s"`, "s", false},
		{`null`, nil, false},
		{``, nil, true},
		{`   `, nil, true},
		{`{"a":1} {"b":2}`, nil, true},
		{`{"a":1}}`, nil, true},
		{`[1]]`, nil, true},
		{`{"a":1}x`, nil, true},
		{`{"a":`, nil, true},
		{`{'a':1}`, nil, true},
	}
	for _, c := range cases {
		got, err := schemas.Decode([]byte(c.in))
		if (err != nil) != c.err {
			t.Errorf("Decode(%q): err %v, want error %v", c.in, err, c.err)
			continue
		}
		if !c.err && !reflect.DeepEqual(got, c.want) {
			t.Errorf("Decode(%q) = %#v, want %#v", c.in, got, c.want)
		}
	}
}

func TestEventJSON(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 0, 0, 500, time.FixedZone("x", 3600))
	cases := []struct {
		name string
		ev   schemas.Event
		want map[string]any // top-level members to check after decoding
	}{
		{"minimal", schemas.Event{ID: "a", Source: "s", Type: "metric.m", Time: ts, CorrelationID: "c", Data: json.RawMessage(`{"x":1}`)},
			map[string]any{"specversion": "1.0", "datacontenttype": "application/json", "time": "2024-05-01T11:00:00.0000005Z", "lagms": json.Number("0")}},
		{"attributes inline, reserved ones skipped", schemas.Event{ID: "a", Source: "s", Type: "metric.m", Time: ts, CorrelationID: "c",
			Attributes: map[string]string{"site": "lab1", "id": "evil", "data": "evil"}, Data: json.RawMessage(`{}`)},
			map[string]any{"site": "lab1", "id": "a", "data": map[string]any{}}},
		{"unusual strings stay valid JSON", schemas.Event{ID: "a\"b\\c", Source: "s\x01<>&", Type: "log.l", Time: ts, CorrelationID: "c\xff",
			Producer: "p\u2028q", Data: json.RawMessage(`{"message":""}`)},
			map[string]any{"id": "a\"b\\c", "source": "s\x01<>&", "correlationid": "c\ufffd", "producer": "p\u2028q"}},
		{"nil data is null", schemas.Event{ID: "a", Source: "s", Type: "metric.m", Time: ts, CorrelationID: "c"},
			map[string]any{"data": nil}},
		{"snapshot extensions", schemas.Event{ID: "a", Source: "s", Type: "snapshot.g", Time: ts, CorrelationID: "c", SyncScope: "lab", SyncTag: "42",
			IngestTime: ts.Add(time.Second), LagMs: 1000, TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Data: json.RawMessage(`{}`)},
			map[string]any{"syncscope": "lab", "synctag": "42", "ingesttime": "2024-05-01T11:00:01.0000005Z", "lagms": json.Number("1000"),
				"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := json.Marshal(&c.ev)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b) {
				t.Fatalf("invalid JSON: %s", b)
			}
			doc, err := schemas.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			m := doc.(map[string]any)
			for k, want := range c.want {
				if !reflect.DeepEqual(m[k], want) {
					t.Errorf("%s = %#v, want %#v", k, m[k], want)
				}
			}
			var back schemas.Event
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !back.Time.Equal(c.ev.Time) || back.ID != c.ev.ID || back.SyncTag != c.ev.SyncTag || back.LagMs != c.ev.LagMs {
				t.Errorf("round trip: %+v", back)
			}
			for k, v := range c.ev.Attributes {
				if !schemas.ReservedAttribute(k) && back.Attributes[k] != v {
					t.Errorf("attribute %s = %q, want %q", k, back.Attributes[k], v)
				}
			}
			var again bytes.Buffer
			b2, _ := json.Marshal(&back)
			_ = json.Compact(&again, b2)
			if c.ev.Attributes == nil && !bytes.Equal(b, again.Bytes()) && !strings.Contains(c.name, "unusual") {
				t.Errorf("re-encoding differs:\n%s\n%s", b, again.Bytes())
			}
		})
	}
}

func TestEventKindName(t *testing.T) {
	cases := []struct{ typ, kind, name string }{
		{"metric.search_made", "metric", "search_made"},
		{"log.download-server", "log", "download-server"},
		{"snapshot", "snapshot", ""},
		{"", "", ""},
	}
	for _, c := range cases {
		ev := schemas.Event{Type: c.typ}
		if ev.Kind() != c.kind || ev.Name() != c.name {
			t.Errorf("%q: Kind %q Name %q, want %q %q", c.typ, ev.Kind(), ev.Name(), c.kind, c.name)
		}
	}
}

func TestKindsAndSources(t *testing.T) {
	for _, k := range schemas.Kinds() {
		if !schemas.KnownKind(k) {
			t.Errorf("Kinds lists %q but KnownKind says no", k)
		}
		src, err := schemas.Source(k)
		if err != nil || !json.Valid(src) {
			t.Errorf("Source(%s): %v", k, err)
		}
	}
	if schemas.KnownKind("trace") || schemas.KnownKind("") {
		t.Error("KnownKind accepts an unknown kind")
	}
	if _, err := schemas.Source("envelope"); err != nil {
		t.Errorf("Source(envelope): %v", err)
	}
	if _, err := schemas.Source("nope"); err == nil {
		t.Error("Source(nope) succeeded")
	}
}

// FuzzDecode: Decode accepts exactly what encoding/json calls valid, and
// what it returns encodes back to JSON that decodes to the same value.
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{"raw", "events"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	for _, s := range []string{`{"a":1}}`, `1 2`, `[`, `"\ud800"`, "\"\xff\"", `1e999`, `-0`, ` `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := schemas.Decode(b)
		if valid := json.Valid(b); (err == nil) != valid {
			t.Fatalf("Decode err %v, json.Valid %v for %q", err, valid, b)
		}
		if err != nil {
			return
		}
		enc, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		v2, err := schemas.Decode(enc)
		if err != nil {
			t.Fatalf("decode of re-encoding %q: %v", enc, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip changed the value: %#v -> %#v", v, v2)
		}
	})
}
