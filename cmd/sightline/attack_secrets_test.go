package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/testutil"
)

// sightlineOut runs `sightline args...` as a process to its end (60 s at
// most) and returns its combined output.
func sightlineOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), "SIGHTLINE_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("sightline %v did not end within 60s:\n%s", args, out)
	}
	return string(out), err
}

// TestAttackSecretsStayOutOfOutput: the ways an operator's mistake used to
// print a secret where logs are collected. A tokens file with its columns
// swapped (at start, on SIGHUP, in `config check`), a password in
// index.urls (the start-up line, validation errors) and in nats.urls
// (connect errors) never show.
func TestAttackSecretsStayOutOfOutput(t *testing.T) {
	const tok = "Tok3nSecretValue-0123456789abcdef"
	dir := t.TempDir()
	swapped := map[string]string{
		"token first":  tok + " grafana read\n",
		"token second": "read " + tok + " grafana\n",
		"role last":    "grafana read " + tok + "\n",
	}
	for name, content := range swapped {
		f := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := sightlineOut(t, "config", "check", "--set", "http.auth.tokens_file="+f)
		if err == nil {
			t.Errorf("%s: config check accepted a broken tokens file:\n%s", name, out)
		}
		if strings.Contains(out, tok) {
			t.Errorf("%s: config check printed the token:\n%s", name, out)
		}
		natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
		out, err = sightlineOut(t, append(append([]string{"run"}, embeddedSets(t.TempDir(), natsAddr, httpAddr)...), "--set", "http.auth.tokens_file="+f)...)
		if err == nil || strings.Contains(out, tok) {
			t.Errorf("%s: run (err %v) printed the token or started:\n%s", name, err, out)
		}
	}

	// SIGHUP with a file broken after the start.
	good := filepath.Join(dir, "tokens")
	if err := os.WriteFile(good, []byte("read grafana "+tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := buildSightline(t)
	natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	p := startSightline(t, bin, nil, append(append([]string{"run"}, embeddedSets(t.TempDir(), natsAddr, httpAddr)...),
		"--set", "http.auth.tokens_file="+good,
		"--set", "index.urls=https://admin:S3cr%2Ft-pw@127.0.0.1:1",
		"--log-level", "info")...)
	waitHTTP(t, "http://"+httpAddr+"/healthz", http.StatusOK, 2*time.Minute)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.stderr.String(), "sightline running") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(p.stderr.String(), "sightline running") {
		t.Fatalf("no start-up line:\n%s", p.stderr.String())
	}
	if err := os.WriteFile(good, []byte(tok+" grafana read\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr.String(), "not reloaded") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	log := p.stderr.String()
	if !strings.Contains(log, "local process may read and write every stream through NATS without a token") {
		t.Errorf("no warning that local users bypass HTTP auth through the embedded NATS server:\n%s", log)
	}
	if !strings.Contains(log, "not reloaded") {
		t.Errorf("no reload refusal logged:\n%s", log)
	}
	for _, secret := range []string{tok, "S3cr", "%2Ft-pw", "S3cr/t-pw"} {
		if strings.Contains(log, secret) {
			t.Errorf("the run log holds %q:\n%s", secret, log)
		}
	}

	// index.urls that do not parse, and a NATS URL whose password does not.
	for _, args := range [][]string{
		{"config", "check", "--set", "index.urls=https://admin:pa%zzword-SECRET@127.0.0.1:9200"},
		{"config", "check", "--set", "index.urls=ftp://admin:password-SECRET@127.0.0.1:9200"},
		{"status", "--set", "nats.urls=nats://worker:pa%zzword-SECRET@127.0.0.1:1"},
		{"status", "--set", "nats.urls=nats://worker:pass#word-SECRET@127.0.0.1:1"},
	} {
		out, err := sightlineOut(t, args...)
		if err == nil {
			t.Errorf("%v succeeded:\n%s", args, out)
		}
		if strings.Contains(out, "SECRET") || strings.Contains(out, "pa%zz") {
			t.Errorf("%v printed the password:\n%s", args, out)
		}
	}
}
