// Package index is the index sink and the trace/log search side of
// Sightline: it bulk-indexes every conformed event and dead letter into
// OpenSearch or Elasticsearch (Remote), or into an embedded index
// (Embedded) when no server is configured, and answers "everything that
// carried this correlation ID" (Trace) and log searches (Search). The
// server's HTTP client is package esclient; the HTTP API, its client and
// the web page are package searchapi; the terminal output is
// internal/searchcli. Imports go one way: those packages never import
// each other backwards (internal/archtest).
//
// Size: ~3,000 lines and ~90 exported names, over the project's usual
// bound, because one package holds the one contract both backends keep —
// the document built from an event, the query model (Query, TraceQuery,
// Cursor, Timeline) and its two implementations (Remote, Embedded) — and
// the differential tests that hold them to the same answers read both
// from inside. The parts with their own vocabulary are already out:
// esclient (HTTP), querylang (the search language), searchapi (HTTP API).
package index

import (
	"context"

	"github.com/sightline/sightline/internal/stage"
)

// Index is a sink that can also be searched: Remote and Embedded.
type Index interface {
	stage.Sink
	Searcher
	// RunRetention deletes expired data now and periodically until ctx is done.
	RunRetention(ctx context.Context)
}

var (
	_ Index = (*Remote)(nil)
	_ Index = (*Embedded)(nil)
)

// Open returns the remote index when cfg.URLs is set, else the embedded one.
func Open(cfg Config, opts ...Option) (Index, error) {
	if cfg.Remote() {
		return NewRemote(cfg, opts...)
	}
	return OpenEmbedded(cfg, opts...)
}
