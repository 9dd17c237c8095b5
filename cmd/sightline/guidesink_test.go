package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sightline/sightline/cmd/sightline/testdata/guide/jsondir"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/sinks"
)

// The sink of docs/contributing.md ("Add a sink"), built from the page:
// its folder is the page's code blocks (a copy in testdata/guide/jsondir,
// which TestGuideSinkIsThePage keeps equal to the page), and the binary
// gets it by the page's one line in the sink table. Nothing else changes.

var updateGuide = flag.Bool("update-guide-sink", false, "rewrite testdata/guide/jsondir from docs/contributing.md")

const guidePage = "../../docs/contributing.md"

// guideFiles are the page's files of sinks/jsondir/ (name → content) and
// its sink table.
func guideFiles(t *testing.T) (files map[string]string, table string) {
	t.Helper()
	b, err := os.ReadFile(guidePage)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	start, end := strings.Index(page, "## Add a sink"), strings.Index(page, "## Add a collector")
	if start < 0 || end < start {
		t.Fatal("docs/contributing.md has no \"Add a sink\" section")
	}
	page = page[start:end]
	files = map[string]string{}
	re := regexp.MustCompile("(?m)^`sinks/jsondir/([A-Za-z_.]+)`:\n\n(`{3,4})[a-z]*\n((?s:.*?))^`{3,4}\n")
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		files[m[1]] = m[3]
	}
	tm := regexp.MustCompile("(?ms)^```go\n(var sinkTable = .*?^})\n```").FindStringSubmatch(page)
	if len(files) != 5 || tm == nil {
		t.Fatalf("the page's sink: %d files (want 5), table found %v", len(files), tm != nil)
	}
	return files, tm[1]
}

// The folder is the page's five files, and the page's table is the
// binary's table plus one line.
func TestGuideSinkIsThePage(t *testing.T) {
	files, table := guideFiles(t)
	dir := filepath.Join("testdata", "guide", "jsondir")
	for name, body := range files {
		path := filepath.Join(dir, name)
		if *updateGuide {
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != body {
			t.Errorf("%s differs from docs/contributing.md (%v): run go generate ./cmd/sightline", path, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok {
			t.Errorf("%s/%s is not on the page", dir, e.Name())
		}
	}
	src, err := os.ReadFile("sinks.go")
	if err != nil {
		t.Fatal(err)
	}
	real := regexp.MustCompile(`(?ms)^var sinkTable = .*?^}`).Find(src)
	if want := strings.TrimSuffix(string(real), "}") + "\tjsondir.Spec,\n}"; table != want {
		t.Errorf("the page's table is not the binary's plus one line:\n%s\nwant\n%s", table, want)
	}
}

// withGuideSink adds the page's sink to the table for the test: the one
// line of cmd/sightline/sinks.go.
func withGuideSink(t *testing.T) {
	saved := sinkTable
	sinkTable = append(append([]sinks.Spec(nil), sinkTable...), jsondir.Spec)
	t.Cleanup(func() { sinkTable = saved })
}

func execute(ctx context.Context, args ...string) (string, error) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestGuideSinkNeedsOnlyItsFolderAndTheTable(t *testing.T) {
	withGuideSink(t)
	ctx := context.Background()

	// Its keys are configuration keys, with environment variables.
	keys, err := execute(ctx, "config", "keys")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"jsondir.enabled", "jsondir.dir", "jsondir.subject", "SIGHTLINE_JSONDIR_BATCH"} {
		if !strings.Contains(keys, k) {
			t.Errorf("config keys lack %s:\n%s", k, keys)
		}
	}
	// Its validation names its keys; it runs only when the sink is on.
	if _, err := execute(ctx, "config", "check", "--set", "jsondir.batch=0"); err != nil {
		t.Errorf("a disabled sink is validated: %v", err)
	}
	_, err = execute(ctx, "config", "check", "--set", "jsondir.enabled=true", "--set", "jsondir.batch=0", "--set", "jsondir.subject=x")
	if err == nil || !strings.Contains(err.Error(), "jsondir.batch") || !strings.Contains(err.Error(), "jsondir.subject") {
		t.Errorf("want both bad keys named, got %v", err)
	}
	// A typo in its keys is caught, from the environment too.
	t.Setenv("SIGHTLINE_JSONDIR_BACTH", "3")
	if _, err := execute(ctx, "config", "check"); err == nil || !strings.Contains(err.Error(), "SIGHTLINE_JSONDIR_BATCH") {
		t.Errorf("want the misspelt variable named with its suggestion, got %v", err)
	}
	// The generated reference lists its keys with their descriptions, and
	// its generated sample loads.
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default(sinkSections()...)
	docs := c.Docs(root)
	ref := string(config.Reference(docs))
	if !strings.Contains(ref, "| `jsondir.dir` | string | `.sightline/jsondir` | `SIGHTLINE_JSONDIR_DIR` | Dir receives one file <event id>.json per event. |") {
		t.Errorf("the reference lacks jsondir.dir:\n%s", ref)
	}
	sample, err := c.Sample("jsondir", docs)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "sample.yaml")
	if err := os.WriteFile(p, sample, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(p, nil, nil, sinkSections()...); err != nil || !strings.Contains(string(sample), "# Dir receives one file") {
		t.Errorf("the sample does not load (%v):\n%s", err, sample)
	}
}

// The page's contract test passes (go test of the page's folder).
func TestGuideSinkPassesTheContract(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test")
	}
	cmd := exec.Command("go", "test", "-count=1", "./testdata/guide/jsondir")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("go test of the page's sink: %v\n%s", err, out)
	}
}

func TestGuideSinkRunsInThePipeline(t *testing.T) {
	withGuideSink(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "events")
	natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := execute(ctx, "run", "--log-level", "warn",
			"--set", "nats.listen="+natsAddr, "--set", "nats.store_dir="+filepath.Join(dir, "js"),
			"--set", "http.listen="+httpAddr,
			"--set", "index.enabled=false", "--set", "archive.enabled=false", "--set", "hosts.enabled=false",
			"--set", "jsondir.enabled=true", "--set", "jsondir.dir="+out, "--set", "jsondir.subject=sightline.events.metric.>")
		done <- err
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	waitHTTP(t, "http://"+httpAddr+"/readyz", 200, 60*time.Second)
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m := nats.NewMsg("sightline.raw.metric.guide")
	m.Data = []byte(`{"n":1}`)
	m.Header.Set("Nats-Msg-Id", "guide-1")
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	// The event's id: derived from its source (the subject) and guide-1.
	id := identity.ID(identity.Source{Subject: "sightline.raw.metric.guide"}, "guide-1", identity.Position{})
	path := filepath.Join(out, id+".json")
	deadline := time.Now().Add(60 * time.Second)
	var body []byte
	for time.Now().Before(deadline) {
		if body, err = os.ReadFile(path); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || !bytes.Contains(body, []byte(id)) {
		t.Fatalf("%s: %v %s", path, err, body)
	}
}
