package esclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		name, header, body, flavor, flat string
	}{
		{"elasticsearch header", "Elasticsearch", `{"version":{"number":"8.15.0"}}`, FlavorElasticsearch, "flattened"},
		{"opensearch", "", `{"version":{"distribution":"opensearch","number":"2.19.1"}}`, FlavorOpenSearch, "flat_object"},
		{"old opensearch", "", `{"version":{"distribution":"opensearch","number":"2.6.0"}}`, FlavorOpenSearch, "disabled"},
		{"elasticsearch without header", "", `{"version":{"number":"7.10.2"}}`, FlavorElasticsearch, "flattened"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := server(t, func(w http.ResponseWriter, r *http.Request) {
				if c.header != "" {
					w.Header().Set("X-Elastic-Product", c.header)
				}
				_, _ = io.WriteString(w, c.body)
			})
			cl, err := New(Config{URLs: []string{s.URL}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cl.Detect(context.Background())
			if err != nil || got.Flavor != c.flavor || got.FlatType != c.flat {
				t.Fatalf("%+v, %v; want %s %s", got, err, c.flavor, c.flat)
			}
		})
	}
}

func TestStatusErrors(t *testing.T) {
	for code, transient := range map[int]bool{400: false, 404: false, 401: true, 403: true, 429: true, 500: true, 503: true} {
		e := NewStatusError("POST", "/_bulk", code, []byte(" "+strings.Repeat("x", 600)+" "))
		if e.Transient() != transient || errors.Is(e, ErrUnavailable) != transient {
			t.Errorf("HTTP %d: transient %v, wraps ErrUnavailable %v; want %v", code, e.Transient(), errors.Is(e, ErrUnavailable), transient)
		}
		if len(e.Body) != 500+len("…") || !strings.Contains(e.Error(), "index: POST /_bulk: HTTP ") {
			t.Errorf("HTTP %d: %q", code, e.Error())
		}
	}
}

func TestBulkItemsAndAuth(t *testing.T) {
	var hits [2]atomic.Int32
	mk := func(i int) *httptest.Server {
		return server(t, func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if r.Header.Get("Content-Type") != "application/x-ndjson" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			_, _ = io.WriteString(w, `{"errors":true,"items":[{"index":{"status":201}},`+
				`{"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad","caused_by":{"type":"x","reason":"why"}}}},`+
				`{"index":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}}]}`)
		})
	}
	a, b := mk(0), mk(1)
	cl, err := New(Config{URLs: []string{a.URL, b.URL + "/"}, Username: "u", Password: "p"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		items, err := cl.Bulk(context.Background(), []byte("{}\n{}\n"), 3)
		if err != nil {
			t.Fatal(err)
		}
		if items[0] != nil || items[1] == nil || items[1].Transient() || items[1].Reason != "mapper_parsing_exception: bad (caused by x: why)" ||
			items[2] == nil || !items[2].Transient() {
			t.Fatalf("items %+v %+v %+v", items[0], items[1], items[2])
		}
	}
	if hits[0].Load() != 1 || hits[1].Load() != 1 {
		t.Fatalf("requests per node %d, %d: want one each (round robin)", hits[0].Load(), hits[1].Load())
	}
	if _, err := cl.Bulk(context.Background(), []byte("{}\n"), 2); err == nil || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("3 items for 2 actions: %v", err)
	}
	wrong, _ := New(Config{URLs: []string{a.URL}, Username: "u", Password: "no"}, nil)
	var se *StatusError
	if _, err := wrong.Bulk(context.Background(), []byte("{}\n"), 1); !errors.As(err, &se) || se.Code != 401 || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestSearchDecodesHits(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/p-*/_search") {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, `{"hits":{"total":{"value":7},"hits":[{"_source":{"id":"a"}},{"_source":{"id":"b"}}]}}`)
	})
	cl, _ := New(Config{URLs: []string{s.URL}}, nil)
	total, hits, err := Search[struct{ ID string }](context.Background(), cl, "p-*", []byte(`{}`))
	if err != nil || total != 7 || len(hits) != 2 || hits[0].ID != "a" || hits[1].ID != "b" {
		t.Fatalf("%d %+v %v", total, hits, err)
	}
}
