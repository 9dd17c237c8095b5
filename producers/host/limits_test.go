package host_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sightline/sightline/producers/host"
)

// collectWithin runs Collect and fails the test when it does not return in
// time (a collector that hangs on its own config).
func collectWithin(t *testing.T, cfg host.Config, d time.Duration) map[string]host.Object {
	t.Helper()
	cfg.StateFile = filepath.Join(t.TempDir(), "state.json")
	cfg.Host = "limits-01"
	cfg.Facts = false
	c, err := host.NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		objs []host.Object
		err  error
	}
	done := make(chan result, 1)
	go func() {
		objs, err := c.Collect(context.Background())
		done <- result{objs, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		m := map[string]host.Object{}
		for _, o := range r.objs {
			m[o.Name] = o
		}
		return m
	case <-time.After(d):
		t.Fatalf("Collect did not return within %s", d)
		return nil
	}
}

// A FIFO listed in files: used to block the collector forever in open(2).
func TestFIFOBecomesAnErrorObjectWithoutBlocking(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// Unblock a reader stuck in open(2) when the test fails.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	cfg := host.DefaultConfig()
	cfg.Files = []string{fifo}
	objs := collectWithin(t, cfg, 3*time.Second)
	o := objs[fifo]
	if !strings.Contains(o.Error, "not a regular file") || !strings.Contains(o.Error, "named pipe") {
		t.Fatalf("error = %q, want 'not a regular file (named pipe)'", o.Error)
	}
	if o.Content != "" || o.MD5 != "" {
		t.Fatalf("a FIFO must not be read: content %q md5 %q", o.Content, o.MD5)
	}
	if o.Mode == "" || !strings.HasPrefix(o.Mode, "p") {
		t.Fatalf("mode = %q, want the stat of the FIFO (p…)", o.Mode)
	}
}

// /dev/zero in files: used to be read whole into memory until the machine
// ran out of it.
func TestDeviceBecomesAnErrorObjectWithoutReading(t *testing.T) {
	cfg := host.DefaultConfig()
	cfg.Files = []string{"/dev/zero", "/dev/null"}
	objs := collectWithin(t, cfg, 3*time.Second)
	for _, name := range cfg.Files {
		o := objs[name]
		if !strings.Contains(o.Error, "not a regular file") || !strings.Contains(o.Error, "device") {
			t.Fatalf("%s: error = %q, want 'not a regular file (device)'", name, o.Error)
		}
		if o.Content != "" || o.MD5 != "" {
			t.Fatalf("%s must not be read", name)
		}
	}
}

// A Unix socket is not opened either.
func TestSocketBecomesAnErrorObject(t *testing.T) {
	dir, err := os.MkdirTemp("", "sock") // short path: sun_path is 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	cfg := host.DefaultConfig()
	cfg.Files = []string{sock}
	o := collectWithin(t, cfg, 3*time.Second)[sock]
	if !strings.Contains(o.Error, "not a regular file (socket)") {
		t.Fatalf("error = %q", o.Error)
	}
}

// A big (sparse) file is summed whole in bounded memory: md5 and counts
// describe the whole file, the content is cut at max_object_bytes.
func TestBigFileIsStreamedInBoundedMemory(t *testing.T) {
	const size = 64 << 20
	path := filepath.Join(t.TempDir(), "big.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("first line\nsecond line\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("\nlast words here\n"), size-17); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	h := md5.New()
	rf, _ := os.Open(path)
	if _, err := io.Copy(h, rf); err != nil {
		t.Fatal(err)
	}
	rf.Close()
	want := hex.EncodeToString(h.Sum(nil))

	cfg := host.DefaultConfig()
	cfg.Files = []string{path}
	cfg.MaxObjectBytes = 4096
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	o := collectWithin(t, cfg, 60*time.Second)[path]
	runtime.ReadMemStats(&after)
	if o.Error != "" {
		t.Fatal(o.Error)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("collecting a %d MiB file allocated %d MiB: reads are not bounded", size>>20, alloc>>20)
	}
	if o.MD5 != want {
		t.Fatalf("md5 = %s, want %s (of the whole file)", o.MD5, want)
	}
	if o.Bytes != size || o.Lines != 4 || o.Words != 8 {
		t.Fatalf("counts = %d lines %d words %d bytes, want 4 8 %d (the NUL run is a word, as for wc)", o.Lines, o.Words, o.Bytes, size)
	}
	if !o.Truncated || len(o.Content) > cfg.MaxObjectBytes || !strings.HasPrefix(o.Content, "first line\n") {
		t.Fatalf("content: truncated=%v, %d bytes", o.Truncated, len(o.Content))
	}
}

// Command output is summed whole in bounded memory too.
func TestCommandOutputIsStreamedInBoundedMemory(t *testing.T) {
	cfg := host.DefaultConfig()
	cfg.Commands = []host.Command{{Name: "zeros", Shell: "head -c 100000000 /dev/zero"}}
	cfg.MaxObjectBytes = 1000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	o := collectWithin(t, cfg, 60*time.Second)["zeros"]
	runtime.ReadMemStats(&after)
	if o.Error != "" {
		t.Fatal(o.Error)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("a 100 MB output allocated %d MiB", alloc>>20)
	}
	if o.Bytes != 100000000 || !o.Truncated || len(o.Content) != 1000 {
		t.Fatalf("bytes %d truncated %v content %d", o.Bytes, o.Truncated, len(o.Content))
	}
}

// Content cut inside a UTF-8 sequence stays text (cut at the rune before).
func TestTruncationKeepsUTF8Text(t *testing.T) {
	path := filepath.Join(t.TempDir(), "utf8.txt")
	if err := os.WriteFile(path, []byte(strings.Repeat("é", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := host.DefaultConfig()
	cfg.Files = []string{path}
	cfg.MaxObjectBytes = 11
	o := collectWithin(t, cfg, 3*time.Second)[path]
	if o.Encoding != "" || o.Content != strings.Repeat("é", 5) || !o.Truncated || o.Bytes != 200 {
		t.Fatalf("encoding %q content %q truncated %v bytes %d", o.Encoding, o.Content, o.Truncated, o.Bytes)
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper is dead).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func waitDead(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still runs %s after the collector returned: an orphan", pid, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return pid
}

// A timed-out shell: command used to leave its children running.
func TestCommandTimeoutKillsTheProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	cfg := host.DefaultConfig()
	cfg.Commands = []host.Command{{Name: "hang", Shell: "sleep 300 & echo $! > " + pidFile + "; wait", Timeout: 300 * time.Millisecond}}
	start := time.Now()
	o := collectWithin(t, cfg, 5*time.Second)["hang"]
	if took := time.Since(start); took > time.Second {
		t.Errorf("a 300ms timeout took %s", took)
	}
	if o.ExitCode == nil || *o.ExitCode != -1 || !strings.Contains(o.Error, "timed out after 300ms") {
		t.Fatalf("exit %v error %q", o.ExitCode, o.Error)
	}
	waitDead(t, readPID(t, pidFile), 2*time.Second)
}

// A command that exits but leaves a background child behind: the child is
// killed with the group, the collector does not wait for it.
func TestFinishedCommandLeavesNoChildren(t *testing.T) {
	cfg := host.DefaultConfig()
	cfg.Commands = []host.Command{{Name: "bg", Shell: "sleep 300 >/dev/null 2>&1 & echo $!"}}
	start := time.Now()
	o := collectWithin(t, cfg, 5*time.Second)["bg"]
	if o.Error != "" || o.ExitCode == nil || *o.ExitCode != 0 {
		t.Fatalf("exit %v error %q", o.ExitCode, o.Error)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %s", took)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(o.Content))
	if err != nil {
		t.Fatal(err)
	}
	waitDead(t, pid, 2*time.Second)
}

// A child that keeps the output pipe open after its parent exited does not
// hold the collector past the command's timeout either.
func TestChildHoldingStdoutDoesNotHang(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	cfg := host.DefaultConfig()
	cfg.Commands = []host.Command{{Name: "holder", Shell: "sleep 300 & echo $! > " + pidFile + "; echo done", Timeout: 10 * time.Second}}
	start := time.Now()
	o := collectWithin(t, cfg, 5*time.Second)["holder"]
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s", took)
	}
	if !strings.HasPrefix(o.Content, "done") {
		t.Fatalf("content %q error %q", o.Content, o.Error)
	}
	waitDead(t, readPID(t, pidFile), 2*time.Second)
}

// Cancelling the context (SIGTERM in the CLI) stops a long read and a long
// command at once.
func TestCancelStopsCollectPromptly(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "cmd.pid")
	cfg := host.DefaultConfig()
	cfg.Host = "limits-01"
	cfg.Facts = false
	cfg.StateFile = filepath.Join(t.TempDir(), "s.json")
	cfg.Commands = []host.Command{{Name: "long", Shell: "echo $$ > " + pidFile + "; exec sleep 300", Timeout: time.Hour}}
	c, err := host.NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for i := 0; i < 100; i++ {
			if _, err := os.Stat(pidFile); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	_, err = c.Collect(ctx)
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v, want context canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("cancel took %s", took)
	}
	waitDead(t, readPID(t, pidFile), time.Second)
}
