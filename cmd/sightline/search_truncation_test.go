package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/termsafe/termsafetest"
)

// TestSearchNeverForgetsTruncation collects a 1.6 MB file (cut at the
// default max_object_bytes, 256 KiB) twice with `sightline collect host`
// into a real `sightline run`: the second run sends "still the same". Every
// later search that reads the object must still say the content is cut, in
// text and in --json, and a --grep for a line past the cut must not pass
// for "not there". The summary's error counts must match the reason lines.
// The transcript is compared with testdata/search_truncated.golden.
func TestSearchNeverForgetsTruncation(t *testing.T) {
	c, dir := startRun(t, buildSightline(t))

	big := filepath.Join(dir, "big.log")
	var b bytes.Buffer
	b.WriteString("early needle\n")
	for b.Len() < 1600000 {
		b.WriteString("filler line of a large log file, nothing to see here\n")
	}
	b.WriteString("late needle\n")
	must(t, os.WriteFile(big, b.Bytes(), 0o644))
	cfg := filepath.Join(dir, "collector.yaml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`host: web-01
files: [%q]
commands:
  - {name: fails-loudly, shell: "echo partial output; exit 3"}
facts: false
state_file: %q
`, big, filepath.Join(dir, "state.json"))), 0o644))

	var tag int64
	for i, want := range []string{"full", "same"} {
		r := c.run("collect", "host", "-f", cfg, "--json")
		var rep struct {
			Tag     int64 `json:"tag"`
			Objects []struct {
				Name, Action string
			} `json:"objects"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != 0 || err != nil {
			t.Fatalf("collect %d: exit %d, %v\n%s%s", i+1, r.code, err, r.stdout, r.stderr)
		}
		for _, o := range rep.Objects {
			if o.Name == big && o.Action != want {
				t.Fatalf("collect %d sent %s as %q, want %q", i+1, big, o.Action, want)
			}
		}
		tag = rep.Tag
	}
	// Wait for the store to apply the second ("still the same") sync.
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := c.run("search", "--search", big, "--json")
		var res struct {
			Meta struct {
				Tag int64 `json:"tag"`
			} `json:"meta"`
		}
		_ = json.Unmarshal([]byte(strings.SplitN(r.stdout, "\n", 2)[0]), &res)
		if res.Meta.Tag == tag {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store never applied the second sync (tag %d): %+v", tag, r)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// --json: the result and its metadata say truncated.
	r := c.run("search", "--search", big, "--contents", "--json")
	var res struct {
		Truncated bool `json:"truncated"`
		Stored    int  `json:"stored_bytes"`
		Meta      struct {
			Truncated bool `json:"truncated"`
			Bytes     int  `json:"bytes"`
		} `json:"meta"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(r.stdout, "\n", 2)[0]), &res); err != nil || !res.Truncated || !res.Meta.Truncated ||
		res.Stored != 256<<10 || len(res.Content) != 256<<10 || res.Meta.Bytes != b.Len() {
		t.Errorf("--contents --json after a 'still the same' run: %v truncated %v/%v, stored %d, content %d bytes, meta bytes %d",
			err, res.Truncated, res.Meta.Truncated, res.Stored, len(res.Content), res.Meta.Bytes)
	}
	if !strings.Contains(r.stdout, `"truncated":1`) {
		t.Errorf("--json summary does not count the truncated object: %s", lastLine(r.stdout))
	}

	// The text transcript: what a person sees on stdout and stderr, and the
	// exit status.
	var tr bytes.Buffer
	show := func(stdout bool, args ...string) {
		r := c.run(args...)
		fmt.Fprintf(&tr, "$ sightline %s\n", strings.Join(args, " "))
		if stdout {
			tr.WriteString(r.stdout)
		} else {
			fmt.Fprintf(&tr, "(%d bytes on stdout)\n", len(r.stdout))
		}
		for _, l := range strings.SplitAfter(r.stderr, "\n") {
			if l != "" {
				tr.WriteString("stderr: " + l)
			}
		}
		fmt.Fprintf(&tr, "exit %d\n\n", r.code)
	}
	show(false, "search", "--search", big, "--contents")
	show(true, "search", "--search", big, "--grep", "late needle")
	show(true, "search", "--search", big, "--grep", "early needle")
	show(true, "search", "--search", big, "--wordcount")
	show(true, "search", "--search", "fails-loudly", "--md5sum", "--prefix-hostnames")
	show(true, "search", "--search", "fails-loudly", "--grep", "nothing like this")
	got := regexp.MustCompile(`(results?) in [0-9.]+[µmn]?s`).ReplaceAll(tr.Bytes(), []byte("$1 in (elapsed)"))
	got = bytes.ReplaceAll(got, []byte(dir), []byte("$DIR"))
	got = regexp.MustCompile(`[0-9a-f]{32}`).ReplaceAll(got, []byte("(md5)"))
	termsafetest.Golden(t, "search_truncated.golden", got)

	// README, "Start over": a new data directory with the collector's state
	// file kept gets "still the same" for content it never had; search says
	// so and names --full, which resends it.
	c2, _ := startRun(t, c.bin)
	if r := c2.run("collect", "host", "-f", cfg); r.code != 0 || !strings.Contains(r.stdout, "same") {
		t.Fatalf("collect after the reset: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		r := c2.run("search", "--search", big, "--contents")
		if strings.Contains(r.stderr, "content not in the store") && strings.Contains(r.stderr, "--full") && r.stdout == "" && r.code == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search after a reset without the state file removed: %+v", r)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if r := c2.run("collect", "host", "-f", cfg, "--full"); r.code != 0 {
		t.Fatalf("collect --full: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		r := c2.run("search", "--search", big, "--grep", "early needle")
		if r.code == 0 && r.stdout == "early needle\n" && strings.Contains(r.stderr, "truncated") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search after collect --full: %+v", r)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
