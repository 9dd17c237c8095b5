package archive

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline/sinks/index"
)

// TraceLocator adapts Reader.Locate to the index's Locator interface, for
// `sightline trace` and the HTTP API: it lists the archive objects that may
// hold the correlation ID, searching an hour either side of the documents
// the index found (the whole archive when it found none, e.g. after the
// index's retention). base prefixes refs, e.g. "s3://sightline/archive/".
func TraceLocator(r *Reader, base string) index.Locator {
	return index.LocatorFunc(func(ctx context.Context, correlationID string, docs []index.Document) ([]index.Location, error) {
		var tr TimeRange
		for _, d := range docs {
			if d.Time.IsZero() {
				continue
			}
			if tr.From.IsZero() || d.Time.Before(tr.From) {
				tr.From = d.Time
			}
			if d.Time.After(tr.To) {
				tr.To = d.Time
			}
		}
		if !tr.From.IsZero() {
			tr.From, tr.To = tr.From.Add(-time.Hour), tr.To.Add(time.Hour)
		}
		locs, err := r.Locate(ctx, correlationID, tr)
		if err != nil {
			return nil, err
		}
		if base != "" && !strings.HasSuffix(base, "/") {
			base += "/"
		}
		out := make([]index.Location, len(locs))
		for i, l := range locs {
			m := l.Manifest
			how := "listed in its manifest"
			if m.Bloom != nil {
				how = "bloom filter match"
			}
			out[i] = index.Location{Where: "archive", Ref: base + l.Key,
				Detail: fmt.Sprintf("%d %s events %s..%s (%s)", m.Count, m.Type,
					m.FirstTime.Format(time.RFC3339), m.LastTime.Format(time.RFC3339), how)}
		}
		return out, nil
	})
}
