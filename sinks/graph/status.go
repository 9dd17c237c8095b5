package graph

import (
	"context"
	"fmt"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
)

// ScopeStatus is one line of `sightline graph status`.
type ScopeStatus struct {
	Scope         string       `json:"scope"`
	LastCompleted int64        `json:"last_completed_tag"`
	CompletedAt   int64        `json:"completed_at_ms,omitempty"`
	Nodes         int64        `json:"nodes"`
	Relationships int64        `json:"relationships"`
	Labels        []string     `json:"labels"`
	Types         []string     `json:"types"`
	Syncs         []SyncStatus `json:"syncs"` // newest first: the last few, and every open or refused one
	// Frozen: the last completed tag lies ahead of the server's clock (by
	// more than frozenGrace), so no real sync tagged now can update or
	// sweep the scope until the clock passes it (at most
	// graph.max_tag_skew) or graph scope reset.
	Frozen bool `json:"frozen,omitempty"`
}

// frozenGrace is how far ahead of the server's clock a scope's last
// complete tag may be before status calls the scope frozen: the clocks of
// producers and of this server differ by a little.
const frozenGrace = 10 * time.Second

// SyncStatus is the bookkeeping of one (scope, tag).
type SyncStatus struct {
	Tag      int64   `json:"tag"`
	Status   string  `json:"status"`
	Final    bool    `json:"final"`
	Parts    int     `json:"parts"`
	Applied  int64   `json:"applied"`
	Expected int64   `json:"expected"` // -1 until the final marker arrived
	Reason   string  `json:"reason,omitempty"`
	Share    float64 `json:"share,omitempty"`
	Deleted  int64   `json:"deleted,omitempty"`
	Started  int64   `json:"started_ms"`
	Updated  int64   `json:"updated_ms,omitempty"`
}

// Status lists scopes (all, or the ones named) with their last complete
// sync, node and relationship counts, and recent, open or refused syncs.
func (s *Sink) Status(ctx context.Context, scopes ...string) ([]ScopeStatus, error) {
	sess := s.session(ctx, neo4j.AccessModeRead)
	defer sess.Close(ctx)
	out, err := sess.ExecuteRead(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		res, err := tx.Run(ctx, `MATCH (s:`+labelScope+`) WHERE size($scopes) = 0 OR s.scope IN $scopes
RETURN s.scope AS scope, s.completed AS completed, s.completed_at AS completed_at,
       coalesce(s.labels, []) AS labels, coalesce(s.types, []) AS types ORDER BY scope`,
			map[string]any{"scopes": toAny(scopes)})
		if err != nil {
			return nil, err
		}
		recs, err := res.Collect(ctx)
		if err != nil {
			return nil, err
		}
		var list []ScopeStatus
		for _, r := range recs {
			sc, _ := r.Get("scope")
			st := ScopeStatus{Scope: fmt.Sprint(sc), LastCompleted: asInt(r, "completed"), CompletedAt: asInt(r, "completed_at"),
				Frozen: asInt(r, "completed") > time.Now().Add(frozenGrace).UnixMilli(),
				Labels: strs(r, "labels"), Types: strs(r, "types")}
			p := map[string]any{"scope": st.Scope}
			rec, err := single(ctx, tx, `MATCH (n:`+labelNode+`) WHERE n.syncscope = $scope AND n.lastupdated > 0 RETURN count(n) AS n`, p)
			if err != nil {
				return nil, err
			}
			st.Nodes = asInt(rec, "n")
			for _, t := range st.Types {
				if !ValidIdentifier(t) {
					continue
				}
				rec, err := single(ctx, tx, `MATCH ()-[r:`+quote(t)+`]->() WHERE r.syncscope = $scope AND r.lastupdated > 0 RETURN count(r) AS n`, p)
				if err != nil {
					return nil, err
				}
				st.Relationships += asInt(rec, "n")
			}
			res, err := tx.Run(ctx, `MATCH (y:`+labelSync+` {scope: $scope})
WITH y ORDER BY y.tag DESC
WITH collect(y) AS ys
UNWIND range(0, size(ys) - 1) AS i
WITH ys[i] AS y, i WHERE i < 5 OR y.status IN ['open', 'refused', 'sweeping']
RETURN y.tag AS tag, y.status AS status, y.final AS final, size(y.parts) AS parts, y.applied AS applied,
       coalesce(y.expected, -1) AS expected, coalesce(y.reason, '') AS reason, coalesce(y.share, 0.0) AS share,
       coalesce(y.deleted_nodes, 0) + coalesce(y.deleted_relationships, 0) AS deleted,
       y.started AS started, coalesce(y.updated, 0) AS updated
ORDER BY tag DESC`, p)
			if err != nil {
				return nil, err
			}
			ys, err := res.Collect(ctx)
			if err != nil {
				return nil, err
			}
			for _, y := range ys {
				status, _ := y.Get("status")
				final, _ := y.Get("final")
				reason, _ := y.Get("reason")
				share, _ := y.Get("share")
				ss := SyncStatus{Tag: asInt(y, "tag"), Parts: int(asInt(y, "parts")), Applied: asInt(y, "applied"),
					Expected: asInt(y, "expected"), Deleted: asInt(y, "deleted"), Started: asInt(y, "started"),
					Updated: asInt(y, "updated")}
				ss.Status, _ = status.(string)
				ss.Final, _ = final.(bool)
				ss.Reason, _ = reason.(string)
				ss.Share, _ = share.(float64)
				st.Syncs = append(st.Syncs, ss)
			}
			list = append(list, st)
		}
		return list, nil
	})
	if err != nil {
		return nil, fmt.Errorf("graph sink: status: %w", err)
	}
	list, _ := out.([]ScopeStatus)
	return list, nil
}

// DeleteScope removes every node and relationship of a scope and its
// bookkeeping, in bounded transactions (tests and `graph sweep` cleanup).
func (s *Sink) DeleteScope(ctx context.Context, scope string) error {
	for _, q := range []string{
		"MATCH (n:" + labelNode + ") WHERE n.syncscope = $scope AND n.lastupdated > 0 WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS n",
		"MATCH (n:" + labelSync + " {scope: $scope}) WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS n",
		"MATCH (n:" + labelScope + " {scope: $scope}) WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS n",
	} {
		for {
			res, err := neo4j.ExecuteQuery(ctx, s.driver, q, map[string]any{"scope": scope},
				neo4j.EagerResultTransformer, neo4j.ExecuteQueryWithDatabase(s.cfg.Database))
			if err != nil {
				return fmt.Errorf("graph sink: delete scope %s: %w", scope, err)
			}
			if len(res.Records) == 0 || asInt(res.Records[0], "n") == 0 {
				break
			}
		}
	}
	return nil
}

func strs(r *neo4j.Record, key string) []string {
	v, _ := r.Get(key)
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
