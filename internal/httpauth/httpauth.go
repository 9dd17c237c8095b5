// Package httpauth guards the HTTP API of `sightline run`: bearer tokens
// read from files, each with a role (ingest, read, admin), checked against
// a route table before the request reaches the API. Tokens are hashed with
// SHA-256 when loaded and a presented token is hashed and compared with
// every known hash in constant time (crypto/subtle), so neither the
// comparison nor the length of a stored token shows in the response time.
// No token ever reaches a log line, an error, an answer or a metric: they
// name the token by its name. See README.md.
package httpauth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Role is what a token may do.
type Role string

// The roles. Admin may do everything; ingest and read are disjoint.
const (
	// Open is the "role" of a route that needs no token.
	Open       Role = ""
	RoleIngest Role = "ingest" // POST /v1/events
	RoleRead   Role = "read"   // trace and search API, /metrics
	RoleAdmin  Role = "admin"  // everything, including admin calls
)

// MinTokenBytes is the shortest token accepted in a token file.
const MinTokenBytes = 16

// hashPrefix marks a token stored as its SHA-256 (HashToken) instead of
// in clear.
const hashPrefix = "sha256:"

// Config names the token files. Both may be set; names must be unique
// across them. With neither, authentication is off.
type Config struct {
	// TokensFile holds one token a line: "ROLE NAME TOKEN" (blank lines
	// and # comments are skipped). TOKEN may be "sha256:<hex>" (HashToken)
	// so the file does not hold the token itself.
	TokensFile string `yaml:"tokens_file"`
	// TokenFiles are "ROLE=PATH" entries, each file holding one token
	// (Docker/Kubernetes secrets); the token's name is the file's base name.
	TokenFiles []string `yaml:"token_files"`
}

// Enabled reports whether any token source is configured.
func (c Config) Enabled() bool { return c.TokensFile != "" || len(c.TokenFiles) > 0 }

// Identity is who a request authenticated as; handlers read it with
// FromContext (audit lines name Identity.Name).
type Identity struct {
	Name string
	Role Role
}

type ctxKey struct{}

type anonKey struct{}

// Anonymous reports whether the request reached an open route (Routes)
// without a valid token while authentication is on: its handler should
// then answer without detail (/readyz says "not ready", not why).
func Anonymous(ctx context.Context) bool {
	v, _ := ctx.Value(anonKey{}).(bool)
	return v
}

// FromContext returns the identity the middleware attached; false when
// authentication is off or the route is open.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// WithIdentity returns ctx carrying id (tests and in-process callers).
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// Route is one line of the access table: Method and Path (exact, or a
// prefix when it ends in "/") need Role. GET routes also answer HEAD.
type Route struct {
	Method string
	Path   string
	Role   Role
}

// Routes is the access table of `sightline run`. The first match wins; a
// request matching none needs admin (so a new endpoint is admin-only until
// it is listed here). The page's files are open: they hold no data, and
// the page sends the token with its API calls.
var Routes = []Route{
	{"GET", "/healthz", Open},
	{"GET", "/readyz", Open},
	{"GET", "/", Open},
	{"GET", "/ui/", Open},
	{"POST", "/v1/events", RoleIngest},
	{"GET", "/v1/trace/", RoleRead},
	{"GET", "/v1/search", RoleRead},
	{"GET", "/v1/traces", RoleRead},
	{"GET", "/metrics", RoleRead},
	{"GET", "/healthz/components", RoleRead}, // names services and their errors
}

// Required is the role a request needs under Routes.
func Required(method, urlPath string) Role {
	p := path.Clean("/" + urlPath)
	if strings.HasSuffix(urlPath, "/") && p != "/" {
		p += "/"
	}
	if method == http.MethodHead {
		method = http.MethodGet
	}
	for _, r := range Routes {
		if r.Method != method {
			continue
		}
		if p == r.Path || (strings.HasSuffix(r.Path, "/") && r.Path != "/" && strings.HasPrefix(p, r.Path)) {
			return r.Role
		}
	}
	return RoleAdmin
}

type entry struct {
	name string
	role Role
	hash [sha256.Size]byte
}

type tokenSet struct{ entries []entry }

// lookup hashes tok and compares the hash with every entry in constant
// time, without stopping at a match.
func (s *tokenSet) lookup(tok string) (entry, bool) {
	h := sha256.Sum256([]byte(tok))
	var found entry
	ok := 0
	for _, e := range s.entries {
		m := subtle.ConstantTimeCompare(h[:], e.hash[:])
		if m == 1 {
			found = e
		}
		ok |= m
	}
	return found, ok == 1
}

// Authenticator checks bearer tokens; safe for concurrent use, Reload
// swaps the token set atomically.
type Authenticator struct {
	cfg    Config
	log    *slog.Logger
	set    atomic.Pointer[tokenSet]
	denied *prometheus.CounterVec
}

// Option configures an Authenticator.
type Option func(*Authenticator)

// WithLogger sets the logger of denials (403 at info, 401 at debug) and reloads.
func WithLogger(l *slog.Logger) Option { return func(a *Authenticator) { a.log = l } }

// WithRegisterer registers sightline_http_auth_denied_total{reason} on r.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(a *Authenticator) { r.MustRegister(a.denied) }
}

// Load reads the token files of cfg. With none configured the
// Authenticator is disabled and its middleware passes every request.
func Load(cfg Config, opts ...Option) (*Authenticator, error) {
	a := &Authenticator{cfg: cfg, log: slog.New(slog.DiscardHandler),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_http_auth_denied_total",
			Help: "HTTP requests refused by authentication: missing_token, invalid_token (401) or forbidden (403, wrong role).",
		}, []string{"reason"})}
	for _, o := range opts {
		o(a)
	}
	s, err := readTokens(cfg)
	if err != nil {
		return nil, err
	}
	a.set.Store(s)
	return a, nil
}

// Enabled reports whether tokens are required.
func (a *Authenticator) Enabled() bool { return a.cfg.Enabled() }

// Count is the number of tokens loaded.
func (a *Authenticator) Count() int { return len(a.set.Load().entries) }

// Reload re-reads the token files; on error the running set stays.
func (a *Authenticator) Reload() error {
	s, err := readTokens(a.cfg)
	if err != nil {
		return err
	}
	a.set.Store(s)
	a.log.Info("http tokens reloaded", "tokens", len(s.entries))
	return nil
}

// Middleware answers 401 to a request without a known token and 403 to one
// whose token's role does not reach the route's (Routes); it passes the
// others to next with the Identity in the context.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	if !a.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := Required(r.Method, r.URL.Path)
		if need == Open {
			ctx := r.Context()
			if tok, ok := bearer(r.Header.Get("Authorization")); ok {
				if e, ok := a.set.Load().lookup(tok); ok {
					next.ServeHTTP(w, r.WithContext(WithIdentity(ctx, Identity{Name: e.name, Role: e.role})))
					return
				}
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, anonKey{}, true)))
			return
		}
		what := r.Method + " " + r.URL.Path
		tok, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			a.denied.WithLabelValues("missing_token").Inc()
			a.log.Debug("http request without a bearer token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			unauthorized(w, "", what+" needs a bearer token (Authorization: Bearer <token>) of role "+roles(need))
			return
		}
		e, ok := a.set.Load().lookup(tok)
		if !ok {
			a.denied.WithLabelValues("invalid_token").Inc()
			a.log.Debug("http request with an unknown bearer token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			unauthorized(w, "invalid_token", "the bearer token is not valid (unknown, revoked or mistyped)")
			return
		}
		if e.role != RoleAdmin && e.role != need {
			a.denied.WithLabelValues("forbidden").Inc()
			a.log.Info("http request refused: wrong role", "token", e.name, "role", string(e.role), "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, fmt.Sprintf("token %q has role %s; %s needs role %s", e.name, e.role, what, roles(need)))
			return
		}
		next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), Identity{Name: e.name, Role: e.role})))
	})
}

func roles(need Role) string {
	if need == RoleAdmin {
		return "admin"
	}
	return string(need) + " or admin"
}

// bearer extracts the token of "Bearer <token>" (scheme case-insensitive).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func unauthorized(w http.ResponseWriter, code, msg string) {
	v := `Bearer realm="sightline"`
	if code != "" {
		v += `, error="` + code + `"`
	}
	w.Header().Set("WWW-Authenticate", v)
	writeError(w, http.StatusUnauthorized, msg)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]string{"error": msg})
}

// HashToken is the form of tok a tokens file may hold instead of tok:
// "sha256:" and the hex SHA-256.
func HashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hashPrefix + hex.EncodeToString(h[:])
}

func parseRole(s string) (Role, bool) {
	switch r := Role(s); r {
	case RoleIngest, RoleRead, RoleAdmin:
		return r, true
	}
	return "", false
}

// checkToken validates a clear token without ever quoting it.
func checkToken(tok, name string) error {
	if len(tok) < MinTokenBytes {
		return fmt.Errorf("%s is %d bytes; use at least %d (e.g. openssl rand -hex 32)", name, len(tok), MinTokenBytes)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < 0x21 || tok[i] > 0x7e {
			return fmt.Errorf("%s has a byte outside printable ASCII at offset %d", name, i)
		}
	}
	return nil
}

func hashOf(tok, name string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	if hx, ok := strings.CutPrefix(tok, hashPrefix); ok {
		b, err := hex.DecodeString(hx)
		if err != nil || len(b) != sha256.Size {
			return h, fmt.Errorf("%s: %s must be followed by 64 hex digits", name, hashPrefix)
		}
		copy(h[:], b)
		return h, nil
	}
	if err := checkToken(tok, name); err != nil {
		return h, err
	}
	return sha256.Sum256([]byte(tok)), nil
}

func readTokens(cfg Config) (*tokenSet, error) {
	s := &tokenSet{}
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]bool{}
	// label is how errors call the token: its name for a token file,
	// "the third field" for a line of the tokens file, whose fields are
	// never quoted (with the columns swapped, the "name" or the "role" is
	// the token itself).
	add := func(where string, role Role, name, tok, label string) error {
		if names[name] {
			if label == "token of "+name {
				return fmt.Errorf("%s: name %q is used twice", where, name)
			}
			return fmt.Errorf("%s: the name (second field) is used twice", where)
		}
		h, err := hashOf(tok, label)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if hashes[h] {
			return fmt.Errorf("%s: %s is the same as another; give every client its own", where, label)
		}
		names[name], hashes[h] = true, true
		s.entries = append(s.entries, entry{name: name, role: role, hash: h})
		return nil
	}
	if cfg.TokensFile != "" {
		b, err := os.ReadFile(cfg.TokensFile)
		if err != nil {
			return nil, fmt.Errorf("http.auth.tokens_file: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 0, 4096), 64<<10)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			where := fmt.Sprintf("http.auth.tokens_file %s: line %d", cfg.TokensFile, n)
			f := strings.Fields(line)
			if len(f) != 3 {
				return nil, fmt.Errorf("%s: want ROLE NAME TOKEN (3 fields), got %d", where, len(f))
			}
			role, ok := parseRole(f[0])
			if !ok {
				return nil, fmt.Errorf("%s: the first field is not a role (ingest, read or admin); lines are ROLE NAME TOKEN", where)
			}
			if len(f[1]) >= MinTokenBytes && len(f[2]) < MinTokenBytes {
				return nil, fmt.Errorf("%s: the second field looks like a token and the third does not; lines are ROLE NAME TOKEN", where)
			}
			if err := add(where, role, f[1], f[2], "the token (third field)"); err != nil {
				return nil, err
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("http.auth.tokens_file %s: %w", cfg.TokensFile, err)
		}
	}
	for _, tf := range cfg.TokenFiles {
		role, p, err := splitTokenFileEntry(tf)
		if err != nil {
			return nil, fmt.Errorf("http.auth.token_files: %w", err)
		}
		where := "http.auth.token_files " + p
		tok, err := ReadTokenFile(p)
		if err != nil {
			return nil, fmt.Errorf("http.auth.token_files: %w", err)
		}
		if err := add(where, role, filepath.Base(p), tok, "token of "+filepath.Base(p)); err != nil {
			return nil, err
		}
	}
	if cfg.Enabled() && len(s.entries) == 0 {
		return nil, errors.New("http.auth: the token files hold no token; authentication would refuse everything")
	}
	return s, nil
}

// Check reads the token files of cfg as Load does and reports what Load
// would refuse (`sightline config check`); it keeps nothing.
func Check(cfg Config) error {
	_, err := readTokens(cfg)
	return err
}

// CheckTokenFileEntry checks the form of one http.auth.token_files entry
// (ROLE=PATH) without reading the file.
func CheckTokenFileEntry(tf string) error {
	_, _, err := splitTokenFileEntry(tf)
	return err
}

func splitTokenFileEntry(tf string) (Role, string, error) {
	r, p, ok := strings.Cut(tf, "=")
	p = strings.TrimSpace(p)
	if !ok || p == "" {
		return "", "", fmt.Errorf("%q: want ROLE=PATH (e.g. read=/run/secrets/grafana)", tf)
	}
	role, ok := parseRole(strings.TrimSpace(r))
	if !ok {
		return "", "", fmt.Errorf("%q: role %q is not ingest, read or admin", tf, r)
	}
	return role, p, nil
}

// ReadTokenFile reads a file holding one token (surrounding whitespace
// trimmed). Its errors name the file, never its content.
func ReadTokenFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", fmt.Errorf("token file %s is empty", p)
	case strings.ContainsAny(tok, " \t\r\n"):
		return "", fmt.Errorf("token file %s must hold one token (it holds several words or lines)", p)
	}
	return tok, nil
}
