package index

import (
	"testing"
	"time"

	"github.com/sightline/sightline/schemas"
)

// BenchmarkOneJSONScanner measures the two JSON readers of the
// repository on the same conformed events, in one run: the index's
// scanner (validates and records member offsets, no values) and
// schemas.Decode (the processors' decoder: builds map[string]any, the
// values the schema validator needs). If the index read events with
// schemas.Decode, "schemas-decode" is the least it would pay per event
// (before building and encoding the document). BENCHMARKS.md, "One JSON
// scanner".
//
//	go test -run '^$' -bench OneJSONScanner -count 6 ./sinks/index/
func BenchmarkOneJSONScanner(b *testing.B) {
	msgs := benchBatch(0, 1000, time.Now().UTC())
	perDoc := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs))/1000, "µs/doc")
	}
	b.Run("index-scanner", func(b *testing.B) {
		var s scanner
		b.ReportAllocs()
		for b.Loop() {
			for _, m := range msgs {
				if err := s.scanObject(m.Data); err != nil {
					b.Fatal(err)
				}
			}
		}
		perDoc(b)
	})
	b.Run("schemas-decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, m := range msgs {
				if _, err := schemas.Decode(m.Data); err != nil {
					b.Fatal(err)
				}
			}
		}
		perDoc(b)
	})
}
