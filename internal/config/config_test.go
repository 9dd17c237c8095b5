package config_test

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/config"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sightline.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValidAndEmbedded(t *testing.T) {
	c, err := config.Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.NATS.URLs) != 0 || c.NATS.Listen != "127.0.0.1:4222" || c.HTTP.Listen != "127.0.0.1:8080" {
		t.Fatalf("not the embedded default: %+v %+v", c.NATS, c.HTTP)
	}
	if c.Graph.Enabled || !c.Index.Enabled || c.Index.Remote() || !c.Archive.Enabled {
		t.Fatalf("sinks: graph %v index %v remote %v archive %v", c.Graph.Enabled, c.Index.Enabled, c.Index.Remote(), c.Archive.Enabled)
	}
	o := c.BusOptions()
	if o.Host != "127.0.0.1" || o.Port != 4222 {
		t.Fatalf("bus options %+v", o)
	}
}

func TestFileEnvAndSetLayerInOrder(t *testing.T) {
	p := write(t, `
log:
  level: debug
processor:
  attributes: {site: lab1, env: dev}
  batch: 128
graph:
  enabled: true
  uri: bolt://10.0.0.1:7687
  sweep_max_share: 0.3
`)
	env := []string{"SIGHTLINE_PROCESSOR_BATCH=64", "SIGHTLINE_INDEX_RETENTION=48h", "HOME=/root"}
	c, err := config.Load(p, env, []string{"processor.attributes.cluster=c1", "log.level=warn"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "warn" || c.Processor.Batch != 64 || c.Index.Retention != 48*time.Hour {
		t.Fatalf("layers: level %s batch %d retention %s", c.Log.Level, c.Processor.Batch, c.Index.Retention)
	}
	if c.Processor.Attributes["site"] != "lab1" || c.Processor.Attributes["cluster"] != "c1" {
		t.Fatalf("attributes %v", c.Processor.Attributes)
	}
	if !c.Graph.Enabled || c.Graph.URI != "bolt://10.0.0.1:7687" || c.Graph.SweepMaxShare != 0.3 || c.Graph.Consumer != "graph" {
		t.Fatalf("graph %+v", c.Graph)
	}
}

func TestServiceVariablesTurnSinksOn(t *testing.T) {
	env := []string{
		"SIGHTLINE_NEO4J_URI=bolt://127.0.0.1:7687", "SIGHTLINE_NEO4J_PASSWORD=pw",
		"SIGHTLINE_OPENSEARCH_URL=http://127.0.0.1:9200",
		"SIGHTLINE_S3_ENDPOINT=http://127.0.0.1:7070", "SIGHTLINE_S3_BUCKET=sightline",
		"SIGHTLINE_S3_ACCESS_KEY=a", "SIGHTLINE_S3_SECRET_KEY=b",
	}
	c, err := config.Load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Graph.Enabled || c.Graph.Password != "pw" || !c.Index.Remote() || c.Archive.URL != "s3://sightline/sightline" || !c.Archive.PathStyle {
		t.Fatalf("graph %+v index %v archive %+v", c.Graph, c.Index.URLs, c.Archive)
	}
	y, err := c.YAML()
	if err != nil || strings.Contains(string(y), "pw\n") || !strings.Contains(string(y), "********") {
		t.Fatalf("secrets not masked: %s", y)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, file string
		env, sets  []string
		want       string
	}{
		{"unknown yaml key", "processor:\n  bacth: 3\n", nil, nil, "bacth"},
		{"bad yaml type", "processor:\n  batch: many\n", nil, nil, "batch"},
		{"bad level", "log:\n  level: loud\n", nil, nil, "log.level"},
		{"bad listen", "http:\n  listen: 8080\n", nil, nil, "http.listen"},
		{"bad attribute name", "processor:\n  attributes: {Site: x}\n", nil, nil, "processor.attributes.Site"},
		{"env typo", "", []string{"SIGHTLINE_PROCESOR_BATCH=3"}, nil, "SIGHTLINE_PROCESOR_BATCH"},
		{"env bad value", "", []string{"SIGHTLINE_INDEX_RETENTION=forever"}, nil, "index.retention"},
		{"set unknown", "", nil, []string{"nope.key=1"}, "nope.key"},
		{"graph validated when on", "graph:\n  enabled: true\n  sweep_max_share: 2\n", nil, nil, "graph.sweep_max_share"},
		{"archive validated", "archive:\n  compression: lz4\n", nil, nil, "archive.compression"},
		{"stream limit", "streams:\n  raw:\n    max_msg_size: 0\n", nil, nil, "streams.raw.max_msg_size"},
		{"gc target", "runtime:\n  gc_percent: 5\n", nil, nil, "runtime.gc_percent"},
		{"memory limit", "", []string{"SIGHTLINE_RUNTIME_MEMORY_LIMIT=1000"}, nil, "runtime.memory_limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := ""
			if tc.file != "" {
				p = write(t, tc.file)
			}
			_, err := config.Load(p, tc.env, tc.sets)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error naming %q, got %v", tc.want, err)
			}
		})
	}
}

func TestKeysAndEnvNames(t *testing.T) {
	keys := strings.Join(config.Keys(), " ")
	for _, k := range []string{"nats.urls", "graph.sweep_max_share", "index.urls", "archive.batch_max_age", "processor.attributes", "telemetry.traces.exporter"} {
		if !strings.Contains(keys, k) {
			t.Errorf("keys lack %s", k)
		}
	}
	if got := config.EnvName("graph.sweep_max_share"); got != "SIGHTLINE_GRAPH_SWEEP_MAX_SHARE" {
		t.Fatal(got)
	}
}

// Apply sets the GC target and memory limit unless GOGC / GOMEMLIMIT did,
// and restore puts the previous values back.
func TestRuntimeApply(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOGC")
	os.Unsetenv("GOMEMLIMIT")
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	restore := config.Runtime{MemoryLimit: 300 << 20, GCPercent: 250}.Apply()
	if got := debug.SetGCPercent(250); got != 250 {
		t.Errorf("GC percent after Apply = %d, want 250", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Errorf("memory limit after Apply = %d, want %d", got, 300<<20)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent after restore = %d, want 100", got)
	}

	t.Setenv("GOGC", "off")
	restore = config.Runtime{GCPercent: 250}.Apply()
	defer restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("Apply changed the GC percent to %d although GOGC is set", got)
	}
}
