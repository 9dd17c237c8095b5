package archive

import (
	"encoding/json"
	"testing"
	"time"
)

var headSeeds = []string{
	`{"specversion":"1.0","id":"255641de-425e-5f16-b3d7-22d498a4c6cd","source":"urn:sightline:subject:sightline.raw.metric.load","type":"metric.load","time":"2026-12-01T22:43:35.819389192Z","datacontenttype":"application/json","correlationid":"load-1-99999","ingesttime":"2026-12-01T22:43:35.819389192Z","lagms":0,"data":{"query":"cats and dogs","n_results":49,"pad":"xx"}}`,
	`{"id":"a","type":"log.app","time":"2026-11-22T05:00:00Z","data":{"a":[1,-2.5e+3,true,false,null,{"b":"\u00e9\n"}]}}`,
	` {"id":"a"} `,
	`{}`,
	`{"ID":"a","type":"metric.x","time":"2026-11-22T05:00:00Z"}`,
	`{"id":"a","id":"b"}`,
	`{"id":null,"time":"2026-11-22T05:00:00Z"}`,
	`{"id":"a\"b","time":"2026-11-22T05:00:00Z"}`,
	`{"i\u0064":"a"}`,
	`{"time":"not a time"}`,
	`{"time":"2026-11-22T05:00:00+01:00","id":"\xff"}`,
	`{"id":"a",}`,
	`{"id":"a"}x`,
	`{"n":01}`,
	`{"n":1.}`,
	`{"n":-}`,
	`[1,2]`,
	`"id"`,
	`{"data":{"x":[[[[]]]]},"id":"z"}`,
	`{"ſ":1,"K":2}`,
	``,
}

// FuzzScanHead checks that scanHead, when it answers, answers what
// json.Unmarshal does, and never takes an invalid body.
func FuzzScanHead(f *testing.F) {
	for _, s := range headSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := scanHead(data)
		if !ok {
			return
		}
		var want head
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("scanHead took %q, json.Unmarshal: %v", data, err)
		}
		if got.ID != want.ID || got.Type != want.Type || got.CorrelationID != want.CorrelationID || !got.Time.Equal(want.Time) || got.Time.Location().String() != want.Time.Location().String() {
			t.Fatalf("%q: scanHead %+v, json.Unmarshal %+v", data, got, want)
		}
	})
}

func TestScanHeadTakesTheProcessorsShape(t *testing.T) {
	h, ok := scanHead([]byte(headSeeds[0]))
	if !ok {
		t.Fatal("the processors' event shape fell back to encoding/json")
	}
	if h.ID != "255641de-425e-5f16-b3d7-22d498a4c6cd" || h.Type != "metric.load" || h.CorrelationID != "load-1-99999" ||
		!h.Time.Equal(time.Date(2026, 12, 1, 22, 43, 35, 819389192, time.UTC)) {
		t.Fatalf("head %+v", h)
	}
	for _, s := range []string{`{"ID":"a"}`, `{"id":"a","id":"b"}`, `{"id":null}`, `{"i\u0064":"a"}`, `{"id":"a"}x`, `{"n":01}`, `[1]`, `{"ſ":1}`} {
		if _, ok := scanHead([]byte(s)); ok {
			t.Errorf("scanHead answered for %s", s)
		}
	}
}

func BenchmarkDecodeHead(b *testing.B) {
	data := []byte(headSeeds[0])
	b.Run("scanHead", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, ok := scanHead(data); !ok {
				b.Fatal("fell back")
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var h head
			if err := json.Unmarshal(data, &h); err != nil {
				b.Fatal(err)
			}
		}
	})
}
