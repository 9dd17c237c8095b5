// Package indextest opens an embedded index for the tests of the packages
// that read one (the search API, the page, the terminal output).
package indextest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/index"
)

// Open opens the embedded index at path ("" keeps it in memory) on its
// defaults, and closes it when the test ends.
func Open(t testing.TB, path string) *index.Embedded {
	t.Helper()
	cfg := index.DefaultConfig()
	cfg.EmbeddedPath = path
	e, err := index.OpenEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// Write1M writes the events of the 1,000,000-event benchmarks
// (BENCHMARKS.md): 100 per correlation ID, 4 hosts, 2 sites, 8
// messages, data.user.id one of 5,000.
func Write1M(t testing.TB, e *index.Embedded, now time.Time) {
	const n, perTrace = 1_000_000, 100
	t0 := now.Add(-24 * time.Hour)
	services := []string{"gateway", "search", "ranker", "billing", "inventory"}
	words := []string{"request served", "cache warm", "card declined by bank", "timeout calling payments", "retry scheduled", "user signed in", "order placed", "inventory checked"}
	levels := []string{"info", "info", "info", "info", "info", "warn", "info", "error"}
	hosts := []string{"web-1", "web-2", "web-3", "db-1"}
	start := time.Now()
	var msgs []*stage.Message
	for i := range n {
		at := t0.Add(time.Duration(int64(24*time.Hour) / n * int64(i)))
		svc := services[i%len(services)]
		data, _ := json.Marshal(map[string]any{"message": words[(i/7)%len(words)], "level": levels[(i/3)%len(levels)], "service": svc,
			"host": hosts[i%len(hosts)], "user": map[string]any{"id": i % 5000}})
		ev := &schemas.Event{ID: fmt.Sprintf("m-%07d", i), Source: "urn:sightline:producer:" + svc, Type: "log.request", Time: at,
			CorrelationID: fmt.Sprintf("t-%05d", i/perTrace), Producer: svc, Data: data, Attributes: map[string]string{"site": []string{"par1", "ams1"}[i%2]}}
		msgs = append(msgs, stage.EventMessage(ev, "log", "request", ""))
		if len(msgs) == 5000 {
			if err := e.Write(context.Background(), msgs); err != nil {
				t.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	t.Logf("wrote %d events in %v", n, time.Since(start).Round(time.Second))
}
