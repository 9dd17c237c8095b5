package graph

import (
	"bytes"
	"testing"

	"github.com/sightline/sightline/internal/termsafe/termsafetest"
)

// Scope names, labels, types and reasons come from producers' messages;
// `graph status` and `graph sweep` escape them.
func TestPrintersEscapeHostileData(t *testing.T) {
	h := termsafetest.Hostile
	var out bytes.Buffer
	err := PrintStatus(&out, []ScopeStatus{{Scope: "scope" + h, LastCompleted: 7, CompletedAt: 1767323045000, Nodes: 3, Relationships: 2,
		Labels: []string{"Host" + h}, Types: []string{"RUNS" + h},
		Syncs: []SyncStatus{{Tag: 7, Status: "complete" + h, Final: false, Parts: 1, Applied: 3, Expected: -1, Reason: "reason " + h, Deleted: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	PrintReport(&out, SweepReport{Scope: "scope" + h, Tag: 7, Result: "dry-run", Reason: "why " + h, TotalNodes: 3, StaleNodes: 1,
		StaleByLabel: map[string]int64{"Host" + h: 1}, Sample: []string{"Host:" + h}, DeletedNodes: 1})
	PrintReset(&out, ResetReport{Scope: "scope" + h, DryRun: true, Nodes: 1})
	termsafetest.CheckSafe(t, out.Bytes())
	termsafetest.Golden(t, "hostile_print.golden", out.Bytes())
}
