package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// No Docker engine runs in CI, so these tests check the Compose files, the Dockerfile and
// the configuration they mount the way `docker compose config` would, plus our own rules.

func loadProject(t *testing.T, files ...string) *types.Project {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(wd),
		cli.WithName("sightline"),
		// deploy/env/*.env are git-ignored secrets that a fresh clone lacks; the test
		// below checks each has its committed .example instead.
		cli.WithoutEnvironmentResolution,
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("loading %v: %v", files, err)
	}
	return p
}

var (
	prodFiles = []string{"compose.yaml"}
	devFiles  = []string{"compose.yaml", "compose.dev.yaml"}
)

var wantServices = []string{"nats", "nats-exporter", "neo4j", "opensearch", "minio", "minio-init", "sightline", "prometheus", "grafana"}

func eachProject(t *testing.T, f func(t *testing.T, p *types.Project)) {
	for name, files := range map[string][]string{"prod": prodFiles, "prod+dev": devFiles} {
		t.Run(name, func(t *testing.T) { f(t, loadProject(t, files...)) })
	}
}

func TestComposeServices(t *testing.T) {
	eachProject(t, func(t *testing.T, p *types.Project) {
		for _, s := range wantServices {
			if _, ok := p.Services[s]; !ok {
				t.Errorf("service %s missing", s)
			}
		}
		for name, s := range p.Services {
			if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
				t.Errorf("%s: no healthcheck", name)
			}
			if s.Restart != "on-failure" {
				t.Errorf("%s: restart = %q, want on-failure", name, s.Restart)
			}
			for _, v := range s.Volumes {
				if v.Type == types.VolumeTypeVolume {
					if v.Source == "" {
						t.Errorf("%s: anonymous volume at %s; use a named volume", name, v.Target)
					} else if _, ok := p.Volumes[v.Source]; !ok {
						t.Errorf("%s: volume %s is not declared at top level", name, v.Source)
					}
				}
			}
		}
	})
}

var pinnedTag = regexp.MustCompile(`^[^:@]+(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?(@sha256:[0-9a-f]{64})?$`)

func TestComposeImagesPinned(t *testing.T) {
	eachProject(t, func(t *testing.T, p *types.Project) {
		for name, s := range p.Services {
			img := s.Image
			if img == "" {
				t.Errorf("%s: no image (set one, with a version tag, even for built services)", name)
				continue
			}
			ref := img[strings.LastIndex(img, "/")+1:]
			tag, hasTag := "", strings.Contains(ref, ":")
			if hasTag {
				tag = strings.SplitN(strings.SplitN(ref, ":", 2)[1], "@", 2)[0]
			}
			switch {
			case !pinnedTag.MatchString(img):
				t.Errorf("%s: image %q is not a valid reference", name, img)
			case !hasTag && !strings.Contains(img, "@sha256:"):
				t.Errorf("%s: image %q has no tag (means latest); pin a version", name, img)
			case strings.EqualFold(tag, "latest") || strings.Contains(strings.ToLower(tag), "latest"):
				t.Errorf("%s: image %q uses latest; pin a version", name, img)
			}
		}
	})
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// madeByDevTLS reports whether path is one of the git-ignored files
// local/dev-tls.sh writes (a fresh clone lacks them until it runs).
func madeByDevTLS(path string) bool {
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(filepath.Join(wd, "secrets"), path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return false
	}
	switch dir, file := filepath.Split(rel); {
	case rel == "http", rel == "tls", dir == "http/" && file != "":
		return true
	case dir == "tls/" && (file == "ca.pem" || strings.HasSuffix(file, ".pem") || strings.HasSuffix(file, ".key")):
		return true
	}
	return false
}

func TestComposeReferencedFilesExist(t *testing.T) {
	eachProject(t, func(t *testing.T, p *types.Project) {
		for name, s := range p.Services {
			for _, v := range s.Volumes {
				if v.Type == types.VolumeTypeBind && !exists(v.Source) && !madeByDevTLS(v.Source) {
					t.Errorf("%s: bind mount source %s does not exist", name, v.Source)
				}
			}
			for _, ef := range s.EnvFiles {
				if !exists(ef.Path) && !exists(ef.Path+".example") {
					t.Errorf("%s: env_file %s has neither the file nor a committed %s.example", name, ef.Path, filepath.Base(ef.Path))
				}
			}
			if s.Build != nil {
				if !exists(s.Build.Context) {
					t.Errorf("%s: build context %s does not exist", name, s.Build.Context)
				}
				df := s.Build.Dockerfile
				if !filepath.IsAbs(df) {
					df = filepath.Join(s.Build.Context, df)
				}
				if !exists(df) {
					t.Errorf("%s: Dockerfile %s does not exist", name, df)
				}
				if s.Build.Target != "" && !slices.Contains(dockerfileStages(t, df), s.Build.Target) {
					t.Errorf("%s: build target %q is not a stage of %s", name, s.Build.Target, df)
				}
			}
			for _, c := range s.Configs {
				if cfg, ok := p.Configs[c.Source]; ok && cfg.File != "" && !exists(cfg.File) {
					t.Errorf("%s: config %s file %s does not exist", name, c.Source, cfg.File)
				}
			}
		}
	})
}

func TestComposeSightlineService(t *testing.T) {
	p := loadProject(t, prodFiles...)
	s := p.Services["sightline"]
	if got := strings.Join(s.Command, " "); got != "run --config /etc/sightline/sightline.yaml" {
		t.Errorf("command = %q", got)
	}
	if !strings.Contains(strings.Join(s.HealthCheck.Test, " "), ":8080/readyz") {
		t.Errorf("healthcheck %v does not probe :8080/readyz", s.HealthCheck.Test)
	}
	for _, dep := range []string{"nats", "neo4j", "opensearch"} {
		if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("sightline should depend on %s being healthy", dep)
		}
	}
	if len(p.Services["nats"].Ports)+len(p.Services["neo4j"].Ports) != 0 {
		t.Error("the production file publishes no ports; the dev overlay does")
	}
	dev := loadProject(t, devFiles...)
	for _, name := range []string{"nats", "neo4j", "opensearch", "minio", "sightline", "prometheus", "grafana"} {
		for _, port := range dev.Services[name].Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("dev %s publishes %s on %q; keep it on 127.0.0.1", name, port.Published, port.HostIP)
			}
		}
		if len(dev.Services[name].Ports) == 0 {
			t.Errorf("dev overlay publishes no port for %s", name)
		}
	}
}

// Each committed env template is KEY=VALUE lines, and its real file is git-ignored.
func TestEnvTemplates(t *testing.T) {
	examples, _ := filepath.Glob("env/*.env.example")
	if len(examples) == 0 {
		t.Fatal("no env/*.env.example")
	}
	gitignore, err := os.ReadFile("../.gitignore")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(gitignore), "*.env") {
		t.Error(".gitignore does not ignore *.env")
	}
	for _, ex := range examples {
		b, err := os.ReadFile(ex)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if k, _, ok := strings.Cut(line, "="); !ok || strings.ContainsAny(k, " \t") {
				t.Errorf("%s:%d: not KEY=VALUE: %q", ex, i+1, line)
			}
		}
	}
}

// dockerfile returns the logical lines of a Dockerfile (continuations joined, comments dropped).
func dockerfile(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		if s := strings.TrimSpace(cur.String()); s != "" {
			lines = append(lines, s)
		}
		cur.Reset()
	}
	return lines
}

func instr(line string) (string, string) {
	op, rest, _ := strings.Cut(line, " ")
	return strings.ToUpper(op), strings.TrimSpace(rest)
}

func dockerfileStages(t *testing.T, path string) []string {
	var stages []string
	for _, l := range dockerfile(t, path) {
		if op, rest := instr(l); op == "FROM" {
			f := strings.Fields(rest)
			if len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				stages = append(stages, f[len(f)-1])
			}
		}
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	lines := dockerfile(t, "Dockerfile")
	args := map[string]string{}
	type stage struct{ base, name, user string }
	var stages []stage
	var all string
	for _, l := range lines {
		op, rest := instr(l)
		all += l + "\n"
		switch op {
		case "ARG":
			if k, v, ok := strings.Cut(rest, "="); ok && len(stages) == 0 {
				args[k] = v
			}
		case "FROM":
			f := strings.Fields(rest)
			st := stage{base: f[0]}
			for k, v := range args {
				st.base = strings.ReplaceAll(st.base, "${"+k+"}", v)
			}
			if len(f) >= 3 {
				st.name = f[2]
			}
			stages = append(stages, st)
		case "USER":
			if len(stages) > 0 {
				stages[len(stages)-1].user = rest
			}
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	names := map[string]bool{}
	for _, st := range stages {
		names[st.name] = true
	}
	for _, st := range stages {
		if names[st.base] || st.base == "scratch" {
			continue
		}
		ref := st.base[strings.LastIndex(st.base, "/")+1:]
		if !strings.Contains(ref, ":") && !strings.Contains(st.base, "@sha256:") {
			t.Errorf("FROM %s: no tag; pin a version", st.base)
		}
		if strings.Contains(strings.ToLower(ref), "latest") || strings.Contains(st.base, "${") {
			t.Errorf("FROM %s: not pinned", st.base)
		}
	}
	final := stages[len(stages)-1]
	if final.user == "" || final.user == "root" || strings.HasPrefix(final.user, "0") {
		t.Errorf("final stage %q runs as %q; want a non-root USER", final.name, final.user)
	}
	if !strings.Contains(final.base, "distroless/static") && final.base != "scratch" {
		t.Errorf("final stage base %s; want distroless static or scratch (small, static)", final.base)
	}
	if !strings.HasPrefix(stages[0].base, "golang:1.26") {
		t.Errorf("builder base %s; want golang:1.26", stages[0].base)
	}
	for _, want := range []string{"CGO_ENABLED=0", "go build", "./cmd/sightline", "ENTRYPOINT"} {
		if !strings.Contains(all, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// Alone, the image runs on its embedded defaults, its data in a volume that is its
	// working directory; Compose passes --config itself.
	for _, want := range []string{`CMD ["run"]`, "WORKDIR /var/lib/sightline", "VOLUME /var/lib/sightline", "--chown=65532:65532", "-X main.version=${VERSION}"} {
		if !strings.Contains(all, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, st := range stages {
		if !names[st.base] && st.base != "scratch" && !strings.Contains(st.base, "@sha256:") {
			t.Errorf("FROM %s: not pinned by digest", st.base)
		}
	}
	eachProject(t, func(t *testing.T, p *types.Project) {
		s := p.Services["sightline"]
		want := types.ShellCommand{"run", "--config", "/etc/sightline/sightline.yaml"}
		if len(s.Command) < len(want) || !slices.Equal(s.Command[len(s.Command)-len(want):], want) {
			t.Errorf("compose runs sightline with %q; want run --config /etc/sightline/sightline.yaml", s.Command)
		}
	})
}

func TestPrometheusConfig(t *testing.T) {
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = true
			}
		}
	}
	for _, want := range []string{"sightline:8080", "nats:7777"} {
		if !targets[want] {
			t.Errorf("prometheus does not scrape %s", want)
		}
	}
}

// The alert rules load (rule_files), are mounted where prometheus.yml
// says, and name metrics the graph sink or the pipeline registers.
func TestPrometheusAlertRules(t *testing.T) {
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	var metrics []byte
	for _, f := range []string{"../sinks/graph/metrics.go", "../internal/telemetry/metrics.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		metrics = append(metrics, b...)
	}
	exprs := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs[r.Alert] = r.Expr
		}
	}
	for alert, metric := range map[string]string{
		"SightlineGraphSyncOpenTooLong": "sightline_graph_open_syncs_over_age",
		"SightlineGraphForceIgnored":    "sightline_graph_force_ignored_total",
		"SightlineInputLost":            "sightline_consumer_lost_total",
		"SightlineBacklogAtRisk":        "sightline_consumer_backlog_at_risk",
		"SightlineConsumerStalled":      "sightline_consumer_stalled",
	} {
		if !strings.Contains(exprs[alert], metric) || !strings.Contains(string(metrics), `"`+metric+`"`) {
			t.Errorf("alert %s: expr %q must use %s, registered in sinks/graph or internal/telemetry", alert, exprs[alert], metric)
		}
	}
	prom, _ := os.ReadFile("prometheus/prometheus.yml")
	compose, _ := os.ReadFile("compose.yaml")
	if !strings.Contains(string(prom), "/etc/prometheus/alerts.yml") ||
		!strings.Contains(string(compose), "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro") {
		t.Error("alerts.yml is not loaded by prometheus.yml and mounted by compose.yaml")
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	for _, f := range []string{"grafana/provisioning/datasources/prometheus.yaml", "grafana/provisioning/dashboards/sightline.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	b, err := os.ReadFile("grafana/dashboards/sightline-pipeline.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var exprs strings.Builder
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs.WriteString(tg.Expr + "\n")
		}
	}
	for _, m := range []string{"sightline_events_in_total", "sightline_events_out_total", "sightline_events_rejected_total",
		"sightline_processing_seconds_bucket", "sightline_consumer_pending", "sightline_redeliveries_total",
		"sightline_consumer_lost_total", "sightline_consumer_backlog_at_risk", "sightline_consumer_stalled"} {
		if !strings.Contains(exprs.String(), m) {
			t.Errorf("dashboard has no panel on %s", m)
		}
	}
	// The "unbalanced" panel subtracts what the poison corpus test
	// (internal/poison) checks sums to 0: retries are received again.
	unbalanced := false
	for _, p := range dash.Panels {
		if !strings.HasPrefix(p.Title, "Unbalanced") {
			continue
		}
		unbalanced = true
		for _, want := range []string{"sum(increase(sightline_events_in_total", "- sum(increase(sightline_events_out_total",
			"- sum(increase(sightline_events_rejected_total", "- sum(increase(sightline_events_retried_total"} {
			if !strings.Contains(p.Targets[0].Expr, want) {
				t.Errorf("unbalanced panel %q lacks %s", p.Targets[0].Expr, want)
			}
		}
	}
	if !unbalanced {
		t.Error("dashboard has no unbalanced panel")
	}
}

func TestNATSConfig(t *testing.T) {
	b, err := os.ReadFile("nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"jetstream", "https: 127.0.0.1:8222", "store_dir", "sync_interval: always", "max_payload: 8MB"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("nats.conf lacks %q", want)
		}
	}
}
