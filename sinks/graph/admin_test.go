package graph

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/httpauth"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/schemas"
)

// The admin HTTP call forces a refused sweep only with an admin token
// (behind the real httpauth middleware): no token 401, a read or ingest
// token 403, authentication off 403; the admin's call sweeps and the
// audit line names the token.
func TestAdminHTTPForcedSweep(t *testing.T) {
	var logs testutil.SyncBuffer
	f := newFixture(t)
	f.s.log = slog.New(slog.NewJSONHandler(&logs, nil))
	var nodes []schemas.Node
	for _, n := range []string{"a", "b", "c", "d"} {
		nodes = append(nodes, f.svc(n, 1))
	}
	f.write(f.sync(1000, nodes, nil, 10, true)...)
	f.write(f.sync(2000, nodes[:1], nil, 10, true)...) // refused: 3 of 4 stale

	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	const admin, reader, ingest = "admin-token-0123456789abcdef", "read-token-0123456789abcdef", "ingest-token-0123456789abcdef"
	body := "admin ops " + admin + "\nread grafana " + reader + "\ningest collector " + ingest + "\n"
	if err := os.WriteFile(tokens, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := httpauth.Load(httpauth.Config{TokensFile: tokens})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	RegisterAdmin(mux, f.s)
	on := httptest.NewServer(auth.Middleware(mux))
	defer on.Close()
	off := httptest.NewServer(mux) // authentication off
	defer off.Close()

	call := func(base, token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, base+AdminPathSweep, strings.NewReader(`{"scope":"`+f.scope+`","force":true}`))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	for _, c := range []struct {
		base, token string
		want        int
	}{{on.URL, "", 401}, {on.URL, reader, 403}, {on.URL, ingest, 403}, {off.URL, "", 403}} {
		if code, out := call(c.base, c.token); code != c.want {
			t.Fatalf("token %q: HTTP %d %v, want %d", c.token, code, out, c.want)
		}
	}
	if y := f.syncStatus(2000); y.Status != statusRefused {
		t.Fatalf("a refused call changed the sync: %+v", y)
	}
	code, out := call(on.URL, admin)
	if code != 200 || out["result"] != statusSwept || out["deleted_nodes"] != float64(3) {
		t.Fatalf("admin call: HTTP %d %v", code, out)
	}
	if !strings.Contains(logs.String(), `"operator":"http token ops from `) || !strings.Contains(logs.String(), `"audit":true`) {
		t.Fatalf("no audit line naming the token: %s", logs.String())
	}
	f.check(f.picture(), f.want(map[string]string{"a": "1"}))
}
