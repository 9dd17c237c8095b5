package httpauth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkMiddleware measures the cost of checking a token (hash + a
// constant-time compare with every known token) against the same handler
// without authentication, in the same run.
func BenchmarkMiddleware(b *testing.B) {
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	run := func(b *testing.B, h http.Handler, token string) {
		req := httptest.NewRequest("GET", "/v1/search", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 204 {
				b.Fatalf("status %d", rec.Code)
			}
		}
	}
	b.Run("baseline-no-auth", func(b *testing.B) { run(b, next, "") })
	for _, n := range []int{3, 100, 1000} {
		dir := b.TempDir()
		var sb strings.Builder
		for i := range n {
			fmt.Fprintf(&sb, "read client-%d token-%032d\n", i, i)
		}
		tf := filepath.Join(dir, "tokens")
		if err := os.WriteFile(tf, []byte(sb.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		a, err := Load(Config{TokensFile: tf})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("tokens-%d", n), func(b *testing.B) { run(b, a.Middleware(next), fmt.Sprintf("token-%032d", n-1)) })
	}
}
