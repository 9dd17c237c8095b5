package main

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/testutil"
)

// runFails runs bin with args and returns its stderr and how long it took;
// the test fails if it does not exit non-zero within 20 s.
func runFails(t *testing.T, bin string, args ...string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("%v still running after 20 s; stderr:\n%s", args, stderr.String())
	}
	if err == nil {
		t.Fatalf("%v exited 0; stderr:\n%s", args, stderr.String())
	}
	return stderr.String(), took
}

// A taken NATS port and a second `sightline run` on the same data
// directory fail at once, naming the key to change.
func TestRunRefusesTakenPortAndSharedStore(t *testing.T) {
	bin := buildSightline(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stderr, took := runFails(t, bin, append([]string{"run"}, embeddedSets(t.TempDir(), ln.Addr().String(), testutil.FreeAddr(t))...)...)
	for _, want := range []string{"nats.listen " + ln.Addr().String(), "address already in use", "--set nats.listen=", "--nats nats://" + ln.Addr().String()} {
		if !strings.Contains(stderr, want) {
			t.Errorf("port in use: stderr does not say %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "nats.embedded.port") || strings.Contains(stderr, "nats.url ") {
		t.Errorf("port in use: stderr names keys that do not exist:\n%s", stderr)
	}
	if took > 10*time.Second {
		t.Errorf("port in use: took %s to fail", took)
	}

	_, dir := startRun(t, bin)
	stderr, took = runFails(t, bin, append([]string{"run"}, embeddedSets(dir, testutil.FreeAddr(t), testutil.FreeAddr(t))...)...)
	for _, want := range []string{"nats.store_dir", "is in use by another sightline run (pid ", "--set nats.store_dir="} {
		if !strings.Contains(stderr, want) {
			t.Errorf("second run on one store: stderr does not say %q:\n%s", want, stderr)
		}
	}
	if took > 10*time.Second {
		t.Errorf("second run on one store: took %s to fail", took)
	}
}
