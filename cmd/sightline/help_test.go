package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestHelpTexts: every command a person can run has an example, no help text
// uses words a reader of the repository cannot look up, and no flag usage
// has backquotes (pflag takes a `word` in a usage for the value's name, so
// "query a running `sightline run`" rendered as "--api sightline run").
func TestHelpTexts(t *testing.T) {
	jargon := regexp.MustCompile(`(?i)\b(seed|mixin|the lead|issue \d+)\b`)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		// Group commands (collect, config, graph, inventory, hosts) too:
		// `sightline graph --help` is where a newcomer looks first.
		if (c.Runnable() || c.HasSubCommands()) && strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: no example", c.CommandPath())
		}
		text := c.Short + "\n" + c.Long + "\n" + c.Example
		check := func(f *pflag.Flag) {
			text += "\n" + f.Usage
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: backquotes in the usage mangle the help: %q", c.CommandPath(), f.Name, f.Usage)
			}
		}
		c.LocalFlags().VisitAll(check)
		if m := jargon.FindString(text); m != "" {
			t.Errorf("%s: help says %q", c.CommandPath(), m)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	root := newRootCmd()
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
		if strings.Contains(f.Usage, "`") {
			t.Errorf("--%s: backquotes in the usage: %q", f.Name, f.Usage)
		}
	})
	walk(root)

	// The global --api renders as a URL flag in every command's help.
	var out strings.Builder
	root.SetOut(&out)
	root.SetArgs([]string{"trace", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`--api string\s+HTTP API of a running sightline run`).MatchString(out.String()) {
		t.Errorf("trace --help does not show --api properly:\n%s", out.String())
	}
}
