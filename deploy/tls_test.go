package deploy

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// The services that serve TLS in the stack, each with its own certificate
// from local/dev-tls.sh (SERVICES there).
var tlsServices = []string{"nats", "neo4j", "opensearch", "minio", "sightline", "nats-exporter", "prometheus", "grafana"}

// Links allowed to stay plain text ("from -> to"): none.
var plainTextAllowed = map[string]bool{}

// runSecretsInit runs secrets-init/secrets-init.sh (what the secrets-init
// service runs) on dev-tls.sh's output and returns the folder with one
// subfolder per service volume. Under busybox's sh, as in the container,
// when busybox is installed; with chown when the test runs as root.
func runSecretsInit(t *testing.T, secrets string) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("sh", "secrets-init/secrets-init.sh")
	if bb, err := exec.LookPath("busybox"); err == nil {
		cmd = exec.Command(bb, "sh", "secrets-init/secrets-init.sh")
	}
	chown := "0"
	if os.Geteuid() == 0 {
		chown = "1"
	}
	cmd.Env = append(os.Environ(), "SRC="+secrets, "OUT="+out, "CHOWN="+chown)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("secrets-init.sh: %v\n%s", err, b)
	}
	return out
}

func readEnvExample(t *testing.T, name string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("env", name+".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			k, v, _ := strings.Cut(l, "=")
			env[k] = v
		}
	}
	return env
}

var urlRE = regexp.MustCompile(`\b([a-z][a-z0-9+]*)://([^/\s"'@]+@)?([A-Za-z0-9.-]+)(:[0-9]+)?`)

// TestComposeNoPlainTextBetweenServices: every address one container uses
// to reach another is TLS. It reads what each container is told: the
// pipeline's sightline.yaml and sightline.env template, every service's
// command, entrypoint, environment and healthcheck, Prometheus's scrape
// configuration and Grafana's datasources.
func TestComposeNoPlainTextBetweenServices(t *testing.T) {
	eachProject(t, func(t *testing.T, p *types.Project) {
		type use struct{ from, text string }
		var uses []use
		for name, s := range p.Services {
			var parts []string
			parts = append(parts, s.Command...)
			parts = append(parts, s.Entrypoint...)
			for k, v := range s.Environment {
				if v != nil {
					parts = append(parts, k+"="+*v)
				}
			}
			if s.HealthCheck != nil {
				parts = append(parts, s.HealthCheck.Test...)
			}
			uses = append(uses, use{name, strings.Join(parts, " ")})
		}
		for k, v := range readEnvExample(t, "sightline") {
			uses = append(uses, use{"sightline", k + "=" + v})
		}
		b, _ := os.ReadFile("sightline/sightline.yaml")
		uses = append(uses, use{"sightline", string(b)})
		ds, _ := os.ReadFile("grafana/provisioning/datasources/prometheus.yaml")
		uses = append(uses, use{"grafana", string(ds)})

		secure := map[string]bool{"https": true, "tls": true, "bolt+s": true, "neo4j+s": true, "s3": true}
		for _, u := range uses {
			for _, m := range urlRE.FindAllStringSubmatch(u.text, -1) {
				scheme, host := m[1], m[3]
				if secure[scheme] {
					continue
				}
				if _, other := p.Services[host]; !other {
					if host == "127.0.0.1" || host == "localhost" {
						continue // the container's own loopback (healthchecks)
					}
					t.Errorf("%s: %s://%s is neither TLS nor a service of the stack", u.from, scheme, host)
					continue
				}
				if link := u.from + " -> " + host; !plainTextAllowed[link] {
					t.Errorf("%s talks %s:// to %s in plain text (%s); use TLS", u.from, scheme, host, m[0])
				}
			}
		}
		// Prometheus's targets have no scheme: its job says it.
		prom, _ := os.ReadFile("prometheus/prometheus.yml")
		var pc struct {
			ScrapeConfigs []struct {
				JobName       string `yaml:"job_name"`
				Scheme        string `yaml:"scheme"`
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"scrape_configs"`
		}
		if err := yaml.Unmarshal(prom, &pc); err != nil {
			t.Fatal(err)
		}
		for _, sc := range pc.ScrapeConfigs {
			for _, st := range sc.StaticConfigs {
				for _, tg := range st.Targets {
					host, _, _ := net.SplitHostPort(tg)
					if _, other := p.Services[host]; other && sc.Scheme != "https" && !plainTextAllowed["prometheus -> "+host] {
						t.Errorf("prometheus scrapes %s (job %s) in plain text", tg, sc.JobName)
					}
				}
			}
		}
		// Nothing turns certificate checks off.
		for _, u := range uses {
			for _, bad := range []string{"insecure_skip_verify: true", "tls_insecure_skip_verify: true", "SKIP_VERIFY=true", "--insecure", "curl -k ", "bolt+ssc", "neo4j+ssc"} {
				if strings.Contains(u.text, bad) {
					t.Errorf("%s: %q turns certificate verification off", u.from, bad)
				}
			}
		}
	})
}

// The pipeline checks every service's certificate against the stack's CA,
// and that CA is in its container.
func TestSightlineTrustsTheStackCA(t *testing.T) {
	b, err := os.ReadFile("sightline/sightline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	const ca = "/run/secrets/sightline/tls/ca.pem"
	for sec, key := range map[string]string{"nats": "ca_file", "graph": "ca_file", "index": "ca_file", "archive": "ca_file"} {
		if got := cfg[sec][key]; got != ca {
			t.Errorf("%s.%s = %v, want %s", sec, key, got, ca)
		}
	}
	env := readEnvExample(t, "sightline")
	for key, prefix := range map[string]string{
		"SIGHTLINE_NATS_URLS": "tls://", "SIGHTLINE_GRAPH_URI": "bolt+s://", "SIGHTLINE_INDEX_URLS": "https://", "SIGHTLINE_ARCHIVE_ENDPOINT": "https://",
	} {
		if !strings.HasPrefix(env[key], prefix) {
			t.Errorf("sightline.env.example: %s=%s, want %s…", key, env[key], prefix)
		}
	}
	if env["SIGHTLINE_INDEX_USERNAME"] != "sightline" || env["SIGHTLINE_INDEX_PASSWORD"] != readEnvExample(t, "opensearch")["OPENSEARCH_SIGHTLINE_PASSWORD"] {
		t.Error("the pipeline's OpenSearch user and password do not match opensearch.env.example")
	}
}

// fileMounts maps, for one service, each container path under a mount to the
// file on this machine that ends up there: bind mounts of files made by
// dev-tls.sh (relative to secrets/) and volumes filled by secrets-init (out).
type fileMounts struct {
	binds   map[string]string // container path -> path under secrets/ ("tls/ca.pem")
	volumes map[string]string // container folder -> volume name
}

func mountsOf(t *testing.T, p *types.Project, service string) fileMounts {
	t.Helper()
	wd, _ := os.Getwd()
	fm := fileMounts{binds: map[string]string{}, volumes: map[string]string{}}
	for _, v := range p.Services[service].Volumes {
		switch v.Type {
		case types.VolumeTypeBind:
			if rel, err := filepath.Rel(filepath.Join(wd, "secrets"), v.Source); err == nil && !strings.HasPrefix(rel, "..") {
				fm.binds[v.Target] = rel
			}
		case types.VolumeTypeVolume:
			fm.volumes[v.Target] = v.Source
		}
	}
	return fm
}

// resolve returns the file on this machine that a service sees at path, or "".
func (fm fileMounts) resolve(path, secrets, out string, volumeDir map[string]string) string {
	if rel, ok := fm.binds[path]; ok {
		return filepath.Join(secrets, rel)
	}
	for p := path; p != "/" && p != "."; p = filepath.Dir(p) {
		if rel, ok := fm.binds[p]; ok {
			return filepath.Join(secrets, rel, strings.TrimPrefix(path, p))
		}
		if vol, ok := fm.volumes[p]; ok && volumeDir[vol] != "" {
			return filepath.Join(out, volumeDir[vol], strings.TrimPrefix(path, p))
		}
	}
	return ""
}

// TestComposeSecretsComeFromDevTLS follows every certificate, key and CA
// each service's configuration names to the file that provides it: a bind
// mount of a file dev-tls.sh writes, or a volume secrets-init fills from
// them. It runs both scripts for real, then checks each named path exists,
// that keys reach only their own service, and that the CA's key and the
// OpenSearch admin key are never mounted.
func TestComposeSecretsComeFromDevTLS(t *testing.T) {
	secrets := devSecrets(t)
	out := runSecretsInit(t, secrets)
	p := loadProject(t, prodFiles...)

	// secrets-init's volumes: /out/<dir> in its container.
	volumeDir := map[string]string{}
	init := mountsOf(t, p, "secrets-init")
	for target, vol := range init.volumes {
		if dir, ok := strings.CutPrefix(target, "/out/"); ok {
			volumeDir[vol] = dir
		}
	}
	// Every file secrets-init reads is one dev-tls.sh wrote.
	for target, rel := range init.binds {
		if !strings.HasPrefix(target, "/secrets/") {
			continue
		}
		if _, err := os.Stat(filepath.Join(secrets, rel)); err != nil {
			t.Errorf("secrets-init mounts secrets/%s, which dev-tls.sh does not write", rel)
		}
	}

	opensearchYML := map[string]string{}
	b, _ := os.ReadFile("opensearch/opensearch.yml")
	_ = yaml.Unmarshal(b, &opensearchYML)
	natsConf, _ := os.ReadFile("nats/nats.conf")
	natsFiles := regexp.MustCompile(`(?m)^\s*(cert_file|key_file|ca_file):\s*(\S+)`).FindAllStringSubmatch(string(natsConf), -1)
	neo := p.Services["neo4j"].Environment
	envOf := func(env types.MappingWithEquals, k string) string {
		if v := env[k]; v != nil {
			return *v
		}
		return ""
	}
	neoBase := envOf(neo, "NEO4J_dbms_ssl_policy_bolt_base__directory")
	minioCmd := p.Services["minio"].Command
	minioCerts := ""
	if i := slices.Index(minioCmd, "--certs-dir"); i >= 0 && i+1 < len(minioCmd) {
		minioCerts = minioCmd[i+1]
	}
	if minioCerts == "" {
		t.Error("minio runs without --certs-dir: plain HTTP")
	}
	sightlineYAML, _ := os.ReadFile("sightline/sightline.yaml")
	promYML, _ := os.ReadFile("prometheus/prometheus.yml")

	// service -> (path in its container -> the certificate/key it must be)
	named := map[string]map[string]string{
		"nats": {}, "neo4j": {
			neoBase + "/" + envOf(neo, "NEO4J_dbms_ssl_policy_bolt_private__key"):        "tls/neo4j.key",
			neoBase + "/" + envOf(neo, "NEO4J_dbms_ssl_policy_bolt_public__certificate"): "tls/neo4j.pem",
			neoBase + "/trusted/ca.pem": "tls/ca.pem",
		},
		"opensearch": {},
		"minio": {
			minioCerts + "/public.crt": "tls/minio.pem", minioCerts + "/private.key": "tls/minio.key", minioCerts + "/CAs/ca.crt": "tls/ca.pem",
			"/root/.mc/certs/CAs/ca.pem": "tls/ca.pem",
		},
		"minio-init":    {"/root/.mc/certs/CAs/ca.pem": "tls/ca.pem"},
		"nats-exporter": {envOf(p.Services["nats-exporter"].Environment, "SSL_CERT_FILE"): "tls/ca.pem"},
		"sightline":     {},
		"prometheus":    {},
		"grafana": {
			envOf(p.Services["grafana"].Environment, "GF_SERVER_CERT_FILE"): "tls/grafana.pem",
			envOf(p.Services["grafana"].Environment, "GF_SERVER_CERT_KEY"):  "tls/grafana.key",
		},
	}
	exp := p.Services["nats-exporter"].Command
	for flag, want := range map[string]string{"-tlscert": "tls/nats-exporter.pem", "-tlskey": "tls/nats-exporter.key"} {
		if i := slices.Index(exp, flag); i >= 0 && i+1 < len(exp) {
			named["nats-exporter"][exp[i+1]] = want
		} else {
			t.Errorf("nats-exporter runs without %s: plain HTTP", flag)
		}
	}
	ds, _ := os.ReadFile("grafana/provisioning/datasources/prometheus.yaml")
	if m := regexp.MustCompile(`\$__file\{([^}]+)\}`).FindStringSubmatch(string(ds)); m != nil {
		named["grafana"][m[1]] = "tls/ca.pem"
	} else {
		t.Error("grafana's datasource does not trust the stack's CA (tlsCACert)")
	}
	for _, m := range natsFiles {
		named["nats"][m[2]] = map[string]string{"cert_file": "tls/nats.pem", "key_file": "tls/nats.key", "ca_file": "tls/ca.pem"}[m[1]]
	}
	if len(named["nats"]) < 2 {
		t.Error("nats.conf names no cert_file/key_file")
	}
	settings := 0
	for k, v := range opensearchYML {
		if strings.HasPrefix(k, "plugins.security.ssl.") && strings.HasSuffix(k, "_filepath") {
			settings++
			want := map[string]string{"pemcert": "tls/opensearch.pem", "pemkey": "tls/opensearch.key", "pemtrustedcas": "tls/ca.pem"}[strings.Split(k[strings.LastIndex(k, ".")+1:], "_")[0]]
			named["opensearch"]["/usr/share/opensearch/config/"+v] = want
		}
	}
	if settings != 6 {
		t.Errorf("opensearch.yml has %d certificate settings, want 6 (cert, key, CA for transport and http)", settings)
	}
	for _, m := range regexp.MustCompile(`(/run/secrets/sightline/\S+)`).FindAllStringSubmatch(string(sightlineYAML), -1) {
		path := m[1]
		want := "tls/" + filepath.Base(path)
		if strings.Contains(path, "/http/") {
			want = "http/" + filepath.Base(path)
		}
		named["sightline"][path] = want
	}
	webYML, _ := os.ReadFile("prometheus/web.yml")
	for _, m := range regexp.MustCompile(`(/etc/prometheus/secrets/\S+)`).FindAllStringSubmatch(string(promYML)+string(webYML), -1) {
		want := "tls/" + filepath.Base(m[1])
		if filepath.Base(m[1]) == "sightline-token" {
			want = "http/prometheus"
		}
		named["prometheus"][m[1]] = want
	}
	if !strings.Contains(string(webYML), "cert_file: /etc/prometheus/secrets/prometheus.pem") {
		t.Error("prometheus/web.yml does not serve HTTPS with prometheus.pem")
	}
	for svc, files := range named {
		fm := mountsOf(t, p, svc)
		for path, want := range files {
			got := fm.resolve(path, secrets, out, volumeDir)
			if got == "" {
				t.Errorf("%s: %s is not mounted", svc, path)
				continue
			}
			gb, err1 := os.ReadFile(got)
			wb, err2 := os.ReadFile(filepath.Join(secrets, want))
			if err1 != nil || err2 != nil || string(gb) != string(wb) {
				t.Errorf("%s: %s is not secrets/%s as dev-tls.sh makes it (%v %v)", svc, path, want, err1, err2)
			}
			if strings.HasSuffix(want, ".key") || strings.HasPrefix(want, "http/") {
				if fi, err := os.Stat(got); err == nil && fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: %s has mode %v, want 600", svc, path, fi.Mode().Perm())
				}
			}
		}
	}
	// The pipeline's files belong to the user its image runs as (secrets-init
	// chowns them when it runs as root, as in the container).
	if os.Geteuid() == 0 {
		df, _ := os.ReadFile("Dockerfile")
		m := regexp.MustCompile(`(?m)^USER (\d+):(\d+)`).FindStringSubmatch(string(df))
		var st syscall.Stat_t
		if m == nil || syscall.Stat(filepath.Join(out, "sightline", "tls", "sightline.key"), &st) != nil || fmt.Sprint(st.Uid) != m[1] {
			t.Errorf("sightline.key in the sightline volume is owned by uid %d, the image runs as %v", st.Uid, m)
		}
	}
	// A key reaches only its service: each volume holds one service's key.
	for vol, dir := range volumeDir {
		keys, _ := filepath.Glob(filepath.Join(out, dir, "*", "*.key"))
		more, _ := filepath.Glob(filepath.Join(out, dir, "*.key"))
		keys = append(keys, more...)
		for _, k := range keys {
			kb, _ := os.ReadFile(k)
			for _, svc := range tlsServices {
				sb, _ := os.ReadFile(filepath.Join(secrets, "tls", svc+".key"))
				if string(kb) == string(sb) && svc != strings.TrimSuffix(dir, "-tls") {
					t.Errorf("volume %s (%s) holds %s's key", vol, dir, svc)
				}
			}
		}
		users := 0
		for name, s := range p.Services {
			for _, v := range s.Volumes {
				if v.Source == vol && name != "secrets-init" {
					users++
					if !v.ReadOnly {
						t.Errorf("%s mounts %s read-write", name, vol)
					}
				}
			}
		}
		if users != 1 {
			t.Errorf("volume %s is mounted by %d services besides secrets-init, want 1", vol, users)
		}
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			// A missing secret must stop `up`: with create_host_path Docker would make an
			// empty folder (owned by root) where dev-tls.sh then cannot write the file.
			if v.Type == types.VolumeTypeBind && madeByDevTLS(v.Source) && (v.Bind == nil || bool(v.Bind.CreateHostPath) || !v.ReadOnly) {
				t.Errorf("%s mounts %s without read_only and bind.create_host_path: false", name, v.Source)
			}
			if base := filepath.Base(v.Source); v.Type == types.VolumeTypeBind && (base == "ca.key" || strings.HasPrefix(base, "opensearch-admin") || strings.HasSuffix(v.Source, "/secrets") || strings.HasSuffix(v.Source, "/secrets/tls")) {
				t.Errorf("%s mounts %s: the CA's key and the OpenSearch admin key stay on the host", name, v.Source)
			}
		}
	}
}

// dev-tls.sh issues one certificate per TLS service, valid for the name the
// other containers dial, localhost and 127.0.0.1, signed by the stack's CA,
// usable by servers (and by OpenSearch nodes as clients); keys are 600.
func TestDevTLSServiceCertificates(t *testing.T) {
	dir := devSecrets(t)
	caPEM, _ := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem")
	}
	for _, svc := range tlsServices {
		b, err := os.ReadFile(filepath.Join(dir, "tls", svc+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s.pem: not PEM", svc)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{svc, "localhost", "127.0.0.1"} {
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("%s.pem for %q: %v", svc, name, err)
			}
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s.pem as a client certificate: %v", svc, err)
		}
		if c.Subject.String() != "CN="+svc {
			t.Errorf("%s.pem subject %q", svc, c.Subject)
		}
		if fi, err := os.Stat(filepath.Join(dir, "tls", svc+".key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key: %v, want mode 600", svc, err)
		}
	}
	// OpenSearch's nodes_dn and admin_dn name these certificates.
	b, _ := os.ReadFile("opensearch/opensearch.yml")
	var os_ map[string]any
	if err := yaml.Unmarshal(b, &os_); err != nil {
		t.Fatal(err)
	}
	admin, _ := os.ReadFile(filepath.Join(dir, "tls", "opensearch-admin.pem"))
	blk, _ := pem.Decode(admin)
	ac, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := os_["plugins.security.authcz.admin_dn"]; !slices.Equal(toStrings(got), []string{ac.Subject.String()}) {
		t.Errorf("admin_dn %v, the admin certificate is %q", got, ac.Subject)
	}
	if got := os_["plugins.security.nodes_dn"]; !slices.Equal(toStrings(got), []string{"CN=opensearch"}) {
		t.Errorf("nodes_dn %v, want [CN=opensearch]", got)
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	var s []string
	for _, x := range l {
		s = append(s, x.(string))
	}
	return s
}

// OpenSearch runs its security plugin with TLS on HTTP and transport, no
// demo configuration, our users, and a healthcheck over https with the CA
// and the pipeline's credentials.
func TestComposeOpenSearchSecurityOn(t *testing.T) {
	eachProject(t, func(t *testing.T, p *types.Project) {
		s := p.Services["opensearch"]
		env := func(k string) string {
			if v := s.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		if env("DISABLE_SECURITY_PLUGIN") == "true" || env("plugins.security.disabled") == "true" {
			t.Error("the security plugin is disabled")
		}
		if env("DISABLE_INSTALL_DEMO_CONFIG") != "true" {
			t.Error("DISABLE_INSTALL_DEMO_CONFIG is not true: the demo certificates and users would be installed")
		}
		mounted := map[string]string{}
		for _, v := range s.Volumes {
			mounted[v.Target] = v.Source
		}
		for _, f := range []string{"opensearch.yml", "opensearch-security/internal_users.yml", "opensearch-security/roles.yml", "opensearch-security/roles_mapping.yml"} {
			if mounted["/usr/share/opensearch/config/"+f] == "" {
				t.Errorf("config/%s is not mounted", f)
			}
		}
		hc := strings.Join(s.HealthCheck.Test, " ")
		for _, want := range []string{"https://localhost:9200", "--cacert /usr/share/opensearch/config/certs/ca.pem", `-u "sightline:$OPENSEARCH_SIGHTLINE_PASSWORD"`} {
			if !strings.Contains(hc, want) {
				t.Errorf("healthcheck %q lacks %q", hc, want)
			}
		}
		if !slices.ContainsFunc(s.EnvFiles, func(e types.EnvFile) bool { return strings.HasSuffix(e.Path, "env/opensearch.env") }) {
			t.Error("opensearch does not read env/opensearch.env (its users' passwords)")
		}
	})
	b, _ := os.ReadFile("opensearch/opensearch.yml")
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"plugins.security.ssl.http.enabled":                            true,
		"plugins.security.allow_unsafe_democertificates":               false,
		"plugins.security.allow_default_init_securityindex":            true,
		"plugins.security.ssl.transport.enforce_hostname_verification": true,
	} {
		if cfg[k] != want {
			t.Errorf("opensearch.yml %s = %v, want %v", k, cfg[k], want)
		}
	}
	if _, ok := cfg["plugins.security.disabled"]; ok {
		t.Error("opensearch.yml sets plugins.security.disabled")
	}
	users, _ := os.ReadFile("opensearch/security/internal_users.yml")
	var u map[string]map[string]any
	if err := yaml.Unmarshal(users, &u); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for n := range u {
		if n != "_meta" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{"admin", "sightline"}) {
		t.Errorf("internal users %v, want admin and sightline only (no demo users)", names)
	}
	ex := readEnvExample(t, "opensearch")
	for n, v := range map[string]string{"admin": "OPENSEARCH_INITIAL_ADMIN_PASSWORD", "sightline": "OPENSEARCH_SIGHTLINE_PASSWORD"} {
		if u[n]["hash"] != "${envbc."+v+"}" {
			t.Errorf("user %s: hash %v, want the bcrypt of $%s", n, u[n]["hash"], v)
		}
		if _, ok := ex[v]; !ok {
			t.Errorf("opensearch.env.example lacks %s", v)
		}
	}
}

// MinIO serves HTTPS from its certs folder, and its clients (its
// healthcheck, minio-init's mc) speak https with the CA.
func TestComposeMinIOHTTPS(t *testing.T) {
	eachProject(t, func(t *testing.T, p *types.Project) {
		m := p.Services["minio"]
		if v := m.Environment["MC_HOST_local"]; v == nil || !strings.HasPrefix(*v, "https://localhost:9000") {
			t.Errorf("minio's healthcheck alias is not https: %v", v)
		}
		if hc := strings.Join(m.HealthCheck.Test, " "); !strings.Contains(hc, "mc ready local") {
			t.Errorf("minio healthcheck %q", hc)
		}
		if e := strings.Join(p.Services["minio-init"].Entrypoint, " "); !strings.Contains(e, "mc alias set local https://minio:9000") {
			t.Errorf("minio-init does not use https://minio:9000: %q", e)
		}
	})
}

// NATS: TLS required for clients (no allow_non_tls), HTTPS monitoring, and
// the exporter and healthcheck follow.
func TestComposeNATSTLS(t *testing.T) {
	b, err := os.ReadFile("nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{"tls {", "cert_file: /etc/nats-tls/nats.pem", "key_file: /etc/nats-tls/nats.key", "https: 127.0.0.1:8222"} {
		if !strings.Contains(conf, want) {
			t.Errorf("nats.conf lacks %q", want)
		}
	}
	for _, bad := range []string{"allow_non_tls", "\nhttp:", "no_auth_user"} {
		if strings.Contains(conf, bad) {
			t.Errorf("nats.conf has %q", strings.TrimSpace(bad))
		}
	}
	eachProject(t, func(t *testing.T, p *types.Project) {
		if hc := strings.Join(p.Services["nats"].HealthCheck.Test, " "); !strings.Contains(hc, "https://127.0.0.1:8222/healthz") {
			t.Errorf("nats healthcheck %q is not https", hc)
		}
		// The monitoring port has no authentication: loopback only, and
		// the exporter in the nats container's network reaches it there.
		if c := strings.Join(p.Services["nats-exporter"].Command, " "); !strings.HasSuffix(c, "https://127.0.0.1:8222") {
			t.Errorf("the exporter polls %q, want https://127.0.0.1:8222", c)
		}
		if nm := p.Services["nats-exporter"].NetworkMode; nm != "service:nats" {
			t.Errorf("the exporter's network_mode is %q, want service:nats (the monitoring port is on the nats container's loopback)", nm)
		}
	})
}

// The local TLS-only Neo4j of local/services.sh (neo4j-tls, which `task test`
// runs and the graph sink's TLS tests use) and the Compose neo4j service use
// the same TLS settings: the list in services.sh, turned into NEO4J_ variables
// by the image's rule (. → _, _ → __), is the list in compose.yaml. Only the
// base directory differs (a path on this machine there, /ssl/bolt here).
func TestNeo4jTLSSettingsMatchLocalInstance(t *testing.T) {
	b, err := os.ReadFile("local/services.sh")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(b), "start_neo4j-tls() {")
	if start < 0 {
		t.Fatal("services.sh has no start_neo4j-tls")
	}
	body := string(b)[start:]
	body = body[:strings.Index(body, "\n}\n")]
	local := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(?:.*")?((?:server\.bolt\.tls_level|dbms\.ssl\.policy\.bolt\.[a-z_]+))=([^"\n]*)"?$`).FindAllStringSubmatch(body, -1) {
		local["NEO4J_"+strings.ReplaceAll(strings.ReplaceAll(m[1], "_", "__"), ".", "_")] = m[2]
	}
	if len(local) < 5 {
		t.Fatalf("found %d TLS settings in start_neo4j-tls: %v", len(local), local)
	}
	p := loadProject(t, prodFiles...)
	compose := map[string]string{}
	for k, v := range p.Services["neo4j"].Environment {
		if v != nil && (strings.HasPrefix(k, "NEO4J_server_bolt_tls") || strings.HasPrefix(k, "NEO4J_dbms_ssl_policy_bolt_")) {
			compose[k] = *v
		}
	}
	const base = "NEO4J_dbms_ssl_policy_bolt_base__directory"
	for k, v := range local {
		c, ok := compose[k]
		switch {
		case !ok:
			t.Errorf("compose.yaml neo4j lacks %s (services.sh: %s)", k, v)
		case k == base:
			if c != "/ssl/bolt" {
				t.Errorf("%s = %s, want /ssl/bolt (secrets-init's layout)", k, c)
			}
		case c != v:
			t.Errorf("%s: compose.yaml %q, services.sh %q", k, c, v)
		}
	}
	for k := range compose {
		if _, ok := local[k]; !ok {
			t.Errorf("compose.yaml sets %s, which the local TLS instance (services.sh) does not test", k)
		}
	}
	if compose["NEO4J_server_bolt_tls__level"] != "REQUIRED" {
		t.Error("bolt TLS is not REQUIRED")
	}
}

// compose-env.sh makes env files whose secrets agree: the pipeline's
// variables carry the same passwords the servers are given, and no
// template placeholder is left.
func TestComposeEnvSecretsAgree(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	examples, _ := filepath.Glob("env/*.env.example")
	for _, ex := range examples {
		b, err := os.ReadFile(ex)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(ex)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", "local/compose-env.sh")
	cmd.Env = append(os.Environ(), "COMPOSE_ENV_DIR="+dir, "DEV_SECRETS_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compose-env.sh: %v\n%s", err, out)
	}
	env := map[string]string{}
	for _, ex := range examples {
		name := strings.TrimSuffix(filepath.Base(ex), ".example")
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(filepath.Join(dir, name)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 600", name, fi.Mode().Perm())
		}
		if strings.Contains(string(b), "change-me") {
			t.Errorf("%s keeps a placeholder", name)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && !strings.HasPrefix(k, "#") {
				env[k] = v
			}
		}
	}
	natsURL := regexp.MustCompile(`^tls://([^:]+):([^@]+)@nats:4222$`).FindStringSubmatch(env["SIGHTLINE_NATS_URLS"])
	if natsURL == nil {
		t.Fatalf("SIGHTLINE_NATS_URLS=%q is not tls://USER:PASSWORD@nats:4222", env["SIGHTLINE_NATS_URLS"])
	}
	_, neoPass, _ := strings.Cut(env["NEO4J_AUTH"], "/")
	for what, pair := range map[string][2]string{
		"NATS worker user":     {natsURL[1], env["NATS_USER"]},
		"NATS worker password": {natsURL[2], env["NATS_PASSWORD"]},
		"Neo4j password":       {env["SIGHTLINE_GRAPH_PASSWORD"], neoPass},
		"OpenSearch password":  {env["SIGHTLINE_INDEX_PASSWORD"], env["OPENSEARCH_SIGHTLINE_PASSWORD"]},
		"MinIO access key":     {env["SIGHTLINE_ARCHIVE_USERNAME"], env["MINIO_ROOT_USER"]},
		"MinIO secret key":     {env["SIGHTLINE_ARCHIVE_PASSWORD"], env["MINIO_ROOT_PASSWORD"]},
	} {
		if pair[0] == "" || pair[0] != pair[1] {
			t.Errorf("%s: the pipeline's %q and the server's %q differ", what, pair[0], pair[1])
		}
	}
	if a := env["OPENSEARCH_INITIAL_ADMIN_PASSWORD"]; a == "" || a == env["OPENSEARCH_SIGHTLINE_PASSWORD"] {
		t.Error("the OpenSearch admin password is empty or the pipeline's")
	}
}
