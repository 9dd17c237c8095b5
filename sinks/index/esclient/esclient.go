// Package esclient is the small HTTP client the index sink uses to talk to
// OpenSearch and Elasticsearch: round robin over the nodes, basic or API-key
// authentication, TLS with a CA file, server detection, index templates,
// _bulk with per-item results, search, refresh, and listing and deleting
// indices. It knows nothing of Sightline's documents: the caller builds
// the bodies and decodes the hits.
package esclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Flavors of servers.
const (
	FlavorAuto          = "auto"
	FlavorOpenSearch    = "opensearch"
	FlavorElasticsearch = "elasticsearch"
)

// ErrUnavailable wraps failures to reach the server, and the answers that
// say it is busy, failing or refusing the credentials (429, 5xx, 401, 403):
// a caller retries them.
var ErrUnavailable = errors.New("index: server unavailable")

// Config says where the server is and how to authenticate.
type Config struct {
	URLs []string
	// Flavor is FlavorAuto (or ""), FlavorOpenSearch or FlavorElasticsearch.
	Flavor string
	// Basic auth, or an API key (sent as "Authorization: ApiKey <key>").
	Username, Password, APIKey string
	// TLS are the client's TLS settings (nil: the system roots).
	TLS *tls.Config
	// Timeout of one request.
	Timeout time.Duration
}

// Client talks to one cluster. Safe for concurrent use.
type Client struct {
	cfg   Config
	base  []string
	next  atomic.Uint64
	httpc *http.Client
}

// New makes a client; it does not touch the network. httpc, when not nil,
// replaces the HTTP client (its TLS settings then come from it).
func New(cfg Config, httpc *http.Client) (*Client, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("urls: at least one server is required")
	}
	c := &Client{cfg: cfg, httpc: httpc}
	for _, u := range cfg.URLs {
		c.base = append(c.base, strings.TrimRight(u, "/"))
	}
	if c.httpc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 16
		if cfg.TLS != nil {
			tr.TLSClientConfig = cfg.TLS
		}
		c.httpc = &http.Client{Transport: tr, Timeout: cfg.Timeout}
	}
	return c, nil
}

// Do sends one request to the next node, with the credentials, and returns
// the status, body and header of the answer. A failure to reach the node
// wraps ErrUnavailable.
func (c *Client) Do(ctx context.Context, method, path, ctype string, body []byte) (int, []byte, http.Header, error) {
	base := c.base[int(c.next.Add(1))%len(c.base)]
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case c.cfg.APIKey != "":
		req.Header.Set("Authorization", "ApiKey "+c.cfg.APIKey)
	case c.cfg.Username != "":
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	resp, err := c.httpc.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, resp.Header, fmt.Errorf("%w: %s %s: read: %w", ErrUnavailable, method, path, err)
	}
	return resp.StatusCode, b, resp.Header, nil
}

// CloseIdleConnections closes the connections kept for reuse.
func (c *Client) CloseIdleConnections() { c.httpc.CloseIdleConnections() }

// StatusError is an answer with an unexpected HTTP status. It wraps
// ErrUnavailable when the status says to retry (429, 5xx, 401, 403).
type StatusError struct {
	Method, Path string
	Code         int
	// Body is the start of the answer (500 bytes at most).
	Body string
}

// doOK sends a request whose answer is only its status: 200 or a
// *StatusError.
func (c *Client) doOK(ctx context.Context, method, path, ctype string, body []byte) error {
	code, resp, _, err := c.Do(ctx, method, path, ctype, body)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return NewStatusError(method, path, code, resp)
	}
	return nil
}

// NewStatusError builds the error of an answer with status code and body.
func NewStatusError(method, path string, code int, body []byte) *StatusError {
	msg := strings.TrimSpace(string(body))
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return &StatusError{Method: method, Path: path, Code: code, Body: msg}
}

// Transient reports whether the status says to retry.
func (e *StatusError) Transient() bool {
	return e.Code == http.StatusTooManyRequests || e.Code >= 500 || e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("index: %s %s: HTTP %d: %s", e.Method, e.Path, e.Code, e.Body)
	if e.Transient() {
		return ErrUnavailable.Error() + ": " + msg
	}
	return msg
}

// Unwrap is ErrUnavailable when the error is transient.
func (e *StatusError) Unwrap() error {
	if e.Transient() {
		return ErrUnavailable
	}
	return nil
}

// Server is what Detect found.
type Server struct {
	// Flavor is FlavorOpenSearch or FlavorElasticsearch.
	Flavor string
	// Version is the server's version number ("2.19.1").
	Version string
	// FlatType is the mapping type of a field holding arbitrary JSON
	// without a mapping per key: flat_object (OpenSearch >= 2.7),
	// flattened (Elasticsearch), or disabled (older OpenSearch: the
	// field is stored, not searched).
	FlatType string
}

// Detect asks the server what it is. Config.Flavor, when set, wins over
// the answer.
func (c *Client) Detect(ctx context.Context) (Server, error) {
	code, body, hdr, err := c.Do(ctx, http.MethodGet, "/", "", nil)
	if err != nil {
		return Server{}, err
	}
	var info struct {
		Version struct {
			Distribution string `json:"distribution"`
			Number       string `json:"number"`
		} `json:"version"`
	}
	_ = json.Unmarshal(body, &info)
	flavor := c.cfg.Flavor
	if flavor == FlavorAuto || flavor == "" {
		switch {
		case hdr.Get("X-Elastic-Product") == "Elasticsearch":
			flavor = FlavorElasticsearch
		case info.Version.Distribution == "opensearch":
			flavor = FlavorOpenSearch
		case code == http.StatusOK && info.Version.Number != "":
			flavor = FlavorElasticsearch
		default:
			return Server{}, NewStatusError(http.MethodGet, "/", code, body)
		}
	}
	s := Server{Flavor: flavor, Version: info.Version.Number}
	switch flavor {
	case FlavorElasticsearch:
		s.FlatType = "flattened" // ES >= 7.3
	default:
		s.FlatType = "flat_object"
		if v := info.Version.Number; v != "" && versionLess(v, 2, 7) {
			s.FlatType = "disabled"
		}
	}
	return s, nil
}

func versionLess(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	ma, _ := strconv.Atoi(parts[0])
	mi := 0
	if len(parts) > 1 {
		mi, _ = strconv.Atoi(parts[1])
	}
	return ma < major || (ma == major && mi < minor)
}

// PutIndexTemplate installs (or replaces) the composable index template
// name with body.
func (c *Client) PutIndexTemplate(ctx context.Context, name string, body []byte) error {
	path := "/_index_template/" + name
	return c.doOK(ctx, http.MethodPut, path, "application/json", body)
}

// ItemError is the server's refusal of one _bulk action.
type ItemError struct {
	Status int
	Reason string
}

func (e *ItemError) Error() string { return e.Reason }

// Transient reports whether the item may succeed when sent again (429,
// 5xx, or no status).
func (e *ItemError) Transient() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500 || e.Status == 0
}

type bulkItem struct {
	Status int `json:"status"`
	Error  *struct {
		Type     string `json:"type"`
		Reason   string `json:"reason"`
		CausedBy *struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"caused_by"`
	} `json:"error"`
}

// Bulk sends one _bulk request (NDJSON body) of n actions and returns one
// entry per action, nil for success; or an error for the whole request (a
// *StatusError for an unexpected status).
func (c *Client) Bulk(ctx context.Context, body []byte, n int) ([]*ItemError, error) {
	const path = "/_bulk?filter_path=errors,items.*.status,items.*.error"
	code, resp, _, err := c.Do(ctx, http.MethodPost, path, "application/x-ndjson", body)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, NewStatusError(http.MethodPost, "/_bulk", code, resp)
	}
	out := make([]*ItemError, n)
	if !bytes.Contains(resp, []byte(`"errors":true`)) {
		return out, nil
	}
	var br struct {
		Errors bool                  `json:"errors"`
		Items  []map[string]bulkItem `json:"items"`
	}
	if err := json.Unmarshal(resp, &br); err != nil {
		return nil, fmt.Errorf("%w: _bulk: decode response: %w", ErrUnavailable, err)
	}
	if len(br.Items) != n {
		return nil, fmt.Errorf("%w: _bulk: %d items in the response for %d actions", ErrUnavailable, len(br.Items), n)
	}
	for i, it := range br.Items {
		var item bulkItem
		for _, v := range it {
			item = v
		}
		if item.Status < 300 && item.Error == nil {
			continue
		}
		reason := fmt.Sprintf("HTTP %d", item.Status)
		if item.Error != nil {
			reason = item.Error.Type + ": " + item.Error.Reason
			if c := item.Error.CausedBy; c != nil && c.Reason != "" {
				reason += " (caused by " + c.Type + ": " + c.Reason + ")"
			}
		}
		out[i] = &ItemError{Status: item.Status, Reason: reason}
	}
	return out, nil
}

// Search runs the query DSL body over the indices matching pattern and
// decodes each hit's _source into a T. total is the number of matches
// (which may exceed len(hits)).
func Search[T any](ctx context.Context, c *Client, pattern string, body []byte) (total int, hits []T, err error) {
	path := "/" + pattern + "/_search?ignore_unavailable=true&allow_no_indices=true&filter_path=hits.total,hits.hits._source"
	code, resp, _, err := c.Do(ctx, http.MethodPost, path, "application/json", body)
	if err != nil {
		return 0, nil, err
	}
	if code != http.StatusOK {
		return 0, nil, NewStatusError(http.MethodPost, "/_search", code, resp)
	}
	var sr struct {
		Hits struct {
			Total struct {
				Value int `json:"value"`
			} `json:"total"`
			Hits []struct {
				Source T `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(resp, &sr); err != nil {
		return 0, nil, fmt.Errorf("index: search: decode: %w", err)
	}
	hits = make([]T, 0, len(sr.Hits.Hits))
	for _, h := range sr.Hits.Hits {
		hits = append(hits, h.Source)
	}
	return sr.Hits.Total.Value, hits, nil
}

// Refresh makes everything written to the indices matching pattern
// searchable.
func (c *Client) Refresh(ctx context.Context, pattern string) error {
	path := "/" + pattern + "/_refresh?ignore_unavailable=true&allow_no_indices=true"
	return c.doOK(ctx, http.MethodPost, path, "", nil)
}

// Indices lists the indices matching pattern (open and closed), sorted.
func (c *Client) Indices(ctx context.Context, pattern string) ([]string, error) {
	path := "/_cat/indices/" + pattern + "?format=json&h=index&expand_wildcards=open,closed"
	code, body, _, err := c.Do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, err
	}
	if code == http.StatusNotFound {
		return nil, nil
	}
	if code != http.StatusOK {
		return nil, NewStatusError(http.MethodGet, path, code, body)
	}
	var rows []struct {
		Index string `json:"index"`
	}
	if err := json.Unmarshal(body, &rows); err != nil {
		return nil, fmt.Errorf("index: _cat/indices: %w", err)
	}
	out := make([]string, 0, len(rows))
	for _, row := range rows {
		out = append(out, row.Index)
	}
	sort.Strings(out)
	return out, nil
}

// DeleteIndices deletes the named indices in one request; missing ones
// are ignored.
func (c *Client) DeleteIndices(ctx context.Context, names []string) error {
	path := "/" + strings.Join(names, ",") + "?ignore_unavailable=true"
	return c.doOK(ctx, http.MethodDelete, path, "", nil)
}
