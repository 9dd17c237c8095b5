package graph

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/sightline/sightline/internal/termsafe"
)

// ResetOptions change a scope reset.
type ResetOptions struct {
	DryRun   bool   // say what would change, change nothing
	Operator string // who asked (audit line)
}

// ResetReport says what a scope reset found and did.
type ResetReport struct {
	Scope string `json:"scope"`
	// Limit is the newest acceptable tag (the server's clock at the
	// reset); tags above it are "in the future".
	Limit        int64   `json:"limit"`
	OldCompleted int64   `json:"old_completed"`
	Completed    int64   `json:"completed"`    // the scope's last completed tag after the reset
	FutureSyncs  []int64 `json:"future_syncs"` // sync records removed
	Retag        int64   `json:"retag"`        // the tag future claims are lowered to
	Nodes        int64   `json:"nodes"`        // nodes whose claim by the scope is in the future
	Rels         int64   `json:"relationships"`
	DryRun       bool    `json:"dry_run,omitempty"`
	Done         bool    `json:"done"`
	Operator     string  `json:"operator,omitempty"`
}

// ResetScope recovers a scope frozen by a sync whose tag lies in the
// future (ahead of the server's clock): it removes those syncs' records,
// sets the scope's last completed tag back to its newest swept sync within
// the limit, and lowers the scope's future claims on nodes and
// relationships to that tag, so the next real sync updates them and sweeps
// what it no longer has. The `sightline graph scope reset` command.
func (s *Sink) ResetScope(ctx context.Context, scope string, opts ResetOptions) (ResetReport, error) {
	if !ValidScope(scope) {
		return ResetReport{}, fmt.Errorf("graph sink: reset: scope %q is not valid", scope)
	}
	rep := ResetReport{Scope: scope, Limit: time.Now().UnixMilli(), DryRun: opts.DryRun, Operator: opts.Operator}
	p := map[string]any{"scope": scope, "limit": rep.Limit}
	sess := s.session(ctx, neo4j.AccessModeWrite)
	defer sess.Close(ctx)
	var types []string
	_, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		q := `MATCH (s:` + labelScope + ` {scope: $scope})`
		if !opts.DryRun {
			q += ` SET s.lockseq = s.lockseq + 1`
		}
		q += ` WITH s OPTIONAL MATCH (y:` + labelSync + ` {scope: $scope})
RETURN s.completed AS completed, coalesce(s.types, []) AS types,
       [t IN collect(y.tag) WHERE t > $limit] AS future,
       coalesce(max(CASE WHEN y.tag <= $limit AND y.status IN ['swept', 'nothing', 'sweeping'] THEN y.tag END), 0) AS good`
		rec, err := single(ctx, tx, q, p)
		if err != nil {
			if isNoRecord(err) {
				return nil, fmt.Errorf("%w %q", ErrUnknownScope, scope)
			}
			return nil, err
		}
		rep.OldCompleted, rep.Completed = asInt(rec, "completed"), asInt(rec, "good")
		if rep.OldCompleted <= rep.Limit {
			rep.Completed = rep.OldCompleted // not frozen by the completed tag itself
		}
		rep.Retag = max(rep.Completed, 1)
		rep.FutureSyncs = nil
		if v, _ := rec.Get("future"); v != nil {
			for _, e := range v.([]any) {
				if t, ok := e.(int64); ok {
					rep.FutureSyncs = append(rep.FutureSyncs, t)
				}
			}
		}
		types = strs(rec, "types")
		rep.Nodes, rep.Rels = 0, 0
		for _, m := range []func(string, string, string, string) string{ownedMatch, sharedMatch} {
			r, err := single(ctx, tx, m("(n:"+labelNode+")", "n", ">", "limit")+"RETURN count(*) AS n", p)
			if err != nil {
				return nil, err
			}
			rep.Nodes += asInt(r, "n")
			for _, t := range types {
				if !ValidIdentifier(t) {
					continue
				}
				r, err := single(ctx, tx, m("()-[r:"+quote(t)+"]->()", "r", ">", "limit")+"RETURN count(*) AS n", p)
				if err != nil {
					return nil, err
				}
				rep.Rels += asInt(r, "n")
			}
		}
		if opts.DryRun {
			return nil, nil
		}
		_, err = tx.Run(ctx, `MATCH (s:`+labelScope+` {scope: $scope}) SET s.completed = $completed, s.reset_at = $now,
  s.reset_by = $operator
WITH s OPTIONAL MATCH (y:`+labelSync+` {scope: $scope}) WHERE y.tag > $limit DELETE y`,
			merge(p, map[string]any{"completed": rep.Completed, "now": time.Now().UnixMilli(), "operator": opts.Operator}))
		return nil, err
	})
	if err != nil {
		return rep, fmt.Errorf("graph sink: reset %s: %w", scope, err)
	}
	if opts.DryRun {
		return rep, nil
	}
	p["retag"], p["batch"] = rep.Retag, int64(s.cfg.SweepBatch)
	lock := "MATCH (s:" + labelScope + " {scope: $scope}) SET s.lockseq = s.lockseq + 1 WITH s "
	loop := func(q string) error {
		for {
			n, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
				rec, err := single(ctx, tx, lock+q, p)
				if err != nil {
					return int64(0), err
				}
				return asInt(rec, "n"), nil
			})
			if err != nil {
				return fmt.Errorf("graph sink: reset %s: %w", scope, err)
			}
			if n.(int64) == 0 {
				return nil
			}
		}
	}
	for _, m := range []func(string, string, string, string) string{ownedMatch, sharedMatch} {
		for _, t := range types {
			if ValidIdentifier(t) {
				if err := loop(m("()-[r:"+quote(t)+"]->()", "r", ">", "limit") + retagClaim("r")); err != nil {
					return rep, err
				}
			}
		}
		if err := loop(m("(n:"+labelNode+")", "n", ">", "limit") + retagClaim("n")); err != nil {
			return rep, err
		}
	}
	rep.Done = true
	s.log.Warn("audit: graph scope reset", "audit", true, "action", "graph scope reset", "operator", opts.Operator,
		"scope", scope, "old_completed", rep.OldCompleted, "completed", rep.Completed, "future_syncs", rep.FutureSyncs,
		"retagged_nodes", rep.Nodes, "retagged_relationships", rep.Rels)
	return rep, nil
}

// PrintReset writes a reset report (or what a dry run would do).
func PrintReset(w io.Writer, r ResetReport) {
	verb := map[bool]string{true: "would", false: "did"}[r.DryRun]
	fmt.Fprintf(w, "scope %s: tags above %d (now, by this server's clock) are in the future\n", termsafe.String(r.Scope), r.Limit)
	if len(r.FutureSyncs) == 0 && r.Nodes+r.Rels == 0 && r.OldCompleted == r.Completed {
		fmt.Fprintln(w, "  nothing in the future: the scope is not frozen, nothing to reset")
		return
	}
	fmt.Fprintf(w, "  %s set the last completed tag from %d to %d\n", verb, r.OldCompleted, r.Completed)
	fmt.Fprintf(w, "  %s remove %d future sync record(s) %v\n", verb, len(r.FutureSyncs), r.FutureSyncs)
	fmt.Fprintf(w, "  %s lower the scope's future tag on %d nodes and %d relationships to %d\n", verb, r.Nodes, r.Rels, r.Retag)
	if r.DryRun {
		fmt.Fprintln(w, "  the next sync then updates what it carries and sweeps the rest; rerun without --dry-run to apply")
	}
}
