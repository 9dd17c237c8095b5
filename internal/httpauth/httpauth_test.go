package httpauth

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const (
	ingestTok = "ingest-secret-0123456789abcdef"
	readTok   = "read-secret-0123456789abcdef"
	adminTok  = "admin-secret-0123456789abcdef"
)

// writeTokens writes a tokens file and one single-token file, the two
// sources a configuration can name.
func writeTokens(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	tf := filepath.Join(dir, "tokens")
	body := "# role name token\n" +
		"ingest checkout " + ingestTok + "\n" +
		"\n" +
		"read   grafana  " + readTok + "\n"
	if err := os.WriteFile(tf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	af := filepath.Join(dir, "ops-admin")
	if err := os.WriteFile(af, []byte(adminTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Config{TokensFile: tf, TokenFiles: []string{"admin=" + af}}
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := FromContext(r.Context())
		_, _ = w.Write([]byte("ok " + id.Name))
	})
}

func do(t *testing.T, h http.Handler, method, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader("{}"))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRolesAgainstRoutes(t *testing.T) {
	a, err := Load(writeTokens(t))
	if err != nil {
		t.Fatal(err)
	}
	h := a.Middleware(okHandler())
	cases := []struct {
		method, path, token string
		want                int
	}{
		// open: probes and the static page (it holds no data; its API calls carry the token)
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/ui/", "", 200},
		{"GET", "/ui/app.js", "", 200},
		{"GET", "/", "", 200},
		// ingest
		{"POST", "/v1/events", "", 401},
		{"POST", "/v1/events", "wrong", 401},
		{"POST", "/v1/events", ingestTok, 200},
		{"POST", "/v1/events", readTok, 403},
		{"POST", "/v1/events", adminTok, 200},
		// read
		{"GET", "/v1/trace/abc", "", 401},
		{"GET", "/v1/trace/abc", ingestTok, 403},
		{"GET", "/v1/trace/abc", readTok, 200},
		{"GET", "/v1/trace/abc", adminTok, 200},
		{"GET", "/v1/search?q=x", readTok, 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/metrics", readTok, 200},
		{"GET", "/metrics", ingestTok, 403},
		{"GET", "/healthz/components", "", 401},
		{"GET", "/healthz/components", readTok, 200},
		// anything else is admin: future admin calls, unknown paths
		{"POST", "/v1/admin/graph/sweep", readTok, 403},
		{"POST", "/v1/admin/graph/sweep", ingestTok, 403},
		{"POST", "/v1/admin/graph/sweep", adminTok, 200},
		{"GET", "/v1/unknown", readTok, 403},
		{"DELETE", "/v1/trace/abc", readTok, 403},
		{"POST", "/healthz", "", 401},
	}
	for _, c := range cases {
		rec := do(t, h, c.method, c.path, c.token)
		if rec.Code != c.want {
			t.Errorf("%s %s token=%q: %d %s, want %d", c.method, c.path, c.token, rec.Code, rec.Body, c.want)
		}
		if rec.Code == 401 {
			if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
				t.Errorf("%s %s: 401 without WWW-Authenticate: Bearer (got %q)", c.method, c.path, got)
			}
		}
		if rec.Code == 401 || rec.Code == 403 {
			var body struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
				t.Errorf("%s %s: %d body %q is not {\"error\": ...}", c.method, c.path, rec.Code, rec.Body)
			}
		}
	}
}

func TestMessagesAreClearAndSecretFree(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	a, err := Load(writeTokens(t), WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	h := a.Middleware(okHandler())
	var all bytes.Buffer
	for _, tok := range []string{"", "not-a-token-but-secret-looking", readTok, ingestTok} {
		rec := do(t, h, "POST", "/v1/events", tok)
		all.WriteString(rec.Header().Get("WWW-Authenticate") + " " + rec.Body.String() + "\n" + errorOf(rec) + "\n")
	}
	rec := do(t, h, "GET", "/v1/trace/x", ingestTok)
	all.WriteString(errorOf(rec))

	for _, want := range []string{
		"POST /v1/events needs a bearer token",
		`invalid_token`,
		`token "grafana" has role read; POST /v1/events needs role ingest or admin`,
		`token "checkout" has role ingest; GET /v1/trace/x needs role read or admin`,
	} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("answers lack %q:\n%s", want, all.String())
		}
	}
	mfs, _ := reg.Gather()
	var metrics bytes.Buffer
	for _, mf := range mfs {
		metrics.WriteString(mf.String())
	}
	var m dto.Metric
	_ = a.denied.WithLabelValues("invalid_token").Write(&m)
	if n := m.GetCounter().GetValue(); n != 1 {
		t.Errorf("invalid_token denials = %v, want 1", n)
	}
	for _, secret := range []string{ingestTok, readTok, adminTok, "not-a-token-but-secret-looking"} {
		for name, out := range map[string]string{"answers": all.String(), "logs": logs.String(), "metrics": metrics.String()} {
			if strings.Contains(out, secret) {
				t.Errorf("%s contain the secret %q:\n%s", name, secret, out)
			}
		}
	}
	if !strings.Contains(logs.String(), `"token":"grafana"`) {
		t.Errorf("the denial log names no token: %s", logs.String())
	}
}

func errorOf(rec *httptest.ResponseRecorder) string {
	var body struct{ Error string }
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return body.Error
}

func TestIdentityInContext(t *testing.T) {
	a, err := Load(writeTokens(t))
	if err != nil {
		t.Fatal(err)
	}
	rec := do(t, a.Middleware(okHandler()), "POST", "/v1/admin/x", adminTok)
	if rec.Body.String() != "ok ops-admin" {
		t.Errorf("handler saw %q, want the token name ops-admin", rec.Body.String())
	}
}

func TestDisabledPassesEverything(t *testing.T) {
	a, err := Load(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Enabled() {
		t.Fatal("no tokens configured, yet enabled")
	}
	if rec := do(t, a.Middleware(okHandler()), "POST", "/v1/admin/x", ""); rec.Code != 200 {
		t.Errorf("auth off: %d", rec.Code)
	}
}

func TestHashedTokensInFile(t *testing.T) {
	dir := t.TempDir()
	tf := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tf, []byte("read dash "+HashToken(readTok)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := Load(Config{TokensFile: tf})
	if err != nil {
		t.Fatal(err)
	}
	if rec := do(t, a.Middleware(okHandler()), "GET", "/v1/search", readTok); rec.Code != 200 {
		t.Errorf("hashed token refused: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, a.Middleware(okHandler()), "GET", "/v1/search", HashToken(readTok)); rec.Code != 401 {
		t.Errorf("the hash itself was accepted as a token: %d", rec.Code)
	}
}

func TestLoadErrorsNameTheFileNotTheSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const secret = "supersecretvalue-1234567890"
	cases := map[string]struct {
		cfg  Config
		want string
	}{
		"bad role":       {Config{TokensFile: write("a", "root bob "+secret+"\n")}, "line 1: the first field is not a role"},
		"swapped":        {Config{TokensFile: write("a2", secret+" bob read\n")}, "line 1: the first field is not a role"},
		"token second":   {Config{TokensFile: write("a3", "read "+secret+" bob\n")}, "line 1: the second field looks like a token"},
		"missing fields": {Config{TokensFile: write("b", "read "+secret+"\n")}, "line 1: want ROLE NAME TOKEN"},
		"short token":    {Config{TokensFile: write("c", "read bob short\n")}, "line 1: the token (third field) is 5 bytes; use at least 16"},
		"dup name":       {Config{TokensFile: write("d", "read bob "+secret+"\nadmin bob "+secret+"x\n")}, "line 2: the name (second field) is used twice"},
		"dup token":      {Config{TokensFile: write("e", "read bob "+secret+"\nadmin al "+secret+"\n")}, "line 2: the token (third field) is the same as another"},
		"missing file":   {Config{TokensFile: filepath.Join(dir, "nope")}, "http.auth.tokens_file"},
		"files no role":  {Config{TokenFiles: []string{write("f", secret)}}, "http.auth.token_files"},
		"files bad role": {Config{TokenFiles: []string{"boss=" + write("g", secret)}}, `role "boss"`},
		"empty file":     {Config{TokenFiles: []string{"read=" + write("h", "\n")}}, "is empty"},
		"two lines":      {Config{TokenFiles: []string{"read=" + write("i", secret+"\n"+secret+"\n")}}, "one token"},
	}
	for name, c := range cases {
		_, err := Load(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error contains the secret: %v", name, err)
		}
	}
}

func TestBearerParsing(t *testing.T) {
	a, err := Load(writeTokens(t))
	if err != nil {
		t.Fatal(err)
	}
	h := a.Middleware(okHandler())
	for hdr, want := range map[string]int{
		"Bearer " + readTok:                    200,
		"bearer " + readTok:                    200, // the scheme is case-insensitive (RFC 7235)
		"Bearer  " + readTok + "  ":            200,
		"Basic " + readTok:                     401,
		readTok:                                401,
		"Bearer":                               401,
		"Bearer " + readTok + "x":              401,
		"Bearer " + readTok[:20]:               401,
		"Bearer " + strings.Repeat("A", 10000): 401,
	} {
		req := httptest.NewRequest("GET", "/v1/search", nil)
		req.Header.Set("Authorization", hdr)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Authorization %.40q: %d, want %d", hdr, rec.Code, want)
		}
	}
}

func TestReload(t *testing.T) {
	cfg := writeTokens(t)
	a, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := a.Middleware(okHandler())
	const newTok = "rotated-read-token-abcdef0123"
	if err := os.WriteFile(cfg.TokensFile, []byte("read grafana "+newTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if rec := do(t, h, "GET", "/v1/search", readTok); rec.Code != 401 {
		t.Errorf("old token still accepted after reload: %d", rec.Code)
	}
	if rec := do(t, h, "GET", "/v1/search", newTok); rec.Code != 200 {
		t.Errorf("new token refused after reload: %d", rec.Code)
	}
	// A broken file keeps the running set.
	if err := os.WriteFile(cfg.TokensFile, []byte("nonsense\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil {
		t.Error("reload of a broken file succeeded")
	}
	if rec := do(t, h, "GET", "/v1/search", newTok); rec.Code != 200 {
		t.Errorf("a failed reload dropped the running tokens: %d", rec.Code)
	}
}

// Open routes tell their handler whether the caller is anonymous, so
// /readyz can keep its reasons (service addresses, errors) to token holders.
func TestAnonymousOnOpenRoutes(t *testing.T) {
	seen := func(a *Authenticator, token string) (anon bool, name string) {
		h := a.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			anon = Anonymous(r.Context())
			id, _ := FromContext(r.Context())
			name = id.Name
		}))
		do(t, h, "GET", "/readyz", token)
		return
	}
	on, err := Load(writeTokens(t))
	if err != nil {
		t.Fatal(err)
	}
	if anon, _ := seen(on, ""); !anon {
		t.Error("no token on an open route, auth on: not anonymous")
	}
	if anon, _ := seen(on, "wrong-token-wrong-token"); !anon {
		t.Error("an unknown token on an open route: not anonymous")
	}
	if anon, name := seen(on, ingestTok); anon || name != "checkout" {
		t.Errorf("a valid token on an open route: anonymous %v, name %q", anon, name)
	}
	off, _ := Load(Config{})
	if anon, _ := seen(off, ""); anon {
		t.Error("auth off: anonymous (loopback callers get the details)")
	}
}
