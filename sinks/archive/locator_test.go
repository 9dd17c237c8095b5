package archive_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/index"
)

func TestTraceLocator(t *testing.T) {
	cfg := fileConfig(t)
	s := newSink(t, cfg)
	at := time.Date(2026, 11, 22, 5, 10, 0, 0, time.UTC)
	batch := events(10, at, time.Minute, 1)
	batch[4] = event("log", "api", at.Add(4*time.Minute), "req-42", 5)
	if err := s.Write(ctxFor(t), batch); err != nil {
		t.Fatal(err)
	}
	loc := archive.TraceLocator(archive.NewReader(openBucket(t, cfg)), "file:///archive")
	for _, docs := range [][]index.Document{nil, {{ID: "x", Time: at}}} {
		got, err := loc.Locate(ctxFor(t), "req-42", docs)
		if err != nil || len(got) != 1 || got[0].Where != "archive" ||
			!strings.HasPrefix(got[0].Ref, "file:///archive/kind=log/type=api/date=2026-11-22/hour=05/events-") {
			t.Fatalf("docs %v: %+v, %v", docs, got, err)
		}
	}
	got, err := loc.Locate(ctxFor(t), "req-42", []index.Document{{Time: at.Add(5 * time.Hour)}})
	if err != nil || len(got) != 0 {
		t.Fatalf("out of range: %+v, %v", got, err)
	}
}
