package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sightline/sightline/internal/testutil"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

type cli struct {
	t    *testing.T
	bin  string
	sets []string
}

type ran struct {
	stdout, stderr string
	code           int
}

func (c cli) run(args ...string) ran {
	c.t.Helper()
	return c.runIn("", args...)
}

// runIn runs the command in directory dir ("": the test's).
func (c cli) runIn(dir string, args ...string) ran {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append(append([]string{}, c.sets...), args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := ran{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("%v: %v", args, err)
	}
	return r
}

// startRun builds nothing: it runs bin's `sightline run` on the embedded
// defaults (free ports, a temp dir; extra arguments before "run") until the
// test ends, and returns a cli whose commands reach it, and the temp dir.
// A port found free can be taken by another process before the run binds
// it (other tests and servers run on the machine): a run that exits naming
// a port in use is started again on new ports, and one that exits for
// another reason fails the test at once with its output.
func startRun(t *testing.T, bin string, extra ...string) (cli, string) {
	t.Helper()
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		run := exec.CommandContext(ctx, bin, append(append(embeddedSets(dir, natsAddr, httpAddr), extra...), "run")...)
		run.Cancel = func() error { return run.Process.Signal(os.Interrupt) }
		run.WaitDelay = 30 * time.Second
		runLog := &testutil.SyncBuffer{}
		run.Stdout, run.Stderr = runLog, runLog
		if err := run.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = run.Wait(); close(exited) }()
		err := waitReady(ctx, "http://"+httpAddr+"/readyz", exited, 120*time.Second)
		if err == nil {
			t.Cleanup(func() {
				cancel()
				<-exited
				if t.Failed() {
					t.Logf("sightline run:\n%s", runLog.String())
				}
			})
			return cli{t: t, bin: bin, sets: append(embeddedSets(dir, natsAddr, httpAddr), "--api", "http://"+httpAddr)}, dir
		}
		cancel()
		<-exited
		if attempt < 3 && strings.Contains(runLog.String(), "address already in use") {
			t.Logf("sightline run on %s / %s: a port was taken meanwhile, again on new ports", natsAddr, httpAddr)
			continue
		}
		t.Fatalf("sightline run: %v\n%s", err, runLog.String())
	}
}

// waitReady polls url until it answers 200, the process exits or within
// passes.
func waitReady(ctx context.Context, url string, exited <-chan struct{}, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer 200 within %s", url, within)
}

// TestSearchTellsTheTruth runs `sightline run`, collects two hosts with
// `sightline collect host` and checks what `sightline search` prints on
// stdout and stderr and its exit status, the way a person piping it would.
func TestSearchTellsTheTruth(t *testing.T) {
	c, dir := startRun(t, buildSightline(t))

	// Two hosts: a note with sysctl lines, a file larger than
	// max_object_bytes, a binary file, a command that fails after printing,
	// one that fails silently and a file that does not exist.
	files := filepath.Join(dir, "files")
	must(t, os.MkdirAll(files, 0o755))
	must(t, os.WriteFile(filepath.Join(files, "note"), []byte("net.core.netdev_budget = 300\nvm.swappiness = 60\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(files, "big"), bytes.Repeat([]byte("0123456789abcdef\n"), 64), 0o644))
	must(t, os.WriteFile(filepath.Join(files, "bin"), []byte{0xff, 0xfe, 0, 1, 2, 'x'}, 0o644))
	for i, site := range []string{"lva1", "ela4"} {
		cfg := fmt.Sprintf(`host: web-0%d
labels: {site: %s}
files: [%q, %q, %q, /nonexistent/file]
commands:
  - {name: fails-loudly, shell: "echo partial output; exit 3"}
  - {name: fails-quietly, shell: "exit 4"}
facts: false
max_object_bytes: 256
state_file: %q
`, i+1, site, filepath.Join(files, "note"), filepath.Join(files, "big"), filepath.Join(files, "bin"), filepath.Join(dir, fmt.Sprintf("state-%d.json", i)))
		p := filepath.Join(dir, fmt.Sprintf("collector-%d.yaml", i))
		must(t, os.WriteFile(p, []byte(cfg), 0o644))
		if r := c.run("collect", "host", "-f", p); r.code != 0 {
			t.Fatalf("collect host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	note := filepath.Join(files, "note")
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := c.run("search", "--search", note, "--md5sum")
		if r.code == 0 && strings.Count(r.stdout, "\n") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the host store never had both hosts: %+v", r)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// A command that exits non-zero with output is there in every mode.
	for _, mode := range []string{"--contents", "--md5sum", "--wordcount", "--time"} {
		r := c.run("search", "--search", "fails-loudly", mode, "--prefix-hostnames")
		if r.code != 0 || strings.Count(r.stdout, "web-0") != 2 {
			t.Errorf("fails-loudly %s: exit %d, stdout %q, stderr %q", mode, r.code, r.stdout, r.stderr)
		}
	}
	// Problems are told on stderr with host, object and reason; stdout stays clean.
	r := c.run("search", "--search", "/nonexistent/file", "--contents")
	if r.stdout != "" || r.code != 1 || !strings.Contains(r.stderr, "web-01#/nonexistent/file: ") || !strings.Contains(r.stderr, "web-02#/nonexistent/file: ") {
		t.Errorf("missing file: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = c.run("search", "--search", "fails-quietly", "--md5sum")
	if r.stdout != "" || !strings.Contains(r.stderr, "web-01#fails-quietly: ") {
		t.Errorf("silent failure: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Truncated content is announced.
	r = c.run("search", "--search", filepath.Join(files, "big"), "--contents")
	if r.code != 0 || !strings.Contains(r.stderr, "truncated") {
		t.Errorf("truncated content: exit %d, stderr %q", r.code, r.stderr)
	}
	// --grep: the README's anchored pattern finds its line; no match exits 1.
	r = c.run("search", "--search", note, "--grep", "^net.core.netdev_budget ")
	if r.code != 0 || r.stdout != "net.core.netdev_budget = 300\nnet.core.netdev_budget = 300\n" {
		t.Errorf("grep: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r = c.run("search", "--search", note, "--grep", "^zzz"); r.code != 1 || r.stdout != "" {
		t.Errorf("grep without a match: exit %d, stdout %q", r.code, r.stdout)
	}
	// --changed-since with nothing changed exits 1.
	if r = c.run("search", "--search", note, "--changed-since", "1ns"); r.code != 1 || r.stdout != "" {
		t.Errorf("changed-since without a change: exit %d, stdout %q", r.code, r.stdout)
	}
	// Scopes that name nothing are errors, not a search of the whole fleet.
	if r = c.run("search", "--search", note, "--site", "nosuch", "--md5sum"); r.code != 1 || !strings.Contains(r.stderr, "--site nosuch") {
		t.Errorf("unknown site: exit %d, stderr %q", r.code, r.stderr)
	}
	if r = c.run("search", "--search", note, "--label", "role=db", "--md5sum"); r.code != 1 || !strings.Contains(r.stderr, "labels") {
		t.Errorf("label matching no host: exit %d, stderr %q", r.code, r.stderr)
	}
	if r = c.run("search", "--search", note, "--scope", "site", "--md5sum"); r.code != 1 || !strings.Contains(r.stderr, "hosts.local") {
		t.Errorf("--scope site without hosts.local: exit %d, stderr %q", r.code, r.stderr)
	}
	hf := filepath.Join(dir, "hosts.txt")
	must(t, os.WriteFile(hf, []byte("nobody-01\nnobody-02\n"), 0o644))
	if r = c.run("search", "--search", note, "--hosts-file", hf, "--md5sum"); r.code != 1 || !strings.Contains(r.stderr, "none of its 2 hosts") {
		t.Errorf("hosts file of unknown hosts: exit %d, stderr %q", r.code, r.stderr)
	}
	if r = c.run("search", "--search", note, "--site", "lva1", "--md5sum", "--prefix-hostnames"); r.code != 0 || strings.Count(r.stdout, "\n") != 1 || !strings.HasPrefix(r.stdout, "web-01#") {
		t.Errorf("--site lva1: exit %d, stdout %q", r.code, r.stdout)
	}
	// --compare of an unknown host says so in words.
	if r = c.run("search", "--search", note, "--compare", "nosuch:"+note); r.code != 1 || !strings.Contains(r.stderr, `no host named "nosuch" has reported`) {
		t.Errorf("compare unknown host: exit %d, stderr %q", r.code, r.stderr)
	}
	// --json keeps binary content as base64.
	r = c.run("search", "--search", filepath.Join(files, "bin"), "--contents", "--json")
	var first struct {
		Content  string `json:"content"`
		Encoding string `json:"encoding"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(r.stdout, "\n", 2)[0]), &first); err != nil || first.Encoding != "base64" || first.Content != "//4AAQJ4" {
		t.Errorf("binary content as JSON: %v %+v (%q)", err, first, r.stdout)
	}
	// --list-files --json is JSON.
	r = c.run("search", "--list-files", "--json")
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var o struct{ Object string }
		if err := json.Unmarshal([]byte(l), &o); err != nil || o.Object == "" {
			t.Errorf("--list-files --json line %q: %v", l, err)
		}
	}
	// --stale: hosts on stdout, the count on stderr.
	r = c.run("search", "--stale", "1ns")
	if strings.Count(r.stdout, "last seen") != 2 || strings.Contains(r.stdout, "hosts in scope") || !strings.Contains(r.stderr, "2 of 2 hosts in scope") {
		t.Errorf("--stale: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	// --stale --json is JSON Lines like every other --json: one host per
	// line, oldest first, then the summary.
	r = c.run("search", "--stale", "1ns", "--json")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	var hostsSeen []string
	for i, l := range lines {
		var v struct {
			Host    string `json:"host"`
			Summary *struct {
				Stale        int    `json:"stale"`
				HostsInScope int    `json:"hosts_in_scope"`
				NotSeenFor   string `json:"not_reported_for"`
			} `json:"summary"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Errorf("--stale --json line %d is not one JSON document: %v: %q", i+1, err, l)
			continue
		}
		switch {
		case i < len(lines)-1 && v.Host != "" && v.Summary == nil:
			hostsSeen = append(hostsSeen, v.Host)
		case i == len(lines)-1 && v.Summary != nil:
			if v.Summary.Stale != 2 || v.Summary.HostsInScope != 2 || v.Summary.NotSeenFor != "1ns" {
				t.Errorf("--stale --json summary: %q", l)
			}
		default:
			t.Errorf("--stale --json line %d: %q", i+1, l)
		}
	}
	if r.code != 0 || len(hostsSeen) != 2 {
		t.Errorf("--stale --json: exit %d, hosts %q in %q", r.code, hostsSeen, r.stdout)
	}
	// Binary content piped comes out byte for byte: nothing added, nothing
	// cut (one host after the other, sorted).
	binFile := []byte{0xff, 0xfe, 0, 1, 2, 'x'}
	r = c.run("search", "--search", filepath.Join(files, "bin"), "--contents")
	if want := string(binFile) + string(binFile); r.code != 0 || r.stdout != want {
		t.Errorf("binary --contents piped: exit %d, stdout %q, want %q", r.code, r.stdout, want)
	}
	// On a terminal its control bytes are escaped, and the line ends.
	out, code := c.runOnTerminal("search", "--search", filepath.Join(files, "bin"), "--contents", "--no-progress")
	if code != 0 || strings.ContainsAny(out, "\x00\x01\x02") || strings.Count(out, `\x00\x01\x02x`+"\r\n") != 2 {
		t.Errorf("binary --contents on a terminal: exit %d, output %q", code, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCLIAgainstRunningPipeline: the commands people run beside
// `sightline run` on its embedded defaults.
func TestCLIAgainstRunningPipeline(t *testing.T) {
	c, _ := startRun(t, buildSightline(t))
	// An event to replay and to show.
	nc := c.run("status", "--json")
	if nc.code != 0 {
		t.Fatalf("status --json: %+v", nc)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(nc.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, nc.stdout)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var keys func(v any, path string)
	keys = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if !snake.MatchString(k) && !strings.HasPrefix(path, ".kinds") {
					t.Errorf("status --json key %s.%s is not snake_case", path, k)
				}
				keys(x, path+"."+k)
			}
		case []any:
			for _, x := range v {
				keys(x, path)
			}
		}
	}
	keys(st, "")
	if _, ok := st["streams"]; !ok {
		t.Errorf("status --json has no streams: %s", nc.stdout)
	}

	// One event in the stream, through HTTP ingest.
	api := c.sets[len(c.sets)-1]
	resp, err := http.Post(api+"/v1/events", "application/json", strings.NewReader(`{"type":"metric.replayed","data":{"n":1}}`))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest: %v %v", resp, err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Kinds []struct {
				Kind string `json:"kind"`
				Out  int    `json:"out"`
			} `json:"kinds"`
		}
		_ = json.Unmarshal([]byte(c.run("status", "--json").stdout), &st)
		if len(st.Kinds) > 0 && st.Kinds[0].Out > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ingested event never reached the events stream")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// replay --dry-run opens no sink, so it works while run holds the index.
	start := time.Now()
	r := c.run("replay", "--from", "1", "--to-sink", "index", "--dry-run")
	if r.code != 0 {
		t.Errorf("replay --dry-run --to-sink index beside run: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	// Without --dry-run it gives up with a hint instead of hanging.
	r = c.run("replay", "--from", "1", "--to-sink", "index")
	if r.code == 0 || !strings.Contains(r.stderr, "held by another process") || !strings.Contains(r.stderr, "--api http://") {
		t.Errorf("replay --to-sink index beside run: exit %d, stderr %q", r.code, r.stderr)
	}
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("replay took %s beside a running pipeline", took)
	}
	// trace reads through the global --api (the cli passes it).
	if r = c.run("trace", "no-such-id"); !strings.Contains(r.stderr+r.stdout, "no-such-id") {
		t.Errorf("trace through --api: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}
