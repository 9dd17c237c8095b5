package archtest

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sightline/sightline/"

// pkg is one package of the module as `go list` sees it: its path below
// the module and the module packages it depends on, directly or not,
// without its tests.
type pkg struct {
	Path string
	Deps []string
}

// sinkOf is the sink folder a package belongs to ("index" for
// sinks/index/esclient), "" for a package outside sinks/<name>/ (the
// sinks package itself is the contract every sink uses).
func sinkOf(path string) string {
	rest, ok := strings.CutPrefix(path, "sinks/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// oneWay lists imports that would turn a package's layering around: the
// key must not depend on any of its values.
var oneWay = map[string][]string{
	// The client knows nothing of the sink's documents.
	"sinks/index/esclient": {"sinks/index"},
	// The sink knows nothing of who reads it.
	"sinks/index": {"sinks/index/searchapi", "internal/searchcli"},
	// The bus family: the consumer runtime sits on top of the others, and
	// the health registry knows nothing of the connection that feeds it.
	"internal/bus/read":   {"internal/bus/consume"},
	"internal/bus/kv":     {"internal/bus/consume"},
	"internal/bus/loss":   {"internal/bus/consume"},
	"internal/bus/status": {"internal/bus/consume"},
	"internal/bus/health": {"internal/bus"},
}

// violations returns every import that breaks the package rules:
//   - a sink (a package under sinks/<name>/) depends on no other sink, on
//     no processor (processors/...), on no producer (producers/...) and not
//     on the sinktest suite;
//     sinks/sinktest, the contract suite, is exempt: it runs the real
//     processors to make events;
//   - a sink depends on no package of the query side (query/...);
//   - the core (see core) depends on no sink, no query side, no replay and
//     not on the binary;
//   - the one-way rules above.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		own := sinkOf(p.Path)
		for _, d := range p.Deps {
			switch {
			case own != "" && own != "sinktest" && sinkOf(d) != "" && sinkOf(d) != own:
				out = append(out, p.Path+" imports the sink "+d+": sinks share code through the sinks package, internal/ or schemas/")
			case own != "" && own != "sinktest" && (d == "processors" || strings.HasPrefix(d, "processors/")):
				out = append(out, p.Path+" imports "+d+": a sink depends on contracts (schemas, internal/stage), not on the processors")
			case own != "" && own != "sinktest" && (d == "producers" || strings.HasPrefix(d, "producers/")):
				out = append(out, p.Path+" imports "+d+": a sink reads the wire types in schemas, not a producer's package")
			case own != "" && strings.HasPrefix(d, "query/"):
				out = append(out, p.Path+" imports "+d+": a sink knows nothing of who reads it (the query side imports the sink)")
			}
			if core(p.Path) && (sinkOf(d) != "" || d == "sinks" || d == "replay" || strings.HasPrefix(d, "replay/") || strings.HasPrefix(d, "query/") || strings.HasPrefix(d, "cmd/")) {
				out = append(out, p.Path+" imports "+d+": the core (schemas, processors, producers, internal/) knows no sink, no query side, no replay and not the binary")
			}
			for _, banned := range oneWay[p.Path] {
				if d == banned {
					out = append(out, p.Path+" imports "+d+": this import goes the other way")
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// core reports whether path is part of what every stage builds on:
// schemas, processors, producers and internal/, except internal/searchcli
// (the terminal output of the index's search, which the CLI alone uses).
func core(path string) bool {
	for _, c := range []string{"schemas", "processors", "producers", "internal"} {
		if path == c || strings.HasPrefix(path, c+"/") {
			return path != "internal/searchcli"
		}
	}
	return false
}

// list runs `go list -deps` over the module's packages.
func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Deps", "./...")
	cmd.Dir = "../.."
	outp, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(outp)))
	var pkgs []pkg
	for {
		var raw struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		p := pkg{Path: strings.TrimPrefix(raw.ImportPath, module)}
		for _, d := range raw.Deps {
			if rest, ok := strings.CutPrefix(d, module); ok {
				p.Deps = append(p.Deps, rest)
			}
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportRules checks the real import
// graph of the repository.
func TestImportRules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	pkgs := list(t)
	var sinks int
	for _, p := range pkgs {
		if sinkOf(p.Path) != "" {
			sinks++
		}
	}
	if sinks < 5 {
		t.Fatalf("go list found %d packages under sinks/: is the test run from internal/archtest?", sinks)
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// The rules catch what they are written for.
func TestViolationsFound(t *testing.T) {
	pkgs := []pkg{
		{Path: "sinks/archive", Deps: []string{"sinks", "sinks/index", "internal/stage"}},
		{Path: "sinks/graph", Deps: []string{"processors", "schemas"}},
		{Path: "sinks/graph/graphtest", Deps: []string{"sinks/sinktest"}},
		{Path: "sinks/index", Deps: []string{"sinks/index/esclient", "sinks/index/searchapi"}},
		{Path: "sinks/index/esclient", Deps: []string{"sinks/index"}},
		{Path: "sinks/index/searchapi", Deps: []string{"sinks/index", "sinks/index/esclient"}},
		{Path: "sinks/sinktest", Deps: []string{"processors", "schemas"}},
		{Path: "cmd/sightline", Deps: []string{"sinks/index", "sinks/graph", "processors"}},
		{Path: "internal/bus", Deps: []string{"internal/stage", "replay"}},
		{Path: "internal/bus/kv", Deps: []string{"internal/bus", "internal/bus/read", "internal/bus/consume"}},
		{Path: "internal/searchcli", Deps: []string{"sinks/index"}},
		{Path: "processors", Deps: []string{"sinks"}},
		{Path: "producers/host", Deps: []string{"sinks/hosts"}},
		{Path: "sinks/hosts", Deps: []string{"producers/host", "schemas", "query/fleet"}},
		{Path: "internal/stage", Deps: []string{"query/trace"}},
		{Path: "query/fleet", Deps: []string{"sinks/hosts"}},
	}
	got := violations(pkgs)
	want := []string{
		"internal/bus imports replay",
		"internal/bus/kv imports internal/bus/consume",
		"internal/stage imports query/trace",
		"processors imports sinks",
		"producers/host imports sinks/hosts",
		"sinks/archive imports the sink sinks/index",
		"sinks/graph imports processors",
		"sinks/graph/graphtest imports the sink sinks/sinktest",
		"sinks/hosts imports producers/host",
		"sinks/hosts imports query/fleet",
		"sinks/index imports sinks/index/searchapi",
		"sinks/index/esclient imports sinks/index",
	}
	if len(got) != len(want) {
		t.Fatalf("violations:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+":") {
			t.Errorf("violation %d: %q, want %q...", i, got[i], want[i])
		}
	}
}
