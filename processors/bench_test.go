package processors_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
)

// BenchmarkProcess measures validate → conform → enrich on one 512-byte
// metric body (the core pipeline benchmark's payload) without the bus:
//
//	go test -run '^$' -bench BenchmarkProcess -benchmem ./processors/
func BenchmarkProcess(b *testing.B) {
	v, err := schemas.NewValidator()
	if err != nil {
		b.Fatal(err)
	}
	p, _ := processors.Standard(processors.Config{Attributes: map[string]string{"site": "eu-1", "env": "prod"}}, v)
	s := fmt.Sprintf(`{"query":"cats and dogs","n_results":%d,"user_id":"u%07d","session":"s-%d","page":"/search","ab_bucket":"b","pad":"`, 7, 42, 977)
	body := []byte(s + strings.Repeat("x", 512-len(s)-2) + `"}`)
	ts := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var seq uint64
		for pb.Next() {
			seq++
			in := &stage.Message{Subject: "sightline.raw.metric.search_made", Header: stage.Header{}, Data: body,
				Meta: stage.Meta{Stream: "SIGHTLINE_RAW", Sequence: seq, Timestamp: ts}}
			if _, err := p.Process(context.Background(), in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
