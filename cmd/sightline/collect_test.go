package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run this binary as the real `sightline` command
// (SIGHTLINE_TEST_MAIN=1): a real process, real signals.
func TestMain(m *testing.M) {
	if os.Getenv("SIGHTLINE_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// sightlineCmd is `sightline args...` as a child process.
func sightlineCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "SIGHTLINE_TEST_MAIN=1")
	return cmd
}

// SIGTERM ends `sightline collect host` within a second, whatever it was
// doing: here a command with an hour-long timeout and a FIFO (which used to
// block the collector for good) are in its config. The command's process
// group goes with it.
func TestCollectHostEndsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "sleep.pid")
	cfg := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`host: sigterm-01
files: [%q]
commands:
  - {name: long, shell: "sleep 300 & echo $! > %s; wait", timeout: 1h}
state_file: %s
`, fifo, pidFile, filepath.Join(dir, "state.json"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := sightlineCmd(t, "collect", "host", "-f", cfg, "--dry-run")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(pidFile); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command never started; output: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(pidFile)
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		took := time.Since(start)
		if took > time.Second {
			t.Errorf("exited %s after SIGTERM, want under a second", took)
		}
		var ee *exec.ExitError
		if err == nil || !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("exit: %v, want a non-zero status (nothing was published); output: %s", err, out.String())
		}
		t.Logf("exited %s after SIGTERM: %v; output: %s", took.Round(time.Millisecond), err, strings.TrimSpace(out.String()))
	case <-time.After(5 * time.Second):
		t.Fatalf("still running 5s after SIGTERM; output: %s", out.String())
	}
	deadline = time.Now().Add(time.Second)
	for syscall.Kill(child, 0) == nil && !zombie(child) {
		if time.Now().After(deadline) {
			t.Fatalf("the command's child %d outlived the collector", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}
