package main

import (
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/config"
)

func TestParseStages(t *testing.T) {
	cfg, err := config.Load("", nil, []string{"graph.enabled=false"}, sinkSections()...)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseStages([]string{"processor", "index"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !f.runs("processor") || !f.runs("index") || f.runs("archive") || f.runs("graph") {
		t.Errorf("filter %v", f)
	}
	if f, _ := parseStages(nil, cfg); !f.runs("archive") {
		t.Error("no --stages must run every stage")
	}
	for list, want := range map[string]string{
		"processor,indx": `unknown stage "indx"`,
		"graph":          "stage graph is not enabled (graph.enabled)",
		",":              "no stage named",
	} {
		if _, err := parseStages(strings.Split(list, ","), cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--stages %s: %v, want %q", list, err, want)
		}
	}
}
