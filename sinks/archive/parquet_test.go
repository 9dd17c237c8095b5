package archive_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/archive/archivetest"
	"github.com/sightline/sightline/sinks/sinktest"
)

// Parquet output (archive.format: parquet) on the real S3 server and a
// local directory: same partitions, names and manifests as NDJSON; the rows
// read back with parquet-go equal the events, and the reader (trace,
// replay) rebuilds each event byte for byte.
func TestParquet(t *testing.T) {
	for name, backend := range backends {
		t.Run(name, func(t *testing.T) {
			cfg := backend(t)
			cfg.Format = archive.FormatParquet
			ctx := ctxFor(t)
			s := newSink(t, cfg)
			gen := sinktest.NewGenerator(t)
			evs := gen.Mixed(t, 60)
			byID := map[string]*stage.Message{}
			for _, m := range evs {
				byID[m.ID] = m
			}
			for range 2 { // the second write is a redelivery: same objects
				if err := s.Write(ctx, evs); err != nil {
					t.Fatal(err)
				}
			}
			b, err := archive.OpenBucket(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			r := archive.NewReader(b)
			objs, err := r.Objects(ctx, archive.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) < 3 {
				t.Fatalf("%d objects, want one per (kind, type, hour) partition (>= 3)", len(objs))
			}
			rows := 0
			for _, o := range objs {
				if !strings.HasSuffix(o.Key, ".parquet") || !strings.HasPrefix(o.Key, "kind="+o.Kind+"/type="+o.Name+"/date=") {
					t.Fatalf("object key %s", o.Key)
				}
				m, err := r.Manifest(ctx, o.Key)
				if err != nil {
					t.Fatal(err)
				}
				if m.Format != archive.FormatParquet || m.Compression != "snappy" || m.Count == 0 || m.FirstSequence == 0 {
					t.Fatalf("manifest of %s: %+v", o.Key, m)
				}
				body, err := b.ReadAll(ctx, o.Key)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				err = archive.ReadParquetRows(bytes.NewReader(body), int64(len(body)), func(row *archive.ParquetRow) error {
					n++
					rows++
					ev := byID[row.ID]
					if ev == nil {
						t.Fatalf("row of unknown event %s", row.ID)
					}
					want := decode(t, ev.Data)
					checkRow(t, row, want, ev)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if n != m.Count {
					t.Fatalf("%s: %d rows, manifest says %d", o.Key, n, m.Count)
				}
			}
			if rows != len(evs) {
				t.Fatalf("%d rows after writing %d events twice, want %d", rows, len(evs), len(evs))
			}
			// The reader rebuilds each event as the processors encoded it.
			got, lines := archivetest.ReadBack(t, b)
			if lines != len(evs) {
				t.Fatalf("ReadBack: %d lines", lines)
			}
			for id, line := range got {
				if line != string(byID[id].Data) {
					t.Fatalf("event %s read back as\n%s\nwant\n%s", id, line, byID[id].Data)
				}
			}
		})
	}
}

func decode(t *testing.T, data []byte) map[string]any {
	t.Helper()
	m, err := archive.DecodeForTest(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func checkRow(t *testing.T, row *archive.ParquetRow, want map[string]any, ev *stage.Message) {
	t.Helper()
	str := func(k string) string { s, _ := want[k].(string); return s }
	wt, err := time.Parse(time.RFC3339Nano, str("time"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		col       string
		got, want any
	}{
		{"id", row.ID, str("id")},
		{"type", row.Type, str("type")},
		{"source", row.Source, str("source")},
		{"time", row.Time.UTC(), wt.UTC()},
		{"correlationid", row.CorrelationID, str("correlationid")},
		{"subject", row.Subject, str("subject")},
		{"syncscope", row.SyncScope, str("syncscope")},
		{"synctag", row.SyncTag, str("synctag")},
		{"stream", row.Stream, ev.Meta.Stream},
		{"sequence", row.Sequence, int64(ev.Meta.Sequence)},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Fatalf("event %s column %s = %v, want %v", row.ID, c.col, c.got, c.want)
		}
	}
	data, err := archive.DecodeForTest([]byte(`{"d":` + row.Data + `}`))
	if err != nil {
		t.Fatalf("data column of %s: %v", row.ID, err)
	}
	if a, b := archive.CanonicalForTest(data["d"]), archive.CanonicalForTest(want["data"]); a != b {
		t.Fatalf("data column of %s = %s, want %s", row.ID, a, b)
	}
	attrs, err := archive.DecodeForTest([]byte(row.Attributes))
	if err != nil {
		t.Fatalf("attributes column of %s: %v", row.ID, err)
	}
	for _, k := range []string{"site", "env", "specversion", "datacontenttype", "producer"} {
		if attrs[k] != want[k] {
			t.Fatalf("attributes column of %s: %s = %v, want %v", row.ID, k, attrs[k], want[k])
		}
	}
}
