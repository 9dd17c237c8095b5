package graph

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
)

// SweepOptions change a sweep.
type SweepOptions struct {
	Force  bool  // ignore the share guard (an operator's decision, never a message's)
	DryRun bool  // count what would go, change nothing
	Tag    int64 // the sync to sweep for; 0 = the newest complete one (Sweep only)
	// Operator names who asked (the audit line and the sync record), e.g.
	// "alice (neo4j user ops)".
	Operator string
}

// SweepReport says what a sweep decided and did.
type SweepReport struct {
	Scope      string  `json:"scope"`
	Tag        int64   `json:"tag"`
	Result     string  `json:"result"` // swept, nothing, refused, superseded, incomplete, dry-run, already-swept
	Reason     string  `json:"reason,omitempty"`
	TotalNodes int64   `json:"total_nodes"`
	TotalRels  int64   `json:"total_relationships"`
	StaleNodes int64   `json:"stale_nodes"`
	StaleRels  int64   `json:"stale_relationships"`
	Share      float64 `json:"share"`
	// WindowShare: this sweep's and the earlier ones' within the guard's
	// window (limits.GraphSweepWindow), of what the scope held when it began.
	WindowShare  float64 `json:"window_share,omitempty"`
	MaxShare     float64 `json:"max_share"`
	DeletedNodes int64   `json:"deleted_nodes"`
	DeletedRels  int64   `json:"deleted_relationships"`
	// Released: stale claims of this scope on items another scope still
	// claims; those items are kept.
	ReleasedNodes int64   `json:"released_nodes,omitempty"`
	ReleasedRels  int64   `json:"released_relationships,omitempty"`
	Seconds       float64 `json:"seconds"`
	Forced        bool    `json:"forced,omitempty"`
	Operator      string  `json:"operator,omitempty"`
	Correlation   string  `json:"correlationid,omitempty"`
	// Dry runs only: stale nodes per label and a sample of them.
	StaleByLabel map[string]int64 `json:"stale_by_label,omitempty"`
	Sample       []string         `json:"sample,omitempty"`
}

// Sweep sweeps scope for its newest complete sync not yet swept (or
// opts.Tag): the `sightline graph sweep` command. With DryRun it only
// counts; with Force it ignores the share guard.
func (s *Sink) Sweep(ctx context.Context, scope string, opts SweepOptions) (SweepReport, error) {
	if !ValidScope(scope) {
		return SweepReport{}, fmt.Errorf("graph sink: sweep: scope %q is not valid", scope)
	}
	tag := opts.Tag
	if tag == 0 {
		rec, err := neo4j.ExecuteQuery(ctx, s.driver, `
MATCH (s:`+labelScope+` {scope: $scope})
OPTIONAL MATCH (y:`+labelSync+` {scope: $scope})
WHERE y.final AND y.applied = y.expected
  AND ((y.tag > s.completed AND y.status IN ['open', 'refused']) OR y.status = 'sweeping')
RETURN s.completed AS completed, max(y.tag) AS tag`, map[string]any{"scope": scope},
			neo4j.EagerResultTransformer, neo4j.ExecuteQueryWithDatabase(s.cfg.Database))
		if err != nil {
			return SweepReport{}, fmt.Errorf("graph sink: sweep %s: %w", scope, err)
		}
		if len(rec.Records) == 0 {
			return SweepReport{}, fmt.Errorf("%w %q", ErrUnknownScope, scope)
		}
		tag = asInt(rec.Records[0], "tag")
		if tag == 0 {
			return SweepReport{Scope: scope, Result: "nothing", Reason: ErrNothingToSwep.Error()},
				fmt.Errorf("graph sink: sweep %s: %w", scope, ErrNothingToSwep)
		}
	}
	return s.sweep(ctx, scope, tag, opts, "")
}

// sweep decides (under the scope lock) whether the sync (scope, tag) may
// sweep, then deletes stale relationships and nodes in bounded transactions,
// each taking the scope lock so writes of the scope wait for it.
func (s *Sink) sweep(ctx context.Context, scope string, tag int64, opts SweepOptions, cid string) (SweepReport, error) {
	start := time.Now()
	rep := SweepReport{Scope: scope, Tag: tag, MaxShare: s.cfg.SweepMaxShare, Forced: opts.Force, Correlation: cid,
		Operator: opts.Operator}
	sess := s.session(ctx, neo4j.AccessModeWrite)
	defer sess.Close(ctx)

	var types []string
	_, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		rep.Result, rep.Reason = "", ""
		return nil, s.decide(ctx, tx, &rep, opts, &types)
	})
	if err != nil {
		s.m.errors.Inc()
		return rep, fmt.Errorf("graph sink: sweep %s@%d: %w", scope, tag, err)
	}
	if rep.Result != statusSweeping {
		rep.Seconds = time.Since(start).Seconds()
		s.announce(ctx, rep)
		return rep, nil
	}

	params := map[string]any{"scope": scope, "tag": tag, "limit": int64(s.cfg.SweepBatch), "syncid": syncID(scope, tag)}
	lock := "MATCH (s:" + labelScope + " {scope: $scope}) SET s.lockseq = s.lockseq + 1 WITH s "
	// Each batch adds what it deleted and released to the sync's record in
	// its own transaction, so a sweep resumed after a crash reports the
	// total of every run (read back below), not only its own.
	deleteLoop := func(q, kind string) error {
		progress := `MATCH (y:` + labelSync + ` {id: $syncid})
SET y.deleted_` + kind + ` = coalesce(y.deleted_` + kind + `, 0) + $deleted,
    y.released_` + kind + ` = coalesce(y.released_` + kind + `, 0) + $released`
		for {
			res, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
				rec, err := single(ctx, tx, lock+q, params)
				if err != nil {
					return int64(0), err
				}
				n, deleted := asInt(rec, "n"), asInt(rec, "deleted")
				if n > 0 {
					if _, err := tx.Run(ctx, progress, map[string]any{"syncid": params["syncid"], "deleted": deleted,
						"released": n - deleted}); err != nil {
						return int64(0), err
					}
				}
				return n, nil
			})
			if err != nil {
				return err
			}
			if res.(int64) == 0 {
				return nil
			}
			if s.afterSweepBatch != nil {
				if err := s.afterSweepBatch(); err != nil {
					return err
				}
			}
		}
	}
	for _, t := range types {
		pat := "()-[r:" + quote(t) + "]->()"
		for _, q := range []string{ownedMatch(pat, "r", "<", "tag"), sharedMatch(pat, "r", "<", "tag")} {
			if err := deleteLoop(q+releaseClaim("r", "DELETE"), "relationships"); err != nil {
				s.m.errors.Inc()
				return rep, fmt.Errorf("graph sink: sweep %s@%d: relationships %s: %w", scope, tag, t, err)
			}
		}
	}
	// Nodes go in smaller batches: DETACH DELETE also removes their
	// remaining relationships, which count against the transaction's memory.
	params["limit"] = int64(max(1, s.cfg.SweepBatch/2))
	pat := "(n:" + labelNode + ")"
	for _, q := range []string{ownedMatch(pat, "n", "<", "tag"), sharedMatch(pat, "n", "<", "tag")} {
		if err := deleteLoop(q+releaseClaim("n", "DETACH DELETE"), "nodes"); err != nil {
			s.m.errors.Inc()
			return rep, fmt.Errorf("graph sink: sweep %s@%d: nodes: %w", scope, tag, err)
		}
	}
	rep.Result = statusSwept
	rep.Seconds = time.Since(start).Seconds()
	res, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		return single(ctx, tx, `
MATCH (s:`+labelScope+` {scope: $scope}) MATCH (y:`+labelSync+` {id: $syncid})
SET y.status = 'swept', y.swept_at = $now, y.sweep_seconds = $secs,
    y.released = coalesce(y.released_nodes, 0) + coalesce(y.released_relationships, 0),
    s.last_swept = CASE WHEN coalesce(s.last_swept, 0) < $tag THEN $tag ELSE s.last_swept END
RETURN coalesce(y.deleted_nodes, 0) AS dn, coalesce(y.deleted_relationships, 0) AS dr,
       coalesce(y.released_nodes, 0) AS rn, coalesce(y.released_relationships, 0) AS rr`,
			map[string]any{"scope": scope, "syncid": syncID(scope, tag), "tag": tag,
				"now": time.Now().UnixMilli(), "secs": rep.Seconds})
	})
	if err != nil {
		return rep, fmt.Errorf("graph sink: sweep %s@%d: record: %w", scope, tag, err)
	}
	// This run's share of the deletions feeds the counters; the report
	// says the sweep's total (every run of it).
	rec := res.(*neo4j.Record)
	before := [4]int64{rep.DeletedNodes, rep.DeletedRels, rep.ReleasedNodes, rep.ReleasedRels}
	rep.DeletedNodes, rep.DeletedRels = asInt(rec, "dn"), asInt(rec, "dr")
	rep.ReleasedNodes, rep.ReleasedRels = asInt(rec, "rn"), asInt(rec, "rr")
	s.m.deleted.WithLabelValues("node").Add(float64(rep.DeletedNodes - before[0]))
	s.m.deleted.WithLabelValues("relationship").Add(float64(rep.DeletedRels - before[1]))
	s.announce(ctx, rep)
	return rep, nil
}

// decide runs under the scope lock. It sets rep.Result to "sweeping" when
// the caller must delete, or to the reason it must not.
func (s *Sink) decide(ctx context.Context, tx neo4j.ManagedTransaction, rep *SweepReport, opts SweepOptions, types *[]string) error {
	p := map[string]any{"scope": rep.Scope, "tag": rep.Tag, "syncid": syncID(rep.Scope, rep.Tag), "now": time.Now().UnixMilli()}
	q := `MATCH (s:` + labelScope + ` {scope: $scope})`
	if !opts.DryRun {
		q += ` SET s.lockseq = s.lockseq + 1`
	}
	q += ` WITH s OPTIONAL MATCH (y:` + labelSync + ` {id: $syncid})
RETURN s.completed AS completed, coalesce(s.types, []) AS types, y IS NOT NULL AS exists,
       coalesce(y.final, false) AS final, coalesce(y.applied, 0) AS applied,
       coalesce(y.expected, -1) AS expected, coalesce(y.status, '') AS status,
       coalesce(y.force_requested, false) AS force_requested, coalesce(y.correlationid, '') AS cid,
       coalesce(s.guard_start, 0) AS guard_start, coalesce(s.guard_base, 0) AS guard_base,
       coalesce(s.guard_deleted, 0) AS guard_deleted, CASE WHEN y IS NULL THEN {} ELSE properties(y) END AS sync`
	rec, err := single(ctx, tx, q, p)
	if err != nil {
		if isNoRecord(err) {
			return fmt.Errorf("%w %q", ErrUnknownScope, rep.Scope)
		}
		return err
	}
	*types = nil
	if v, _ := rec.Get("types"); v != nil {
		for _, e := range v.([]any) {
			if t, ok := e.(string); ok && ValidIdentifier(t) {
				*types = append(*types, t)
			}
		}
	}
	completed := asInt(rec, "completed")
	if c, _ := rec.Get("cid"); rep.Correlation == "" {
		// An operator's sweep reports under the sync's own correlation ID.
		rep.Correlation, _ = c.(string)
	}
	st, _ := rec.Get("status")
	status, _ := st.(string)
	fin, _ := rec.Get("final")
	final, _ := fin.(bool)
	applied, expected := asInt(rec, "applied"), asInt(rec, "expected")
	ex, _ := rec.Get("exists")
	if e, _ := ex.(bool); !e {
		rep.Result, rep.Reason = "incomplete", "no such sync"
		return nil
	}
	setStatus := func(status string, extra string) error {
		if opts.DryRun {
			return nil
		}
		_, err := tx.Run(ctx, `MATCH (y:`+labelSync+` {id: $syncid}) SET y.status = $status, y.decided_at = $now,
  y.reason = $reason, y.stale_nodes = $sn, y.stale_relationships = $sr, y.total_nodes = $tn,
  y.total_relationships = $tr, y.share = $share`+extra,
			merge(p, map[string]any{"status": status, "reason": rep.Reason, "sn": rep.StaleNodes, "sr": rep.StaleRels,
				"tn": rep.TotalNodes, "tr": rep.TotalRels, "share": rep.Share}))
		return err
	}
	switch {
	case status == statusSwept || status == statusEmpty:
		rep.Result, rep.Reason = "already-swept", "this sync was already swept"
		return nil
	case status == statusSweeping && !opts.DryRun:
		// Resume an interrupted sweep: report the decision's counts and
		// what the earlier runs deleted, which this run adds to.
		rep.Result = statusSweeping
		if y, ok := rec.AsMap()["sync"].(map[string]any); ok {
			n := func(k string) int64 { v, _ := y[k].(int64); return v }
			rep.StaleNodes, rep.StaleRels = n("stale_nodes"), n("stale_relationships")
			rep.TotalNodes, rep.TotalRels = n("total_nodes"), n("total_relationships")
			rep.DeletedNodes, rep.DeletedRels = n("deleted_nodes"), n("deleted_relationships")
			rep.ReleasedNodes, rep.ReleasedRels = n("released_nodes"), n("released_relationships")
			rep.Share, _ = y["share"].(float64)
			rep.Reason = fmt.Sprintf("resumed after an interruption; %d nodes and %d relationships were deleted before it",
				rep.DeletedNodes, rep.DeletedRels)
		}
		return nil
	case !final:
		rep.Result, rep.Reason = "incomplete", "final marker not received"
		return nil
	case applied != expected:
		rep.Result, rep.Reason = "incomplete", fmt.Sprintf("%d of %d items applied", applied, expected)
		return nil
	case rep.Tag <= completed && status != statusSweeping:
		rep.Result = statusSuperseded
		rep.Reason = fmt.Sprintf("tag %d is not newer than the last completed sync %d", rep.Tag, completed)
		return setStatus(statusSuperseded, "")
	}
	if err := s.count(ctx, tx, rep, *types); err != nil {
		return err
	}
	if opts.DryRun {
		if err := s.sample(ctx, tx, rep); err != nil {
			return err
		}
		rep.Result = "dry-run"
		if rep.Share > s.cfg.SweepMaxShare && !opts.Force {
			rep.Reason = fmt.Sprintf("would be refused: %.1f%% of the scope is stale, over the %.1f%% limit (use --force)",
				100*rep.Share, 100*s.cfg.SweepMaxShare)
		}
		return nil
	}
	// The guard's window: what the scope's sweeps deleted since it began,
	// against what the scope held then.
	now := p["now"].(int64)
	gStart, gBase, gDeleted := asInt(rec, "guard_start"), asInt(rec, "guard_base"), asInt(rec, "guard_deleted")
	if gStart == 0 || gBase <= 0 || now-gStart >= s.cfg.SweepWindow.Milliseconds() || now < gStart {
		gStart, gBase, gDeleted = now, rep.TotalNodes+rep.TotalRels, 0
	}
	// A scope that grew since the window began may lose a share of what it
	// holds now (one sync may anyway).
	gBase = max(gBase, rep.TotalNodes+rep.TotalRels)
	stale := rep.StaleNodes + rep.StaleRels
	rep.WindowShare = rep.Share
	if gBase > 0 {
		rep.WindowShare = float64(gDeleted+stale) / float64(gBase)
	}
	if (rep.Share > s.cfg.SweepMaxShare || rep.WindowShare > s.cfg.SweepMaxShare) && !opts.Force {
		rep.Result = statusRefused
		rep.Reason = fmt.Sprintf("would delete %d nodes and %d relationships, %.1f%% of the scope, over graph.sweep_max_share %.1f%%",
			rep.StaleNodes, rep.StaleRels, 100*rep.Share, 100*s.cfg.SweepMaxShare)
		if rep.Share <= s.cfg.SweepMaxShare {
			rep.Reason = fmt.Sprintf("would delete %d nodes and %d relationships; with the %d items this scope's sweeps deleted since %s "+
				"that is %.1f%% of the %d it held then, over graph.sweep_max_share %.1f%% per %s",
				rep.StaleNodes, rep.StaleRels, gDeleted, time.UnixMilli(gStart).UTC().Format(time.RFC3339), 100*rep.WindowShare, gBase,
				100*s.cfg.SweepMaxShare, s.cfg.SweepWindow)
		}
		if fr, _ := rec.Get("force_requested"); fr == true {
			rep.Reason += "; the producer's force flag is ignored (an operator runs `sightline graph sweep --force " + rep.Scope + "`)"
		}
		return setStatus(statusRefused, "")
	}
	// This sync is now the scope's last completed one: from here on,
	// writes of older tags are skipped, so nothing swept can come back.
	extra := `, y.forced = $forced, y.forced_by = $operator WITH y MATCH (s:` + labelScope + ` {scope: $scope})
  SET s.completed = $tag, s.completed_at = $now, s.guard_start = $gstart, s.guard_base = $gbase, s.guard_deleted = $gdeleted`
	p["forced"] = opts.Force
	p["operator"] = opts.Operator
	p["gstart"], p["gbase"], p["gdeleted"] = gStart, gBase, gDeleted+stale
	if opts.Force { // the operator accepted this loss: a new window from what remains
		p["gstart"], p["gbase"], p["gdeleted"] = now, rep.TotalNodes+rep.TotalRels-stale, int64(0)
	}
	if rep.StaleNodes == 0 && rep.StaleRels == 0 {
		rep.Result = statusEmpty
		return setStatus(statusEmpty, extra)
	}
	rep.Result = statusSweeping
	return setStatus(statusSweeping, extra)
}

// count fills the scope's total and stale node and relationship counts:
// the items the scope claims, and the ones whose claim is older than the
// sync (each is deleted, or released when another scope claims it too).
func (s *Sink) count(ctx context.Context, tx neo4j.ManagedTransaction, rep *SweepReport, types []string) error {
	p := map[string]any{"scope": rep.Scope, "tag": rep.Tag, "zero": int64(0)}
	countPair := func(pat, v string) (total, stale int64, err error) {
		// One pass over the items the scope claimed last (index), one over
		// the shared ones it also claims.
		for _, q := range []string{ownedMatch(pat, v, ">", "zero"), sharedMatch(pat, v, ">", "zero")} {
			rec, err := single(ctx, tx, q+`WITH `+v+`, CASE WHEN `+v+`.syncscope = $scope THEN `+v+`.lastupdated
  ELSE head([i IN range(0, size(`+v+`.syncscopes) - 1) WHERE `+v+`.syncscopes[i] = $scope | `+v+`.synctags[i]]) END AS mine
RETURN count(*) AS total, count(CASE WHEN mine < $tag THEN 1 END) AS stale`, p)
			if err != nil {
				return 0, 0, err
			}
			total += asInt(rec, "total")
			stale += asInt(rec, "stale")
		}
		return total, stale, nil
	}
	var err error
	rep.TotalNodes, rep.StaleNodes, err = countPair("(n:"+labelNode+")", "n")
	if err != nil {
		return err
	}
	rep.TotalRels, rep.StaleRels = 0, 0
	for _, t := range types {
		tot, st, err := countPair("()-[r:"+quote(t)+"]->()", "r")
		if err != nil {
			return err
		}
		rep.TotalRels += tot
		rep.StaleRels += st
	}
	if total := rep.TotalNodes + rep.TotalRels; total > 0 {
		rep.Share = float64(rep.StaleNodes+rep.StaleRels) / float64(total)
	}
	return nil
}

// sample fills the dry-run details: stale nodes per label, and up to 20 of them.
func (s *Sink) sample(ctx context.Context, tx neo4j.ManagedTransaction, rep *SweepReport) error {
	p := map[string]any{"scope": rep.Scope, "tag": rep.Tag}
	res, err := tx.Run(ctx, `MATCH (n:`+labelNode+`) WHERE n.syncscope = $scope AND n.lastupdated < $tag
UNWIND labels(n) AS l WITH l WHERE l <> '`+labelNode+`' RETURN l, count(*) AS n ORDER BY l`, p)
	if err != nil {
		return err
	}
	recs, err := res.Collect(ctx)
	if err != nil {
		return err
	}
	rep.StaleByLabel = map[string]int64{}
	for _, r := range recs {
		l, _ := r.Get("l")
		rep.StaleByLabel[fmt.Sprint(l)] = asInt(r, "n")
	}
	res, err = tx.Run(ctx, `MATCH (n:`+labelNode+`) WHERE n.syncscope = $scope AND n.lastupdated < $tag
WITH n LIMIT 20 RETURN [l IN labels(n) WHERE l <> '`+labelNode+`'][0] + ':' + n.id AS k`, p)
	if err != nil {
		return err
	}
	recs, err = res.Collect(ctx)
	if err != nil {
		return err
	}
	for _, r := range recs {
		k, _ := r.Get("k")
		rep.Sample = append(rep.Sample, fmt.Sprint(k))
	}
	return nil
}

func (s *Sink) announce(ctx context.Context, rep SweepReport) {
	s.m.sweeps.WithLabelValues(rep.Result).Inc()
	log := s.log.With("scope", rep.Scope, "tag", rep.Tag, "result", rep.Result, "correlation_id", rep.Correlation,
		"stale_nodes", rep.StaleNodes, "stale_relationships", rep.StaleRels, "share", rep.Share)
	switch rep.Result {
	case statusRefused, "incomplete":
		log.Warn("graph sink: sync sweeps nothing: "+rep.Reason, "max_share", rep.MaxShare)
	case statusSuperseded:
		log.Info("graph sink: sync sweeps nothing: " + rep.Reason)
	case statusSwept:
		log.Info("graph sink: sync swept", "deleted_nodes", rep.DeletedNodes,
			"deleted_relationships", rep.DeletedRels, "released_nodes", rep.ReleasedNodes,
			"released_relationships", rep.ReleasedRels, "seconds", rep.Seconds, "forced", rep.Forced)
	default:
		log.Info("graph sink: sweep", "reason", rep.Reason)
	}
	if rep.Forced && rep.Result != "dry-run" {
		// The audit line: who forced a sweep of what, and what it deleted.
		s.log.Warn("audit: forced graph sweep", "audit", true, "action", "graph sweep --force",
			"operator", rep.Operator, "scope", rep.Scope, "tag", rep.Tag, "result", rep.Result,
			"deleted_nodes", rep.DeletedNodes, "deleted_relationships", rep.DeletedRels,
			"released_nodes", rep.ReleasedNodes, "released_relationships", rep.ReleasedRels, "reason", rep.Reason)
	}
	if s.report != nil {
		s.report(ctx, rep)
	}
}

func syncID(scope string, tag int64) string { return (&part{scope: scope, tag: tag}).syncID() }

func merge(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func isNoRecord(err error) bool {
	var u *neo4j.UsageError
	return errors.As(err, &u)
}
