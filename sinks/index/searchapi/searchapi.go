// Package searchapi is the search service of the index: the HTTP trace and
// search API and the web page, over any index.Searcher (the embedded or the
// remote index, or the HTTP client of this API). It imports the index;
// the index never imports it.
package searchapi

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/web"
)

// API serves the trace and search HTTP API and the web page.
type API struct {
	s        index.Searcher
	log      *slog.Logger
	locators []index.Locator
	mux      *http.ServeMux
}

// New returns the handler of
//
//	GET /v1/trace/{id}   the timeline of a correlation ID (404 when nothing carries it); with limit (and after), one page of it
//	GET /v1/search?...   q (the search language, docs/search.md; 400 naming the position of an error), service, type, kind, level, from, to (RFC 3339 or a duration like 15m), limit, correlation_id, newest, after (a result's next cursor), histogram (buckets of counts over the range)
//	GET /v1/traces?...   correlation IDs grouped in the index: from, to, service, attr (field=value), min_duration, max_duration, limit
//	GET /ui/             the web page ("/" redirects there)
//
// Mount it with Register, or route those patterns to it.
func New(s index.Searcher, log *slog.Logger, locators ...index.Locator) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{s: s, log: log, locators: locators, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /v1/trace/{id}", a.trace)
	a.mux.HandleFunc("GET /v1/search", a.search)
	a.mux.HandleFunc("GET /v1/traces", a.traces)
	static, _ := fs.Sub(web.Static, "static")
	a.mux.Handle("GET /ui/", http.StripPrefix("/ui/", http.FileServerFS(static)))
	a.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	return a
}

// Patterns are the ServeMux patterns the API answers.
var Patterns = []string{"GET /v1/trace/{id}", "GET /v1/search", "GET /v1/traces", "GET /ui/", "GET /{$}"}

// Register mounts the API on mux under Patterns.
func Register(mux *http.ServeMux, a *API) {
	for _, p := range Patterns {
		mux.Handle(p, a)
	}
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	if code >= 500 {
		a.log.Warn("index api request failed", "path", r.URL.Path, "error", err)
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// searchFailCode is the status of a failed search: 503 for one stopped at
// limits.SearchTime (the index is fine, the query too wide), else 502.
func searchFailCode(err error) int {
	if errors.Is(err, index.ErrSearchTooLong) {
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

func (a *API) trace(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var (
		tl  *index.Timeline
		err error
	)
	if v := r.URL.Query(); v.Has("limit") || v.Has("after") {
		// One page: limit events past after (the page loads a long trace
		// page by page).
		var after *index.Cursor
		if s := v.Get("after"); s != "" {
			if after, err = index.ParseCursor(s); err != nil {
				a.fail(w, r, http.StatusBadRequest, errors.New("after: "+err.Error()))
				return
			}
		}
		limit, cerr := strconv.Atoi(v.Get("limit"))
		if v.Get("limit") == "" {
			limit, cerr = index.MaxResults, nil
		}
		if cerr != nil || limit <= 0 {
			a.fail(w, r, http.StatusBadRequest, errors.New("limit: not a positive number"))
			return
		}
		tl, err = index.TracePage(r.Context(), a.s, id, after, limit, a.locators...)
	} else {
		tl, err = index.Trace(r.Context(), a.s, id, a.locators...)
	}
	switch {
	case errors.Is(err, index.ErrNotFound):
		writeJSON(w, http.StatusNotFound, tl)
	case err != nil:
		a.fail(w, r, http.StatusBadGateway, err)
	default:
		a.log.Debug("trace served", "correlation_id", id, "events", len(tl.Events))
		writeJSON(w, http.StatusOK, tl)
	}
}

// ParseQuery reads an index.Query from URL parameters (the API and `sightline logs`
// share it). Times are RFC 3339 or a duration back from now ("15m"); q is
// the search language of package querylang (docs/search.md), checked here.
func ParseQuery(v map[string][]string, now time.Time) (index.Query, error) {
	get := func(k string) string {
		if x := v[k]; len(x) > 0 {
			return strings.TrimSpace(x[0])
		}
		return ""
	}
	list := func(k string) []string {
		var out []string
		for _, x := range v[k] {
			for _, p := range strings.Split(x, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
		}
		return out
	}
	q := index.Query{
		CorrelationID: get("correlation_id"),
		Services:      list("service"),
		Types:         list("type"),
		Kinds:         list("kind"),
		Levels:        list("level"),
		Text:          get("q"),
	}
	// The query language is checked here, so a query that does not
	// parse is the caller's error (400), before anything is read.
	if _, err := index.ParseText(q.Text); err != nil {
		return q, err
	}
	var err error
	if q.From, err = ParseTime(get("from"), now); err != nil {
		return q, errors.New("from: " + err.Error())
	}
	if q.To, err = ParseTime(get("to"), now); err != nil {
		return q, errors.New("to: " + err.Error())
	}
	if s := get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 0 {
			return q, errors.New("limit: not a positive number")
		}
	}
	q.Newest = get("newest") == "true" || get("newest") == "1"
	if s := get("after"); s != "" {
		if q.After, err = index.ParseCursor(s); err != nil {
			return q, errors.New("after: " + err.Error())
		}
	}
	return q, nil
}

// ParseTime reads RFC 3339 or a duration back from now ("15m", "2h").
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("want RFC 3339 (2026-01-02T15:04:05Z) or a duration (15m)")
	}
	return t, nil
}

func (a *API) search(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r.URL.Query(), time.Now())
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	// One bound for the whole answer, its histogram's searches included.
	ctx, cancel := context.WithTimeout(r.Context(), limits.SearchTime)
	defer cancel()
	res, err := a.s.Search(ctx, q)
	if err != nil {
		a.fail(w, r, searchFailCode(err), err)
		return
	}
	hs := r.URL.Query().Get("histogram")
	if hs == "" {
		writeJSON(w, http.StatusOK, res)
		return
	}
	n, err := strconv.Atoi(hs)
	if err != nil || n <= 0 {
		a.fail(w, r, http.StatusBadRequest, errors.New("histogram: want a number of buckets"))
		return
	}
	h, err := index.Histogram(ctx, a.s, q, n, time.Now())
	if err != nil {
		a.fail(w, r, searchFailCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		index.Result
		Histogram []index.Bucket `json:"histogram"`
	}{res, h})
}

// ParseTraceQuery reads an index.TraceQuery from URL parameters: from, to,
// service, attr (field=value, repeated), min_duration, max_duration
// (Go durations: 250ms, 2s), limit.
func ParseTraceQuery(v url.Values, now time.Time) (index.TraceQuery, error) {
	var q index.TraceQuery
	var err error
	if q.From, err = ParseTime(strings.TrimSpace(v.Get("from")), now); err != nil {
		return q, errors.New("from: " + err.Error())
	}
	if q.To, err = ParseTime(strings.TrimSpace(v.Get("to")), now); err != nil {
		return q, errors.New("to: " + err.Error())
	}
	for _, x := range v["service"] {
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				q.Services = append(q.Services, s)
			}
		}
	}
	for _, x := range v["attr"] {
		if x = strings.TrimSpace(x); x == "" {
			continue
		}
		at, err := index.ParseAttr(x)
		if err != nil {
			return q, errors.New("attr: " + err.Error())
		}
		q.Attrs = append(q.Attrs, at)
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{"min_duration", &q.MinDuration}, {"max_duration", &q.MaxDuration}} {
		if s := strings.TrimSpace(v.Get(d.key)); s != "" {
			if *d.dst, err = time.ParseDuration(s); err != nil || *d.dst < 0 {
				return q, errors.New(d.key + ": want a duration such as 250ms or 2s")
			}
		}
	}
	if s := strings.TrimSpace(v.Get("limit")); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 0 {
			return q, errors.New("limit: not a positive number")
		}
	}
	return q, nil
}

func (a *API) traces(w http.ResponseWriter, r *http.Request) {
	tlr, ok := a.s.(index.TraceLister)
	if !ok {
		a.fail(w, r, http.StatusNotImplemented, errors.New("this index cannot list traces"))
		return
	}
	q, err := ParseTraceQuery(r.URL.Query(), time.Now())
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	list, err := tlr.Traces(r.Context(), q)
	if err != nil {
		a.fail(w, r, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}
