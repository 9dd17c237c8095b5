package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"net/http/httptest"
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

// waitUntil polls the page until cond (JavaScript) is true, or fails.
func (b *browser) waitUntil(what, cond string, limit time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(limit)
	for !eval[bool](b, cond) {
		if time.Now().After(deadline) {
			b.t.Fatalf("after %v: %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hitDrawnJS is true when the search result of event id is drawn.
func hitDrawnJS(id string) string {
	return `[...document.querySelectorAll('#results tr.hit[data-id="` + id + `"]')].filter(` + drawnJS + `).length === 1`
}

// TestPageAutoRefresh: auto-refresh is off by default; with an interval
// the search view and the recent traces show new events without a click,
// and hold still while the user reads (a row open, the tab hidden, the
// page scrolled); a refresh answering after the user moved on is dropped.
func TestPageAutoRefresh(t *testing.T) {
	e := indextest.Open(t, "")
	tr := fixture(t, e)
	api := &slowAPI{h: searchapi.New(e, nil, index.StreamLocator)}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	write := func(cid, id, msg string) {
		t.Helper()
		data, _ := json.Marshal(map[string]any{"message": msg, "level": "info", "service": "gateway"})
		ev := &schemas.Event{ID: id, Source: "urn:sightline:producer:gateway", Type: "log.request", Time: time.Now().UTC(),
			CorrelationID: cid, Producer: "gateway", Data: data}
		if err := e.Write(context.Background(), []*stage.Message{stage.EventMessage(ev, "log", "request", "")}); err != nil {
			t.Fatal(err)
		}
	}
	label := func() string {
		return eval[string](b, `[document.getElementById("s-refresh-state")].filter(`+drawnJS+`).map(s => s.textContent).join("")`)
	}

	// Off by default.
	b.do("open the search", chromedp.Navigate(srv.URL+"/ui/#/search?q=handled&from="), chromedp.WaitReady(`body[data-loaded="search"]`))
	if v := eval[string](b, `document.getElementById("s-refresh").value`); v != "" || label() != "" {
		t.Fatalf("auto-refresh is %q (%q) by default, want off", v, label())
	}
	write(tr.cid, "late-0", "handled while off")
	time.Sleep(3 * time.Second)
	if eval[int](b, `document.querySelectorAll('#results tr.hit[data-id="late-0"]').length`) != 0 {
		t.Fatal("the results changed with auto-refresh off")
	}

	// Choosing an interval puts it in the address bar; new events appear,
	// newest first, drawn at the top of the results.
	eval[bool](b, `(() => { const s = document.getElementById("s-refresh"); s.value = "2s"; s.dispatchEvent(new Event("change")); return true; })()`)
	b.do("wait for the search", chromedp.WaitReady(`body[data-loaded="search"]`))
	if h := eval[string](b, `location.hash`); !strings.Contains(h, "refresh=2s") {
		t.Fatalf("the interval is not in the address bar: %q", h)
	}
	write(tr.cid, "late-1", "handled late one")
	b.waitUntil("the new event is drawn after a refresh", hitDrawnJS("late-1"), 20*time.Second)
	if id := eval[string](b, `(() => { const r = document.querySelector("#results tr.hit").getBoundingClientRect();
		const at = document.elementFromPoint(r.left + 20, r.top + r.height / 2); return at && at.closest("tr") ? at.closest("tr").dataset.id : ""; })()`); id != "late-1" {
		t.Errorf("the first result drawn is %q, want the newest event late-1", id)
	}

	// A row open holds the refresh: the open row stays drawn.
	b.do("open a row", chromedp.Click(`#results tr.hit[data-id="late-1"] td.msg`))
	write(tr.cid, "late-2", "handled late two")
	time.Sleep(5 * time.Second)
	if eval[int](b, `document.querySelectorAll('#results tr.hit[data-id="late-2"]').length`) != 0 {
		t.Error("a refresh replaced the results while a row was open")
	}
	if l := label(); !strings.Contains(l, "paused: a row is open") {
		t.Errorf("the refresh state says %q with a row open", l)
	}
	pre := eval[[]float64](b, `(() => { const p = [...document.querySelectorAll("#results tr.expanded pre")].filter(`+drawnJS+`)[0];
		if (!p) return []; const r = p.getBoundingClientRect(); return [r.left, r.top, r.right, Math.min(r.bottom, innerHeight), devicePixelRatio]; })()`)
	if len(pre) != 5 {
		t.Fatal("the open row's JSON is not drawn after two intervals")
	}
	// The screenshot shows the JSON: light text on the dark box.
	img := b.shot("search-refresh-paused")
	checkTablePNG(t, "search-refresh-paused", img, b.tableRows("#results"))
	s := pre[4]
	light := 0
	for y := int(pre[1] * s); y < int(pre[3]*s); y++ {
		for x := int(pre[0] * s); x < int(pre[2]*s); x++ {
			if c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA); int(c.R)+int(c.G)+int(c.B) > 600 {
				light++
			}
		}
	}
	if light < 500 {
		t.Errorf("the open row's JSON box has %d light text pixels in the screenshot: not painted", light)
	}
	b.do("close the row", chromedp.Click(`#results tr.hit[data-id="late-1"] td.msg`))
	b.waitUntil("the refresh resumes once the row is closed", hitDrawnJS("late-2"), 20*time.Second)

	// A hidden tab holds it.
	eval[bool](b, `Object.defineProperty(document, "hidden", {configurable: true, get: () => true}); true`)
	write(tr.cid, "late-3", "handled late three")
	time.Sleep(5 * time.Second)
	if eval[int](b, `document.querySelectorAll('#results tr.hit[data-id="late-3"]').length`) != 0 {
		t.Error("a refresh ran while the tab was hidden")
	}
	if l := label(); !strings.Contains(l, "paused: the tab is hidden") {
		t.Errorf("the refresh state says %q with the tab hidden", l)
	}
	eval[bool](b, `delete document.hidden; true`)
	b.waitUntil("the refresh resumes once the tab is visible", hitDrawnJS("late-3"), 20*time.Second)

	// Scrolled down the results, it holds too.
	for i := range 80 {
		write(tr.cid, fmt.Sprintf("fill-%02d", i), "handled filler")
	}
	b.waitUntil("80 more results", `document.querySelectorAll("#results tr.hit").length >= 80`, 20*time.Second)
	eval[bool](b, `window.scrollTo(0, 400); true`)
	if y := eval[float64](b, `window.scrollY`); y < 100 {
		t.Fatalf("the page does not scroll (scrollY %v)", y)
	}
	write(tr.cid, "late-4", "handled late four")
	time.Sleep(5 * time.Second)
	if eval[int](b, `document.querySelectorAll('#results tr.hit[data-id="late-4"]').length`) != 0 {
		t.Error("a refresh ran while the page was scrolled")
	}
	if l := eval[string](b, `document.getElementById("s-refresh-state").textContent`); !strings.Contains(l, "paused: the page is scrolled") {
		t.Errorf("the refresh state says %q scrolled", l)
	}
	eval[bool](b, `window.scrollTo(0, 0); true`)
	b.waitUntil("the refresh resumes at the top", hitDrawnJS("late-4"), 20*time.Second)

	// A refresh that answers after the user moved on is dropped.
	api.set(map[string]time.Duration{"q=handled": 4 * time.Second})
	n := eval[int](b, `Number(document.body.dataset.refreshed || 0)`)
	b.waitUntil("a refresh starts", fmt.Sprintf(`Number(document.body.dataset.refreshed || 0) > %d`, n), 20*time.Second)
	b.expect("search", `location.hash = "#/search?q=unexpected&kind=dlq&from="`)
	time.Sleep(5 * time.Second)
	api.set(nil)
	if got := eval[[]string](b, `[...document.querySelectorAll("#results tr.hit")].filter(`+drawnJS+`).map(r => r.children[2].textContent)`); fmt.Sprint(got) != "[dlq]" {
		t.Errorf("after a late refresh answer, the results drawn are %v, want the one dead letter searched", got)
	}

	// The recent traces refresh the same way.
	b.expect("recent", `location.hash = "#/?from=1h&refresh=2s"`)
	fresh := "fresh-" + tr.cid
	write(fresh, fresh+"-1", "a new trace")
	b.waitUntil("a new trace appears in the recent list", `[...document.querySelectorAll('#recent tr.trace-row[data-id="`+fresh+`"]')].filter(`+drawnJS+`).length === 1`, 20*time.Second)
	if v := eval[string](b, `document.getElementById("t-refresh").value`); v != "2s" {
		t.Errorf("the recent list's interval shows %q", v)
	}
	checkTablePNG(t, "recent-refreshed", b.shot("recent-refreshed"), b.tableRows("#recent"))
}
