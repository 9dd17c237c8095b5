package web_test

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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
	indextest.Write1M(t, e, time.Now().UTC())
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
