package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sightline/sightline/internal/config"
)

// stageNames are the stages `sightline run --stages` can name: the
// processor and every sink of sinkTable.
func stageNames() []string { return append([]string{"processor"}, sinkNames()...) }

// stageFilter is the set of stages a worker runs; nil runs every enabled
// stage.
type stageFilter map[string]bool

// parseStages checks a --stages list against the stages the binary has and
// the configuration enables.
func parseStages(list []string, cfg *config.Config) (stageFilter, error) {
	if len(list) == 0 {
		return nil, nil
	}
	f := stageFilter{}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(stageNames(), s) {
			return nil, fmt.Errorf("--stages: unknown stage %q (want some of %s)", s, strings.Join(stageNames(), ", "))
		}
		enabled := cfg.Processor.Enabled
		if s != "processor" {
			sec := cfg.Section(s)
			enabled = sec != nil && sec.IsEnabled()
		}
		if !enabled {
			return nil, fmt.Errorf("--stages: stage %s is not enabled (%s.enabled)", s, s)
		}
		f[s] = true
	}
	if len(f) == 0 {
		return nil, fmt.Errorf("--stages: no stage named")
	}
	return f, nil
}

// runs reports whether the worker runs stage name.
func (f stageFilter) runs(name string) bool { return f == nil || f[name] }
