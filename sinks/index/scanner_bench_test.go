package index

import (
	"testing"
	"time"

	"github.com/sightline/sightline/schemas"
)

// BenchmarkOneJSONScanner measures the two ways the repository reads
// conformed events with the one scanner (internal/jsonscan), in one run:
// the index's scanObject (validates and records member offsets, no
// values) and schemas.Decode (the processors' decoder: builds
// map[string]any on the scanner's tokens, the values the schema validator
// needs). BENCHMARKS.md, "One JSON scanner".
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
