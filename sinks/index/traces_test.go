package index

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/schemas"
)

func traceEvent(cid, id, svc, kind, level, host string, at time.Time) *stage.Message {
	data, _ := json.Marshal(map[string]any{"message": svc + " step " + id, "level": level, "service": svc, "host": host})
	ev := &schemas.Event{ID: id, Source: "urn:sightline:producer:" + svc, Type: kind + ".request", Time: at,
		CorrelationID: cid, Producer: svc, Data: data}
	return stage.EventMessage(ev, kind, "request", "")
}

// traceLists runs the same trace lists on both backends: grouped per
// correlation ID with real counts, warnings apart from errors, and the
// trace search by service, attribute and duration; then pages a search
// past its limit with the cursor.
func traceLists(t *testing.T, idx interface {
	TraceLister
	Searcher
	Write(context.Context, []*stage.Message) error
}, refresh func()) {
	now := time.Now().UTC().Truncate(time.Second)
	var msgs []*stage.Message
	for i, cid := range []string{"small-a", "small-b", "small-c"} {
		t0 := now.Add(-time.Duration(30-i*5) * time.Minute)
		msgs = append(msgs,
			traceEvent(cid, cid+"-1", "gateway", "log", "info", "web-1", t0),
			traceEvent(cid, cid+"-2", "search", "log", "warn", "web-2", t0.Add(time.Second)),
			traceEvent(cid, cid+"-3", "billing", "metric", "", "web-2", t0.Add(3*time.Second)))
	}
	msgs = append(msgs, traceEvent("small-c", "small-c-4", "billing", "log", "error", "web-3", now.Add(-20*time.Minute+5*time.Second)),
		testutil.DeadLetter("small-c", "sightline.raw.metric.x", "bad", []byte("{"), now.Add(-20*time.Minute+6*time.Second), 3))
	for i := range 300 {
		msgs = append(msgs, traceEvent("burst", fmt.Sprintf("burst-%03d", i), "ranker", "log", "info", "web-9", now.Add(-time.Minute+time.Duration(i)*time.Millisecond)))
	}
	if err := idx.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	refresh()
	ctx := context.Background()
	from := now.Add(-time.Hour)
	l, err := idx.Traces(ctx, TraceQuery{From: from})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range l.Traces {
		ids = append(ids, s.CorrelationID)
	}
	if fmt.Sprint(ids) != "[burst small-c small-b small-a]" || l.Total != 4 {
		t.Fatalf("trace list: %v (total %d)", ids, l.Total)
	}
	if b := l.Traces[0]; b.Events != 300 || b.DurationMs != 299 {
		t.Errorf("burst: %+v", b)
	}
	if c := l.Traces[1]; c.Events != 5 || c.Errors != 1 || c.Warnings != 1 || c.Rejected != 1 || c.DurationMs != 6000 ||
		!c.Start.Equal(now.Add(-20*time.Minute)) || fmt.Sprint(c.Services) != "[billing gateway search]" {
		t.Errorf("small-c: %+v", c)
	}
	for _, tc := range []struct {
		q    TraceQuery
		want string
	}{
		{TraceQuery{From: from, Services: []string{"billing"}}, "[small-c small-b small-a]"},
		{TraceQuery{From: from, Attrs: []Attr{{"host", "web-3"}}}, "[small-c]"},
		{TraceQuery{From: from, Attrs: []Attr{{"host", "web-2"}, {"level", "error"}}}, "[small-c]"},
		{TraceQuery{From: from, MinDuration: 4 * time.Second}, "[small-c]"},
		{TraceQuery{From: from, MaxDuration: 3 * time.Second}, "[burst small-b small-a]"},
		{TraceQuery{From: from, Limit: 2}, "[burst small-c]"},
	} {
		l, err := idx.Traces(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range l.Traces {
			got = append(got, s.CorrelationID)
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("%+v: %v, want %s", tc.q, got, tc.want)
		}
	}
	seen := map[string]bool{}
	q := Query{CorrelationID: "burst", Newest: true, Limit: 70}
	for page := 0; page < 10; page++ {
		res, err := idx.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
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
		q.After = res.Next
	}
	if len(seen) != 300 {
		t.Errorf("paging saw %d of 300", len(seen))
	}
}

func TestTraceListEmbedded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EmbeddedPath = "" // in memory
	e, err := OpenEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	traceLists(t, e, func() {})
}

func TestTraceListOpenSearch(t *testing.T) {
	r, _ := remoteFor(t, openSearch(t), nil)
	traceLists(t, r, func() {
		if err := r.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTraceListElasticsearch(t *testing.T) {
	r, _ := remoteFor(t, elasticsearch(t), nil)
	traceLists(t, r, func() {
		if err := r.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
