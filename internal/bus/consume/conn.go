package consume

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/health"
)

// conn is what a consumer uses of its bus connection.
type conn struct {
	bus          *bus.Bus
	nc           *nats.Conn
	js           jetstream.JetStream
	rjs          jetstream.JetStream // stage outputs (bus.OutputJetStream)
	log          *slog.Logger
	obs          bus.Observer
	tracer       trace.Tracer
	traced       bool // tracer is a real one
	health       *health.Registry
	stallTimeout time.Duration

	// dropPulls, in tests, swallows the pull requests of pull loop
	// generations up to this one (a server that lost them).
	dropPulls uint64
}

// dropPulls holds, in tests, DropPulls's generation per bus.
var dropPulls sync.Map // *bus.Bus → uint64

func newConn(b *bus.Bus) *conn {
	c := &conn{bus: b, nc: b.Conn(), js: b.JetStream(), rjs: b.OutputJetStream(), log: b.Logger(), obs: b.Observer(),
		tracer: b.Tracer(), health: b.Health(), stallTimeout: b.StallTimeout()}
	c.traced = c.tracer != nil
	if gen, ok := dropPulls.Load(b); ok {
		c.dropPulls = gen.(uint64)
	}
	return c
}

func (b *conn) commit(ctx context.Context) error { return b.bus.Commit(ctx) }

// Connected reports whether the connection is up.
func (b *conn) Connected() bool { return b.bus.Connected() }
