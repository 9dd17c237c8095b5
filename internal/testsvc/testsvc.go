// Package testsvc finds the real services a test needs (Neo4j, OpenSearch, Elasticsearch,
// an S3-compatible server, a NATS cluster) that `task services:up` started.
//
// Each function reads the SIGHTLINE_TEST_* environment variables (a prefix the sightline
// configuration never reads, so a shell that sourced the file can still run sightline),
// falling back to the file
// .local/services.env found by walking up from the working directory, and checks that the
// service's port answers. When a service is missing the test is skipped with a message
// saying how to start it, except when CI=true: then the test fails, so CI never passes
// by skipping the tests that matter.
package testsvc

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvFile is where `task services:up` writes the variables, relative to the repo root.
const EnvFile = ".local/services.env"

// Variable names; other packages and scripts rely on them.
const (
	EnvNeo4jURI         = "SIGHTLINE_TEST_NEO4J_URI"
	EnvNeo4jUser        = "SIGHTLINE_TEST_NEO4J_USER"
	EnvNeo4jPassword    = "SIGHTLINE_TEST_NEO4J_PASSWORD"
	EnvOpenSearchURL    = "SIGHTLINE_TEST_OPENSEARCH_URL"
	EnvElasticsearchURL = "SIGHTLINE_TEST_ELASTICSEARCH_URL"
	EnvS3Endpoint       = "SIGHTLINE_TEST_S3_ENDPOINT"
	EnvS3Bucket         = "SIGHTLINE_TEST_S3_BUCKET"
	EnvS3AccessKey      = "SIGHTLINE_TEST_S3_ACCESS_KEY"
	EnvS3SecretKey      = "SIGHTLINE_TEST_S3_SECRET_KEY"
	EnvS3Region         = "SIGHTLINE_TEST_S3_REGION"
	EnvNATSClusterURLs  = "SIGHTLINE_TEST_NATS_CLUSTER_URLS"
	// TLS-only second instances (task services:up TLS=1), for tests only.
	EnvTestTLSCAFile           = "SIGHTLINE_TEST_TLS_CA_FILE"
	EnvTestNeo4jTLSURI         = "SIGHTLINE_TEST_NEO4J_TLS_URI"
	EnvTestNeo4jTLSUser        = "SIGHTLINE_TEST_NEO4J_TLS_USER"
	EnvTestNeo4jTLSPassword    = "SIGHTLINE_TEST_NEO4J_TLS_PASSWORD"
	EnvTestElasticsearchTLSURL = "SIGHTLINE_TEST_ELASTICSEARCH_TLS_URL"
	EnvTestS3TLSEndpoint       = "SIGHTLINE_TEST_S3_TLS_ENDPOINT"
	EnvTestS3TLSBucket         = "SIGHTLINE_TEST_S3_TLS_BUCKET"
	EnvTestS3TLSAccessKey      = "SIGHTLINE_TEST_S3_TLS_ACCESS_KEY"
	EnvTestS3TLSSecretKey      = "SIGHTLINE_TEST_S3_TLS_SECRET_KEY"
	EnvTestS3TLSRegion         = "SIGHTLINE_TEST_S3_TLS_REGION"
	tlsHint                    = "start it with `task services:up TLS=1` (deploy/README.md)"
	startHint                  = "start it with `task services:up` (deploy/README.md)"
	natsStartHint              = "start it with `task services:up NATS=1` (deploy/README.md)"
	elasticsearchHint          = "start it with `task services:up ES=1` (deploy/README.md)"
)

// Neo4jInfo is how to reach the local Neo4j.
type Neo4jInfo struct {
	URI      string // bolt://127.0.0.1:7687
	User     string
	Password string
}

// S3Info is how to reach the local S3-compatible server. It needs path-style addressing.
type S3Info struct {
	Endpoint  string // http://127.0.0.1:9000
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string
}

// Neo4j returns the local Neo4j, or skips (fails when CI=true) the test.
func Neo4j(t testing.TB) Neo4jInfo {
	t.Helper()
	v := require(t, "Neo4j", startHint, EnvNeo4jURI, EnvNeo4jUser, EnvNeo4jPassword)
	reachable(t, "Neo4j", startHint, v[0])
	return Neo4jInfo{URI: v[0], User: v[1], Password: v[2]}
}

// OpenSearch returns the base URL of the local OpenSearch, or skips (fails when CI=true).
func OpenSearch(t testing.TB) string {
	t.Helper()
	v := require(t, "OpenSearch", startHint, EnvOpenSearchURL)
	reachable(t, "OpenSearch", startHint, v[0])
	return v[0]
}

// Elasticsearch returns the base URL of the optional local Elasticsearch, or skips
// (fails when CI=true).
func Elasticsearch(t testing.TB) string {
	t.Helper()
	v := require(t, "Elasticsearch", elasticsearchHint, EnvElasticsearchURL)
	reachable(t, "Elasticsearch", elasticsearchHint, v[0])
	return v[0]
}

// S3 returns the local S3-compatible server, or skips (fails when CI=true).
func S3(t testing.TB) S3Info {
	t.Helper()
	v := require(t, "S3", startHint, EnvS3Endpoint, EnvS3Bucket, EnvS3AccessKey, EnvS3SecretKey, EnvS3Region)
	reachable(t, "S3", startHint, v[0])
	return S3Info{Endpoint: v[0], Bucket: v[1], AccessKey: v[2], SecretKey: v[3], Region: v[4]}
}

// Neo4jTLS returns the TLS-only Neo4j (bolt+s://) and the CA file that
// signed its certificate, or skips (fails when CI=true).
func Neo4jTLS(t testing.TB) (Neo4jInfo, string) {
	t.Helper()
	v := require(t, "Neo4j with TLS", tlsHint, EnvTestNeo4jTLSURI, EnvTestNeo4jTLSUser, EnvTestNeo4jTLSPassword, EnvTestTLSCAFile)
	reachable(t, "Neo4j with TLS", tlsHint, v[0])
	return Neo4jInfo{URI: v[0], User: v[1], Password: v[2]}, v[3]
}

// ElasticsearchTLS returns the base URL (https://) of the TLS-only
// Elasticsearch and the CA file, or skips (fails when CI=true).
func ElasticsearchTLS(t testing.TB) (string, string) {
	t.Helper()
	v := require(t, "Elasticsearch with TLS", tlsHint, EnvTestElasticsearchTLSURL, EnvTestTLSCAFile)
	reachable(t, "Elasticsearch with TLS", tlsHint, v[0])
	return v[0], v[1]
}

// S3TLS returns the TLS-only S3 server (https://) and the CA file, or
// skips (fails when CI=true).
func S3TLS(t testing.TB) (S3Info, string) {
	t.Helper()
	v := require(t, "S3 with TLS", tlsHint, EnvTestS3TLSEndpoint, EnvTestS3TLSBucket, EnvTestS3TLSAccessKey,
		EnvTestS3TLSSecretKey, EnvTestS3TLSRegion, EnvTestTLSCAFile)
	reachable(t, "S3 with TLS", tlsHint, v[0])
	return S3Info{Endpoint: v[0], Bucket: v[1], AccessKey: v[2], SecretKey: v[3], Region: v[4]}, v[5]
}

// NATSCluster returns the client URLs of the optional local 3-node NATS cluster, or
// skips (fails when CI=true).
func NATSCluster(t testing.TB) []string {
	t.Helper()
	v := require(t, "NATS cluster", natsStartHint, EnvNATSClusterURLs)
	urls := strings.Split(v[0], ",")
	for _, u := range urls {
		reachable(t, "NATS cluster", natsStartHint, u)
	}
	return urls
}

// Lookup returns the value of a SIGHTLINE_TEST_* variable from the environment or, when
// unset there, from .local/services.env. A services.env written before the variables
// moved under SIGHTLINE_TEST_ (SIGHTLINE_NEO4J_URI, ...) is still read.
func Lookup(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v, true
	}
	f := fileEnv()
	if v, ok := f[name]; ok && v != "" {
		return v, true
	}
	if rest, ok := strings.CutPrefix(name, "SIGHTLINE_TEST_"); ok {
		v, ok := f["SIGHTLINE_"+rest]
		return v, ok && v != ""
	}
	return "", false
}

// CI reports whether missing services must fail tests (CI=true) rather than skip them.
func CI() bool { return os.Getenv("CI") == "true" }

func require(t testing.TB, what, hint string, names ...string) []string {
	t.Helper()
	vals := make([]string, len(names))
	var missing []string
	for i, n := range names {
		v, ok := Lookup(n)
		if !ok {
			missing = append(missing, n)
		}
		vals[i] = v
	}
	if len(missing) > 0 {
		unavailable(t, "%s is not configured (%s unset, and not in %s); %s",
			what, strings.Join(missing, ", "), EnvFile, hint)
	}
	return vals
}

// reachable checks that the host:port of a URL accepts a TCP connection, so a stale
// env file pointing at stopped services is reported as such.
func reachable(t testing.TB, what, hint, raw string) {
	t.Helper()
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		unavailable(t, "%s: cannot parse %q as a URL: %v", what, raw, err)
		return
	}
	host := u.Host
	if u.Port() == "" {
		port := map[string]string{"http": "80", "https": "443", "bolt": "7687", "neo4j": "7687", "nats": "4222"}[u.Scheme]
		host = net.JoinHostPort(u.Hostname(), port)
	}
	c, err := net.DialTimeout("tcp", host, 3*time.Second)
	if err != nil {
		unavailable(t, "%s at %s is configured but not answering (%v); %s", what, raw, err, hint)
		return
	}
	_ = c.Close()
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("CI=true and a required service is missing: %s", msg)
		return
	}
	t.Skipf("%s (with CI=true this fails)", msg)
}

var (
	fileOnce sync.Once
	fileVars map[string]string
)

// fileEnv parses the first .local/services.env found walking up from the working dir.
func fileEnv() map[string]string {
	fileOnce.Do(func() {
		fileVars = map[string]string{}
		dir, err := os.Getwd()
		if err != nil {
			return
		}
		for {
			if vars, err := parseEnvFile(filepath.Join(dir, EnvFile)); err == nil {
				fileVars = vars
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	return fileVars
}

// parseEnvFile reads KEY=VALUE lines; blank lines and # comments are ignored, an
// "export " prefix and matching surrounding quotes are removed.
func parseEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		vars[strings.TrimSpace(k)] = v
	}
	return vars, sc.Err()
}

// Variables of the OpenSearch that runs the Compose stack's security configuration
// (deploy/local/opensearch-security.sh, started by the README test command).
const (
	EnvOpenSearchSecurityURL       = "SIGHTLINE_TEST_OPENSEARCH_SECURITY_URL"
	EnvOpenSearchSecurityCAFile    = "SIGHTLINE_TEST_OPENSEARCH_SECURITY_CA_FILE"
	EnvOpenSearchSecurityPasswords = "SIGHTLINE_TEST_OPENSEARCH_SECURITY_PASSWORDS"
	openSearchSecurityHint         = "start it with `bash deploy/local/opensearch-security.sh up >> .local/services.env` (task test does)"
)

// OpenSearchSecurity returns the URL, the CA file and the passwords file (KEY=VALUE lines)
// of the OpenSearch with the security plugin configured as in Compose.
func OpenSearchSecurity(t testing.TB) (url, caFile, passwordsFile string) {
	t.Helper()
	v := require(t, "OpenSearch with the security plugin", openSearchSecurityHint,
		EnvOpenSearchSecurityURL, EnvOpenSearchSecurityCAFile, EnvOpenSearchSecurityPasswords)
	reachable(t, "OpenSearch with the security plugin", openSearchSecurityHint, v[0])
	return v[0], v[1], v[2]
}
