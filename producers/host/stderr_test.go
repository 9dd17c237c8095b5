package host_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/producers/host"
)

// A command writing 500 KB to stderr and exiting non-zero is one error
// object; the other objects of the run are collected as usual.
func TestLoudFailingCommandIsOneErrorObject(t *testing.T) {
	cfg := host.DefaultConfig()
	cfg.Commands = []host.Command{
		{Name: "loud", Shell: "head -c 500000 /dev/zero | tr '\\0' e >&2; exit 3"},
		{Name: "ok", Shell: "echo fine"},
	}
	objs := collectWithin(t, cfg, 30*time.Second)
	o := objs["loud"]
	if o.ExitCode == nil || *o.ExitCode != 3 || !strings.Contains(o.Error, "exit status 3") {
		t.Fatalf("exit %v error %.200q", o.ExitCode, o.Error)
	}
	if len(o.Error) > 8192 {
		t.Fatalf("error holds %d bytes of stderr", len(o.Error))
	}
	if objs["ok"].Content != "fine\n" {
		t.Fatalf("ok: %+v", objs["ok"])
	}
}

// `yes err 1>&2` until the timeout: stderr is read in bounded memory.
func TestEndlessStderrIsBounded(t *testing.T) {
	cfg := host.DefaultConfig()
	cfg.Commands = []host.Command{{Name: "yes", Shell: "yes err 1>&2", Timeout: 2 * time.Second}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	o := collectWithin(t, cfg, 30*time.Second)["yes"]
	runtime.ReadMemStats(&after)
	if !strings.Contains(o.Error, "timed out") {
		t.Fatalf("error %.200q", o.Error)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("endless stderr allocated %d MiB", alloc>>20)
	}
}

// A child that left the process group with setsid is killed with its
// command at the timeout.
func TestTimedOutCommandKillsSetsidChild(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	cfg := host.DefaultConfig()
	cfg.Commands = []host.Command{{Name: "escape", Shell: "setsid sh -c 'echo $$ > " + pidFile + "; exec sleep 300' & wait; sleep 300", Timeout: 500 * time.Millisecond}}
	o := collectWithin(t, cfg, 10*time.Second)["escape"]
	if !strings.Contains(o.Error, "timed out") {
		t.Fatalf("error %q", o.Error)
	}
	waitDead(t, readPID(t, pidFile), 3*time.Second)
}
