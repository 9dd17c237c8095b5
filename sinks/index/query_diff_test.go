package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/index/querylang"
)

// queryCorpus is a mix of logs, metrics and dead letters over a few
// hosts, sites and services, with data the data.<path> fields read.
func queryCorpus(t0 time.Time) []*stage.Message {
	messages := []string{"card declined by bank", "timeout calling payments", "request served", "retry after timeout", "Declined: card expired", "cache warm"}
	levels := []string{"info", "warn", "error"}
	hosts := []string{"web-1", "web-2", "db-1"}
	sites := []string{"par1", "ams1"}
	services := []string{"gateway", "payments", "search"}
	var out []*stage.Message
	for i := range 60 {
		at := t0.Add(time.Duration(i) * 1500 * time.Millisecond)
		cid := fmt.Sprintf("cid-%d", i%7)
		id := fmt.Sprintf("qd-%03d", i)
		svc := services[i%3]
		attrs := map[string]string{"site": sites[i%2], "env": "test"}
		var (
			kind, name string
			data       any
		)
		switch i % 4 {
		case 3:
			kind, name = schemas.KindMetric, "search_made"
			data = map[string]any{"query": "cats", "n_results": i % 5, "user": map[string]any{"id": i % 3}}
		default:
			kind, name = schemas.KindLog, "app"
			user := any(i % 3)
			if i%5 == 0 {
				user = fmt.Sprintf("u-%d", i%3)
			}
			data = map[string]any{"message": messages[i%len(messages)], "level": levels[i%3], "service": svc, "host": hosts[i%len(hosts)],
				"user": map[string]any{"id": user}, "tags": []any{"a", []string{"b", "c"}[i%2]}, "amount": 12.5 * float64(i%2), "ok": i%2 == 0,
				"items": []any{map[string]any{"sku": fmt.Sprintf("s%d", i%4)}}}
		}
		if i%10 == 9 {
			// Past the embedded index's bounds of data terms: more values
			// than it posts, and a value longer than it posts.
			m := data.(map[string]any)
			for j := range limits.IndexDataTerms + 8 {
				m[fmt.Sprintf("k%d", j)] = j
			}
			m["long"] = strings.Repeat("x", limits.IndexDataValueBytes+16) + fmt.Sprint(i%4)
		}
		raw, _ := json.Marshal(data)
		ev := &schemas.Event{SpecVersion: schemas.SpecVersion, ID: id, Source: "urn:sightline:producer:" + svc, Type: kind + "." + name,
			Time: at, DataContentType: "application/json", CorrelationID: cid, Producer: svc, Attributes: attrs, Data: raw}
		m := stage.EventMessage(ev, kind, name, "")
		m.Meta = stage.Meta{Stream: "SIGHTLINE_EVENTS", Sequence: uint64(i + 1), Delivered: 1, Timestamp: at}
		out = append(out, m)
	}
	for i, reason := range []string{"timeout reading the body", "declined: schema says no", "bad json"} {
		out = append(out, testutil.DeadLetter(fmt.Sprintf("cid-%d", i), "sightline.raw.metric.x", reason, []byte("{"), t0.Add(time.Duration(100+i)*time.Second), uint64(i+1)))
	}
	return out
}

// queryCases are the queries both indexes must answer alike; want is the
// least number of hits (so that a case that matches nothing anywhere
// does not pass for agreement).
var queryCases = []struct {
	q    Query
	want int
}{
	{Query{Text: "declined"}, 5},
	{Query{Text: "declined OR timeout"}, 10},
	{Query{Text: "card declined"}, 3},
	{Query{Text: `"card declined"`}, 3},
	{Query{Text: "timeout -retry"}, 3},
	{Query{Text: "level:error"}, 10},
	{Query{Text: "level:error AND NOT host:web-1"}, 5},
	{Query{Text: "NOT level:info"}, 20},
	{Query{Text: "(declined OR timeout) AND site:par1"}, 3},
	{Query{Text: "service:payments kind:log"}, 10},
	{Query{Text: "kind:dlq"}, 3},
	{Query{Text: "kind:metric AND data.user.id:1"}, 3},
	{Query{Text: "data.user.id:u-1"}, 1},
	{Query{Text: "data.tags:b"}, 10},
	{Query{Text: "data.amount:12.5"}, 10},
	{Query{Text: "data.ok:true"}, 10},
	{Query{Text: "data.items.sku:s2"}, 5},
	{Query{Text: "-kind:metric"}, 40},
	{Query{Text: "correlation_id:cid-3"}, 5},
	{Query{Text: "cid-3"}, 5},
	{Query{Text: "id:qd-017 OR qd-018"}, 2},
	{Query{Text: "env:test site:ams1"}, 20},
	{Query{Text: "source:urn:sightline:producer:gateway"}, 10},
	{Query{Text: "type:metric.search_made name:search_made"}, 10},
	{Query{Text: "host:web-2 OR host:db-1"}, 20},
	{Query{Text: "NOT (kind:log OR kind:metric)"}, 3},
	{Query{Text: "NOT NOT level:warn"}, 10},
	{Query{Text: "timeout", Levels: []string{"info", "warn"}}, 2},
	{Query{Text: "declined OR kind:metric", Services: []string{"payments"}}, 5},
	{Query{Text: "NOT host:web-1", CorrelationID: "cid-2"}, 3},
	{Query{Text: "nothing-matches-this"}, 0},
	// Free text also equals a type, service, host or name.
	{Query{Text: "web-2"}, 15},
	{Query{Text: "gateway"}, 20},
	{Query{Text: "payments"}, 20},
	{Query{Text: "metric.search_made"}, 15},
	{Query{Text: "search_made OR declined"}, 20},
	{Query{Text: "web-2 declined"}, 1},
	{Query{Text: "NOT db-1 kind:log"}, 20},
	// Data past the embedded index's bounds of data terms.
	{Query{Text: "data.k33:33"}, 6},
	{Query{Text: "data.long:" + strings.Repeat("x", limits.IndexDataValueBytes+16) + "1"}, 3},
	{Query{Text: "data.user.id:2 OR data.k39:39"}, 10},
	{Query{Text: "data.user.id:1 -data.k0:0"}, 10},
}

// TestSearchLanguageAgreesOnBothIndexes runs the same queries on the
// embedded index and on the real OpenSearch (and Elasticsearch when
// configured) holding the same events: the same hits, the same totals.
func TestSearchLanguageAgreesOnBothIndexes(t *testing.T) {
	for _, srv := range []struct {
		name string
		base func(testing.TB) string
	}{{"opensearch", openSearch}, {"elasticsearch", elasticsearch}} {
		t.Run(srv.name, func(t *testing.T) {
			t0 := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)
			msgs := queryCorpus(t0)
			ctx := context.Background()
			e := memoryEmbedded(t)
			r, _ := remoteFor(t, srv.base(t), func(c *Config) { c.Timeout = time.Minute })
			for _, idx := range []stage.Sink{e, r} {
				if err := idx.Write(ctx, msgs); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			for _, c := range queryCases {
				q := c.q
				q.Limit = MaxResults
				q.From = t0.Add(-time.Minute)
				var got [2][]string
				var totals [2]int
				for i, s := range []Searcher{e, r} {
					res, err := s.Search(ctx, q)
					if err != nil {
						t.Fatalf("%+v: %v", c.q, err)
					}
					for _, d := range res.Docs {
						got[i] = append(got[i], d.ID)
					}
					slices.Sort(got[i])
					totals[i] = res.Total
				}
				if !slices.Equal(got[0], got[1]) || totals[0] != totals[1] {
					t.Errorf("%q %v/%v/%s: embedded %d %v\n  %s %d %v", q.Text, q.Levels, q.Services, q.CorrelationID, totals[0], got[0], srv.name, totals[1], got[1])
				}
				if len(got[0]) < c.want || (c.want == 0 && len(got[0]) != 0) || len(got[0]) == len(msgs) {
					t.Errorf("%q: %d hits, want at least %d (and not every event)", q.Text, len(got[0]), c.want)
				}
			}
			// A query that does not parse fails alike, naming the position.
			for _, s := range []Searcher{e, r} {
				_, err := s.Search(ctx, Query{Text: "level:error AND (host:web-1"})
				var se *querylang.SyntaxError
				if !errors.As(err, &se) || se.Pos != 17 || !strings.Contains(err.Error(), "at position 17") {
					t.Errorf("%T: unparsable query: %v", s, err)
				}
			}
		})
	}
}

// memoryEmbedded opens an embedded index in memory, closed when t ends.
func memoryEmbedded(t *testing.T) *Embedded {
	t.Helper()
	cfg := DefaultConfig()
	cfg.EmbeddedPath = "" // in memory
	e, err := OpenEmbedded(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}
