package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestAttackRedirectDoesNotCarryToken: an API answering with a redirect to
// another origin (another port, plain http after https, another host) must
// not receive the CLI's read token there. The CLI runs as a real process
// (`sightline trace --api ... --token-file ...`); the other listener
// records every Authorization header it is sent.
func TestAttackRedirectDoesNotCarryToken(t *testing.T) {
	const token = "read-tok-0123456789abcdef-secret"
	var mu sync.Mutex
	var stolen []string
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stolen = append(stolen, r.Header.Get("Authorization"))
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer thief.Close()
	var sameOrigin []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/same/") { // a redirect within the origin keeps the token
			mu.Lock()
			sameOrigin = append(sameOrigin, r.Header.Get("Authorization"))
			mu.Unlock()
			http.Redirect(w, r, thief.URL+"/from-same"+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			t.Errorf("the API itself got Authorization %q", r.Header.Get("Authorization"))
		}
		http.Redirect(w, r, "/same"+r.URL.RequestURI(), http.StatusFound)
	}))
	defer api.Close()

	tf := filepath.Join(t.TempDir(), "read.token")
	if err := os.WriteFile(tf, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := sightlineCmd(t, "trace", "req-42", "--api", api.URL, "--token-file", tf).CombinedOutput()
	mu.Lock()
	defer mu.Unlock()
	if len(stolen) == 0 {
		t.Fatalf("the redirect was not followed; output:\n%s", out)
	}
	for _, h := range stolen {
		if h != "" {
			t.Errorf("another origin received Authorization %q", h)
		}
	}
	for _, h := range sameOrigin {
		if h != "Bearer "+token {
			t.Errorf("a redirect within the API's origin lost the token: %q", h)
		}
	}
	if strings.Contains(string(out), token) {
		t.Errorf("the token is in the output:\n%s", out)
	}
}
