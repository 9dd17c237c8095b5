package httpauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Certificate is the server certificate of the HTTP listener, read from a
// cert/key pair of PEM files; Reload re-reads them (SIGHUP) and new
// handshakes use the new pair.
type Certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// LoadCertificate reads the pair. Errors name the key (http.tls_cert,
// http.tls_key) and the file, never the key material.
func LoadCertificate(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload re-reads the pair; on error the running certificate stays.
func (c *Certificate) Reload() error {
	if _, err := os.Stat(c.certFile); err != nil {
		return fmt.Errorf("http.tls_cert: %w", err)
	}
	if _, err := os.Stat(c.keyFile); err != nil {
		return fmt.Errorf("http.tls_key: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		// crypto/tls errors describe the PEM blocks, not their content.
		return fmt.Errorf("http.tls_cert %s / http.tls_key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cur.Store(&pair)
	return nil
}

// TLSConfig serves the current pair (TLS 1.2 or newer).
func (c *Certificate) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}

// ClientConfig is how a CLI command reaches the API.
type ClientConfig struct {
	TokenFile string // one token; sent as Authorization: Bearer
	CAFile    string // PEM CA bundle that signed the server's certificate (empty: system roots)
	Timeout   time.Duration
}

// NewClient is an HTTP client sending the token of cfg.TokenFile with every
// request and trusting cfg.CAFile.
func NewClient(cfg ClientConfig) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pool, err := CAPool(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("API CA file: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = tr
	if cfg.TokenFile != "" {
		tok, err := ReadTokenFile(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		rt = &bearerTransport{token: tok, next: tr}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &http.Client{Transport: rt, Timeout: cfg.Timeout}, nil
}

type bearerTransport struct {
	token string
	next  http.RoundTripper
}

// RoundTrip sends the token only to the origin (scheme, host and port) the
// command was pointed at: a redirect to another host, another port or from
// https to plain http is followed without it, so an API (or whoever answers
// in its place) cannot hand the token to a listener of its choice.
func (b *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	first := r
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	r = r.Clone(r.Context())
	if sameOrigin(first.URL, r.URL) {
		r.Header.Set("Authorization", "Bearer "+b.token)
	} else {
		r.Header.Del("Authorization")
	}
	return b.next.RoundTrip(r)
}

// sameOrigin compares scheme, host and port (default ports made explicit).
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && originPort(a) == originPort(b)
}

func originPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// ErrNoToken is what a CLI reports on a 401 from the API.
var ErrNoToken = errors.New("the API requires a token: pass --token-file FILE or set SIGHTLINE_API_TOKEN_FILE")

// ErrNoCertificate means a PEM file holds no certificate.
var ErrNoCertificate = errors.New("no PEM certificate")

// CAPool reads the PEM CA bundle in file: the one reader of CA files for
// every TLS client (the API client here, every configured section
// through config.TLS).
func CAPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w in %s", ErrNoCertificate, file)
	}
	return pool, nil
}
