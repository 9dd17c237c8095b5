package hosts

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sightline/sightline/schemas"
)

// TestMetaFollowsTheWireType: an object's stored metadata (Meta) repeats
// fields of the object as it travels (schemas.HostSnapshotObject, the one
// type the collector writes and schemas.ReadHostPart checks). Every field
// they share has the same JSON name and Go type, and objectPuts copies
// each, so what the processor accepted is what the store keeps.
func TestMetaFollowsTheWireType(t *testing.T) {
	fields := func(rt reflect.Type) map[string]reflect.Type {
		out := map[string]reflect.Type{}
		var walk func(reflect.Type)
		walk = func(rt reflect.Type) {
			for i := range rt.NumField() {
				f := rt.Field(i)
				if f.Anonymous {
					walk(f.Type)
					continue
				}
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				out[name] = f.Type
			}
		}
		walk(rt)
		return out
	}
	wire, meta := fields(reflect.TypeFor[schemas.HostSnapshotObject]()), fields(reflect.TypeFor[Meta]())
	shared := 0
	for name, mt := range meta {
		wt, ok := wire[name]
		if !ok {
			continue
		}
		shared++
		if name == "updated" { // a pointer on the wire (absent: the collection time)
			continue
		}
		if wt != mt {
			t.Errorf("field %q: %s on the wire, %s stored", name, wt, mt)
		}
	}
	// Copied by objectPuts: a value in every shared field comes back.
	o := &schemas.HostSnapshotObject{HostObject: schemas.HostObject{Host: "h", Name: "n", Type: "file", MD5: "m", Mode: "-rw", Owner: "o",
		Group: "g", Size: 1, Lines: 2, Words: 3, Bytes: 4, Error: "e"}, Truncated: true}
	s := NewSink(nil, Config{}, nil)
	puts, err := s.objectPuts(o, 7)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, p := range puts {
		if p.Key == MetaKey("n", "h") {
			got = string(p.Value)
		}
	}
	for _, frag := range []string{`"type":"file"`, `"md5":"m"`, `"mode":"-rw"`, `"owner":"o"`, `"group":"g"`, `"size":1`, `"lines":2`, `"words":3`, `"bytes":4`, `"truncated":true`, `"error":"e"`, `"tag":7`} {
		if !strings.Contains(got, frag) {
			t.Errorf("stored metadata %s lacks %s", got, frag)
		}
	}
	if shared < 15 {
		t.Errorf("only %d shared fields: the test no longer compares the types it means to", shared)
	}
}
