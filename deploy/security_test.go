package deploy

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sightline/sightline/internal/httpauth"
	"github.com/sightline/sightline/internal/testsvc"
)

// The stack serves the pipeline's HTTP API with TLS and tokens: the
// configuration names the certificate and token files, the containers
// mount them, the healthcheck speaks https with the CA, Prometheus scrapes
// with a read token, and the files are git-ignored.
func TestComposeHTTPIsAuthenticatedAndTLS(t *testing.T) {
	b, err := os.ReadFile("sightline/sightline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		HTTP struct {
			Listen   string `yaml:"listen"`
			TLSCert  string `yaml:"tls_cert"`
			TLSKey   string `yaml:"tls_key"`
			Insecure bool   `yaml:"insecure"`
			Auth     struct {
				TokenFiles []string `yaml:"token_files"`
			} `yaml:"auth"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	h := cfg.HTTP
	if h.Insecure || h.TLSCert == "" || h.TLSKey == "" || len(h.Auth.TokenFiles) == 0 {
		t.Fatalf("http section is not TLS + tokens: %+v", h)
	}
	mounted := map[string]bool{}
	for _, files := range [][]string{prodFiles, devFiles} {
		p := loadProject(t, files...)
		s := p.Services["sightline"]
		for _, v := range s.Volumes {
			mounted[v.Target] = true
		}
		hc := strings.Join(s.HealthCheck.Test, " ")
		if !strings.Contains(hc, "https://127.0.0.1:8080/readyz /run/secrets/sightline/tls/ca.pem") {
			t.Errorf("%v: healthcheck %q does not probe https with the CA", files, hc)
		}
	}
	need := []string{h.TLSCert, h.TLSKey}
	for _, tf := range h.Auth.TokenFiles {
		_, path, _ := strings.Cut(tf, "=")
		need = append(need, path)
	}
	for _, f := range need {
		if mountOf(mounted, f) == "" {
			t.Errorf("%s is named by sightline.yaml but not mounted into the sightline container", f)
		}
	}
	prom, _ := os.ReadFile("prometheus/prometheus.yml")
	for _, want := range []string{"scheme: https", "ca_file: /etc/prometheus/secrets/ca.pem", "credentials_file: /etc/prometheus/secrets/sightline-token"} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("prometheus.yml lacks %q", want)
		}
	}
	gi, _ := os.ReadFile("../.gitignore")
	if !strings.Contains(string(gi), "/deploy/secrets/") {
		t.Error(".gitignore does not ignore deploy/secrets/")
	}
	df, _ := os.ReadFile("Dockerfile")
	if !strings.Contains(string(df), `"https://127.0.0.1:8080/readyz", "/run/secrets/sightline/tls/ca.pem"`) {
		t.Error("the image's HEALTHCHECK does not probe https with the CA")
	}
}

// local/dev-tls.sh makes what the stack mounts, and it works: the pipeline
// loads the certificate and the four tokens, and a client trusting ca.pem
// reaches https://sightline:8080 (the name the other containers use).
func TestDevTLSScript(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		if testsvc.CI() {
			t.Fatal("CI=true and openssl is missing")
		}
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	run := func() string {
		cmd := exec.Command("bash", "local/dev-tls.sh")
		cmd.Env = append(os.Environ(), "DEV_SECRETS_DIR="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dev-tls.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	run()
	first, _ := os.ReadFile(filepath.Join(dir, "http", "admin"))
	if out := run(); out != "" {
		t.Errorf("a second run rewrote files:\n%s", out)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "http", "admin")); string(again) != string(first) {
		t.Error("a second run changed a token")
	}
	for _, f := range []string{"tls/ca.key", "tls/sightline.key", "tls/nats.key", "tls/neo4j.key", "tls/opensearch.key",
		"tls/minio.key", "tls/opensearch-admin.key", "http/admin", "http/read", "http/ingest", "http/prometheus"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 600", f, err)
		}
	}
	certs, err := httpauth.LoadCertificate(filepath.Join(dir, "tls", "sightline.pem"), filepath.Join(dir, "tls", "sightline.key"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, r := range [][2]string{{"admin", "admin"}, {"read", "read"}, {"ingest", "ingest"}, {"read", "prometheus"}} {
		files = append(files, r[0]+"="+filepath.Join(dir, "http", r[1]))
	}
	auth, err := httpauth.Load(httpauth.Config{TokenFiles: files})
	if err != nil || auth.Count() != 4 {
		t.Fatalf("tokens: %v (%d loaded)", err, auth.Count())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: auth.Middleware(http.NotFoundHandler()), TLSConfig: certs.TLSConfig()}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	pem, _ := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "sightline"})
	if err != nil {
		t.Fatalf("TLS to the pipeline as \"sightline\" with ca.pem: %v", err)
	}
	conn.Close()
}

// mountOf returns the mount target (in mounted) that contains path: path
// itself or one of its parent folders; "" when none does.
func mountOf(mounted map[string]bool, path string) string {
	for p := path; p != "/" && p != "."; p = filepath.Dir(p) {
		if mounted[p] {
			return p
		}
	}
	return ""
}
