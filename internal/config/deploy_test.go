package config_test

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// The Compose stack's configuration loads with the env template's
// variables, and points every sink at the Compose services over TLS,
// checked against the stack's CA.
func TestComposeConfigLoads(t *testing.T) {
	f, err := os.Open("../../deploy/env/sightline.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			env = append(env, l)
		}
	}
	c, err := load("../../deploy/sightline/sightline.yaml", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	const ca = "/run/secrets/sightline/tls/ca.pem"
	if len(c.NATS.URLs) != 1 || !strings.HasPrefix(c.NATS.URLs[0], "tls://") || !strings.Contains(c.NATS.URLs[0], "@nats:4222") || c.NATS.TLS.CAFile != ca {
		t.Errorf("nats.urls %v ca_file %q", c.NATS.URLs, c.NATS.TLS.CAFile)
	}
	gc, ic, ac, _ := sinkConfigs(t, c)
	if !gc.Enabled || gc.URI != "bolt+s://neo4j:7687" || gc.Password == "" || gc.CAFile != ca {
		t.Errorf("graph %+v", gc)
	}
	if !ic.Remote() || ic.URLs[0] != "https://opensearch:9200" || ic.CAFile != ca || ic.Username != "sightline" || ic.Password == "" || ic.InsecureSkipVerify {
		t.Errorf("index.urls %v ca_file %q username %q", ic.URLs, ic.CAFile, ic.Username)
	}
	if ac.URL != "s3://sightline/sightline" || ac.Endpoint != "https://minio:9000" || !ac.PathStyle || ac.CAFile != ca {
		t.Errorf("archive %+v", ac)
	}
	if c.HTTP.Listen != "0.0.0.0:8080" {
		t.Errorf("http.listen %s: the container healthcheck probes :8080", c.HTTP.Listen)
	}
	if c.HTTP.Insecure || !c.HTTP.Auth.Enabled() || c.HTTP.TLSCert == "" {
		t.Errorf("the stack's API is not TLS + tokens: %+v", c.HTTP)
	}
}
