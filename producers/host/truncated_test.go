package host_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sightline/sightline/producers/host"
)

// TestStillTheSameKeepsTruncation: the store keeps only the head of a
// content cut at max_object_bytes or to fit a part; every later "still
// the same" record of that content replaces the object's metadata, so it
// must say truncated too, through as many runs as the content stays.
func TestStillTheSameKeepsTruncation(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.log")
	wide := filepath.Join(dir, "wide.log")
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(big, []byte(strings.Repeat("a line of a log\n", 10000)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Under max_object_bytes, over what one part can carry: Split cuts it.
	if err := os.WriteFile(wide, []byte(strings.Repeat("x", 6000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(small, []byte("short\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := host.DefaultConfig()
	cfg.Host = "web-01"
	cfg.Facts = false
	cfg.StateFile = filepath.Join(dir, "state.json")
	cfg.Files = []string{big, wide, small}
	cfg.MaxObjectBytes = 8192
	cfg.MaxPartBytes = 4096
	c, err := host.NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 3; run++ {
		pub := &capture{}
		if _, err := host.Run(context.Background(), c, pub, host.RunOptions{}); err != nil {
			t.Fatal(err)
		}
		objs := objects(parts(t, pub.msgs))
		for name, want := range map[string]bool{big: true, wide: true, small: false} {
			o := objs[name]
			if o.Unchanged != (run > 1) || o.Truncated != want {
				t.Errorf("run %d, %s: unchanged %v truncated %v, want truncated %v", run, filepath.Base(name), o.Unchanged, o.Truncated, want)
			}
		}
	}
}
