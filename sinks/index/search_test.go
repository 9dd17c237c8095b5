package index

import (
	"context"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/locate"
)

// SpanLocator searches an hour either side of the documents found, or all
// time when none were.
func TestSpanLocator(t *testing.T) {
	at := time.Date(2026, 11, 22, 5, 10, 0, 0, time.UTC)
	var got []locate.Span
	loc := SpanLocator(func(_ context.Context, _ string, s locate.Span) ([]locate.Location, error) {
		got = append(got, s)
		return nil, nil
	})
	_, _ = loc.Locate(context.Background(), "x", nil)
	_, _ = loc.Locate(context.Background(), "x", []Document{{Time: at}, {}, {Time: at.Add(time.Minute)}})
	if len(got) != 2 || !got[0].From.IsZero() || !got[1].From.Equal(at.Add(-time.Hour)) || !got[1].To.Equal(at.Add(61*time.Minute)) {
		t.Fatalf("spans %v", got)
	}
}
