package config_test

import (
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/config"
)

// A YAML syntax error names the line the mistake is on, not the line of
// the construct around it.
func TestYAMLSyntaxErrorOnItsLine(t *testing.T) {
	cases := []struct{ body, want string }{
		{"processor:\n  batch: [1\n", "line 2"},
		{"nats:\n  listen: a\n\tfoo: b\n", "line 3"},
		{"processor:\n  batch: 3\n   lanes: 2\n", "line 3"},
		{"log:\n  level: info\nprocessor: a: b\n", "line 3"},
		{"log:\n  level: \"info\n", "line 2"},
		{"a:\n  b: [1,\n    2]\n  c: : x\n", "line 4"},
	}
	for _, tc := range cases {
		_, err := load(write(t, tc.body), nil, nil)
		if err == nil {
			t.Errorf("%q: no error", tc.body)
			continue
		}
		if !strings.Contains(err.Error(), tc.want+":") {
			t.Errorf("%q: want %q in %v", tc.body, tc.want, err)
		}
	}
}

// A variable an earlier release read names the key that replaces it and
// leaves every command working (it is not applied: its value may not mean
// the same thing).
func TestRenamedVariablesWarn(t *testing.T) {
	c, err := load("", []string{"SIGHTLINE_NEO4J_URI=bolt://x:7687", "SIGHTLINE_NEO4J_PASSWORD=pw", "SIGHTLINE_S3_BUCKET=b", "SIGHTLINE_LOG_LEVEL=debug"}, nil)
	if err != nil {
		t.Fatalf("an old variable fails the command: %v", err)
	}
	w := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{
		"SIGHTLINE_NEO4J_URI is no longer read; set SIGHTLINE_GRAPH_URI",
		"SIGHTLINE_NEO4J_PASSWORD is no longer read; set SIGHTLINE_GRAPH_PASSWORD",
		"SIGHTLINE_S3_BUCKET is no longer read; set SIGHTLINE_ARCHIVE_URL (archive.url (s3://bucket/prefix)) instead",
	} {
		if !strings.Contains(w, want) {
			t.Errorf("want %q in warnings:\n%s", want, w)
		}
	}
	if strings.Contains(w, "pw") {
		t.Errorf("a warning prints the value: %s", w)
	}
	if c.Log.Level != "debug" {
		t.Errorf("the other variables were not applied: %q", c.Log.Level)
	}
	// An unknown variable is still an error.
	if _, err := load("", []string{"SIGHTLINE_NEO4J_URL=x"}, nil); err == nil {
		t.Error("SIGHTLINE_NEO4J_URL (never read by any release) is accepted")
	}
}

// config show masks every password inside a URL, whatever it contains.
func TestShowMasksPasswordsWithURLSpecials(t *testing.T) {
	for _, pw := range []string{"pa/ss", "pa#ss", "pa?ss", "pa%ss", "12/34", "p@ss", "a:b"} {
		u := "nats://sightline:" + pw + "@127.0.0.1:4222"
		c, err := load("", nil, []string{"nats.urls=" + u})
		if err != nil {
			t.Fatalf("%s: %v", pw, err)
		}
		y, err := c.YAML()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(y), pw) {
			t.Errorf("password %q shown:\n%s", pw, y)
		}
		if !strings.Contains(string(y), "nats://sightline:") || !strings.Contains(string(y), "@127.0.0.1:4222") {
			t.Errorf("password %q: the URL is not kept around the mask:\n%s", pw, y)
		}
		if got := config.RedactURL(u); strings.Contains(got, pw) {
			t.Errorf("RedactURL(%q) = %q", u, got)
		}
	}
	for _, keep := range []string{"http://127.0.0.1:9200", "http://host/a@b", "s3://bucket/prefix"} {
		if got := config.RedactURL(keep); got != keep {
			t.Errorf("RedactURL(%q) = %q, want it unchanged", keep, got)
		}
	}
}
