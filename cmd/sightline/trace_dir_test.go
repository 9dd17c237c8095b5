package main

import (
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/testutil"
)

// TestTraceFromAnotherDirectory: `sightline trace` and `logs` run where no
// `sightline run` ever kept its data say that no index is here and how to
// point at one, instead of blaming a lock nobody holds.
func TestTraceFromAnotherDirectory(t *testing.T) {
	bin := buildSightline(t)
	dir := t.TempDir()
	// No API answers at this configuration's http.listen either.
	sets := []string{"--set", "http.listen=" + testutil.FreeAddr(t)}
	for _, args := range [][]string{{"trace", "abc"}, {"logs"}} {
		r := cli{t: t, bin: bin, sets: sets}.runIn(dir, args...)
		if r.code != 1 || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q", args, r.code, r.stdout)
		}
		for _, want := range []string{"no index here", dir, "index.embedded_path", "--api"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%v: stderr does not say %q:\n%s", args, want, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "holding") || strings.Contains(r.stderr, "pebble") {
			t.Errorf("%v: stderr blames a lock or the storage library:\n%s", args, r.stderr)
		}
	}
}
