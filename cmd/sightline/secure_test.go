package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/httpauth"
	"github.com/sightline/sightline/internal/httpauth/authtest"
	"github.com/sightline/sightline/internal/termsafe/termsafetest"
	"github.com/sightline/sightline/internal/testutil"
)

// buildSightline builds the binary the tests below run as real processes.
func buildSightline(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sightline")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	done   chan error
}

func startSightline(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), stderr: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	})
	return p
}

// TestSecureAPI runs `sightline run` with tokens and TLS, and uses it the
// ways its users do: curl-like requests per role, the CLI (trace, logs)
// with --token-file / SIGHTLINE_API_TOKEN_FILE, and `config show`. No token
// appears in any answer, log line or metric.
func TestSecureAPI(t *testing.T) {
	bin := buildSightline(t)
	dir := t.TempDir()
	ca, cert, key := authtest.WritePKI(t, dir, "sightline-test")
	toks := map[string]string{"ingest": "ingest-tok-" + fmt.Sprint(time.Now().UnixNano()), "read": "read-tok-0123456789abcdef", "admin": "admin-tok-0123456789abcdef"}
	tokensFile := filepath.Join(dir, "tokens")
	var tf strings.Builder
	for role, tok := range toks {
		fmt.Fprintf(&tf, "%s %s-client %s\n", role, role, tok)
		if err := os.WriteFile(filepath.Join(dir, role+".token"), []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(tokensFile, []byte(tf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	base := "https://" + httpAddr
	sets := []string{
		"--set", "nats.listen=" + natsAddr,
		"--set", "nats.store_dir=" + filepath.Join(dir, "js"),
		"--set", "http.listen=" + httpAddr,
		"--set", "index.embedded_path=" + filepath.Join(dir, "index"),
		"--set", "archive.url=" + filepath.Join(dir, "archive"),
		"--set", "http.auth.tokens_file=" + tokensFile,
		"--set", "http.tls_cert=" + cert,
		"--set", "http.tls_key=" + key,
		"--log-level", "debug",
	}
	srv := startSightline(t, bin, nil, append([]string{"run"}, sets...)...)

	anon, err := httpauth.NewClient(httpauth.ClientConfig{CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	client := func(role string) *http.Client {
		c, err := httpauth.NewClient(httpauth.ClientConfig{CAFile: ca, TokenFile: filepath.Join(dir, role+".token")})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := anon.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz over TLS never answered 200 without a token: %v\n%s", err, srv.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var answers bytes.Buffer
	call := func(c *http.Client, method, path, body string, want int) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Correlation-Id", "sec-e2e")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Fprintf(&answers, "%s %s -> %d %v %s\n", method, path, resp.StatusCode, resp.Header, b)
		if resp.StatusCode != want {
			t.Errorf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		return resp
	}
	msg, _ := json.Marshal("boom " + termsafetest.Hostile)
	event := fmt.Sprintf(`{"type":"log.api","data":{"message":%s,"level":"error","service":"checkout"}}`, msg)
	if r := call(anon, "POST", "/v1/events", event, 401); !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without WWW-Authenticate: Bearer: %v", r.Header)
	}
	call(client("read"), "POST", "/v1/events", event, 403)
	call(client("ingest"), "POST", "/v1/events", event, 202)
	call(anon, "GET", "/metrics", "", 401)
	call(client("ingest"), "GET", "/v1/search?q=boom", "", 403)
	call(client("read"), "GET", "/metrics", "", 200)
	call(client("admin"), "GET", "/v1/search?q=boom", "", 200)
	call(anon, "GET", "/ui/", "", 200)
	call(anon, "GET", "/healthz", "", 200)
	if !strings.Contains(answers.String(), `token \"read-client\" has role read; POST /v1/events needs role ingest or admin`) &&
		!strings.Contains(answers.String(), `token "read-client" has role read; POST /v1/events needs role ingest or admin`) {
		t.Errorf("403 does not say which token and which role:\n%s", answers.String())
	}
	metrics, _ := client("read").Get(base + "/metrics")
	mb, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if !bytes.Contains(mb, []byte(`sightline_http_auth_denied_total{reason="missing_token"}`)) {
		t.Error("/metrics lacks sightline_http_auth_denied_total")
	}

	// The CLI: a token file flag, then the environment variables.
	cli := func(env []string, args ...string) (string, string, error) {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), env...)
		var so, se bytes.Buffer
		c.Stdout, c.Stderr = &so, &se
		err := c.Run()
		return so.String(), se.String(), err
	}
	var traceOut string
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, errOut, err := cli(nil, "trace", "sec-e2e", "--api", base, "--token-file", filepath.Join(dir, "read.token"), "--api-ca", ca)
		if err == nil {
			traceOut = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace never found the event: %v\n%s%s", err, out, errOut)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(traceOut, `boom \x1b[31mRED\x1b[0m`) {
		t.Errorf("trace output does not show the escaped message:\n%s", traceOut)
	}
	termsafetest.CheckSafe(t, []byte(traceOut))

	_, errOut, err := cli(nil, "trace", "sec-e2e", "--api", base, "--token-file", filepath.Join(dir, "read.token"))
	if err == nil || !strings.Contains(errOut, "certificate") || !strings.Contains(errOut, "--api-ca") {
		t.Errorf("trace without the CA: %v\n%s", err, errOut)
	}
	_, errOut, err = cli(nil, "trace", "sec-e2e", "--api", base, "--api-ca", ca)
	if err == nil || !strings.Contains(errOut, "HTTP 401") || !strings.Contains(errOut, "--token-file") {
		t.Errorf("trace without a token: %v\n%s", err, errOut)
	}
	_, errOut, err = cli(nil, "trace", "sec-e2e", "--api", base, "--token-file", filepath.Join(dir, "ingest.token"), "--api-ca", ca)
	if err == nil || !strings.Contains(errOut, "HTTP 403") || !strings.Contains(errOut, `ingest-client`) {
		t.Errorf("trace with an ingest token: %v\n%s", err, errOut)
	}
	logsOut, errOut, err := cli([]string{"SIGHTLINE_API_TOKEN_FILE=" + filepath.Join(dir, "read.token"), "SIGHTLINE_API_CA_FILE=" + ca},
		"logs", "--api", base, "--correlation-id", "sec-e2e", "--since", "1h")
	if err != nil || !strings.Contains(logsOut, `boom \x1b[31mRED`) {
		t.Errorf("logs with SIGHTLINE_API_TOKEN_FILE: %v\n%s%s", err, logsOut, errOut)
	}
	termsafetest.CheckSafe(t, []byte(logsOut))
	show, _, err := cli(nil, append([]string{"config", "show"}, sets...)...)
	if err != nil || !strings.Contains(show, "tokens_file: "+tokensFile) {
		t.Errorf("config show: %v\n%s", err, show)
	}

	// SIGHUP rotates tokens: a new read token works, the old one no longer does.
	rotated := strings.Replace(tf.String(), toks["read"], "read-tok-rotated-0123456789", 1)
	if err := os.WriteFile(tokensFile, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rotated.token"), []byte("read-tok-rotated-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = srv.cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := client("rotated").Get(base + "/v1/search?limit=1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated token is not accepted after SIGHUP: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	call(client("read"), "GET", "/v1/search?limit=1", "", 401)

	_ = srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-srv.done:
		if err != nil {
			t.Errorf("run exited with %v\n%s", err, srv.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not stop")
	}
	logs := srv.stderr.String()
	if !strings.Contains(logs, `"msg":"http api"`) || !strings.Contains(logs, `"tls":true`) || !strings.Contains(logs, `"tokens":3`) {
		t.Errorf("no http api start line with tls and 3 tokens:\n%s", logs)
	}
	if !strings.Contains(logs, `"token":"read-client"`) {
		t.Errorf("the 403 was not logged with the token's name:\n%s", logs)
	}
	for role, tok := range toks {
		for what, out := range map[string]string{"server logs": logs, "answers": answers.String(), "metrics": string(mb),
			"trace": traceOut, "logs": logsOut, "config show": show} {
			if strings.Contains(out, tok) {
				t.Errorf("%s contain the %s token", what, role)
			}
		}
	}
}

// A listener beyond loopback without authentication is refused before it
// binds; http.insecure lets it start, with a warning at every start.
func TestRunRefusesExposureWithoutAuth(t *testing.T) {
	bin := buildSightline(t)
	dir := t.TempDir()
	base := []string{"run", "--set", "nats.listen=" + testutil.FreeAddr(t), "--set", "nats.store_dir=" + filepath.Join(dir, "js"),
		"--set", "index.embedded_path=" + filepath.Join(dir, "index"), "--set", "archive.url=" + filepath.Join(dir, "archive")}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(base, "--set", "http.listen=0.0.0.0:1")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "http.listen: 0.0.0.0:1 is not a loopback address and authentication is off") {
		t.Fatalf("run on 0.0.0.0 without auth: %v\n%s", err, out)
	}

	httpAddr := testutil.FreeAddr(t)
	p := startSightline(t, bin, nil, append(base, "--set", "http.listen="+httpAddr, "--set", "http.insecure=true")...)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(p.stderr.String(), "http.insecure is true"); {
		if time.Now().After(deadline) {
			t.Fatalf("no warning about http.insecure:\n%s", p.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(p.stderr.String(), `"level":"WARN"`) {
		t.Errorf("the insecure line is not a WARN:\n%s", p.stderr)
	}
}
