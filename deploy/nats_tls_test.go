package deploy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/internal/testutil"
)

var devSecretsOnce struct {
	sync.Once
	dir string
	err error
}

// devSecrets runs local/dev-tls.sh into a temporary folder: the stack's CA,
// one certificate per service and the HTTP tokens, as a user makes them.
// The tests of this package share one run (RSA keys take a while); they
// only read it.
func devSecrets(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if testsvc.CI() {
			t.Fatal("CI=true and openssl is missing")
		}
		t.Skip("openssl is not installed")
	}
	o := &devSecretsOnce
	o.Do(func() {
		if o.dir, o.err = os.MkdirTemp("", "sightline-dev-tls-"); o.err != nil {
			return
		}
		cmd := exec.Command("bash", "local/dev-tls.sh")
		cmd.Env = append(os.Environ(), "DEV_SECRETS_DIR="+o.dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			o.err = fmt.Errorf("dev-tls.sh: %v\n%s", err, out)
		}
	})
	if o.err != nil {
		t.Fatal(o.err)
	}
	return o.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if devSecretsOnce.dir != "" {
		_ = os.RemoveAll(devSecretsOnce.dir)
	}
	os.Exit(code)
}

// natsServerBinary is the nats-server of go.mod's version, as
// local/services.sh builds it (NATS=1, part of `task test`).
func natsServerBinary(t *testing.T) string {
	t.Helper()
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/nats-io/nats-server/v2 (v\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod does not require github.com/nats-io/nats-server/v2")
	}
	bin, _ := filepath.Abs(filepath.Join("..", ".local", "cache", "gobin", "nats-server@"+string(m[1]), "nats-server"))
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("%s is missing: NATS=1 bash deploy/local/services.sh up nats builds it", bin)
		if testsvc.CI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

type natsStack struct {
	client, monitor string // 127.0.0.1:port
	ca              *x509.CertPool
	caFile          string
	env             map[string]string // the users' names and passwords (env/nats.env)
}

// startComposeNATS runs the real nats-server with deploy/nats/nats.conf,
// auth.conf and roles.conf as the container has them, only the paths and
// ports rewritten: /etc/nats-tls is the folder secrets-init fills, /data a
// temporary folder, 0.0.0.0 loopback with free ports.
func startComposeNATS(t *testing.T) *natsStack {
	t.Helper()
	bin := natsServerBinary(t)
	secrets := devSecrets(t)
	out := t.TempDir()
	cmd := exec.Command("sh", "secrets-init/secrets-init.sh")
	cmd.Env = append(os.Environ(), "SRC="+secrets, "OUT="+out, "CHOWN=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("secrets-init.sh: %v\n%s", err, b)
	}
	conf := t.TempDir()
	cp, mp := testutil.FreePort(t), testutil.FreePort(t)
	for _, f := range []string{"nats.conf", "auth.conf", "roles.conf"} {
		b, err := os.ReadFile(filepath.Join("nats", f))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if f == "nats.conf" {
			r := strings.NewReplacer(
				"/etc/nats-tls/", filepath.Join(out, "nats")+"/",
				"/data/jetstream", filepath.Join(conf, "jetstream"),
				"listen: 0.0.0.0:4222", fmt.Sprintf("listen: 127.0.0.1:%d", cp),
				"https: 127.0.0.1:8222", fmt.Sprintf("https: 127.0.0.1:%d", mp),
				"max_file_store: 40GB", "max_file_store: 1GB")
			if n := r.Replace(s); n == s {
				t.Fatal("nothing rewritten in nats.conf")
			} else {
				s = n
			}
			for _, must := range []string{filepath.Join(out, "nats", "nats.pem"), fmt.Sprintf("127.0.0.1:%d", cp), fmt.Sprintf("https: 127.0.0.1:%d", mp)} {
				if !strings.Contains(s, must) {
					t.Fatalf("nats.conf no longer has what this test rewrites (%s)", must)
				}
			}
		}
		if err := os.WriteFile(filepath.Join(conf, f), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"NATS_USER": "sightline", "NATS_PASSWORD": "worker-secret-1",
		"NATS_READER_USER": "reader", "NATS_READER_PASSWORD": "reader-secret-1",
		"NATS_OPERATOR_USER": "operator", "NATS_OPERATOR_PASSWORD": "operator-secret-1",
	}
	srv := exec.Command(bin, "-c", filepath.Join(conf, "nats.conf"))
	srv.Env = os.Environ()
	for k, v := range env {
		srv.Env = append(srv.Env, k+"="+v)
	}
	logf, err := os.Create(filepath.Join(conf, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("nats-server log:\n%s", b)
		}
	})
	caFile := filepath.Join(secrets, "tls", "ca.pem")
	pem, _ := os.ReadFile(caFile)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem: no certificate")
	}
	st := &natsStack{client: fmt.Sprintf("127.0.0.1:%d", cp), monitor: fmt.Sprintf("127.0.0.1:%d", mp), ca: pool, caFile: caFile, env: env}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", st.client, time.Second)
		if err == nil {
			c.Close()
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not listen on %s", st.client)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The Compose NATS server only speaks TLS: the pipeline, as the worker user
// over tls:// with the stack's CA (nats.ca_file), connects, declares its
// streams and publishes; a plain-text client is refused before it can send
// its password; a client that does not trust the CA cannot connect; and the
// monitoring port (healthcheck, exporter) is HTTPS only.
func TestComposeNATSRequiresTLS(t *testing.T) {
	st := startComposeNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The worker, exactly as sightline.env and sightline.yaml configure it (the
	// certificate is for the name "nats"; the test dials 127.0.0.1, also on it).
	caTLS, err := config.TLS{CAFile: st.caFile}.ClientConfig("nats") // as nats.ca_file is loaded
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(ctx, bus.Options{
		URLs:     []string{"tls://" + st.client},
		User:     st.env["NATS_USER"],
		Password: st.env["NATS_PASSWORD"],
		TLS:      caTLS,
	})
	if err != nil {
		t.Fatalf("worker over TLS: %v", err)
	}
	defer b.Close()
	if !b.Conn().TLSRequired() {
		t.Error("the server does not announce tls_required")
	}
	if _, err := b.Conn().TLSConnectionState(); err != nil {
		t.Errorf("the worker's connection is not TLS: %v", err)
	}
	sc := bus.DefaultStreams()
	for _, l := range []*bus.StreamLimits{&sc.Raw, &sc.Events, &sc.DLQ} {
		l.MaxBytes = 64 << 20
	}
	if err := b.EnsureStreams(ctx, sc); err != nil {
		t.Fatalf("worker declares the streams over TLS: %v", err)
	}
	if _, err := b.Publish(ctx, &stage.Message{Subject: "sightline.raw.metric.tls-check", Data: []byte(`{"type":"metric.tls","data":{}}`)}); err != nil {
		t.Errorf("worker publish over TLS: %v", err)
	}

	// A plain-text client: reads INFO, sends CONNECT with the worker's password in clear.
	c, err := net.DialTimeout("tcp", st.client, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	info, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(info, "INFO ") || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("INFO %q (%v): want tls_required", info, err)
	}
	fmt.Fprintf(c, "CONNECT {\"verbose\":false,\"user\":%q,\"pass\":%q}\r\nPING\r\n", st.env["NATS_USER"], st.env["NATS_PASSWORD"])
	// The server expects a TLS handshake: it drops the connection without PONG.
	reply, err := r.ReadString('\n')
	if err == nil || strings.Contains(reply, "PONG") || strings.HasPrefix(reply, "+OK") {
		t.Fatalf("a plain-text client was answered: %q (%v)", reply, err)
	}
	t.Logf("plain-text client: connection closed (%v)", err)

	// TLS with the right password but without the stack's CA (system roots).
	if _, err := bus.Connect(ctx, bus.Options{URLs: []string{"tls://" + st.client}, User: st.env["NATS_USER"], Password: st.env["NATS_PASSWORD"]}); err == nil {
		t.Error("a client that does not trust the stack's CA connected")
	}
	// TLS and the CA, wrong password.
	if _, err := bus.Connect(ctx, bus.Options{URLs: []string{"tls://" + st.client}, User: st.env["NATS_USER"], Password: "wrong", TLS: caTLS}); err == nil {
		t.Error("a wrong password was accepted")
	}

	// Monitoring: HTTPS with the certificate for "nats" (what the exporter dials), never plain HTTP.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: st.ca, ServerName: "nats"}}}
	resp, err := hc.Get("https://" + st.monitor + "/healthz?js-enabled-only=true")
	if err != nil {
		t.Fatalf("monitoring over https: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("https /healthz: %s", resp.Status)
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + st.monitor + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the monitoring port answers plain HTTP")
		}
	}
}

// The exporter version the test builds: the Go module proxy serves no
// v0.17.x of prometheus-nats-exporter, and its TLS code (the collector's
// default http.Transport, which honours SSL_CERT_FILE, and -tlscert/-tlskey)
// is the same from the image's 0.17.3 to this version.
const exporterVersion = "v0.20.1"

func exporterBinary(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("..", ".local", "cache", "gobin", "prometheus-nats-exporter@"+exporterVersion))
	bin := filepath.Join(dir, "prometheus-nats-exporter")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	// `go install module@version` asks the proxy for the module's version
	// list (deprecation check), which it refuses here: build inside a
	// throw-away module that requires the version instead.
	mod := t.TempDir()
	files := map[string]string{
		"go.mod":   "module exporterbuild\n\ngo 1.24\n\nrequire github.com/nats-io/prometheus-nats-exporter " + exporterVersion + "\n",
		"tools.go": "package main\n\nimport _ \"github.com/nats-io/prometheus-nats-exporter/exporter\"\n\nfunc main() {}\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"mod", "tidy"}, {"install", "github.com/nats-io/prometheus-nats-exporter"}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			msg := fmt.Sprintf("building prometheus-nats-exporter %s (go %s): %v\n%s", exporterVersion, strings.Join(args, " "), err, out)
			if testsvc.CI() {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	return bin
}

// The NATS exporter as compose.yaml runs it (its command and SSL_CERT_FILE,
// certificates from secrets-init) polls the HTTPS monitoring port of the
// Compose NATS server and serves its metrics over HTTPS; without the CA it
// gets nothing from NATS.
func TestComposeNATSExporterOverTLS(t *testing.T) {
	st := startComposeNATS(t)
	bin := exporterBinary(t)
	p := loadProject(t, prodFiles...)
	svc := p.Services["nats-exporter"]
	port := testutil.FreePort(t)
	out := runSecretsInit(t, filepath.Dir(filepath.Dir(st.caFile)))
	var args []string
	for _, a := range svc.Command {
		switch {
		case a == "7777":
			a = fmt.Sprint(port)
		case a == "https://127.0.0.1:8222":
			a = "https://" + st.monitor
		case strings.HasPrefix(a, "/etc/nats-exporter/tls/"):
			a = filepath.Join(out, "nats-exporter", strings.TrimPrefix(a, "/etc/nats-exporter/tls/"))
		}
		args = append(args, a)
	}
	args = append([]string{"-a", "127.0.0.1"}, args...)
	// run starts the exporter and returns what it serves once it has NATS
	// metrics, or (want false) once it answers at all, a few scrapes later.
	run := func(sslCertFile string, want bool) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+sslCertFile)
		var logb strings.Builder
		cmd.Stdout, cmd.Stderr = &logb, &logb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: st.ca, ServerName: "nats-exporter"}}}
		var body []byte
		answered := 0
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(300 * time.Millisecond) {
			resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/metrics", port))
			if err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				answered++
				if strings.Contains(string(body), "gnatsd_varz_") || (!want && answered == 5) || time.Now().After(deadline) {
					break
				}
			} else if time.Now().After(deadline) {
				t.Fatalf("exporter over https: %v; log:\n%s", err, logb.String())
			}
		}
		if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port)); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Error("the exporter answers plain HTTP")
			}
		}
		return string(body)
	}
	env := svc.Environment["SSL_CERT_FILE"]
	if env == nil || *env != "/etc/nats-exporter/tls/ca.pem" {
		t.Fatalf("SSL_CERT_FILE = %v", env)
	}
	if m := run(filepath.Join(out, "nats-exporter", "ca.pem"), true); !strings.Contains(m, "gnatsd_varz_connections") {
		t.Fatalf("the exporter got no NATS metrics over https with the CA; it served:\n%.2000s", m)
	}
	if m := run(filepath.Join(t.TempDir(), "none.pem"), false); strings.Contains(m, "gnatsd_varz_connections") {
		t.Error("the exporter read NATS's https monitoring without trusting the stack's CA")
	}
}
