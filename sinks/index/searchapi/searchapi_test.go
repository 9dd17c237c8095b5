package searchapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/sinks/index/indextest"
	"github.com/sightline/sightline/sinks/index/searchapi"
	"github.com/sightline/sightline/sinks/sinktest"
)

// fixture writes one correlated group (a metric and two logs, as
// production conforms them) into an embedded index at path ("" in memory).
func fixture(t *testing.T, path string) (e *index.Embedded, cid string, ids []string, logs int) {
	t.Helper()
	e = indextest.Open(t, path)
	msgs := sinktest.NewGenerator(t).Mixed(t, 6)
	if err := e.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	cid = msgs[len(msgs)-1].Header.Get(stage.HeaderCorrelationID)
	for _, m := range msgs {
		if m.Header.Get(stage.HeaderCorrelationID) == cid {
			ids = append(ids, m.ID)
			if strings.HasPrefix(m.Subject, stage.EventsPrefix+"log.") {
				logs++
			}
		}
	}
	if cid == "" || len(ids) == 0 {
		t.Fatal("the generated events carry no correlation ID")
	}
	return e, cid, ids, logs
}

func get(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		_ = json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

func TestAPI(t *testing.T) {
	e, cid, ids, logs := fixture(t, "")
	srv := httptest.NewServer(searchapi.New(e, nil, index.StreamLocator))
	t.Cleanup(srv.Close)

	var tl index.Timeline
	if code := get(t, srv.URL+"/v1/trace/"+cid, &tl); code != 200 || len(tl.Events) != len(ids) || len(tl.Locations) == 0 {
		t.Fatalf("trace: %d %+v", code, tl)
	}
	if code := get(t, srv.URL+"/v1/trace/nothing-here", nil); code != 404 {
		t.Fatalf("unknown id: %d", code)
	}
	var res index.Result
	if get(t, srv.URL+"/v1/search?kind=log&correlation_id="+cid, &res); len(res.Docs) != logs || logs == 0 {
		t.Fatalf("search: %+v", res)
	}
	if code := get(t, srv.URL+"/v1/search?from=yesterday", nil); code != 400 {
		t.Fatalf("bad from: %d", code)
	}
	resp, err := http.Get(srv.URL + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<title>Sightline</title>") {
		t.Fatalf("page: %d %s", resp.StatusCode, page)
	}
}

// While `sightline run` holds the embedded index, the CLI reads through
// the API (searchapi.Client, what --api selects) and gets the same answers.
func TestCLIThroughTheAPI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idx")
	e, cid, ids, _ := fixture(t, path)
	srv := httptest.NewServer(searchapi.New(e, nil))
	t.Cleanup(srv.Close)
	s := &searchapi.Client{Base: srv.URL}
	direct, err := index.Trace(context.Background(), e, cid, index.StreamLocator)
	if err != nil {
		t.Fatal(err)
	}
	viaAPI, err := index.Trace(context.Background(), s, cid, index.StreamLocator)
	if err != nil || len(viaAPI.Events) != len(ids) || len(viaAPI.Events) != len(direct.Events) {
		t.Fatalf("through the API: %+v, %v", viaAPI, err)
	}
	for i := range direct.Events {
		if direct.Events[i].ID != viaAPI.Events[i].ID {
			t.Fatalf("event %d: %s through the API, %s direct", i, viaAPI.Events[i].ID, direct.Events[i].ID)
		}
	}
}

// A search whose query does not parse, or passes a limit, is answered 400
// with an error naming the position (or the limit); a valid boolean query
// is answered over a real HTTP connection.
func TestSearchQueryErrors(t *testing.T) {
	e, cid, _, logs := fixture(t, "")
	srv := httptest.NewServer(searchapi.New(e, nil))
	t.Cleanup(srv.Close)
	for q, want := range map[string]string{
		"level:error AND (host:web-1": `query: at position 17: "(" not closed`,
		"hots:web-1":                  `query: at position 1: unknown field "hots"`,
		"a OR":                        "query: at position 3: OR wants a term after it",
		strings.Repeat("x ", 65):      "query: at position 129: more than 64 terms",
		strings.Repeat("(", 17) + "x" + strings.Repeat(")", 17): "query: at position 17: nested more than 16 deep",
		strings.Repeat("x", 4097):                               "query: query is 4097 bytes, over the limit of 4096",
	} {
		var body struct{ Error string }
		code := get(t, srv.URL+"/v1/search?q="+url.QueryEscape(q), &body)
		if code != 400 || !strings.HasPrefix(body.Error, want) {
			t.Errorf("q=%.40q: %d %q, want 400 %q", q, code, body.Error, want)
		}
	}
	var res index.Result
	q := url.QueryEscape("correlation_id:" + cid + " AND NOT kind:metric AND NOT kind:snapshot")
	if code := get(t, srv.URL+"/v1/search?q="+q, &res); code != 200 || len(res.Docs) != logs {
		t.Fatalf("boolean query: %d, %d events, want the %d logs", code, len(res.Docs), logs)
	}
}

// TestSearchTooLongIs503: a search of the embedded index stopped at its
// time bound is answered 503 naming the limit and how to narrow the
// query, not 502 as if the index were broken.
func TestSearchTooLongIs503(t *testing.T) {
	cfg := index.DefaultConfig()
	cfg.EmbeddedPath = filepath.Join(t.TempDir(), "idx")
	e, err := index.OpenEmbedded(cfg, index.WithSearchTime(time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	if err := e.Write(context.Background(), sinktest.NewGenerator(t).Mixed(t, 6)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(searchapi.New(e, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/search?q=" + url.QueryEscape("site:par1") + "&from=24h")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d (%s), want 503", resp.StatusCode, b)
	}
	for _, want := range []string{"SearchTime", "narrow the time range"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("answer %s does not say %q", b, want)
		}
	}
}
