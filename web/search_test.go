package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/sinks/index/indextest"
	"github.com/sightline/sightline/sinks/index/searchapi"
)

// TestPageSearchLanguage: boolean queries and field filters typed in the
// search box draw the matching events, and a query that does not parse
// draws the API's error naming the position.
func TestPageSearchLanguage(t *testing.T) {
	e := indextest.Open(t, "")
	tr := fixture(t, e)
	// One event with a host and a site (attributes a processor adds) and a nested field.
	extra := tr.cid + "-attrs"
	data, _ := json.Marshal(map[string]any{"message": "login refused", "level": "warn", "service": "auth", "user": map[string]any{"id": 7}})
	ev := &schemas.Event{ID: extra, Source: "urn:sightline:producer:auth", Type: "log.request", Time: time.Now().UTC().Add(-30 * time.Second),
		CorrelationID: tr.cid, Producer: "auth", Data: data, Attributes: map[string]string{"host": "web-1", "site": "lva1"}}
	if err := e.Write(context.Background(), []*stage.Message{stage.EventMessage(ev, "log", "request", "")}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(searchapi.New(e, nil, index.StreamLocator))
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	b.do("open the search", chromedp.Navigate(srv.URL+"/ui/#/search"), chromedp.WaitReady(`body[data-loaded="search"]`))
	drawnIDs := func() []string {
		ids := eval[[]string](b, `[...document.querySelectorAll("#results tr.hit")].filter(`+drawnJS+`).map(r => r.dataset.id)`)
		slices.Sort(ids)
		return ids
	}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"level:error OR kind:dlq", []string{tr.errorID, tr.dlqID}},
		{"handled AND NOT level:error", nil}, // every "handled" log line but billing's: filled below
		{"(billing OR ranker) kind:log", []string{tr.cid + "-2-1", tr.cid + "-3-1"}},
		{"service:search -kind:metric", []string{tr.closeIDs[1]}},
		{"correlation_id:" + tr.cid + " AND kind:dlq", []string{tr.dlqID}},
		{"host:web-1", []string{extra}},
		{"site:lva1 AND refused", []string{extra}},
		{"data.user.id:7", []string{extra}},
		{"data.service:ranker -kind:metric", []string{tr.cid + "-2-1"}},
	} {
		if c.want == nil {
			for i := range services {
				if id := fmt.Sprintf("%s-%d-1", tr.cid, i); id != tr.errorID {
					c.want = append(c.want, id)
				}
			}
		}
		slices.Sort(c.want)
		// Typed into the box like a person does.
		eval[bool](b, `document.getElementById("s-q").value = ""; document.getElementById("s-from").value = ""; true`)
		b.do("type "+c.q, chromedp.SendKeys("#s-q", c.q))
		b.expect("search", `document.getElementById("s-go").click()`)
		if got := drawnIDs(); !slices.Equal(got, c.want) {
			t.Errorf("%q: drawn %v, want %v", c.q, got, c.want)
		}
		if h := eval[string](b, `location.hash`); !strings.Contains(h, "q="+url.QueryEscape(c.q)) && !strings.Contains(h, "q="+strings.ReplaceAll(url.QueryEscape(c.q), "+", "%20")) {
			t.Errorf("%q is not in the address bar: %s", c.q, h)
		}
	}
	checkTablePNG(t, "search-boolean", b.shot("search-boolean"), b.tableRows("#results"))

	// A syntax error: the status line draws the API's message with its position, no results.
	eval[bool](b, `document.getElementById("s-q").value = ""; true`)
	b.do("type a bad query", chromedp.SendKeys("#s-q", "level:error AND (host:web-1"))
	eval[bool](b, `document.getElementById("s-go").click(); true`)
	b.waitUntil("the error is drawn", `[document.getElementById("status")].filter(`+drawnJS+`).some(s => s.textContent.includes("at position 17"))`, 20*time.Second)
	if got := eval[string](b, `document.getElementById("status").textContent`); got != `Error: search failed: query: at position 17: "(" not closed (a ")" is missing)` {
		t.Errorf("status after a bad query: %q", got)
	}
	if n := len(drawnIDs()); n != 0 {
		t.Errorf("%d results drawn after a bad query", n)
	}
}
