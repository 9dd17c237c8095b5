package graph

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// SweepEventType is the type of the event every sweep decision publishes
// (subject sightline.events.log.graph_sweep).
const SweepEventType = "log.graph_sweep"

// SweepEvent is the conformed event of one sweep decision (swept, nothing,
// refused, superseded, incomplete, already-swept): a log event carrying the
// sync's correlation ID and the report's figures, so the decision is
// indexed, archived and shown in the sync's trace. Its id is derived from
// (scope, tag, result, forced): a redelivered decision is deduplicated.
func SweepEvent(rep SweepReport, now time.Time) *stage.Message {
	level := "info"
	if rep.Result == statusRefused || rep.Result == "incomplete" || rep.Forced {
		level = "warn"
	}
	msg := fmt.Sprintf("graph sweep of %s@%d: %s", rep.Scope, rep.Tag, rep.Result)
	if rep.Reason != "" {
		msg += ": " + rep.Reason
	}
	data := map[string]any{
		"message": msg, "level": level, "service": "graph",
		"scope": rep.Scope, "tag": rep.Tag, "result": rep.Result,
		"stale_nodes": rep.StaleNodes, "stale_relationships": rep.StaleRels, "share": rep.Share,
		"max_share": rep.MaxShare, "deleted_nodes": rep.DeletedNodes, "deleted_relationships": rep.DeletedRels,
		"released_nodes": rep.ReleasedNodes, "released_relationships": rep.ReleasedRels, "seconds": rep.Seconds,
	}
	if rep.Reason != "" {
		data["reason"] = rep.Reason
	}
	if rep.Forced {
		data["forced"], data["operator"] = true, rep.Operator
	}
	b, _ := json.Marshal(data)
	sum := sha256.Sum256([]byte(rep.Scope + "\x00" + strconv.FormatInt(rep.Tag, 10) + "\x00" + rep.Result + "\x00" + strconv.FormatBool(rep.Forced)))
	cid := rep.Correlation
	if cid == "" {
		cid = "graph-sweep-" + hex.EncodeToString(sum[:8])
	}
	ev := &schemas.Event{
		SpecVersion: schemas.SpecVersion, ID: "graph-sweep-" + hex.EncodeToString(sum[:16]),
		Source: "sightline/graph", Type: SweepEventType, Time: now.UTC(), DataContentType: "application/json",
		CorrelationID: cid, SyncScope: rep.Scope, SyncTag: strconv.FormatInt(rep.Tag, 10), Data: b,
	}
	return stage.EventMessage(ev, "log", "graph_sweep", "")
}
