package config

// A prototype of the configuration loader on koanf (scratch: measured, not
// kept). Same layers: defaults, YAML file, SIGHTLINE_* variables, --set.

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-viper/mapstructure/v2"
	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
)

func koanfLoad(path string, env, sets []string, sections ...SectionDef) (*Config, error) {
	c := Default(sections...)
	k := koanf.New(".")
	def, err := c.render(false)
	if err != nil {
		return nil, err
	}
	if err := k.Load(rawbytes.Provider(def), kyaml.Parser()); err != nil {
		return nil, err
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if err := k.Load(rawbytes.Provider(b), kyaml.Parser()); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	// Variables: koanf cannot tell SIGHTLINE_GRAPH_SWEEP_MAX_SHARE's dots
	// from its underscores; the known keys (reflection) map them.
	known := map[string]bool{}
	byEnv := map[string]string{}
	for _, key := range c.Keys() {
		known[key] = true
		byEnv[EnvName(key)] = key
	}
	ev := map[string]any{}
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		if key, ok := byEnv[name]; ok {
			ev[key] = val
		} else if strings.HasPrefix(name, EnvPrefix) && !strings.HasPrefix(name, TestEnvPrefix) && !commandEnv[name] {
			return nil, fmt.Errorf("environment %s: no such variable", name)
		}
	}
	if err := k.Load(confmap.Provider(ev, "."), nil); err != nil {
		return nil, err
	}
	sv := map[string]any{}
	for _, s := range sets {
		key, val, _ := strings.Cut(s, "=")
		sv[key] = val
	}
	if err := k.Load(confmap.Provider(sv, "."), nil); err != nil {
		return nil, err
	}
	// Unknown keys: koanf accepts anything; checked against the known keys
	// (no line numbers: the parsed map has none).
	var bad []string
	for _, key := range k.Keys() {
		if !known[key] && !knownMapEntry(key, known) {
			msg := key + ": unknown key"
			if s := Suggest(key, c.Keys()); s != "" {
				msg += "; did you mean " + s + "?"
			}
			bad = append(bad, msg)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(bad, "\n"))
	}
	conf := func(out any) koanf.UnmarshalConf {
		return koanf.UnmarshalConf{Tag: "yaml", DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				mapstructure.StringToTimeDurationHookFunc(), mapstructure.StringToSliceHookFunc(","), stringToMapHook),
			TagName: "yaml", SquashTagOption: "inline", WeaklyTypedInput: true, Result: out,
		}}
	}
	if err := k.UnmarshalWithConf("", c, conf(c)); err != nil {
		return nil, err
	}
	for _, s := range c.sections {
		if err := k.UnmarshalWithConf(s.name, s.value, conf(s.value)); err != nil {
			return nil, err
		}
	}
	return c, c.Validate()
}

func knownMapEntry(key string, known map[string]bool) bool {
	for i := strings.LastIndexByte(key, '.'); i > 0; i = strings.LastIndexByte(key[:i], '.') {
		if known[key[:i]] {
			return true
		}
	}
	return false
}

var stringToMapHook = func(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Map {
		return data, nil
	}
	m := map[string]string{}
	for p := range strings.SplitSeq(data.(string), ",") {
		if k, v, ok := strings.Cut(p, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

// demoSection stands for a sink's section (the sinks import this package).
type demoSection struct {
	Enabled  bool              `yaml:"enabled"`
	URLs     []string          `yaml:"urls"`
	Password string            `yaml:"password" secret:"true"`
	Timeout  time.Duration     `yaml:"timeout"`
	Labels   map[string]string `yaml:"labels"`
	TLS      `yaml:",inline"`
}

func (d *demoSection) IsEnabled() bool { return d.Enabled }
func (d *demoSection) Validate() error { return d.TLS.Validate("demo") }

var protoSections = []SectionDef{{Name: "demo", New: func() Section { return &demoSection{Timeout: 30 * time.Second} }}}

// koanfCase compares the two loaders on one input.
func TestKoanfPrototype(t *testing.T) {
	dir := t.TempDir()
	file := func(body string) string {
		p := dir + "/" + fmt.Sprint(time.Now().UnixNano()) + ".yaml"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deploy := file("nats:\n  urls: [tls://sightline:pw@nats:4222]\n  ca_file: /ca.pem\nhttp:\n  listen: 0.0.0.0:8080\n  auth: {tokens_file: /t}\n" +
		"processor:\n  attributes: {env: compose}\n  ack_wait: 1m\ndemo:\n  enabled: true\n  urls: [https://x:9200]\n  password: pw\n  timeout: 5s\n  ca_file: /ca.pem\n  labels: {a: b}\n")
	cases := []struct {
		name      string
		path      string
		env, sets []string
	}{
		{"defaults", "", nil, nil},
		{"deploy file", deploy, nil, nil},
		{"env and set", "", []string{"SIGHTLINE_PROCESSOR_ATTRIBUTES=site=lab1,env=prod", "SIGHTLINE_NATS_URLS=nats://a:4222,nats://b:4222", "SIGHTLINE_PROCESSOR_ACK_WAIT=45s"},
			[]string{"log.level=debug", "processor.batch=99", "processor.attributes.rack=r1"}},
		{"unknown key", file("log:\n  level: info\nprocesor:\n  batch: 3\n"), nil, nil},
		{"type error", file("processor:\n  batch: many\n"), nil, nil},
		{"syntax error", file("log:\n  level: [info\nprocessor: {}\n"), nil, nil},
		{"unknown variable", "", []string{"SIGHTLINE_LOG_LEVLE=debug"}, nil},
		{"section env", "", []string{"SIGHTLINE_DEMO_URLS=https://a:1,https://b:2", "SIGHTLINE_DEMO_TIMEOUT=7s", "SIGHTLINE_DEMO_LABELS=x=1,y=2"}, []string{"demo.enabled=true"}},
		{"section typo", file("demo:\n  enabled: true\n  timeuot: 5s\n"), nil, nil},
		{"section bad type", file("demo:\n  timeout: soon\n"), nil, nil},
		{"renamed key", file("nats:\n  tls_ca: /ca.pem\n"), nil, nil},
	}
	for _, c := range cases {
		a, errA := Load(c.path, c.env, c.sets, protoSections...)
		b, errB := koanfLoad(c.path, c.env, c.sets, protoSections...)
		var ya, yb []byte
		if a != nil {
			ya, _ = a.render(false)
		}
		if b != nil {
			yb, _ = b.render(false)
		}
		same := string(ya) == string(yb)
		t.Logf("%-16s same config: %v\n  hand-written: %v\n  koanf:        %v", c.name, same, errA, errB)
		if !same && a != nil && b != nil {
			la, lb := strings.Split(string(ya), "\n"), strings.Split(string(yb), "\n")
			for i := range min(len(la), len(lb)) {
				if la[i] != lb[i] {
					t.Logf("  first difference, line %d: %q vs %q", i+1, la[i], lb[i])
					break
				}
			}
		}
	}
}

func BenchmarkLoadHandWritten(b *testing.B) {
	for b.Loop() {
		if _, err := Load(benchFile, []string{"SIGHTLINE_LOG_LEVEL=debug"}, []string{"processor.batch=99"}, protoSections...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadKoanf(b *testing.B) {
	for b.Loop() {
		if _, err := koanfLoad(benchFile, []string{"SIGHTLINE_LOG_LEVEL=debug"}, []string{"processor.batch=99"}, protoSections...); err != nil {
			b.Fatal(err)
		}
	}
}

const benchFile = "testdata/bench.yaml"
