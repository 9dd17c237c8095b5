package deploy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/index"
)

// secureOpenSearch is the OpenSearch that local/opensearch-security.sh runs
// with this folder's opensearch.yml, security/*.yml and dev-tls.sh's
// certificates. `task test` starts it (scripts/test.sh); like every service
// test, it is skipped when that server is missing, except in CI where it fails.
type secureOpenSearch struct {
	url, caFile             string
	adminPass, pipelinePass string
}

func secureOpenSearchFromEnv(t *testing.T) secureOpenSearch {
	t.Helper()
	var pw string
	s := secureOpenSearch{}
	s.url, s.caFile, pw = testsvc.OpenSearchSecurity(t)
	f, err := os.Open(pw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "OPENSEARCH_INITIAL_ADMIN_PASSWORD":
			s.adminPass = v
		case "OPENSEARCH_SIGHTLINE_PASSWORD":
			s.pipelinePass = v
		}
	}
	return s
}

func (s secureOpenSearch) call(t *testing.T, method, path, user, pass string) int {
	t.Helper()
	pem, _ := os.ReadFile(s.caFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(method, s.url+path, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The Compose stack's OpenSearch configuration on a real OpenSearch with the
// security plugin: the pipeline, configured as sightline.env and
// sightline.yaml configure it (https, index.ca_file, user sightline), writes
// and searches events with the real index sink; anonymous requests, wrong
// passwords, plain HTTP, a client without the CA and writes outside
// sightline* are refused; the admin user works.
func TestComposeOpenSearchSecurityOnARealServer(t *testing.T) {
	s := secureOpenSearchFromEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	// Inside the role's sightline* but not under the stack's own template (sightline-*),
	// which a running pipeline (local/stack-tls.sh) has put: templates may not overlap.
	prefix := "sightlinetls" + hex.EncodeToString(b)
	t.Cleanup(func() {
		s.call(t, "DELETE", "/"+prefix+"-*", "admin", s.adminPass)
		s.call(t, "DELETE", "/_index_template/"+prefix+"-events", "admin", s.adminPass)
	})

	cfg := index.DefaultConfig()
	cfg.URLs, cfg.Prefix, cfg.CAFile, cfg.Username, cfg.Password = []string{s.url}, prefix, s.caFile, "sightline", s.pipelinePass
	cfg.Timeout = 10 * time.Second
	r, err := index.NewRemote(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.EnsureTemplate(ctx); err != nil {
		t.Fatalf("the pipeline's user puts its index template: %v", err)
	}
	cid := "tlscheck-" + hex.EncodeToString(b)
	var batch []*stage.Message
	t0 := time.Now().UTC().Add(-time.Minute)
	for i := range 5 {
		data, _ := json.Marshal(map[string]any{"n": i})
		ev := &schemas.Event{SpecVersion: schemas.SpecVersion, ID: fmt.Sprintf("%s-%d", cid, i), Source: "urn:sightline:producer:tls",
			Type: "metric.tls_check", Time: t0.Add(time.Duration(i) * time.Millisecond), DataContentType: "application/json",
			CorrelationID: cid, Producer: "tls", Data: data}
		m := stage.EventMessage(ev, "metric", "tls_check", "")
		m.Meta = stage.Meta{Stream: "SIGHTLINE_EVENTS", Sequence: uint64(i + 1), Delivered: 1, Timestamp: ev.Time}
		batch = append(batch, m)
	}
	if err := r.Write(ctx, batch); err != nil {
		t.Fatalf("the pipeline writes over https as sightline: %v", err)
	}
	if err := r.Refresh(ctx); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	res, err := r.Search(ctx, index.Query{CorrelationID: cid})
	if err != nil || res.Total != 5 {
		t.Fatalf("search as sightline: %d hits, %v; want 5", res.Total, err)
	}
	if _, err := r.Indices(ctx); err != nil {
		t.Errorf("the pipeline lists its indices (retention): %v", err)
	}

	// Refusals.
	bad := cfg
	bad.Password = "wrong"
	if rb, err := index.NewRemote(bad); err == nil {
		if err := rb.Write(ctx, batch[:1]); err == nil {
			t.Error("a wrong password wrote")
		}
	}
	noCA := cfg
	noCA.CAFile = ""
	if rn, err := index.NewRemote(noCA); err == nil {
		if err := rn.Write(ctx, batch[:1]); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("without the CA: %v, want a certificate error", err)
		}
	}
	if got := s.call(t, "GET", "/", "", ""); got != http.StatusUnauthorized {
		t.Errorf("anonymous GET /: %d, want 401", got)
	}
	if got := s.call(t, "PUT", "/other-"+hex.EncodeToString(b), "sightline", s.pipelinePass); got != http.StatusForbidden {
		t.Errorf("sightline creating an index outside sightline*: %d, want 403", got)
	}
	if got := s.call(t, "GET", "/_plugins/_security/api/internalusers", "sightline", s.pipelinePass); got != http.StatusForbidden {
		t.Errorf("sightline reading the security users: %d, want 403", got)
	}
	if got := s.call(t, "GET", "/_plugins/_security/authinfo", "admin", s.adminPass); got != http.StatusOK {
		t.Errorf("admin: %d, want 200", got)
	}
	plain := strings.Replace(s.url, "https://", "http://", 1)
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(plain + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("plain HTTP answered %s", resp.Status)
	}
}
