package httpauth

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/httpauth/authtest"
)

func testPKI(t *testing.T, dir, cn string) (ca, cert, key string) {
	return authtest.WritePKI(t, dir, cn)
}

func TestTLSServerAndClientWithToken(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := testPKI(t, dir, "one")
	cfg := writeTokens(t)
	a, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := LoadCertificate(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: a.Middleware(okHandler()), TLSConfig: certs.TLSConfig(), ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = hs.ServeTLS(ln, "", "") }()
	defer hs.Close()
	srv := struct{ URL string }{"https://" + ln.Addr().String()}

	tokFile := filepath.Join(dir, "client-token")
	if err := os.WriteFile(tokFile, []byte(readTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(ClientConfig{TokenFile: tokFile, CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(srv.URL + "/v1/search")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok grafana" {
		t.Fatalf("GET with token over TLS: %d %s", resp.StatusCode, b)
	}

	// Without the CA the client refuses the server.
	plain, _ := NewClient(ClientConfig{TokenFile: tokFile})
	if _, err := plain.Get(srv.URL + "/v1/search"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("client without the CA: %v, want a certificate error", err)
	}

	// Reload swaps the certificate for new handshakes.
	ca2, cert2, key2 := testPKI(t, t.TempDir(), "two")
	for _, cp := range [][2]string{{cert2, cert}, {key2, key}} {
		b, _ := os.ReadFile(cp[0])
		if err := os.WriteFile(cp[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := certs.Reload(); err != nil {
		t.Fatal(err)
	}
	c2, _ := NewClient(ClientConfig{TokenFile: tokFile, CAFile: ca2})
	resp, err = c2.Get(srv.URL + "/v1/search")
	if err != nil {
		t.Fatalf("after reload, the new CA does not verify: %v", err)
	}
	resp.Body.Close()
}

func TestLoadCertificateErrors(t *testing.T) {
	dir := t.TempDir()
	_, cert, _ := testPKI(t, dir, "x")
	if _, err := LoadCertificate(cert, filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "http.tls_key") {
		t.Errorf("missing key: %v", err)
	}
	if _, err := NewClient(ClientConfig{CAFile: cert + ".nope"}); err == nil {
		t.Error("missing CA file accepted")
	}
}

func TestClientWithoutTokenSendsNoHeader(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get("Authorization") }))
	defer srv.Close()
	c, err := NewClient(ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != "" {
		t.Errorf("Authorization %q without a token file", got)
	}
}
