package graph

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sightline/sightline/internal/termsafe"
)

// PrintStatus writes `sightline graph status` as a table: one line per
// scope, then its syncs (newest first) indented below it. Scopes, labels,
// types and reasons come from producers: they are escaped (internal/termsafe).
func PrintStatus(w io.Writer, list []ScopeStatus) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tLAST COMPLETE TAG\tCOMPLETED AT\tNODES\tRELATIONSHIPS\tLABELS / TYPES")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s / %s\n", termsafe.String(s.Scope), s.LastCompleted, msTime(s.CompletedAt),
			s.Nodes, s.Relationships, strings.Join(termsafe.Strings(s.Labels), ","), strings.Join(termsafe.Strings(s.Types), ","))
		if s.Frozen {
			fmt.Fprintf(tw, "  frozen: the last complete tag is in the future; see `sightline graph scope reset --dry-run %s`\t\t\t\t\n",
				termsafe.String(s.Scope))
		}
		for _, y := range s.Syncs {
			exp := "?"
			if y.Expected >= 0 {
				exp = fmt.Sprint(y.Expected)
			}
			line := fmt.Sprintf("  sync %d\t%s\tparts %d, items %d/%s", y.Tag, termsafe.String(y.Status), y.Parts, y.Applied, exp)
			if !y.Final {
				line += ", final marker missing"
			}
			switch {
			case y.Deleted > 0 && y.Status == statusSweeping:
				// In progress, or interrupted (resumed by the final part's
				// redelivery or `sightline graph sweep`).
				line += fmt.Sprintf(", deleted %d so far", y.Deleted)
			case y.Deleted > 0:
				line += fmt.Sprintf(", swept %d", y.Deleted)
			}
			if y.Reason != "" {
				line += ": " + termsafe.String(y.Reason)
			}
			fmt.Fprintf(tw, "%s\t\t\t\t\n", line)
		}
	}
	return tw.Flush()
}

// PrintReport writes a sweep report in one human-readable paragraph.
func PrintReport(w io.Writer, r SweepReport) {
	fmt.Fprintf(w, "scope %s, sync %d: %s\n", termsafe.String(r.Scope), r.Tag, termsafe.String(r.Result))
	if r.Reason != "" {
		fmt.Fprintf(w, "  %s\n", termsafe.String(r.Reason))
	}
	if r.TotalNodes+r.TotalRels > 0 {
		fmt.Fprintf(w, "  stale: %d of %d nodes, %d of %d relationships (%.1f%% of the scope; limit %.1f%%)\n",
			r.StaleNodes, r.TotalNodes, r.StaleRels, r.TotalRels, 100*r.Share, 100*r.MaxShare)
	}
	for l, n := range r.StaleByLabel {
		fmt.Fprintf(w, "  would delete %d %s nodes\n", n, termsafe.String(l))
	}
	for _, k := range r.Sample {
		fmt.Fprintf(w, "    %s\n", termsafe.String(k))
	}
	if r.DeletedNodes+r.DeletedRels > 0 {
		fmt.Fprintf(w, "  deleted: %d nodes, %d relationships in %.2fs\n", r.DeletedNodes, r.DeletedRels, r.Seconds)
	}
	if r.ReleasedNodes+r.ReleasedRels > 0 {
		fmt.Fprintf(w, "  kept (still claimed by another scope): %d nodes, %d relationships\n", r.ReleasedNodes, r.ReleasedRels)
	}
}

func msTime(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}
