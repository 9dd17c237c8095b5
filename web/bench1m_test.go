package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/sinks/index/indextest"
	"github.com/sightline/sightline/sinks/index/searchapi"
)

// TestPageSearch1M times the search view on an embedded index of
// 1,000,000 events (BENCHMARKS.md): from setting the search's address to
// its results and histogram drawn, for the queries of the search language.
// Minutes of writing: run only when asked,
//
//	SIGHTLINE_BENCH_1M=1 go test -run TestPageSearch1M -v -timeout 60m ./web/
func TestPageSearch1M(t *testing.T) {
	if os.Getenv("SIGHTLINE_BENCH_1M") == "" {
		t.Skip("a benchmark: set SIGHTLINE_BENCH_1M=1")
	}
	e := indextest.Open(t, filepath.Join(t.TempDir(), "idx"))
	const n, perTrace = 1_000_000, 100
	now := time.Now().UTC()
	t0 := now.Add(-24 * time.Hour)
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
	srv := httptest.NewServer(searchapi.New(e, nil, index.StreamLocator))
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	b.do("open the page", chromedp.Navigate(srv.URL+"/ui/#/search"), chromedp.WaitReady(`body[data-loaded="search"]`))
	// The start page: the recent traces grouped in the index (10,000
	// correlation IDs over the day, ~420 in the last hour).
	for _, from := range []string{"1h", "24h"} {
		var ms [2]float64
		for run := range ms {
			eval[bool](b, `delete document.body.dataset.loaded; window.t0 = performance.now(); location.hash = "#/?from=`+from+`&x=`+fmt.Sprint(run)+`"; true`)
			b.waitUntil("the recent traces since "+from, `document.body.dataset.loaded === "recent"`, 10*time.Minute)
			ms[run] = eval[float64](b, `performance.now() - window.t0`)
		}
		t.Logf("| recent traces since %s | %.0f / %.0f ms | %s |", from, ms[0], ms[1], eval[string](b, `document.getElementById("status").textContent`))
	}
	for _, q := range []string{"kind:log", "declined", "declined OR timeout", "level:error AND NOT host:web-1",
		"(declined OR timeout) site:par1", "NOT level:info", "correlation_id:t-04321 OR correlation_id:t-00007", "data.user.id:4321"} {
		var ms [2]float64
		for run := range ms {
			eval[bool](b, `delete document.body.dataset.loaded; performance.clearMarks(); window.t0 = performance.now(); location.hash = "#/search?from=24h&q=`+url.QueryEscape(q)+`&x=`+fmt.Sprint(run)+`"; true`)
			b.waitUntil("the search "+q, `document.body.dataset.loaded === "search"`, 10*time.Minute)
			ms[run] = eval[float64](b, `performance.getEntriesByName("sightline:search-drawn")[0].startTime - window.t0`)
		}
		summary := eval[string](b, `document.getElementById("search-summary").textContent`)
		t.Logf("| `%s` | %.0f / %.0f ms | %s |", q, ms[0], ms[1], summary)
	}
}
