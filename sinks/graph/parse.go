package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

var (
	identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	scopeRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254}$`)
)

// reservedProps are written by the sink itself; a part may not set them.
var reservedProps = map[string]bool{
	"id": true, "lastupdated": true, "firstseen": true, "syncscope": true, "correlationid": true,
	"syncscopes": true, "synctags": true, "syncshared": true,
}

// internalLabels are the sink's own bookkeeping labels; a part may not use them.
var internalLabels = map[string]bool{
	labelNode: true, labelScope: true, labelSync: true,
}

const (
	labelNode  = "SightlineNode"
	labelScope = "SightlineScope"
	labelSync  = "SightlineSync"
	maxKeyLen  = 1024
)

// ValidIdentifier reports whether s may be used as a label, relationship
// type or property name (they are interpolated into Cypher, backtick-quoted,
// so only plain identifiers are allowed).
func ValidIdentifier(s string) bool { return identRe.MatchString(s) }

// ValidScope reports whether s is a valid sync scope.
func ValidScope(s string) bool { return scopeRe.MatchString(s) }

// quote backtick-quotes an identifier already checked by ValidIdentifier.
func quote(s string) string { return "`" + s + "`" }

// nodeGroup is the set of nodes of one UNWIND statement: same label, same
// extra labels.
type nodeGroup struct {
	label  string
	extras []string
	rows   []any
}

// relGroup is the set of relationships of one UNWIND statement: same type,
// same endpoint labels.
type relGroup struct {
	typ, from, to string
	rows          []any
}

// part is one parsed snapshot message.
type part struct {
	scope   string
	tag     int64
	num     int
	final   bool
	count   int
	force   bool
	cid     string
	items   int // nodes + relationships + objects
	nodes   []*nodeGroup
	rels    []*relGroup
	labels  []string // every label used (for constraints and status)
	types   []string // every relationship type used
	msgID   string
	objects int
}

func (p *part) syncID() string { return p.scope + "@" + strconv.FormatInt(p.tag, 10) }

// parse decodes and checks one conformed snapshot event. A nil part with a
// nil error means the message is not for this sink (host objects only).
func parse(m *stage.Message) (*part, error) {
	var ev schemas.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return nil, stage.Reject("not_json", "graph sink: message is not a conformed CloudEvent", err)
	}
	if ev.Kind() != schemas.KindSnapshot {
		return nil, stage.Rejectf("wrong_kind", "graph sink: event type %q is not a snapshot", ev.Type)
	}
	var d schemas.SnapshotData
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return nil, stage.Reject("schema", "graph sink: snapshot data does not decode", err)
	}
	if d.Scope == "" {
		d.Scope = ev.SyncScope
	}
	if d.Tag == 0 && ev.SyncTag != "" {
		d.Tag, _ = strconv.ParseInt(ev.SyncTag, 10, 64)
	}
	if len(d.Nodes) == 0 && len(d.Relationships) == 0 && len(d.Objects) > 0 {
		return nil, nil
	}
	if !ValidScope(d.Scope) {
		return nil, stage.Rejectf("schema", "graph sink: scope %q is not valid (letters, digits and _.:/@-, up to 255)", trunc(d.Scope))
	}
	if d.Tag < 1 || d.Tag > 1<<53-1 {
		return nil, stage.Rejectf("schema", "graph sink: tag %d of scope %s must be a positive integer", d.Tag, d.Scope)
	}
	if d.Part < 0 || d.Count < 0 {
		return nil, stage.Rejectf("schema", "graph sink: part %d / count %d of scope %s must not be negative", d.Part, d.Count, d.Scope)
	}
	p := &part{
		scope: d.Scope, tag: d.Tag, num: d.Part, final: d.Final, count: d.Count, force: d.Force,
		cid:     ev.CorrelationID,
		items:   d.Items(),
		objects: len(d.Objects),
		msgID:   ev.ID,
	}
	if p.cid == "" {
		p.cid = m.Header.Get(stage.HeaderCorrelationID)
	}
	labels := map[string]bool{}
	types := map[string]bool{}
	ng := map[string]*nodeGroup{}
	for i, n := range d.Nodes {
		if err := checkIdent("node", i, "label", n.Label); err != nil {
			return nil, err
		}
		extras := make([]string, 0, len(n.Labels))
		for _, l := range n.Labels {
			if l == n.Label {
				continue
			}
			if err := checkIdent("node", i, "labels", l); err != nil {
				return nil, err
			}
			extras = append(extras, l)
		}
		sort.Strings(extras)
		extras = dedup(extras)
		if err := checkKey("node", i, n.Key); err != nil {
			return nil, err
		}
		props, err := convertProps("node", i, n.Properties)
		if err != nil {
			return nil, err
		}
		gk := n.Label + ":" + strings.Join(extras, ":")
		g := ng[gk]
		if g == nil {
			g = &nodeGroup{label: n.Label, extras: extras}
			ng[gk] = g
			p.nodes = append(p.nodes, g)
		}
		g.rows = append(g.rows, map[string]any{"key": n.Key, "props": props})
		labels[n.Label] = true
		for _, l := range extras {
			labels[l] = true
		}
	}
	rg := map[string]*relGroup{}
	for i, r := range d.Relationships {
		if err := checkIdent("relationship", i, "type", r.Type); err != nil {
			return nil, err
		}
		if err := checkIdent("relationship", i, "from.label", r.From.Label); err != nil {
			return nil, err
		}
		if err := checkIdent("relationship", i, "to.label", r.To.Label); err != nil {
			return nil, err
		}
		if err := checkKey("relationship", i, r.From.Key); err != nil {
			return nil, err
		}
		if err := checkKey("relationship", i, r.To.Key); err != nil {
			return nil, err
		}
		props, err := convertProps("relationship", i, r.Properties)
		if err != nil {
			return nil, err
		}
		gk := r.Type + ":" + r.From.Label + ":" + r.To.Label
		g := rg[gk]
		if g == nil {
			g = &relGroup{typ: r.Type, from: r.From.Label, to: r.To.Label}
			rg[gk] = g
			p.rels = append(p.rels, g)
		}
		g.rows = append(g.rows, map[string]any{"from": r.From.Key, "to": r.To.Key, "props": props})
		types[r.Type] = true
		labels[r.From.Label] = true
		labels[r.To.Label] = true
	}
	p.labels = sortedKeys(labels)
	p.types = sortedKeys(types)
	return p, nil
}

func checkIdent(what string, i int, field, s string) error {
	if !ValidIdentifier(s) {
		return stage.Rejectf("identifier", "graph sink: %s %d: %s %q is not an identifier (^[A-Za-z_][A-Za-z0-9_]{0,63}$)", what, i, field, trunc(s))
	}
	if internalLabels[s] {
		return stage.Rejectf("identifier", "graph sink: %s %d: %s %q is reserved for the sink's bookkeeping", what, i, field, s)
	}
	return nil
}

func checkKey(what string, i int, key string) error {
	if key == "" || len(key) > maxKeyLen {
		return stage.Rejectf("key", "graph sink: %s %d: key must be 1-%d bytes, got %d", what, i, maxKeyLen, len(key))
	}
	return nil
}

// convertProps checks property names and turns JSON values into values
// Neo4j can store: strings, booleans, int64, float64 and homogeneous lists
// of those. Nulls are dropped (Neo4j does not store them).
func convertProps(what string, i int, in map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(in))
	for k, v := range in {
		if !ValidIdentifier(k) {
			return nil, stage.Rejectf("identifier", "graph sink: %s %d: property name %q is not an identifier", what, i, trunc(k))
		}
		if reservedProps[k] {
			return nil, stage.Rejectf("identifier", "graph sink: %s %d: property %q is reserved (set by the sink)", what, i, k)
		}
		cv, err := convertValue(v, true)
		if err != nil {
			return nil, stage.Rejectf("property", "graph sink: %s %d: property %s: %v", what, i, k, err)
		}
		if cv != nil {
			out[k] = cv
		}
	}
	return out, nil
}

func convertValue(v any, allowList bool) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string, bool:
		return x, nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, nil
		}
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("number %s out of range", x)
		}
		return f, nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), nil
		}
		return x, nil
	case []any:
		if !allowList {
			return nil, fmt.Errorf("nested lists are not allowed")
		}
		out := make([]any, 0, len(x))
		kind, hasFloat := "", false
		for _, e := range x {
			ce, err := convertValue(e, false)
			if err != nil {
				return nil, err
			}
			if ce == nil {
				return nil, fmt.Errorf("lists may not contain null")
			}
			k := fmt.Sprintf("%T", ce)
			if k == "int64" || k == "float64" {
				if k == "float64" {
					hasFloat = true
				}
				k = "number"
			}
			if kind != "" && k != kind {
				return nil, fmt.Errorf("list mixes %s and %s values", kind, k)
			}
			kind = k
			out = append(out, ce)
		}
		if hasFloat { // Neo4j lists are homogeneous: ints become floats
			for j, e := range out {
				if n, ok := e.(int64); ok {
					out[j] = float64(n)
				}
			}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("value of type %T is not a string, number, boolean or list of those", v)
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Readable reports whether the graph sink can read the conformed snapshot
// event m: nil (also for a part of host objects only, which the sink
// ignores), or the permanent error Write would dead-letter it with.
func Readable(m *stage.Message) error {
	_, err := parse(m)
	return err
}
