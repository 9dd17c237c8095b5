package index

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/index/esclient"
)

// ErrClosed is returned by the embedded index (its Write, Search and
// Count) after Close.
var ErrClosed = errors.New("index: sink closed")

// ErrSearchTooLong is returned by a search of the embedded index stopped
// at limits.SearchTime.
var ErrSearchTooLong = errors.New("index: search too long")

// ErrUnavailable wraps failures to reach the index server (transient).
var ErrUnavailable = esclient.ErrUnavailable

// Option configures a Remote or an Embedded index.
type Option func(*options)

type options struct {
	log        *slog.Logger
	now        func() time.Time
	httpc      *http.Client
	searchTime time.Duration
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the clock used by retention (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithSearchTime bounds how long one search reads the embedded index
// (default limits.SearchTime; tests set less).
func WithSearchTime(d time.Duration) Option { return func(o *options) { o.searchTime = d } }

// WithHTTPClient replaces the HTTP client (its TLS settings then come from it).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpc = c } }

func buildOptions(opts []Option) options {
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now, searchTime: limits.SearchTime}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Remote is the OpenSearch / Elasticsearch index: a stage.Sink writing
// through _bulk and a Searcher, over an esclient.Client. Safe for
// concurrent use.
type Remote struct {
	cfg    Config
	o      options
	client *esclient.Client

	mu     sync.Mutex
	ready  bool            // template installed
	server esclient.Server // detected
}

// NewRemote makes the remote index. It does not touch the network: the
// index template is installed by the first Write (and retried by every
// Write until it succeeds), so a server that is down at start-up only
// delays indexing.
func NewRemote(cfg Config, opts ...Option) (*Remote, error) {
	cfg = cfg.withDefaults()
	if !cfg.Remote() {
		return nil, fmt.Errorf("%w: index.urls: required for the remote index", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Remote{cfg: cfg, o: buildOptions(opts)}
	var tc *tls.Config
	if r.o.httpc == nil {
		var err error
		if tc, err = cfg.ClientConfig("index"); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	c, err := esclient.New(esclient.Config{
		URLs: cfg.URLs, Flavor: cfg.Flavor, Username: cfg.Username, Password: cfg.Password, APIKey: cfg.Token,
		TLS: tc, Timeout: cfg.Timeout,
	}, r.o.httpc)
	if err != nil {
		return nil, fmt.Errorf("%w: index.%w", ErrConfig, err)
	}
	r.client = c
	return r, nil
}

// Config returns the effective configuration.
func (r *Remote) Config() Config { return r.cfg }

// pattern matches every index of the sink.
func (r *Remote) pattern() string { return r.cfg.Prefix + "-*" }

// Flavor detects (once) whether the server is OpenSearch or Elasticsearch
// and which payload mapping it supports.
func (r *Remote) Flavor(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.detectLocked(ctx)
	return s.Flavor, err
}

func (r *Remote) detectLocked(ctx context.Context) (esclient.Server, error) {
	if r.server.Flavor != "" {
		return r.server, nil
	}
	s, err := r.client.Detect(ctx)
	if err != nil {
		return s, err
	}
	r.server = s
	return s, nil
}

// TemplateName is the name of the index template the sink installs.
func (r *Remote) TemplateName() string { return r.cfg.Prefix + "-events" }

// Template is the index template body for a payload mapping type
// (flat_object, flattened, or disabled).
func Template(cfg Config, dataMap string) map[string]any {
	kw := map[string]any{"type": "keyword", "ignore_above": 1024}
	data := map[string]any{"type": dataMap}
	if dataMap == "disabled" {
		data = map[string]any{"type": "object", "enabled": false}
	}
	attrs := map[string]any{"type": dataMap}
	if dataMap == "disabled" {
		attrs = map[string]any{"type": "object", "dynamic": true}
	}
	return map[string]any{
		"index_patterns": []string{cfg.Prefix + "-*"},
		"priority":       200,
		"_meta":          map[string]any{"description": "Sightline events and dead letters, daily index per kind", "managed_by": "sightline index sink"},
		"template": map[string]any{
			"settings": map[string]any{
				"number_of_shards":   max(1, cfg.Shards),
				"number_of_replicas": cfg.Replicas,
				"refresh_interval":   "1s",
			},
			"mappings": map[string]any{
				"dynamic": false,
				"properties": map[string]any{
					"id":            kw,
					"time":          map[string]any{"type": "date", "format": "strict_date_optional_time_nanos"},
					"ingesttime":    map[string]any{"type": "date", "format": "strict_date_optional_time_nanos"},
					"kind":          kw,
					"type":          kw,
					"name":          kw,
					"correlationid": kw,
					"source":        kw,
					"service":       kw,
					"host":          kw,
					"site":          kw,
					"env":           kw,
					"level":         kw,
					"producer":      kw,
					"subject":       kw,
					"syncscope":     kw,
					"synctag":       kw,
					"stream":        kw,
					"seq":           map[string]any{"type": "long"},
					"message":       map[string]any{"type": "text"},
					"attrs":         attrs,
					"data":          data,
					"dlq": map[string]any{"properties": map[string]any{
						"reason":   map[string]any{"type": "text"},
						"class":    kw,
						"stage":    kw,
						"subject":  kw,
						"stream":   kw,
						"sequence": map[string]any{"type": "long"},
					}},
				},
			},
		},
	}
}

// EnsureTemplate detects the server and installs the index template
// (idempotent). Write calls it until it succeeds once.
func (r *Remote) EnsureTemplate(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ready {
		return nil
	}
	if _, err := r.detectLocked(ctx); err != nil {
		return fmt.Errorf("index: detect server: %w", err)
	}
	body, _ := json.Marshal(Template(r.cfg, r.server.FlatType))
	if err := r.client.PutIndexTemplate(ctx, r.TemplateName(), body); err != nil {
		return err
	}
	r.ready = true
	r.o.log.Info("index template installed", "template", r.TemplateName(), "flavor", r.server.Flavor, "payload_mapping", r.server.FlatType)
	return nil
}

// Write indexes a batch through _bulk: one action per message, _id = event
// id, so rewriting is idempotent. Requests are split at MaxBulkBytes.
// Messages that cannot be documents, and items the server rejects with a
// 4xx (mapping conflict, ...), fail permanently with the server's reason;
// 429/5xx items fail transiently; the server unreachable fails the batch.
func (r *Remote) Write(ctx context.Context, batch []*stage.Message) error {
	if len(batch) == 0 {
		return nil
	}
	if err := r.EnsureTemplate(ctx); err != nil {
		return fmt.Errorf("index sink: %w", err)
	}
	// Documents are built and sent in a pipeline: while one _bulk request
	// is in flight the next chunk is encoded (one request in flight at a
	// time, so the server sees what a sequential loader would send).
	// A chunk ends at MaxBulkBytes.
	chunkDocs := max(1, len(batch))
	type chunk struct {
		body []byte
		idx  []int
	}
	var (
		failMu sync.Mutex
		failed = map[int]error{}
	)
	fail := func(i int, err error) {
		failMu.Lock()
		failed[i] = err
		failMu.Unlock()
	}
	// The body is about the events' size plus the action lines and the
	// fields the sink adds.
	bodyCap := 0
	for _, m := range batch {
		bodyCap += len(m.Data) + 256
	}
	bodyCap = min(r.cfg.MaxBulkBytes, bodyCap)
	chunks := make(chan chunk, 1)
	go func() {
		defer close(chunks)
		dec := new(decoder)
		cur := chunk{body: make([]byte, 0, bodyCap)}
		for i, m := range batch {
			if ctx.Err() != nil {
				return
			}
			start := len(cur.body)
			line, err := dec.appendMessage(cur.body, m, r.cfg.Prefix)
			if err != nil {
				cur.body = line[:start]
				if !stage.IsPermanent(err) {
					err = stage.Reject("index_invalid", "cannot encode the document", err)
				}
				fail(i, err)
				continue
			}
			if n := len(line) - start; n > r.cfg.MaxDocBytes {
				cur.body = line[:start]
				fail(i, stage.Rejectf("too_large", "document of %d bytes exceeds index.max_doc_bytes (%d)", n, r.cfg.MaxDocBytes))
				continue
			}
			if len(line) > r.cfg.MaxBulkBytes && len(cur.idx) > 0 {
				// This document starts the next request.
				rest := append(make([]byte, 0, bodyCap), line[start:]...)
				chunks <- chunk{body: line[:start], idx: cur.idx}
				cur = chunk{body: rest, idx: []int{i}}
				continue
			}
			cur.body = line
			cur.idx = append(cur.idx, i)
			if len(cur.idx) >= chunkDocs {
				chunks <- cur
				cur = chunk{body: make([]byte, 0, bodyCap)}
			}
		}
		if len(cur.idx) > 0 {
			chunks <- cur
		}
	}()
	var reqErr error
	for c := range chunks {
		if reqErr != nil {
			// The server is unreachable: do not hammer it with the rest.
			for _, i := range c.idx {
				fail(i, reqErr)
			}
			continue
		}
		errs, err := r.bulk(ctx, c.body, len(c.idx))
		if err != nil {
			reqErr = err
			for _, i := range c.idx {
				fail(i, err)
			}
			continue
		}
		for j, e := range errs {
			if e != nil {
				fail(c.idx[j], e)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		// Cancelled part way: some documents may not have been sent; the
		// whole batch is retried (rewrites are idempotent).
		return fmt.Errorf("index sink: %w", err)
	}
	if len(failed) == 0 {
		return nil
	}
	for i, e := range failed {
		if stage.IsPermanent(e) {
			r.o.log.Warn("event rejected by the index", "correlation_id", batch[i].Header.Get(stage.HeaderCorrelationID), "subject", batch[i].Subject, "error", e)
		}
	}
	return &stage.BatchError{Failed: failed}
}

// bulk sends one _bulk request of n actions and returns the per-item errors
// (nil for success): permanent for what the server refuses (4xx), transient
// for 429/5xx; or an error for the whole request.
func (r *Remote) bulk(ctx context.Context, body []byte, n int) ([]error, error) {
	items, err := r.client.Bulk(ctx, body, n)
	if err != nil {
		var se *esclient.StatusError
		if errors.As(err, &se) && se.Code == http.StatusRequestEntityTooLarge && n == 1 {
			return []error{stage.Rejectf("too_large", "the index refused the document as too large (HTTP 413)")}, nil
		}
		return nil, err
	}
	out := make([]error, n)
	for i, it := range items {
		switch {
		case it == nil:
		case it.Transient():
			out[i] = fmt.Errorf("%w: bulk item: %s", ErrUnavailable, it.Reason)
		default:
			out[i] = stage.Reject("index_rejected", it.Reason, nil)
		}
	}
	return out, nil
}

// Close releases the idle connections (the writes have ended:
// sinks.Drain).
func (r *Remote) Close(context.Context) error {
	r.client.CloseIdleConnections()
	return nil
}

// Refresh makes everything written so far searchable (tests, benchmarks).
func (r *Remote) Refresh(ctx context.Context) error { return r.client.Refresh(ctx, r.pattern()) }

// Indices lists the sink's indices.
func (r *Remote) Indices(ctx context.Context) ([]string, error) {
	return r.client.Indices(ctx, r.pattern())
}

// DeleteExpired deletes the daily indices whose day ended more than
// Retention before now, and returns their names.
func (r *Remote) DeleteExpired(ctx context.Context) ([]string, error) {
	if r.cfg.Retention <= 0 {
		return nil, nil
	}
	names, err := r.Indices(ctx)
	if err != nil {
		return nil, fmt.Errorf("index: retention: %w", err)
	}
	cutoff := r.o.now().Add(-r.cfg.Retention)
	var old []string
	for _, n := range names {
		day, ok := indexDay(r.cfg.Prefix, n)
		if ok && day.Add(24*time.Hour).Before(cutoff) {
			old = append(old, n)
		}
	}
	deleted := append([]string(nil), old...)
	for len(old) > 0 {
		k := min(len(old), 50)
		if err := r.client.DeleteIndices(ctx, old[:k]); err != nil {
			return nil, fmt.Errorf("index: retention: %w", err)
		}
		r.o.log.Info("deleted expired indices", "indices", old[:k], "retention", r.cfg.Retention.String())
		old = old[k:]
	}
	return deleted, nil
}

// indexDay parses <prefix>-<kind>-YYYY.MM.DD.
func indexDay(prefix, name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return time.Time{}, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse("2006.01.02", rest[i+1:])
	return t, err == nil
}

// RunRetention deletes expired indices now and every RetentionInterval
// until ctx is done. Failures are logged and retried at the next tick.
func (r *Remote) RunRetention(ctx context.Context) {
	runRetention(ctx, r.cfg, r.o.log, func(ctx context.Context) error {
		_, err := r.DeleteExpired(ctx)
		return err
	})
}

func runRetention(ctx context.Context, cfg Config, log *slog.Logger, f func(context.Context) error) {
	if cfg.Retention <= 0 {
		return
	}
	t := time.NewTicker(cfg.RetentionInterval)
	defer t.Stop()
	for {
		if err := f(ctx); err != nil && ctx.Err() == nil {
			log.Warn("index retention failed; will retry", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
