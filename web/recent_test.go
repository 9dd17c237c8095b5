package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// TestPageRecentTraces: the recent list is grouped per correlation ID in
// the index, with real counts. A burst of 3,000 events in one trace hides
// no other trace and is counted whole; a trace whose events fall on whole
// seconds and between them starts at its first event with a positive span
// (compared as strings, "…:00Z" sorts after "…:00.25Z"); a warning is
// counted as a warning, not as an error. Read from what is drawn, and the
// screenshot checked.
func TestPageRecentTraces(t *testing.T) {
	e := indextest.Open(t, "")
	run := time.Now().UnixNano()
	whole, burst := fmt.Sprintf("whole-%d", run), fmt.Sprintf("burst-%d", run)
	t0 := time.Now().UTC().Add(-5 * time.Minute).Truncate(time.Second)
	var msgs []*stage.Message
	for i, ev := range []struct {
		at    time.Duration
		level string
	}{{0, "info"}, {250 * time.Millisecond, "warn"}, {time.Second, "error"}} {
		data, _ := json.Marshal(map[string]any{"message": "step " + ev.level, "level": ev.level, "service": "checkout"})
		m := stage.EventMessage(&schemas.Event{ID: fmt.Sprintf("%s-%d", whole, i), Source: "urn:sightline:producer:checkout", Type: "log.request",
			Time: t0.Add(ev.at), CorrelationID: whole, Producer: "checkout", Data: data}, "log", "request", "")
		msgs = append(msgs, m)
	}
	if err := e.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	bigTrace(t, e, burst, 3000-1, time.Second) // newer than the whole-second trace
	srv := httptest.NewServer(searchapi.New(e, nil, index.StreamLocator))
	t.Cleanup(srv.Close)

	// The API: one group per correlation ID.
	resp, err := http.Get(srv.URL + "/v1/traces?from=1h")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var list struct {
		Total  int `json:"total"`
		Traces []struct {
			CorrelationID string  `json:"correlation_id"`
			Start         string  `json:"start"`
			DurationMs    float64 `json:"duration_ms"`
			Events        int     `json:"events"`
			Errors        int     `json:"errors"`
			Warnings      int     `json:"warnings"`
		} `json:"traces"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("GET /v1/traces: %v: %s", err, body)
	}
	if list.Total != 2 || len(list.Traces) != 2 || list.Traces[0].CorrelationID != burst || list.Traces[1].CorrelationID != whole {
		t.Fatalf("GET /v1/traces: %s", body)
	}
	if w := list.Traces[1]; w.Start != t0.Format(time.RFC3339Nano) || w.DurationMs != 1000 || w.Events != 3 || w.Errors != 1 || w.Warnings != 1 {
		t.Errorf("whole-second trace: %+v, want start %s, 1000 ms, 3 events, 1 error, 1 warning", w, t0.Format(time.RFC3339Nano))
	}
	if n := list.Traces[0].Events; n != 3000 {
		t.Errorf("the burst counts %d events, want 3000", n)
	}

	// The page draws the same.
	b := newBrowser(t)
	b.do("open the page", chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitReady(`body[data-loaded="recent"]`))
	rows := b.tableRows("#recent")
	cells := map[string][]string{}
	for _, r := range rows[1:] {
		for _, c := range r.Cells {
			cells[r.ID] = append(cells[r.ID], c.Text)
		}
	}
	// correlation ID, started, ago, services, events, errors, warnings, rejected, span
	if c := cells[burst]; len(c) != 9 || c[4] != "3000" {
		t.Errorf("the burst's row drawn: %q, want 3000 events", c)
	}
	if c := cells[whole]; len(c) != 9 || !strings.HasSuffix(c[1], t0.Format(":04:05")+".000") || c[4] != "3" || c[5] != "1" || c[6] != "1" || c[8] != "1.00 s" {
		t.Errorf("the whole-second trace's row drawn: %q, want started at %s.000, 3 events, 1 error, 1 warning, span 1.00 s", c, t0.Format("15:04:05"))
	}
	if len(rows) != 3 {
		t.Errorf("%d rows drawn, want a header and the 2 traces", len(rows))
	}
	checkTablePNG(t, "recent-counts", b.shot("recent-counts"), rows)

	// The trace itself: the whole-second event first, at +0, the span 1 s.
	b.expect(whole, `document.querySelector('#recent tr[data-id="`+whole+`"] a.cid').click()`)
	drawnRows := b.drawnRows()
	var order []string
	for _, r := range drawnRows {
		order = append(order, fmt.Sprintf("%s@%g", strings.TrimPrefix(r.ID, whole), r.Offset))
	}
	if fmt.Sprint(order) != "[-0@0 -1@250 -2@1000]" {
		t.Errorf("the whole-second trace draws %v, want -0@0 -1@250 -2@1000 (id@offset ms)", order)
	}
	if sum := eval[string](b, `document.querySelector("#summary p").textContent`); !strings.HasPrefix(sum, "3 events · 1 service · span 1.00 s") || !strings.Contains(sum, "1 error, 1 warning, 0 rejected") {
		t.Errorf("the whole-second trace's summary: %q", sum)
	}
	b.checkAlignment()
	png := b.shot("trace-whole-seconds")
	checkPNG(t, "trace-whole-seconds", png, drawnRows, true, b.trackArea())
	checkAxisPNG(t, "trace-whole-seconds", png, b)
	b.expect("recent", `history.back()`)

	// Trace search, typed into the form: by service, attribute and duration.
	for _, c := range []struct {
		field, value string
		want         []string
	}{
		{"#t-service", "checkout", []string{whole}},
		{"#t-attr", "level=warn", []string{whole}},
		{"#t-min", "2s", []string{burst}},
		{"#t-max", "1500ms", []string{whole}},
		{"#t-min", "1h", nil},
	} {
		eval[bool](b, `for (const id of ["t-service", "t-attr", "t-min", "t-max"]) document.getElementById(id).value = ""; true`)
		b.do("type "+c.value, chromedp.SendKeys(c.field, c.value))
		b.expect("recent", `document.getElementById("t-go").click()`)
		var got []string
		for _, r := range b.tableRows("#recent") {
			if r.ID != "" {
				got = append(got, r.ID)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("traces with %s %s: drawn %v, want %v", c.field, c.value, got, c.want)
		}
		if c.want == nil && !strings.Contains(eval[string](b, `document.getElementById("status").textContent`), "No trace matches") {
			t.Errorf("traces with %s %s: nothing drawn and no word of it", c.field, c.value)
		}
		if h := eval[string](b, `location.hash`); !strings.Contains(h, url.QueryEscape(c.value)) {
			t.Errorf("traces with %s %s: not in the address bar (%s)", c.field, c.value, h)
		}
	}
}
