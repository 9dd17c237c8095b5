package graph

import (
	"context"
	"fmt"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
)

// OpenSync is a sync still open (parts or its final marker missing) for
// longer than graph.open_sync_max_age.
type OpenSync struct {
	Scope       string        `json:"scope"`
	Tag         int64         `json:"tag"`
	Age         time.Duration `json:"age"`
	Parts       int64         `json:"parts"`
	Applied     int64         `json:"applied"`
	Expected    int64         `json:"expected"` // -1 until the final marker arrived
	Correlation string        `json:"correlationid,omitempty"`
}

// maxListedOpen bounds the open syncs one check lists (and logs).
const maxListedOpen = 100

// CheckOpenSyncs lists (oldest first, at most 100) the syncs open for
// longer than graph.open_sync_max_age, logs each one once, and sets the
// metrics sightline_graph_open_syncs_over_age (how many) and
// sightline_graph_oldest_open_sync_seconds (age of the oldest open sync).
func (s *Sink) CheckOpenSyncs(ctx context.Context) ([]OpenSync, error) {
	now := time.Now()
	p := map[string]any{"cutoff": now.Add(-s.cfg.OpenSyncMaxAge).UnixMilli(), "limit": int64(maxListedOpen)}
	res, err := neo4j.ExecuteQuery(ctx, s.driver, `
MATCH (y:`+labelSync+` {status: 'open'})
WITH count(y) AS open, min(y.started) AS oldest, collect(CASE WHEN y.started < $cutoff THEN y END) AS late
RETURN open, oldest, size(late) AS over,
       [y IN late | {scope: y.scope, tag: y.tag, started: y.started, parts: size(y.parts), applied: y.applied,
                     expected: coalesce(y.expected, -1), cid: coalesce(y.correlationid, '')}][0..$limit] AS list`,
		p, neo4j.EagerResultTransformer, neo4j.ExecuteQueryWithDatabase(s.cfg.Database))
	if err != nil {
		return nil, fmt.Errorf("graph sink: open syncs: %w", err)
	}
	rec := res.Records[0]
	over := asInt(rec, "over")
	s.m.openOver.Set(float64(over))
	if oldest := asInt(rec, "oldest"); oldest > 0 {
		s.m.oldestOpen.Set(now.Sub(time.UnixMilli(oldest)).Seconds())
	} else {
		s.m.oldestOpen.Set(0)
	}
	v, _ := rec.Get("list")
	var out []OpenSync
	seen := map[string]bool{}
	for _, e := range v.([]any) {
		m, _ := e.(map[string]any)
		get := func(k string) int64 { n, _ := m[k].(int64); return n }
		o := OpenSync{Tag: get("tag"), Parts: get("parts"), Applied: get("applied"), Expected: get("expected"),
			Age: now.Sub(time.UnixMilli(get("started"))).Round(time.Second)}
		o.Scope, _ = m["scope"].(string)
		o.Correlation, _ = m["cid"].(string)
		out = append(out, o)
		key := syncID(o.Scope, o.Tag)
		seen[key] = true
		s.openMu.Lock()
		logged := s.openLogged[key]
		s.openMu.Unlock()
		if !logged {
			s.log.Warn("graph sink: sync open longer than graph.open_sync_max_age (parts or final marker missing)",
				"scope", o.Scope, "tag", o.Tag, "age", o.Age.String(), "parts", o.Parts, "applied", o.Applied,
				"expected", o.Expected, "correlation_id", o.Correlation, "max_age", s.cfg.OpenSyncMaxAge.String())
		}
	}
	s.openMu.Lock()
	s.openLogged = seen // forget syncs no longer open: bounded by maxListedOpen
	s.openMu.Unlock()
	return out, nil
}

// MonitorOpenSyncs runs CheckOpenSyncs every min(open_sync_max_age/4, 1m)
// until ctx ends (sightline run starts it beside the sink).
func (s *Sink) MonitorOpenSyncs(ctx context.Context) error {
	every := min(max(s.cfg.OpenSyncMaxAge/4, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.CheckOpenSyncs(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("graph sink: cannot check open syncs", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
