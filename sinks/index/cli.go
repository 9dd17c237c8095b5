package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/blevesearch/bleve/v2"
)

// HTTPSearcher is a Searcher over the HTTP API of a running `sightline run`
// (GET /v1/search): what the CLI uses when the embedded index is held by
// the server process.
type HTTPSearcher struct {
	Base   string // http://127.0.0.1:8080
	Client *http.Client
}

// Search implements Searcher.
func (h *HTTPSearcher) Search(ctx context.Context, q Query) (Result, error) {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("correlation_id", q.CorrelationID)
	set("service", strings.Join(q.Services, ","))
	set("type", strings.Join(q.Types, ","))
	set("kind", strings.Join(q.Kinds, ","))
	set("level", strings.Join(q.Levels, ","))
	set("q", q.Text)
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	v.Set("limit", strconv.Itoa(q.limit()))
	if q.Newest {
		v.Set("newest", "true")
	}
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(h.Base, "/")+"/v1/search?"+v.Encode(), nil)
	if err != nil {
		return Result{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("index: %w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	var res Result
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return Result{}, fmt.Errorf("index: GET /v1/search: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return Result{}, fmt.Errorf("index: GET /v1/search: %w", err)
	}
	return res, nil
}

// OpenSearcher picks the searcher the CLI uses: the HTTP API when apiURL is
// given, else the remote index when configured, else the embedded index
// opened read-only (which fails while `sightline run` holds it: then pass
// the API URL). close releases it.
func OpenSearcher(cfg Config, apiURL string, opts ...Option) (s Searcher, closeFn func() error, err error) {
	nop := func() error { return nil }
	switch {
	case apiURL != "":
		return &HTTPSearcher{Base: apiURL}, nop, nil
	case cfg.Remote():
		r, err := NewRemote(cfg, opts...)
		if err != nil {
			return nil, nil, err
		}
		return r, nop, nil
	}
	cfg = cfg.withDefaults()
	idx, err := bleve.OpenUsing(cfg.EmbeddedPath, map[string]any{"read_only": true, "bolt_timeout": "2s"})
	if err != nil {
		return nil, nil, fmt.Errorf("index: open the embedded index %s read-only: %w (is `sightline run` holding it? then use --api http://<its http address>)", cfg.EmbeddedPath, err)
	}
	e := &Embedded{cfg: cfg, o: buildOptions(opts), idx: idx}
	return e, func() error { return e.Close(context.Background()) }, nil
}

// PrintTimeline writes a timeline as a table: offset, service, type, message.
func PrintTimeline(w io.Writer, tl *Timeline) error {
	fmt.Fprintf(w, "correlation id %s: %d events, %d services (%s), span %s, from %s\n",
		tl.CorrelationID, len(tl.Events), len(tl.Services), strings.Join(tl.Services, ", "),
		fmtOffset(time.Duration(tl.DurationMs*float64(time.Millisecond))), tl.Start.Format(time.RFC3339Nano))
	if tl.Truncated {
		fmt.Fprintf(w, "(only the first %d events are shown)\n", len(tl.Events))
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OFFSET\tSERVICE\tTYPE\tMESSAGE")
	for _, e := range tl.Events {
		fmt.Fprintf(tw, "+%s\t%s\t%s\t%s\n", fmtOffset(time.Duration(e.OffsetMs*float64(time.Millisecond))), orDefault(e.Service, "-"), e.Type, oneLine(e.Message, 160))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(tl.Locations) > 0 {
		fmt.Fprintln(w, "\nalso found in:")
		for _, l := range tl.Locations {
			fmt.Fprintf(w, "  %-8s %s  %s\n", l.Where, l.Ref, l.Detail)
		}
	}
	for _, e := range tl.LocateErrors {
		fmt.Fprintf(w, "  (locator failed: %s)\n", e)
	}
	return nil
}

// PrintDocs writes documents one per line: time, service, level, type, message.
func PrintDocs(w io.Writer, docs []Document) error {
	for _, d := range docs {
		if _, err := fmt.Fprintf(w, "%s  %-14s %-5s %-28s %s  [%s]\n", d.Time.Format("2006-01-02T15:04:05.000Z07:00"),
			orDefault(d.Service, "-"), orDefault(d.Level, "-"), d.Type, oneLine(d.Message, 400), d.CorrelationID); err != nil {
			return err
		}
	}
	return nil
}

func fmtOffset(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
	}
	return d.Round(time.Second).String()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	return truncate(s, n)
}

// Follow prints new matches of q as they are indexed, polling the searcher
// every interval, until ctx is done. Documents are emitted once, in time
// order; events indexed late with an older time than the last one seen are
// caught within the overlap window.
func Follow(ctx context.Context, s Searcher, q Query, every, overlap time.Duration, emit func(Document) error) error {
	seen := map[string]time.Time{}
	since := q.From
	for {
		q.From = since
		q.To = time.Time{}
		q.Limit = MaxResults
		q.Newest = false
		res, err := s.Search(ctx, q)
		if err != nil && ctx.Err() == nil {
			return err
		}
		for _, d := range res.Docs {
			if _, ok := seen[d.ID]; ok {
				continue
			}
			seen[d.ID] = d.Time
			if err := emit(d); err != nil {
				return err
			}
			if d.Time.After(since.Add(overlap)) {
				since = d.Time.Add(-overlap)
			}
		}
		for id, t := range seen {
			if t.Before(since) {
				delete(seen, id)
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
