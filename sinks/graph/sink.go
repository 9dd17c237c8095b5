// Package graph is the graph sink: it keeps Neo4j current with the syncs
// (snapshot events carrying nodes and relationships) of each scope, and
// sweeps what a complete, newest sync did not touch. See README.md.
//
// Size: ~2,400 lines, over the project's usual bound, because the sweep's
// safety rules (complete and newest syncs only, tag skew, the share guard
// over a window, claims on shared nodes, never touching what Sightline did
// not create, resumable deletes) are one state machine over one Neo4j
// schema; the package keeps them in one place with their Cypher.
package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	neoconfig "github.com/neo4j/neo4j-go-driver/v5/neo4j/config"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/stage"
)

// Sentinel errors.
var (
	ErrUnknownScope  = errors.New("graph sink: unknown scope")
	ErrNothingToSwep = errors.New("graph sink: no complete sync newer than the last swept one")
)

// Option configures a Sink.
type Option func(*Sink)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Sink) { s.log = l } }

// WithRegisterer registers the sink's Prometheus metrics.
func WithRegisterer(r prometheus.Registerer) Option { return func(s *Sink) { s.reg = r } }

// WithSweepReporter is called after every sweep decision (swept, refused,
// superseded, incomplete); the runner can publish it as an event.
func WithSweepReporter(f func(context.Context, SweepReport)) Option {
	return func(s *Sink) { s.report = f }
}

// WithDriver uses an existing driver (the sink does not close it).
func WithDriver(d neo4j.DriverWithContext) Option {
	return func(s *Sink) { s.driver, s.ownDriver = d, false }
}

// Sink writes snapshot events to Neo4j. It is safe for concurrent use.
type Sink struct {
	cfg       Config
	driver    neo4j.DriverWithContext
	ownDriver bool
	log       *slog.Logger
	reg       prometheus.Registerer
	report    func(context.Context, SweepReport)
	m         *metrics

	schema sync.Map // "L:<label>" / "T:<type>" → struct{} once its constraint/index exists

	openMu     sync.Mutex
	openLogged map[string]bool // open syncs over the age already logged

	// afterSweepBatch, when set (tests), runs after each committed sweep
	// transaction; an error stops the sweep there, as a crash would.
	afterSweepBatch func() error
}

// New connects to Neo4j, checks connectivity and creates the constraints
// and indexes of the bookkeeping labels.
func New(ctx context.Context, cfg Config, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, log: slog.Default(), ownDriver: true}
	for _, o := range opts {
		o(s)
	}
	s.m = newMetrics(s.reg)
	opened := false
	defer func() {
		if !opened {
			// A failed New is retried (sightline run keeps trying a sink
			// whose service is down): leave the registry as it was.
			s.m.unregister(s.reg)
		}
	}()
	if s.driver == nil {
		cred, err := cfg.Credentials.Resolved("graph")
		if err != nil {
			return nil, fmt.Errorf("graph sink: %w", err)
		}
		tc, err := cfg.ClientConfig("graph")
		if err != nil {
			return nil, fmt.Errorf("graph sink: %w", err)
		}
		d, err := neo4j.NewDriverWithContext(cfg.URI, neo4j.BasicAuth(cred.Username, cred.Password, ""), func(c *neoconfig.Config) {
			c.TlsConfig = tc
			c.MaxTransactionRetryTime = cfg.RetryTime
			c.SocketConnectTimeout = 5 * time.Second
			c.ConnectionAcquisitionTimeout = 30 * time.Second
		})
		if err != nil {
			return nil, fmt.Errorf("graph sink: driver for %s: %w", cfg.URI, err)
		}
		s.driver = d
	}
	if err := s.driver.VerifyConnectivity(ctx); err != nil {
		s.closeDriver(ctx)
		return nil, fmt.Errorf("graph sink: connect %s: %w", cfg.URI, err)
	}
	for _, q := range []string{
		"CREATE CONSTRAINT sightline_scope IF NOT EXISTS FOR (s:" + labelScope + ") REQUIRE s.scope IS UNIQUE",
		"CREATE CONSTRAINT sightline_sync IF NOT EXISTS FOR (s:" + labelSync + ") REQUIRE s.id IS UNIQUE",
		"CREATE INDEX sightline_sync_scope IF NOT EXISTS FOR (s:" + labelSync + ") ON (s.scope)",
		"CREATE INDEX sightline_sync_status IF NOT EXISTS FOR (s:" + labelSync + ") ON (s.status)",
		"CREATE INDEX sightline_node_scope IF NOT EXISTS FOR (n:" + labelNode + ") ON (n.syncscope, n.lastupdated)",
		"CREATE INDEX sightline_node_shared IF NOT EXISTS FOR (n:" + labelNode + ") ON (n.syncshared)",
	} {
		if err := s.schemaQuery(ctx, q); err != nil {
			s.closeDriver(ctx)
			return nil, err
		}
	}
	opened = true
	return s, nil
}

// Driver returns the Neo4j driver (for status commands and tests).
func (s *Sink) Driver() neo4j.DriverWithContext { return s.driver }

func (s *Sink) session(ctx context.Context, mode neo4j.AccessMode) neo4j.SessionWithContext {
	return s.driver.NewSession(ctx, neo4j.SessionConfig{AccessMode: mode, DatabaseName: s.cfg.Database})
}

func (s *Sink) schemaQuery(ctx context.Context, q string) error {
	_, err := neo4j.ExecuteQuery(ctx, s.driver, q, nil, neo4j.EagerResultTransformer,
		neo4j.ExecuteQueryWithDatabase(s.cfg.Database))
	if err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		return fmt.Errorf("graph sink: schema %q: %w", q, err)
	}
	return nil
}

// ensureSchema creates the uniqueness constraint of each label (on id) and
// the sweep index of each relationship type, once per process.
func (s *Sink) ensureSchema(ctx context.Context, labels, types []string) error {
	for _, l := range labels {
		if _, ok := s.schema.Load("L:" + l); ok {
			continue
		}
		q := "CREATE CONSTRAINT " + quote("sightline_id_"+l) + " IF NOT EXISTS FOR (n:" + quote(l) + ") REQUIRE n.id IS UNIQUE"
		if err := s.schemaQuery(ctx, q); err != nil {
			var ne *neo4j.Neo4jError
			if errors.As(err, &ne) && strings.Contains(ne.Code, "Schema") && !neo4j.IsRetryable(err) {
				// Existing data violates uniqueness (another tool's nodes):
				// MERGE still works, only slower; say so once.
				s.log.Warn("graph sink: cannot create uniqueness constraint; continuing without it",
					"label", l, "err", err)
			} else {
				return err
			}
		}
		s.schema.Store("L:"+l, struct{}{})
	}
	for _, t := range types {
		if _, ok := s.schema.Load("T:" + t); ok {
			continue
		}
		q := "CREATE INDEX " + quote("sightline_rel_"+t) + " IF NOT EXISTS FOR ()-[r:" + quote(t) + "]-() ON (r.syncscope, r.lastupdated)"
		if err := s.schemaQuery(ctx, q); err != nil {
			return err
		}
		q = "CREATE INDEX " + quote("sightline_relshared_"+t) + " IF NOT EXISTS FOR ()-[r:" + quote(t) + "]-() ON (r.syncshared)"
		if err := s.schemaQuery(ctx, q); err != nil {
			return err
		}
		s.schema.Store("T:"+t, struct{}{})
	}
	return nil
}

// Write applies each message (one part of a sync) in its own explicit
// write transaction. Bad messages fail permanently (DLQ); a Neo4j outage
// outlasting the retry time fails the rest transiently (nak, redelivery).
func (s *Sink) Write(ctx context.Context, batch []*stage.Message) error {
	failed := map[int]error{}
	var transient error
	for i, m := range batch {
		if transient != nil {
			failed[i] = transient
			continue
		}
		p, err := parse(m)
		if err != nil {
			s.m.rejected.Inc()
			s.log.Warn("graph sink: rejected part", "subject", m.Subject, "id", m.ID,
				"correlation_id", m.Header.Get(stage.HeaderCorrelationID), "err", err)
			failed[i] = err
			continue
		}
		if p == nil {
			s.m.ignored.Inc()
			continue
		}
		if err := s.apply(ctx, p); err != nil {
			if stage.IsPermanent(err) {
				failed[i] = err
				continue
			}
			// Neo4j is down or overloaded past the retry time: stop here,
			// the rest of the batch is retried too.
			transient = err
			failed[i] = err
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &stage.BatchError{Failed: failed}
}

// Close closes the driver (the writes have ended: sinks.Drain).
func (s *Sink) Close(ctx context.Context) error {
	s.m.unregister(s.reg)
	return s.closeDriver(ctx)
}

func (s *Sink) closeDriver(ctx context.Context) error {
	if !s.ownDriver || s.driver == nil {
		return nil
	}
	if err := s.driver.Close(ctx); err != nil {
		return fmt.Errorf("graph sink: close driver: %w", err)
	}
	return nil
}

// partResult is the state of a sync after one of its parts was applied.
type partResult struct {
	final    bool
	applied  int64
	expected int64
	status   string
	stale    bool // the part's tag was not newer than the scope's last completed sync
	repeat   bool // the part had been applied before (redelivery)
}

func (s *Sink) apply(ctx context.Context, p *part) error {
	start := time.Now()
	if limit := start.Add(s.cfg.MaxTagSkew).UnixMilli(); p.tag > limit {
		s.m.rejected.Inc()
		err := stage.Rejectf("future_tag", "graph sink: tag %d of scope %s is %s in the future, over graph.max_tag_skew %s "+
			"(tags are update times in ms since 1970, or any counter below that); a later tag would freeze the scope",
			p.tag, p.scope, aheadBy(p.tag, start), s.cfg.MaxTagSkew)
		s.log.Warn("graph sink: rejected part", "scope", p.scope, "tag", p.tag, "part", p.num,
			"correlation_id", p.cid, "err", err)
		return err
	}
	if p.force {
		// force in a message was how a producer bypassed the share guard;
		// only an operator forces a sweep now (`sightline graph sweep --force`).
		s.m.forceIgnored.Inc()
		s.log.Warn("graph sink: producer's force flag ignored; an operator forces a sweep with `sightline graph sweep --force SCOPE`",
			"scope", p.scope, "tag", p.tag, "part", p.num, "correlation_id", p.cid)
	}
	if err := s.ensureSchema(ctx, p.labels, p.types); err != nil {
		return err
	}
	sess := s.session(ctx, neo4j.AccessModeWrite)
	defer sess.Close(ctx)
	res, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		return s.applyTx(ctx, tx, p)
	})
	if err != nil {
		s.m.errors.Inc()
		return fmt.Errorf("graph sink: scope %s tag %d part %d: %w", p.scope, p.tag, p.num, err)
	}
	r := res.(partResult)
	s.m.parts.Inc()
	if !r.repeat && !r.stale {
		s.m.items.Add(float64(p.items - p.objects))
	}
	s.m.writeSeconds.Observe(time.Since(start).Seconds())
	log := s.log.With("scope", p.scope, "tag", p.tag, "part", p.num, "correlation_id", p.cid)
	switch {
	case r.repeat:
		log.Debug("graph sink: part already applied (redelivery)")
	case r.stale:
		log.Info("graph sink: part older than the scope's last completed sync; items skipped")
	default:
		log.Debug("graph sink: part applied", "items", p.items, "applied", r.applied)
	}
	if r.final && r.applied == r.expected && (r.status == statusOpen || r.status == statusSweeping) {
		_, err := s.sweep(ctx, p.scope, p.tag, SweepOptions{}, p.cid)
		return err
	}
	if r.final && r.applied > r.expected && r.status == statusOpen {
		log.Warn("graph sink: sync applied more items than its final count; it will not sweep",
			"applied", r.applied, "expected", r.expected)
	}
	return nil
}

// Sync statuses recorded on (:SightlineSync).
const (
	statusOpen       = "open"       // parts arriving
	statusSweeping   = "sweeping"   // complete, newest: deleting stale items
	statusSwept      = "swept"      // complete and swept
	statusRefused    = "refused"    // complete but the sweep would delete too much
	statusSuperseded = "superseded" // complete but not newer than the last completed sync
	statusEmpty      = "nothing"    // complete, newest, nothing stale
)

const qLock = `
MERGE (s:` + labelScope + ` {scope: $scope})
ON CREATE SET s.created = $now, s.completed = 0
SET s.lockseq = coalesce(s.lockseq, 0) + 1
MERGE (y:` + labelSync + ` {id: $syncid})
ON CREATE SET y.scope = $scope, y.tag = $tag, y.parts = [], y.applied = 0, y.final = false,
              y.status = 'open', y.started = $now, y.force_requested = false
RETURN s.completed AS completed, $part IN y.parts AS seen, coalesce(s.labels, []) AS labels,
       coalesce(s.types, []) AS types`

const qRecord = `
MATCH (y:` + labelSync + ` {id: $syncid})
SET y.parts = y.parts + $part, y.applied = y.applied + $items, y.updated = $now,
    y.correlationid = $cid, y.force_requested = coalesce(y.force_requested, false) OR $force
FOREACH (_ IN CASE WHEN $final THEN [1] ELSE [] END | SET y.final = true, y.expected = $count)
RETURN y.final AS final, y.applied AS applied, coalesce(y.expected, -1) AS expected,
       y.status AS status`

const qState = `
MATCH (y:` + labelSync + ` {id: $syncid})
RETURN y.final AS final, y.applied AS applied, coalesce(y.expected, -1) AS expected,
       y.status AS status`

func (s *Sink) applyTx(ctx context.Context, tx neo4j.ManagedTransaction, p *part) (partResult, error) {
	now := time.Now().UnixMilli()
	params := map[string]any{
		"scope": p.scope, "tag": p.tag, "syncid": p.syncID(), "part": int64(p.num), "now": now,
		"cid": p.cid, "final": p.final, "count": int64(p.count), "items": int64(p.items), "force": p.force,
	}
	rec, err := single(ctx, tx, qLock, params)
	if err != nil {
		return partResult{}, err
	}
	completed := asInt(rec, "completed")
	seen, _ := rec.Get("seen")
	var r partResult
	if b, _ := seen.(bool); b {
		r.repeat = true
		rec, err = single(ctx, tx, qState, params)
		if err != nil {
			return partResult{}, err
		}
		fillResult(&r, rec)
		return r, nil
	}
	r.stale = p.tag <= completed
	if !r.stale {
		base := map[string]any{"scope": p.scope, "tag": p.tag, "cid": p.cid}
		for _, g := range p.nodes {
			if err := s.runChunks(ctx, tx, nodeQuery(g), base, g.rows); err != nil {
				return partResult{}, err
			}
		}
		for _, g := range p.rels {
			if err := s.runChunks(ctx, tx, relQuery(g), base, g.rows); err != nil {
				return partResult{}, err
			}
		}
		if err := updateScopeLists(ctx, tx, p, rec); err != nil {
			return partResult{}, err
		}
	}
	rec, err = single(ctx, tx, qRecord, params)
	if err != nil {
		return partResult{}, err
	}
	fillResult(&r, rec)
	return r, nil
}

func fillResult(r *partResult, rec *neo4j.Record) {
	f, _ := rec.Get("final")
	r.final, _ = f.(bool)
	r.applied = asInt(rec, "applied")
	r.expected = asInt(rec, "expected")
	st, _ := rec.Get("status")
	r.status, _ = st.(string)
}

// updateScopeLists records the labels and relationship types a scope uses,
// so sweeps and status know which relationship indexes to read.
func updateScopeLists(ctx context.Context, tx neo4j.ManagedTransaction, p *part, rec *neo4j.Record) error {
	have := func(key string) map[string]bool {
		v, _ := rec.Get(key)
		out := map[string]bool{}
		if l, ok := v.([]any); ok {
			for _, e := range l {
				if s, ok := e.(string); ok {
					out[s] = true
				}
			}
		}
		return out
	}
	hl, ht := have("labels"), have("types")
	changed := false
	for _, l := range p.labels {
		if !hl[l] {
			hl[l], changed = true, true
		}
	}
	for _, t := range p.types {
		if !ht[t] {
			ht[t], changed = true, true
		}
	}
	if !changed {
		return nil
	}
	_, err := tx.Run(ctx, "MATCH (s:"+labelScope+" {scope: $scope}) SET s.labels = $labels, s.types = $types",
		map[string]any{"scope": p.scope, "labels": toAny(sortedKeys(hl)), "types": toAny(sortedKeys(ht))})
	return err
}

func (s *Sink) runChunks(ctx context.Context, tx neo4j.ManagedTransaction, q string, base map[string]any, rows []any) error {
	for i := 0; i < len(rows); i += s.cfg.WriteChunk {
		j := min(i+s.cfg.WriteChunk, len(rows))
		params := make(map[string]any, len(base)+1)
		for k, v := range base {
			params[k] = v
		}
		params["rows"] = rows[i:j]
		res, err := tx.Run(ctx, q, params)
		if err != nil {
			return err
		}
		if _, err := res.Consume(ctx); err != nil {
			return err
		}
	}
	return nil
}

// nodeQuery upserts nodes of one label group. Identifiers were validated by
// parse and are backtick-quoted; every value is a parameter. A write whose
// tag is older than the scope's own claim on the node changes nothing;
// another scope's claim never blocks it (tags of different scopes are not
// comparable) and is kept (claims.go).
func nodeQuery(g *nodeGroup) string {
	labels := ":" + labelNode
	for _, l := range g.extras {
		labels += ":" + quote(l)
	}
	return `UNWIND $rows AS row
MERGE (n:` + quote(g.label) + ` {id: row.key})
` + markNew("n") + writeClaim("n", "n, row") + `
SET n` + labels + `
WITH n, row, nsc, ntg, row.props AS props, coalesce(n.firstseen, $tag) AS fs
SET n = props{.*, id: row.key, firstseen: fs, lastupdated: $tag, syncscope: $scope, correlationid: $cid,
              ` + claimProps + `}`
}

// relQuery upserts relationships of one (type, from label, to label) group,
// creating missing endpoints as placeholders claimed by the scope, and
// claiming existing endpoints (so no other scope's sweep deletes a node
// this scope still links to).
func relQuery(g *relGroup) string {
	placeholder := func(v string) string {
		return `ON CREATE SET ` + v + `:` + labelNode + `, ` + v + `.firstseen = $tag, ` + v + `.lastupdated = $tag, ` +
			v + `.syncscope = $scope, ` + v + `.correlationid = $cid, ` + v + `.placeholder = true`
	}
	return `UNWIND $rows AS row
MERGE (a:` + quote(g.from) + ` {id: row.from})
` + placeholder("a") + `
MERGE (b:` + quote(g.to) + ` {id: row.to})
` + placeholder("b") + refClaim("a") + refClaim("b") + `
WITH a, b, row
MERGE (a)-[r:` + quote(g.typ) + `]->(b)
` + markNew("r") + writeClaim("r", "r, row") + `
WITH r, nsc, ntg, row.props AS props, coalesce(r.firstseen, $tag) AS fs
SET r = props{.*, firstseen: fs, lastupdated: $tag, syncscope: $scope, correlationid: $cid,
              ` + claimProps + `}`
}

func single(ctx context.Context, tx neo4j.ManagedTransaction, q string, params map[string]any) (*neo4j.Record, error) {
	res, err := tx.Run(ctx, q, params)
	if err != nil {
		return nil, err
	}
	return res.Single(ctx)
}

func asInt(rec *neo4j.Record, key string) int64 {
	v, _ := rec.Get(key)
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	}
	return 0
}

// aheadBy says how far tag (ms) is ahead of now, for messages.
func aheadBy(tag int64, now time.Time) string {
	d := tag - now.UnixMilli()
	if d > int64(100*365*24*time.Hour/time.Millisecond) {
		return fmt.Sprintf("%d years", d/int64(365*24*time.Hour/time.Millisecond))
	}
	return (time.Duration(d) * time.Millisecond).Round(time.Second).String()
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
