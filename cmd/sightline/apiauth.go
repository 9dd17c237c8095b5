package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/httpauth"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/sinks/index/searchapi"
)

// apiAuth is where a running `sightline run`'s HTTP API is (--api) and how
// a command authenticates to it when it requires tokens (http.auth) and
// serves TLS (http.tls_cert). Every command that reads through the API
// uses these global flags.
type apiAuth struct {
	url       string
	tokenFile string
	caFile    string
}

// addAPIFlags adds the global --api, --token-file and --api-ca.
func addAPIFlags(f *pflag.FlagSet, a *apiAuth) {
	f.StringVar(&a.url, "api", os.Getenv("SIGHTLINE_API"),
		"HTTP API of a running sightline run, e.g. http://127.0.0.1:8080 (env SIGHTLINE_API); without it, trace and logs read through the API at this configuration's http.listen while run holds the embedded index")
	f.StringVar(&a.tokenFile, "token-file", os.Getenv("SIGHTLINE_API_TOKEN_FILE"),
		"with --api: file holding a bearer token of role read (env SIGHTLINE_API_TOKEN_FILE)")
	f.StringVar(&a.caFile, "api-ca", os.Getenv("SIGHTLINE_API_CA_FILE"),
		"with --api https://...: PEM CA that signed the server's certificate (env SIGHTLINE_API_CA_FILE)")
}

// searcher reads the index: through --api when given (with its token and
// CA), else the configured remote index, else the embedded one read-only.
func (g *globals) searcher(cfg *config.Config) (index.Searcher, func() error, error) {
	if g.api.url != "" {
		c, err := httpauth.NewClient(httpauth.ClientConfig{TokenFile: g.api.tokenFile, CAFile: g.api.caFile})
		if err != nil {
			return nil, nil, err
		}
		return &searchapi.Client{Base: g.api.url, Client: c}, func() error { return nil }, nil
	}
	ic, err := sinks.SectionOf[index.Config](cfg, "index")
	if err != nil {
		return nil, nil, err
	}
	s, closeFn, err := index.OpenReader(*ic, index.WithLogger(g.logger()))
	if err == nil || ic.Remote() {
		return s, closeFn, err
	}
	// The embedded index is held by a running `sightline run` (it opens it
	// for writing): read through that process's API at the configured
	// http.listen, with --token-file and --api-ca, instead of asking for --api.
	if base := localAPI(cfg.HTTP); base != "" {
		c, cerr := httpauth.NewClient(httpauth.ClientConfig{TokenFile: g.api.tokenFile, CAFile: g.api.caFile})
		if cerr == nil && apiAnswers(c, base) {
			g.logger().Debug("embedded index held by a running sightline run: reading through its API", "api", base)
			return &searchapi.Client{Base: base, Client: c}, func() error { return nil }, nil
		}
	}
	return nil, nil, err
}

// localAPI is the URL of this configuration's own HTTP API on this
// machine ("" when it has none): http.listen with a wildcard host made
// loopback, https when http.tls_cert is set.
func localAPI(h config.HTTP) string {
	host, port, err := net.SplitHostPort(h.Listen)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	scheme := "http"
	if h.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// apiAnswers reports whether a Sightline API answers at base (its
// liveness endpoint, within a second).
func apiAnswers(c *http.Client, base string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
