package index_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/sinks/index/indextest"
	"github.com/sightline/sightline/sinks/index/searchapi"
)

// TestAPI1M times the search API on an embedded index of 1,000,000 log
// events over 24 h (BENCHMARKS.md, the trace list and the search view on
// a 1,000,000-event embedded index): the requests the page sends, each
// twice. Minutes of writing: run only when asked,
//
//	SIGHTLINE_BENCH_1M=1 go test -run TestAPI1M -v -timeout 60m ./sinks/index/
//
// SIGHTLINE_BENCH_1M_DIR keeps the index there; when it already holds
// one, it is opened as it is (not written again).
func TestAPI1M(t *testing.T) {
	if os.Getenv("SIGHTLINE_BENCH_1M") == "" {
		t.Skip("a benchmark: set SIGHTLINE_BENCH_1M=1")
	}
	dir := os.Getenv("SIGHTLINE_BENCH_1M_DIR")
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "idx")
	}
	_, statErr := os.Stat(filepath.Join(dir, "written"))
	cfg := index.DefaultConfig()
	cfg.EmbeddedPath = dir
	start := time.Now()
	e, err := index.OpenEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	t.Logf("opened in %v", time.Since(start).Round(time.Millisecond))
	now := time.Now().UTC()
	if statErr != nil {
		indextest.Write1M(t, e, now)
		if err := os.WriteFile(filepath.Join(dir, "written"), []byte(now.Format(time.RFC3339Nano)), 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		b, err := os.ReadFile(filepath.Join(dir, "written"))
		if err != nil {
			t.Fatal(err)
		}
		if now, err = time.Parse(time.RFC3339Nano, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(searchapi.New(e, nil, index.StreamLocator))
	t.Cleanup(srv.Close)
	// Ranges relative to the time of writing, so a kept index answers the
	// same questions later.
	rng := func(d time.Duration) string {
		return "from=" + url.QueryEscape(now.Add(-d).Format(time.RFC3339Nano)) + "&to=" + url.QueryEscape(now.Add(time.Second).Format(time.RFC3339Nano))
	}
	page := func(q string) string {
		return "/v1/search?" + rng(24*time.Hour) + "&newest=true&limit=200&histogram=40&q=" + url.QueryEscape(q)
	}
	for _, r := range []struct{ name, path string }{
		{"`GET /v1/traces?from=1h`", "/v1/traces?" + rng(time.Hour)},
		{"the same with `service=b&min_duration=1m`", "/v1/traces?" + rng(time.Hour) + "&service=b&min_duration=1m"},
		{"`GET /v1/traces?from=24h`", "/v1/traces?" + rng(24*time.Hour)},
		{"histogram, 40 buckets over 1 h", "/v1/search?" + rng(time.Hour) + "&histogram=40&limit=1"},
		{"histogram, 40 buckets over 24 h", "/v1/search?" + rng(24*time.Hour) + "&histogram=40&limit=1"},
		{"search, newest 200 of 24 h", "/v1/search?" + rng(24*time.Hour) + "&newest=true&limit=200"},
		{"`kind:log`", page("kind:log")},
		{"`declined`", page("declined")},
		{"`declined OR timeout`", page("declined OR timeout")},
		{"`level:error AND NOT host:web-1`", page("level:error AND NOT host:web-1")},
		{"`(declined OR timeout) site:par1`", page("(declined OR timeout) site:par1")},
		{"`NOT level:info`", page("NOT level:info")},
		{"`data.user.id:4321`", page("data.user.id:4321")},
		{"`web-1` (free text: a host)", page("web-1")},
		{"`site:par1`", page("site:par1")},
		{"`data.user.id:4321 OR data.user.id:7`", page("data.user.id:4321 OR data.user.id:7")},
		{"`correlation_id:t-04321 OR correlation_id:t-00007`", page("correlation_id:t-04321 OR correlation_id:t-00007")},
	} {
		var ms [2]time.Duration
		var summary string
		for run := range ms {
			t0 := time.Now()
			resp, err := http.Get(srv.URL + r.path)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			ms[run] = time.Since(t0)
			var res struct {
				Total       int             `json:"total"`
				TotalCapped bool            `json:"total_capped"`
				Events      []any           `json:"events"`
				Traces      json.RawMessage `json:"traces"`
			}
			_ = json.Unmarshal(body, &res)
			summary = fmt.Sprintf("HTTP %d, %d events, total %d (capped %v)", resp.StatusCode, len(res.Events), res.Total, res.TotalCapped)
			if resp.StatusCode != http.StatusOK {
				summary += ": " + string(body[:min(len(body), 200)])
			}
		}
		t.Logf("| %s | %v / %v | %s |", r.name, ms[0].Round(time.Millisecond), ms[1].Round(time.Millisecond), summary)
	}
}
