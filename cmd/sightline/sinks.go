package main

import (
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/graph"
	hostsink "github.com/sightline/sightline/sinks/hosts"
	"github.com/sightline/sightline/sinks/index"
)

// sinkTable is every sink of the binary, in start order: each entry brings
// its configuration section and how it is opened and consumed. `sightline
// run` starts the enabled ones, `sightline replay --to-sink NAME` opens one.
// A new sink is its folder plus one line here.
var sinkTable = []sinks.Spec{
	index.Spec,
	graph.Spec,
	archive.Spec,
	hostsink.Spec,
}

// sinkSections are the configuration sections of sinkTable.
func sinkSections() []config.SectionDef {
	out := make([]config.SectionDef, len(sinkTable))
	for i, s := range sinkTable {
		out[i] = s.Section
	}
	return out
}

// sinkSpec returns the entry of sinkTable named name.
func sinkSpec(name string) (sinks.Spec, bool) {
	for _, s := range sinkTable {
		if s.Name == name {
			return s, true
		}
	}
	return sinks.Spec{}, false
}

// sinkNames lists the names of sinkTable.
func sinkNames() []string {
	out := make([]string, len(sinkTable))
	for i, s := range sinkTable {
		out[i] = s.Name
	}
	return out
}

// The sink of docs/contributing.md is copied from the page into
// testdata/guide/jsondir (guidesink_test.go).
//go:generate go test -run ^TestGuideSinkIsThePage$ -update-guide-sink .
