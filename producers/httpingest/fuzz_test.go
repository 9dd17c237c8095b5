package httpingest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"metric.search_made","data":{"query":"cats"}}`), false, "")
	f.Add([]byte("{\"type\":\"log.x\",\"data\":\"plain\"}\n\n{\"type\":\"metric.y\"}\n"), true, "")
	f.Add([]byte(`[{"type":"snapshot.hosts","data":{"scope":"s","tag":1}},{"type":"metric.a","id":"x","correlationid":"c"}]`), false, "")
	f.Add([]byte("GET / 200\nPOST /x 500\n"), true, "log.nginx")
	f.Add([]byte(`{"a":1}`), false, "metric.a")
	f.Add([]byte("{\"type\":\"metric.\xff\"}"), true, "")
	lim := limits{maxItems: 50, maxItemBytes: 1 << 10}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool, typ string) {
		items, err := decode(body, ndjson, typ, lim)
		if err != nil {
			var de *decodeError
			if !errors.As(err, &de) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if !errors.Is(err, errBadInput) && !errors.Is(err, errTooMany) && !errors.Is(err, errItemLarge) {
				t.Fatalf("unclassified error %v", err)
			}
			if items != nil || len(de.lines) > maxLineErrors {
				t.Fatalf("%d items, %d line errors with an error", len(items), len(de.lines))
			}
			for _, le := range de.lines {
				if le.Line < 1 || (ndjson && le.Line > bytes.Count(body, []byte("\n"))+1) || le.Error == "" {
					t.Fatalf("bad line error %+v", le)
				}
			}
			return
		}
		if len(items) == 0 || len(items) > lim.maxItems {
			t.Fatalf("%d items without error", len(items))
		}
		for _, it := range items {
			if !strings.HasPrefix(it.subject, "sightline.raw.") || strings.ContainsAny(it.subject, " *>\t\r\n") {
				t.Fatalf("subject %q", it.subject)
			}
			if len(it.data) == 0 || len(it.data) > lim.maxItemBytes {
				t.Fatalf("data of %d bytes", len(it.data))
			}
		}
	})
}
