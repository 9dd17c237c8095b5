package archive

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/locate"
)

// TraceLocator finds the archive objects that may hold a correlation ID
// within a time span (internal/locate), for `sightline trace` and the HTTP
// API (wired with index.SpanLocator). base prefixes refs, e.g.
// "s3://sightline/archive/".
func TraceLocator(r *Reader, base string) locate.InSpan {
	if base != "" && !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return func(ctx context.Context, correlationID string, span locate.Span) ([]locate.Location, error) {
		locs, err := r.Locate(ctx, correlationID, TimeRange{From: span.From, To: span.To})
		if err != nil {
			return nil, err
		}
		out := make([]locate.Location, len(locs))
		for i, l := range locs {
			m := l.Manifest
			how := "listed in its manifest"
			if m.Bloom != nil {
				how = "bloom filter match"
			}
			out[i] = locate.Location{Where: "archive", Ref: base + l.Key,
				Detail: fmt.Sprintf("%d %s events %s..%s (%s)", m.Count, m.Type,
					m.FirstTime.Format(time.RFC3339), m.LastTime.Format(time.RFC3339), how)}
		}
		return out, nil
	}
}
