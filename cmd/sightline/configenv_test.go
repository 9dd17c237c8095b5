package main

import (
	"strings"
	"testing"
)

// A shell still exporting a variable of an earlier release
// (SIGHTLINE_NEO4J_URI) runs every command, with a warning naming the
// variable that replaces it.
func TestOldVariableWarnsAndRuns(t *testing.T) {
	t.Setenv("SIGHTLINE_NEO4J_URI", "bolt://127.0.0.1:7687")
	t.Setenv("SIGHTLINE_NEO4J_PASSWORD", "hunter2")
	root := newRootCmd()
	var out, errOut strings.Builder
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"config", "check"})
	if err := root.Execute(); err != nil {
		t.Fatalf("config check fails: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "configuration is valid") {
		t.Errorf("stdout: %q", out.String())
	}
	for _, want := range []string{"SIGHTLINE_NEO4J_URI is no longer read; set SIGHTLINE_GRAPH_URI", "SIGHTLINE_NEO4J_PASSWORD is no longer read; set SIGHTLINE_GRAPH_PASSWORD"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("want %q on stderr, got %q", want, errOut.String())
		}
	}
	if strings.Contains(errOut.String(), "hunter2") {
		t.Errorf("the warning prints the value: %q", errOut.String())
	}
}
