package config_test

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/config"
)

// The Compose stack's configuration loads with the env template's
// variables, and points every sink at the Compose services.
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
	c, err := config.Load("../../deploy/sightline/sightline.yaml", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.NATS.URLs) != 1 || !strings.Contains(c.NATS.URLs[0], "@nats:4222") {
		t.Errorf("nats.urls %v", c.NATS.URLs)
	}
	if !c.Graph.Enabled || c.Graph.URI != "bolt://neo4j:7687" || c.Graph.Password == "" {
		t.Errorf("graph %+v", c.Graph)
	}
	if !c.Index.Remote() || c.Index.URLs[0] != "http://opensearch:9200" {
		t.Errorf("index.urls %v", c.Index.URLs)
	}
	if c.Archive.URL != "s3://sightline/sightline" || c.Archive.Endpoint != "http://minio:9000" || !c.Archive.PathStyle {
		t.Errorf("archive %+v", c.Archive)
	}
	if c.HTTP.Listen != "0.0.0.0:8080" {
		t.Errorf("http.listen %s: the container healthcheck probes :8080", c.HTTP.Listen)
	}
}
