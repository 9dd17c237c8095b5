package archive_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/locate"
	"github.com/sightline/sightline/sinks/archive"
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
	for _, span := range []locate.Span{{}, {From: at.Add(-time.Hour), To: at.Add(time.Hour)}} {
		got, err := loc(ctxFor(t), "req-42", span)
		if err != nil || len(got) != 1 || got[0].Where != "archive" ||
			!strings.HasPrefix(got[0].Ref, "file:///archive/kind=log/type=api/date=2026-11-22/hour=05/events-") {
			t.Fatalf("span %v: %+v, %v", span, got, err)
		}
	}
	got, err := loc(ctxFor(t), "req-42", locate.Span{From: at.Add(4 * time.Hour), To: at.Add(6 * time.Hour)})
	if err != nil || len(got) != 0 {
		t.Fatalf("out of range: %+v, %v", got, err)
	}
}
