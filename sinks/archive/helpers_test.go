package archive_test

import (
	"fmt"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/archive/archivetest"
	"github.com/sightline/sightline/sinks/sinktest"
)

var ctxFor = archivetest.Context

// event builds the conformed message the processors would publish, as read
// from stream sequence seq.
func event(kind, name string, at time.Time, cid string, seq uint64) *stage.Message {
	m := archivetest.Event(kind, name, at, cid, fmt.Sprintf(`{"query":"cats","n":%d}`, seq))
	m.Meta = stage.Meta{Stream: "SIGHTLINE_EVENTS", Sequence: seq, Timestamp: at}
	return m
}

// events makes n metric events from seq first, step apart in event time.
func events(n int, start time.Time, step time.Duration, first uint64) []*stage.Message {
	out := make([]*stage.Message, n)
	for i := range out {
		name := "search_made"
		if i%3 == 2 {
			name = "download"
		}
		out[i] = event("metric", name, start.Add(time.Duration(i)*step), fmt.Sprintf("cid-%d", i%7), first+uint64(i))
	}
	return out
}

var (
	s3Config = archivetest.S3Config
	readBack = archivetest.ReadBack
)

func fileConfig(t testing.TB) archive.Config { return archivetest.FileConfig(t) }

func openBucket(t testing.TB, cfg archive.Config) *blob.Bucket {
	t.Helper()
	b, err := archive.OpenBucket(ctxFor(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// newProxy is the shared cuttable TCP proxy (sinks/sinktest).
func newProxy(t testing.TB, target string) *sinktest.Proxy { return sinktest.NewProxy(t, target) }
