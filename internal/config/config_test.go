package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/graph"
	"github.com/sightline/sightline/sinks/hosts"
	"github.com/sightline/sightline/sinks/index"
)

// The binary's sink sections (cmd/sightline's table), so these tests load
// what `sightline` loads.
var sections = []config.SectionDef{index.Spec.Section, graph.Spec.Section, archive.Spec.Section, hosts.Spec.Section}

func load(path string, env, sets []string) (*config.Config, error) {
	return config.Load(path, env, sets, sections...)
}

// sinkConfigs are the typed sink sections of c.
func sinkConfigs(t *testing.T, c *config.Config) (*graph.Config, *index.Config, *archive.Config, *hosts.Config) {
	t.Helper()
	g, err1 := sinks.SectionOf[graph.Config](c, "graph")
	i, err2 := sinks.SectionOf[index.Config](c, "index")
	a, err3 := sinks.SectionOf[archive.Config](c, "archive")
	h, err4 := sinks.SectionOf[hosts.Config](c, "hosts")
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return g, i, a, h
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sightline.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValidAndEmbedded(t *testing.T) {
	c, err := load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.NATS.URLs) != 0 || c.NATS.Listen != "127.0.0.1:4222" || c.HTTP.Listen != "127.0.0.1:8080" {
		t.Fatalf("not the embedded default: %+v %+v", c.NATS, c.HTTP)
	}
	gc, ic, ac, hc := sinkConfigs(t, c)
	if gc.Enabled || !ic.Enabled || ic.Remote() || !ac.Enabled || !hc.Enabled {
		t.Fatalf("sinks: graph %v index %v remote %v archive %v hosts %v", gc.Enabled, ic.Enabled, ic.Remote(), ac.Enabled, hc.Enabled)
	}
	o, err := c.BusOptions()
	if err != nil {
		t.Fatal(err)
	}
	if o.Host != "127.0.0.1" || o.Port != 4222 {
		t.Fatalf("bus options %+v", o)
	}
	// Acknowledged = on disk (group commit); stalls reported; streams that fit.
	if o.Sync != "group" || o.StallTimeout <= 0 || !c.StreamsConfig().FitStorage {
		t.Fatalf("sync %q, stall timeout %s, fit storage %v", o.Sync, o.StallTimeout, c.StreamsConfig().FitStorage)
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
	c, err := load(p, env, []string{"processor.attributes.cluster=c1", "log.level=warn"})
	if err != nil {
		t.Fatal(err)
	}
	gc, ic, _, _ := sinkConfigs(t, c)
	if c.Log.Level != "warn" || c.Processor.Batch != 64 || ic.Retention != 48*time.Hour {
		t.Fatalf("layers: level %s batch %d retention %s", c.Log.Level, c.Processor.Batch, ic.Retention)
	}
	if c.Processor.Attributes["site"] != "lab1" || c.Processor.Attributes["cluster"] != "c1" {
		t.Fatalf("attributes %v", c.Processor.Attributes)
	}
	if !gc.Enabled || gc.URI != "bolt://10.0.0.1:7687" || gc.SweepMaxShare != 0.3 || gc.Consumer != "graph" {
		t.Fatalf("graph %+v", gc)
	}
}

// The test services' variables (deploy/local/services.sh) are never read,
// so a shell that sourced .local/services.env runs sightline unchanged.
func TestTestVariablesAreNeverRead(t *testing.T) {
	env := []string{
		"SIGHTLINE_TEST_NEO4J_URI=bolt://127.0.0.1:7687", "SIGHTLINE_TEST_NEO4J_PASSWORD=pw",
		"SIGHTLINE_TEST_OPENSEARCH_URL=http://127.0.0.1:9200", "SIGHTLINE_TEST_ELASTICSEARCH_URL=http://127.0.0.1:9201",
		"SIGHTLINE_TEST_S3_ENDPOINT=http://127.0.0.1:7070", "SIGHTLINE_TEST_S3_BUCKET=sightline",
		"SIGHTLINE_CONFIG=", "SIGHTLINE_API=http://127.0.0.1:8080",
	}
	c, err := load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	gc, ic, ac, _ := sinkConfigs(t, c)
	if gc.Enabled || ic.Remote() || ac.Endpoint != "" {
		t.Fatalf("test variables were read: graph %+v index %v archive %+v", gc, ic.URLs, ac)
	}
}

// Every SIGHTLINE_ variable that names no key is an error, with the
// nearest variable (the names earlier releases read are warnings:
// TestRenamedVariablesWarn).
func TestUnknownVariablesAreErrors(t *testing.T) {
	cases := map[string]string{
		"SIGHTLINE_ARCHIVE_REGON=eu-west-1":         "did you mean SIGHTLINE_ARCHIVE_REGION?",
		"SIGHTLINE_S3_REGON=eu-west-1":              "SIGHTLINE_S3_REGON",
		"SIGHTLINE_ELASTICSEARCH_URL=http://x:9200": "SIGHTLINE_ELASTICSEARCH_URL",
	}
	for kv, want := range cases {
		_, err := load("", []string{kv}, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want an error containing %q, got %v", kv, want, err)
		}
	}
	// All of them at once.
	_, err := load("", []string{"SIGHTLINE_ARCHIVE_REGON=x", "SIGHTLINE_PROCESOR_BATCH=3"}, nil)
	if err == nil || !strings.Contains(err.Error(), "SIGHTLINE_ARCHIVE_REGON") || !strings.Contains(err.Error(), "SIGHTLINE_PROCESOR_BATCH") {
		t.Errorf("want both variables named, got %v", err)
	}
}

// Each key's own variable configures a sink (what deploy/env/sightline.env does).
func TestKeyVariablesConfigureSinks(t *testing.T) {
	env := []string{
		"SIGHTLINE_GRAPH_ENABLED=true", "SIGHTLINE_GRAPH_URI=bolt://127.0.0.1:7687", "SIGHTLINE_GRAPH_PASSWORD=pw",
		"SIGHTLINE_INDEX_URLS=http://127.0.0.1:9200", "SIGHTLINE_ARCHIVE_URL=s3://sightline/sightline",
		"SIGHTLINE_ARCHIVE_ENDPOINT=http://127.0.0.1:7070", "SIGHTLINE_ARCHIVE_PATH_STYLE=true",
		"SIGHTLINE_ARCHIVE_USERNAME=a", "SIGHTLINE_ARCHIVE_PASSWORD=b",
		"SIGHTLINE_NATS_URLS=nats://sightline:natspw@127.0.0.1:4222,nats://sightline:natspw@127.0.0.2:4222",
	}
	c, err := load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	gc, ic, ac, _ := sinkConfigs(t, c)
	if !gc.Enabled || gc.Password != "pw" || !ic.Remote() || ac.URL != "s3://sightline/sightline" || !ac.PathStyle {
		t.Fatalf("graph %+v index %v archive %+v", gc, ic.URLs, ac)
	}
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"pw\n", "password: b", "natspw"} {
		if strings.Contains(string(y), secret) {
			t.Errorf("config show prints %q:\n%s", secret, y)
		}
	}
	if !strings.Contains(string(y), "nats://sightline:xxxxx@127.0.0.2:4222") || !strings.Contains(string(y), config.Masked) {
		t.Errorf("secrets not masked in place:\n%s", y)
	}
}

// A reload that changes only a secret needs a restart: the comparison is
// of the real values, not of the masked text.
func TestChangedSeesSecrets(t *testing.T) {
	a, err := load("", []string{"SIGHTLINE_GRAPH_PASSWORD=one"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := load("", []string{"SIGHTLINE_GRAPH_PASSWORD=two"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ya, _ := a.YAML()
	yb, _ := b.YAML()
	if string(ya) != string(yb) {
		t.Fatal("the masked renderings differ: the secret leaks")
	}
	if !a.Changed(b) {
		t.Error("a changed graph.password is not a change")
	}
	c, _ := load("", []string{"SIGHTLINE_LOG_LEVEL=debug", "SIGHTLINE_GRAPH_PASSWORD=one"}, nil)
	if a.Changed(c, "log.level") {
		t.Error("log.level is ignored when asked")
	}
	if ga, _ := sinks.SectionOf[graph.Config](a, "graph"); ga.Password != "one" {
		t.Errorf("Changed modified its receiver: %q", ga.Password)
	}
}

// Every unknown key of a file is reported at once, each with its line and
// the nearest key; a wrong type says what is wanted, not a Go type.
func TestYAMLErrorsAllAtOnce(t *testing.T) {
	p := write(t, "processor:\n  bacth: 3\n  lanes: 2\ngraph:\n  sweep_max_shar: 0.2\nnope: 1\n")
	_, err := load(p, nil, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"processor.bacth (line 2): unknown key; did you mean processor.batch?",
		"graph.sweep_max_shar (line 5): unknown key; did you mean graph.sweep_max_share?",
		"nope (line 6): unknown key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in:\n%v", want, err)
		}
	}
	p = write(t, "processor:\n  batch: many\nindex:\n  retention: forever\n")
	_, err = load(p, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `processor.batch (line 2): "many" is not an integer`) ||
		!strings.Contains(err.Error(), `index.retention (line 4): "forever" is not a duration`) || strings.Contains(err.Error(), "int") && strings.Contains(err.Error(), "into") {
		t.Errorf("type errors: %v", err)
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
		{"sync policy", "", nil, []string{"nats.sync=sometimes"}, "nats.sync"},
		{"stall timeout", "nats:\n  stall_timeout: 10ms\n", nil, nil, "nats.stall_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := ""
			if tc.file != "" {
				p = write(t, tc.file)
			}
			_, err := load(p, tc.env, tc.sets)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error naming %q, got %v", tc.want, err)
			}
		})
	}
}

func TestKeysAndEnvNames(t *testing.T) {
	keys := strings.Join(config.Default(sections...).Keys(), " ")
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

// A listener beyond loopback needs authentication, or an explicit
// http.insecure: true.
func TestHTTPExposureNeedsAuth(t *testing.T) {
	cases := []struct {
		name string
		sets []string
		want string // "" = valid
	}{
		{"default loopback, no auth", nil, ""},
		{"localhost, no auth", []string{"http.listen=localhost:8080"}, ""},
		{"ipv6 loopback, no auth", []string{"http.listen=[::1]:8080"}, ""},
		{"all interfaces, no auth", []string{"http.listen=0.0.0.0:8080"}, "http.listen"},
		{"empty host, no auth", []string{"http.listen=:8080"}, "http.listen"},
		{"lan address, no auth", []string{"http.listen=10.1.2.3:8080"}, "http.auth"},
		{"hostname, no auth", []string{"http.listen=sightline.example:8080"}, "http.insecure"},
		{"all interfaces, insecure", []string{"http.listen=0.0.0.0:8080", "http.insecure=true"}, ""},
		{"all interfaces, tokens file", []string{"http.listen=0.0.0.0:8080", "http.auth.tokens_file=/etc/sightline/tokens"}, ""},
		{"all interfaces, token files", []string{"http.listen=0.0.0.0:8080", "http.auth.token_files=read=/run/secrets/r,ingest=/run/secrets/i"}, ""},
		{"token file without role", []string{"http.auth.token_files=/run/secrets/r"}, "http.auth.token_files"},
		{"token file bad role", []string{"http.auth.token_files=boss=/run/secrets/r"}, "http.auth.token_files"},
		{"cert without key", []string{"http.tls_cert=/c.pem"}, "http.tls_key"},
		{"key without cert", []string{"http.tls_key=/k.pem"}, "http.tls_cert"},
		{"cert and key", []string{"http.tls_cert=/c.pem", "http.tls_key=/k.pem"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load("", nil, tc.sets)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error naming %q, got %v", tc.want, err)
			}
		})
	}
	_, err := config.Load("", nil, []string{"http.listen=0.0.0.0:8080"})
	for _, want := range []string{"not a loopback address", "http.auth.tokens_file", "http.insecure: true"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %v does not say %q", err, want)
		}
	}
}

// Token files are paths; `config show` prints them, never a token (the
// tokens are never in the configuration).
func TestConfigShowHasNoToken(t *testing.T) {
	c, err := config.Load("", nil, []string{"http.auth.tokens_file=/etc/sightline/tokens", "http.tls_cert=/c.pem", "http.tls_key=/k.pem"})
	if err != nil {
		t.Fatal(err)
	}
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tokens_file: /etc/sightline/tokens", "tls_cert: /c.pem", "insecure: false"} {
		if !strings.Contains(string(y), want) {
			t.Errorf("config show lacks %q:\n%s", want, y)
		}
	}
}

// The nats section is the bus's own Options: every option the bus has is
// a key (nothing copied by hand to drift), but its credentials and TLS,
// which are the shared blocks (nats.username, nats.ca_file, ...) that
// BusOptions converts; the old TLS names still work.
func TestBusOptionsAreTheNATSSection(t *testing.T) {
	c, err := load("", []string{"SIGHTLINE_NATS_TLS_INSECURE_SKIP_VERIFY=true"},
		[]string{"nats.inbox_prefix=_INBOX_worker", "nats.urls=nats://127.0.0.1:4222", "nats.listen=127.0.0.1:4999"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.BusOptions()
	if err != nil {
		t.Fatal(err)
	}
	if o.TLS == nil || !o.TLS.InsecureSkipVerify || o.InboxPrefix != "_INBOX_worker" || o.Port != 4999 || len(o.URLs) != 1 {
		t.Fatalf("bus options %+v", o)
	}
	keys := strings.Join(config.Default().Keys(), " ")
	rt := reflect.TypeOf(bus.Options{})
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("yaml"), ",")
		if name != "-" && !strings.Contains(keys, "nats."+name) && !strings.HasPrefix(name, "tls_") {
			t.Errorf("bus.Options.%s is not a nats key", rt.Field(i).Name)
		}
	}
}
