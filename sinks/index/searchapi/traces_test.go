package searchapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/sinks/index/indextest"
	"github.com/sightline/sightline/sinks/index/searchapi"
)

// event is one conformed log or metric event of a trace.
func event(cid, id, svc, kind, level, host string, at time.Time) *stage.Message {
	data, _ := json.Marshal(map[string]any{"message": svc + " step " + id, "level": level, "service": svc, "host": host})
	ev := &schemas.Event{ID: id, Source: "urn:sightline:producer:" + svc, Type: kind + ".request", Time: at,
		CorrelationID: cid, Producer: svc, Data: data}
	return stage.EventMessage(ev, kind, "request", "")
}

// TestTraceList: GET /v1/traces groups in the index, per correlation ID,
// with real counts: a burst of 3,000 events does not hide the other traces
// nor shows 1,000 of its 3,000; whole-second times give the right start and
// span; warnings are not errors.
func TestTraceList(t *testing.T) {
	e := indextest.Open(t, "")
	now := time.Now().UTC().Truncate(time.Second)
	var msgs []*stage.Message
	// Three small traces with whole-second times, one with a warning, an
	// error and a dead letter.
	for i, cid := range []string{"small-a", "small-b", "small-c"} {
		t0 := now.Add(-time.Duration(30-i*5) * time.Minute)
		msgs = append(msgs,
			event(cid, cid+"-1", "gateway", "log", "info", "web-1", t0),
			event(cid, cid+"-2", "search", "log", "warn", "web-2", t0.Add(time.Second)),
			event(cid, cid+"-3", "billing", "metric", "", "web-2", t0.Add(3*time.Second)))
	}
	msgs = append(msgs, event("small-c", "small-c-4", "billing", "log", "ERROR", "web-3", now.Add(-20*time.Minute+5*time.Second)),
		testutil.DeadLetter("small-c", "sightline.raw.metric.x", "bad", []byte("{"), now.Add(-20*time.Minute+6*time.Second), 3))
	// Then a burst: 3,000 events of one ID in the last minute.
	for i := range 3000 {
		msgs = append(msgs, event("burst", fmt.Sprintf("burst-%d", i), "ranker", "log", "info", "web-9", now.Add(-time.Minute+time.Duration(i)*time.Millisecond)))
	}
	// And one from two hours ago, out of the default range.
	msgs = append(msgs, event("old", "old-1", "gateway", "log", "info", "web-1", now.Add(-2*time.Hour)))
	if err := e.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(searchapi.New(e, nil))
	t.Cleanup(srv.Close)
	list := func(params string) index.TraceList {
		t.Helper()
		var l index.TraceList
		if code := get(t, srv.URL+"/v1/traces?"+params, &l); code != 200 {
			t.Fatalf("GET /v1/traces?%s: HTTP %d", params, code)
		}
		return l
	}
	l := list("from=1h")
	var ids []string
	for _, s := range l.Traces {
		ids = append(ids, s.CorrelationID)
	}
	if fmt.Sprint(ids) != "[burst small-c small-b small-a]" || l.Total != 4 {
		t.Fatalf("recent traces: %v (total %d), want the burst then small-c, small-b, small-a", ids, l.Total)
	}
	burst, c := l.Traces[0], l.Traces[1]
	if burst.Events != 3000 || burst.DurationMs != 2999 || burst.Errors != 0 {
		t.Errorf("burst: %+v, want 3000 events over 2999 ms", burst)
	}
	if c.Events != 5 || c.Errors != 1 || c.Warnings != 1 || c.Rejected != 1 || c.DurationMs != 6000 ||
		!c.Start.Equal(now.Add(-20*time.Minute)) || fmt.Sprint(c.Services) != "[billing gateway search]" {
		t.Errorf("small-c: %+v, want 5 events, 1 error, 1 warning, 1 rejected, 6000 ms from %v", c, now.Add(-20*time.Minute))
	}
	if a := l.Traces[3]; a.Errors != 0 || a.Warnings != 1 || a.DurationMs != 3000 {
		t.Errorf("small-a: %+v: a warning is not an error", a)
	}
	// Trace search: by service, attribute and duration.
	for _, tc := range []struct{ params, want string }{
		{"from=1h&service=billing", "[small-c small-b small-a]"},
		{"from=1h&attr=host=web-3", "[small-c]"},
		{"from=1h&attr=host=web-2&attr=level=error", "[small-c]"},
		{"from=1h&min_duration=4s", "[small-c]"},
		{"from=1h&max_duration=3s", "[burst small-b small-a]"},
		{"from=1h&limit=2", "[burst small-c]"},
		{"from=3h&service=gateway&max_duration=1ms", "[old]"},
		{"from=" + url.QueryEscape(now.Add(-26*time.Minute).Format(time.RFC3339)) + "&to=" + url.QueryEscape(now.Add(-15*time.Minute).Format(time.RFC3339)), "[small-c small-b]"},
	} {
		var got []string
		for _, s := range list(tc.params).Traces {
			got = append(got, s.CorrelationID)
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("/v1/traces?%s: %v, want %s", tc.params, got, tc.want)
		}
	}
	var bad map[string]string
	if code := get(t, srv.URL+"/v1/traces?attr=data.x=1", &bad); code != 400 {
		t.Errorf("an attribute the index cannot answer: HTTP %d %v", code, bad)
	}

	// The histogram counts every match of the range in its buckets.
	var h struct {
		Histogram []index.Bucket `json:"histogram"`
	}
	if code := get(t, srv.URL+"/v1/search?correlation_id=burst&from=2h&histogram=60", &h); code != 200 || len(h.Histogram) != 60 {
		t.Fatalf("histogram: HTTP %d, %d buckets", code, len(h.Histogram))
	}
	sum := 0
	for _, b := range h.Histogram {
		sum += b.Count
	}
	if sum != 3000 || h.Histogram[59].Count != 3000 {
		t.Errorf("histogram of the burst: %d in all, %d in the last bucket, want 3000 in the last", sum, h.Histogram[59].Count)
	}

	// Paging: /v1/search's next cursor walks all 3,000 events of the
	// burst, 200 at a time, newest first, each once.
	seen := map[string]bool{}
	after := ""
	for page := 0; ; page++ {
		var res index.Result
		u := srv.URL + "/v1/search?correlation_id=burst&newest=true&limit=200"
		if after != "" {
			u += "&after=" + url.QueryEscape(after)
		}
		if code := get(t, u, &res); code != 200 || page > 20 {
			t.Fatalf("page %d: HTTP %d", page, code)
		}
		for _, d := range res.Docs {
			if seen[d.ID] {
				t.Fatalf("page %d repeats %s", page, d.ID)
			}
			seen[d.ID] = true
		}
		if res.Next == nil {
			break
		}
		after = res.Next.String()
	}
	if len(seen) != 3000 {
		t.Errorf("paging saw %d of 3000 events", len(seen))
	}
}

// TestTraceBeyondOnePage: a trace longer than one search (MaxResults) is
// read whole, in pages.
func TestTraceBeyondOnePage(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 12,000 events")
	}
	e := indextest.Open(t, "")
	t0 := time.Now().UTC().Add(-time.Minute)
	var msgs []*stage.Message
	n := index.MaxResults + 2000
	for i := range n {
		msgs = append(msgs, event("long", fmt.Sprintf("long-%05d", i), "svc", "log", "info", "h", t0.Add(time.Duration(i/3)*time.Microsecond)))
	}
	if err := e.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	tl, err := index.Trace(context.Background(), e, "long")
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.Events) != n || tl.Truncated {
		t.Fatalf("%d events (truncated %v), want %d", len(tl.Events), tl.Truncated, n)
	}
	for i, ev := range tl.Events {
		if want := fmt.Sprintf("long-%05d", i); ev.ID != want {
			t.Fatalf("event %d is %s, want %s", i, ev.ID, want)
		}
	}

	// The page reads it in pages: GET /v1/trace/{id}?limit=&after=, every
	// page with the trace's whole span and offsets from its first event.
	srv := httptest.NewServer(searchapi.New(e, nil))
	t.Cleanup(srv.Close)
	var got []index.Entry
	u := srv.URL + "/v1/trace/long?limit=5000"
	for page := 0; ; page++ {
		var p index.Timeline
		if code := get(t, u, &p); code != 200 || page > 5 {
			t.Fatalf("page %d: HTTP %d", page, code)
		}
		if p.DurationMs != tl.DurationMs || !p.Start.Equal(tl.Start) || p.Total < index.MaxResults {
			t.Errorf("page %d: span %v ms from %v, total %d; the whole trace: %v ms from %v, %d events", page, p.DurationMs, p.Start, p.Total, tl.DurationMs, tl.Start, n)
		}
		got = append(got, p.Events...)
		if p.Next == nil {
			break
		}
		u = srv.URL + "/v1/trace/long?limit=5000&after=" + url.QueryEscape(p.Next.String())
	}
	if len(got) != n {
		t.Fatalf("pages hold %d events, want %d", len(got), n)
	}
	for i, ev := range got {
		if ev.ID != tl.Events[i].ID || ev.OffsetMs != tl.Events[i].OffsetMs {
			t.Fatalf("paged event %d: %s at +%v ms, the whole trace has %s at +%v ms", i, ev.ID, ev.OffsetMs, tl.Events[i].ID, tl.Events[i].OffsetMs)
		}
	}
	if code := get(t, srv.URL+"/v1/trace/long?limit=x", nil); code != 400 {
		t.Errorf("limit=x: HTTP %d", code)
	}
	if code := get(t, srv.URL+"/v1/trace/nothing?limit=10", nil); code != 404 {
		t.Errorf("a paged unknown id: HTTP %d", code)
	}
}
