package searchapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/sinks/index"
)

// Client is an index.Searcher over the HTTP API of a running `sightline run`
// (GET /v1/search): what the CLI uses when the embedded index is held by
// the server process.
type Client struct {
	Base   string // http://127.0.0.1:8080
	Client *http.Client
}

// Search implements index.Searcher.
func (h *Client) Search(ctx context.Context, q index.Query) (index.Result, error) {
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
	v.Set("limit", strconv.Itoa(q.LimitOrDefault()))
	if q.Newest {
		v.Set("newest", "true")
	}
	if q.After != nil {
		v.Set("after", q.After.String())
	}
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(h.Base, "/")+"/v1/search?"+v.Encode(), nil)
	if err != nil {
		return index.Result{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) {
			return index.Result{}, fmt.Errorf("index: %w: %w (pass --api-ca, or set SIGHTLINE_API_CA_FILE, with the CA that signed the server's certificate)", index.ErrUnavailable, err)
		}
		return index.Result{}, fmt.Errorf("index: %w: %w", index.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	var res index.Result
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(b))
		var je struct{ Error string }
		if json.Unmarshal(b, &je) == nil && je.Error != "" {
			msg = je.Error
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			msg += " (pass --token-file FILE, or set SIGHTLINE_API_TOKEN_FILE, with a token of role read)"
		case http.StatusForbidden:
			msg += " (use a token of role read or admin)"
		}
		return index.Result{}, fmt.Errorf("index: GET /v1/search: HTTP %d: %s", resp.StatusCode, termsafe.String(msg))
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return index.Result{}, fmt.Errorf("index: GET /v1/search: %w", err)
	}
	return res, nil
}
