package index

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/testsvc"
)

// The remote index client writes to and searches an Elasticsearch that
// only speaks HTTPS (x-pack security, certificate from the local CA) with
// index.ca_file; without the CA it fails on the certificate.
func TestElasticsearchOverTLSWithCAFile(t *testing.T) {
	base, ca := testsvc.ElasticsearchTLS(t)
	base = strings.TrimRight(base, "/")
	r, prefix := remoteFor(t, base, func(c *Config) { c.CAFile = ca })
	t.Cleanup(func() { dropPrefixTLS(t, base, ca, prefix) })
	ctx := context.Background()
	batch := events("tls-"+randHex(4), 50, time.Now().UTC().Add(-time.Minute))
	if err := r.Write(ctx, batch); err != nil {
		t.Fatalf("write over https with the CA: %v", err)
	}
	if n := count(t, r); n != 50 {
		t.Fatalf("%d documents over https, want 50", n)
	}
	noCA := mustRemote(t, Config{URLs: []string{base}, Prefix: prefix})
	if err := noCA.Write(ctx, batch[:1]); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v, want a certificate error", err)
	}
}

func dropPrefixTLS(t testing.TB, base, ca, prefix string) {
	r := mustRemote(t, Config{URLs: []string{base}, Prefix: prefix, TLS: config.TLS{CAFile: ca}})
	ctx := context.Background()
	_, _, _, _ = r.client.Do(ctx, "DELETE", "/"+prefix+"-*", "", nil)
	_, _, _, _ = r.client.Do(ctx, "DELETE", "/_index_template/"+prefix+"-events", "", nil)
}
