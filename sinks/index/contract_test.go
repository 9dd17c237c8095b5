package index

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/index/querylang"
	"github.com/sightline/sightline/sinks/sinktest"
)

// The index sinks against the shared contract (sinks/sinktest): the remote
// index on the real OpenSearch (and Elasticsearch when configured), and the
// embedded index.

func TestContractOpenSearch(t *testing.T) {
	sinktest.Run(t, remoteHarness("index/opensearch", openSearch))
}

func TestContractElasticsearch(t *testing.T) {
	sinktest.Run(t, remoteHarness("index/elasticsearch", elasticsearch))
}

func TestContractEmbedded(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		Name: "index/embedded",
		OutageNA: "the index is in-process: there is no service to stop; a disk failure " +
			"fails the whole batch (plain error, retried)",
		Open: embeddedTarget,
	})
}

func quiet() Option { return WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))) }

func remoteHarness(name string, base func(testing.TB) string) sinktest.Harness {
	return sinktest.Harness{
		Name: name,
		Open: func(t *testing.T) *sinktest.Target {
			direct := base(t)
			reader, prefix := remoteFor(t, direct, func(c *Config) { c.Timeout = 30 * time.Second })
			proxy := sinktest.NewProxy(t, strings.TrimPrefix(direct, "http://"))
			cfg := reader.Config()
			cfg.URLs = []string{"http://" + proxy.Addr()}
			gen := sinktest.NewGenerator(t)
			var conflict sync.Once
			return &sinktest.Target{
				NewSink: func(t testing.TB) stage.Sink {
					r, err := NewRemote(cfg, quiet())
					if err != nil {
						t.Fatalf("NewRemote: %v", err)
					}
					return r
				},
				Events: gen.Mixed,
				Read: func(ctx context.Context, evs []*stage.Message) (map[string]sinktest.Record, error) {
					return readRemote(ctx, reader, evs)
				},
				// A mapping conflict: an old daily index of each kind maps
				// correlationid as a number; an event dated that day is
				// refused by the server (HTTP 400 mapper_parsing_exception).
				Reject: func(t testing.TB, good *stage.Message) *stage.Message {
					conflict.Do(func() {
						ctx := context.Background()
						if err := reader.EnsureTemplate(ctx); err != nil {
							t.Fatal(err)
						}
						for _, kind := range []string{"metric", "log", "snapshot"} {
							body := `{"mappings":{"properties":{"correlationid":{"type":"long"}}}}`
							code, resp, _, err := reader.client.Do(ctx, http.MethodPut, "/"+prefix+"-"+kind+"-2020.01.01", "application/json", []byte(body))
							if err != nil || code != 200 {
								t.Fatalf("create conflicting index: %d %s %v", code, resp, err)
							}
						}
					})
					return redate(t, good, "2020-01-01T12:00:00Z")
				},
				Outage: func(testing.TB) func() {
					proxy.Cut()
					return proxy.Restore
				},
			}
		},
	}
}

// redate returns a copy of m with its event time replaced.
func redate(t testing.TB, m *stage.Message, at string) *stage.Message {
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	ev["time"], _ = json.Marshal(at)
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	bad := *m
	bad.Data = data
	return &bad
}

// readRemote counts the documents of each event id across every daily
// index of the prefix (a copy in two indices would count twice).
func readRemote(ctx context.Context, r *Remote, evs []*stage.Message) (map[string]sinktest.Record, error) {
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	out := map[string]sinktest.Record{}
	for lo := 0; lo < len(evs); lo += 500 {
		hi := min(lo+500, len(evs))
		ids := make([]string, 0, hi-lo)
		for _, m := range evs[lo:hi] {
			ids = append(ids, m.ID)
		}
		q, _ := json.Marshal(map[string]any{"size": 2 * len(ids), "query": map[string]any{"terms": map[string]any{"id": ids}}})
		code, body, _, err := r.client.Do(ctx, http.MethodPost, "/"+r.cfg.Prefix+"-*/_search?ignore_unavailable=true&allow_no_indices=true", "application/json", q)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("search: HTTP %d: %s", code, body)
		}
		var res struct {
			Hits struct {
				Hits []struct {
					Index  string          `json:"_index"`
					Source json.RawMessage `json:"_source"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			return nil, err
		}
		for _, h := range res.Hits.Hits {
			var d Document
			if err := json.Unmarshal(h.Source, &d); err != nil {
				return nil, err
			}
			rec := out[d.ID]
			rec.Copies++
			rec.Value = h.Index + " " + normalize(h.Source)
			out[d.ID] = rec
		}
	}
	return out, nil
}

// normalize re-encodes JSON with sorted keys.
func normalize(raw []byte) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// embeddedTarget is an on-disk embedded index. The store holds an exclusive
// lock on its directory, so opening a new sink closes the previous one (as a
// restarted process would), and reading opens the index when no sink holds it.
func embeddedTarget(t *testing.T) *sinktest.Target {
	path := filepath.Join(t.TempDir(), "index")
	gen := sinktest.NewGenerator(t)
	var (
		mu  sync.Mutex
		cur *Embedded
	)
	open := func() (*Embedded, error) {
		cfg := DefaultConfig()
		cfg.EmbeddedPath = path
		return OpenEmbedded(cfg, quiet())
	}
	return &sinktest.Target{
		NewSink: func(t testing.TB) stage.Sink {
			mu.Lock()
			defer mu.Unlock()
			if cur != nil {
				if err := cur.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			e, err := open()
			if err != nil {
				t.Fatalf("OpenEmbedded: %v", err)
			}
			cur = e
			return e
		},
		Events: gen.Mixed,
		// The store keeps whatever document it is given (keyword terms,
		// words, a JSON body), so the refusal is the sink's own: a body
		// that is not a conformed event.
		Reject: func(_ testing.TB, good *stage.Message) *stage.Message {
			bad := *good
			bad.Data = []byte(`{"id":"` + good.ID + `","type":"metric.x", not json`)
			return &bad
		},
		Read: func(ctx context.Context, evs []*stage.Message) (map[string]sinktest.Record, error) {
			mu.Lock()
			defer mu.Unlock()
			e := cur
			if e == nil || e.closed.Load() {
				var err error
				if e, err = open(); err != nil {
					return nil, err
				}
				defer e.Close(ctx)
			}
			return readEmbedded(e, evs)
		},
	}
}

func readEmbedded(e *Embedded, evs []*stage.Message) (map[string]sinktest.Record, error) {
	out := map[string]sinktest.Record{}
	for _, m := range evs {
		body, ok, err := e.st.Get(m.ID)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		var d Document
		if err := json.Unmarshal(body, &d); err != nil {
			return nil, fmt.Errorf("stored document %s: %w", m.ID, err)
		}
		// A second copy would be a second entry in a posting list: count
		// the documents the correlation id finds with this id.
		sq, err := storeQuery(Query{CorrelationID: d.CorrelationID, Text: (&querylang.Node{Op: querylang.Field, Field: "id", Value: d.ID}).String(), Limit: MaxResults}, func(string) bool { return true })
		if err != nil {
			return nil, err
		}
		res, err := e.st.Search(sq)
		if err != nil {
			return nil, err
		}
		out[m.ID] = sinktest.Record{Copies: len(res.Hits), Value: normalize(body)}
	}
	return out, nil
}
