package schemas_test

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/sightline/sightline/schemas"
)

// TestObjectSchemaMatchesType keeps the "object" of snapshot.schema.json
// and schemas.HostObject, the one type the host collector writes,
// the processor checks and the host store reads, naming the same fields.
func TestObjectSchemaMatchesType(t *testing.T) {
	src, err := schemas.Source("snapshot")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Defs map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	var inSchema []string
	for k := range doc.Defs["object"].Properties {
		inSchema = append(inSchema, k)
	}
	var inType []string
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			inType = append(inType, name)
		}
	}
	walk(reflect.TypeFor[schemas.HostObject]())
	sort.Strings(inSchema)
	sort.Strings(inType)
	if !reflect.DeepEqual(inSchema, inType) {
		t.Errorf("snapshot.schema.json object properties %v\nschemas.HostObject fields %v", inSchema, inType)
	}
}

func TestReadHostPart(t *testing.T) {
	part := func(objects string) []byte {
		return []byte(`{"scope":"host:web-1","tag":3,"objects":[` + objects + `]}`)
	}
	for _, c := range []struct {
		name, data, err string
	}{
		{"other scope", `{"scope":"svc:a","tag":1,"objects":[{"host":"x"}]}`, ""},
		{"good", string(part(`{"host":"web-1","name":"/etc/motd","content":"aGkK","encoding":"base64","size":3,"mtime":"2026-01-02T03:04:05Z","labels":{"a":"b"}}`)), ""},
		{"other host", string(part(`{"host":"web-2","name":"/etc/motd"}`)), `names the host "web-2"`},
		{"no host", string(part(`{"name":"/etc/motd"}`)), `names the host ""`},
		{"size string", string(part(`{"host":"web-1","name":"a","size":"big"}`)), `field "size": a JSON string where an integer is required`},
		{"count 1.0", string(part(`{"host":"web-1","name":"a","bytes":1.0}`)), `field "bytes"`},
		{"exit code huge", string(part(`{"host":"web-1","name":"a","exit_code":1e30}`)), `field "exit_code"`},
		{"mtime", string(part(`{"host":"web-1","name":"a","mtime":"yesterday"}`)), `parsing time`},
		{"bad base64", string(part(`{"host":"web-1","name":"a","encoding":"base64","content":"!"}`)), `base64`},
		{"encoding", string(part(`{"host":"web-1","name":"a","encoding":"gzip"}`)), `unknown encoding "gzip"`},
		{"name bytes", string(part(`{"host":"web-1","name":"` + strings.Repeat("é", 513) + `"}`)), `1 to 1024 bytes, this one is 1026`},
		{"no name", string(part(`{"host":"web-1"}`)), `1 to 1024 bytes, this one is 0`},
		{"null object", string(part(`null`)), `1 to 1024 bytes`},
		{"bad host", `{"scope":"host:-x","tag":1}`, `does not name a valid host`},
		{"tag 0", `{"scope":"host:x","tag":0}`, `must be positive`},
		{"tag 1.0", `{"scope":"host:x","tag":1.0}`, `field "tag"`},
	} {
		p, err := schemas.ReadHostPart([]byte(c.data))
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.err)
		case c.name == "good" && (p == nil || len(p.Objects) != 1 || p.Objects[0].Size != 3 || p.Objects[0].Labels["a"] != "b"):
			t.Errorf("good: read %+v", p)
		case c.name == "other scope" && p != nil:
			t.Errorf("a scope that is not a host's: %+v, want nil", p)
		}
	}
}
