// Package locate is the contract between the trace search and the stores
// that can say where else a correlation ID lives (the stream, the archive,
// ...), so a store answers without importing the search.
package locate

import (
	"context"
	"time"
)

// Location says where else a correlation ID lives: a stream sequence, a
// graph node, an archive object.
type Location struct {
	Where  string `json:"where"`  // "stream", "graph", "archive", ...
	Ref    string `json:"ref"`    // SIGHTLINE_EVENTS:123, Host:web-1, s3://bucket/key
	Detail string `json:"detail"` // what is there
}

// Span is the time range to search; zero From and To mean all time.
type Span struct {
	From, To time.Time
}

// InSpan finds the locations of a correlation ID within a time span.
type InSpan func(ctx context.Context, correlationID string, span Span) ([]Location, error)
