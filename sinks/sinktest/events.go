package sinktest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
)

// Generator makes conformed events the way production does: raw input
// through the standard processor (validate → conform → enrich, with the
// real JSON Schemas), then stream metadata as the bus fills it (stream
// SIGHTLINE_EVENTS, increasing sequence numbers). Safe for concurrent use.
type Generator struct {
	p     *processors.Pipeline
	mu    sync.Mutex
	seq   uint64
	run   string
	start time.Time
}

// NewGenerator returns a generator whose events get fresh ids and sequences
// starting at a random offset, with event times spread over the two hours
// before now.
func NewGenerator(t testing.TB) *Generator {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatalf("sinktest: schemas: %v", err)
	}
	p, _ := processors.Standard(processors.Config{
		MaxBodyBytes: 1 << 20,
		Attributes:   map[string]string{"site": "par1", "env": "contract"},
	}, v)
	u := uuid.New()
	return &Generator{
		p:     p,
		seq:   uint64(u[0])<<16 | uint64(u[1])<<8 | 1,
		run:   u.String()[:8],
		start: time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second),
	}
}

// Run is a short random string identifying the generator (for names).
func (g *Generator) Run() string { return g.run }

// Conform processes one raw message (subject sightline.raw.<kind>.<name>)
// and returns the conformed event with stream metadata.
func (g *Generator) Conform(t testing.TB, subject string, header stage.Header, body []byte) *stage.Message {
	t.Helper()
	if header == nil {
		header = stage.Header{}
	}
	out, err := g.p.Process(context.Background(), &stage.Message{Subject: subject, Header: header, Data: body})
	if err != nil || len(out) != 1 {
		t.Fatalf("sinktest: processing %s %s: %v (%d outputs)", subject, body, err, len(out))
	}
	g.mu.Lock()
	g.seq++
	seq := g.seq
	g.mu.Unlock()
	m := out[0]
	m.Meta = stage.Meta{Stream: "SIGHTLINE_EVENTS", Consumer: "contract", Sequence: seq, Delivered: 1, Timestamp: time.Now()}
	return m
}

// Mixed returns n golden events alternating metric (search_made with nested
// properties), structured log and plain-text log, across two event hours,
// correlated in groups of three.
func (g *Generator) Mixed(t testing.TB, n int) []*stage.Message {
	t.Helper()
	out := make([]*stage.Message, n)
	for i := range out {
		g.mu.Lock()
		k := g.seq
		g.mu.Unlock()
		at := g.start.Add(time.Duration(i%2)*time.Hour + time.Duration(k%3600)*time.Second)
		cid := fmt.Sprintf("contract-%s-%d", g.run, k/3)
		h := stage.Header{}
		h.Set(stage.HeaderCorrelationID, cid)
		h.Set(stage.HeaderMsgID, uuid.NewString())
		h.Set(stage.HeaderProducer, "contract-"+g.run)
		var subject string
		var body []byte
		switch i % 3 {
		case 0:
			subject = stage.RawPrefix + "metric.search_made"
			body, _ = json.Marshal(map[string]any{
				"query": fmt.Sprintf("cats %d", k), "n_results": k % 17, "time": at.Format(time.RFC3339Nano),
				"user": map[string]any{"id": k, "plan": "pro"}, "tags": []string{"a", "b"},
			})
		case 1:
			subject = stage.RawPrefix + "log.api"
			body, _ = json.Marshal(map[string]any{
				"message": fmt.Sprintf("GET /search?q=%d 200", k), "level": "info", "service": "api",
				"host": "web-1", "time": at.Format(time.RFC3339Nano), "latency_ms": 12.5,
			})
		default:
			subject = stage.RawPrefix + "log.worker"
			body = []byte(fmt.Sprintf("%s [warn] job %d retried: café ünïcode \"quoted\"", at.Format(time.RFC3339), k))
		}
		out[i] = g.Conform(t, subject, h, body)
	}
	return out
}
