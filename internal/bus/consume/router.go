package consume

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/loss"
	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/retry"
	"github.com/sightline/sightline/internal/stage"
)

// Config configures a durable pull consumer and how its messages
// are batched.
type Config struct {
	Stage         string   // name for metrics, logs and DLQ headers: "process", "graph", ...
	Stream        string   // stream to read
	Durable       string   // durable consumer name
	Filters       []string // filter subjects
	Batch         int      // most messages per batch (default 256)
	BatchBytes    int      // most payload bytes per batch (default 8 MiB)
	Linger        time.Duration
	Lanes         int // batches in flight at once (default 2)
	Workers       int // goroutines processing one batch (processors; default GOMAXPROCS)
	MaxAckPending int // bounded in-flight work (default 4 * Batch * Lanes)
	// AckWait is how long the server waits for an acknowledgement before
	// it redelivers (default DefaultAckWait). While a message is held
	// (buffered, gathered into a batch, processed or written) the bus
	// sends in-progress acknowledgements every AckWait/3, so AckWait
	// bounds how long the messages of a dead process wait, not how long a
	// batch may take.
	AckWait time.Duration
	// MaxHold bounds how long a batch's messages are kept from
	// redelivery by in-progress acknowledgements (default 10m): a stage
	// stuck longer lets its messages go to another instance.
	MaxHold time.Duration
	// StallTimeout is how long the consumer may have pending work without
	// receiving or settling anything before it is reported stalled and its
	// pull loop restarted (default: bus.Options.StallTimeout, else
	// DefaultStallTimeout).
	StallTimeout time.Duration
	Backoff      []time.Duration
	// MaxAttempts is how many deliveries of one input may fail for a
	// transient reason before it is dead-lettered, class kept_failing
	// (default limits.MaxAttempts).
	MaxAttempts int
	// DrainTimeout bounds how long in-flight work may take after shutdown
	// starts (default 30s).
	DrainTimeout time.Duration
}

// maxPrefetch bounds the messages a consumer buffers ahead of its batches.
const maxPrefetch = 2048

// DefaultAckWait is the consumers' ack wait: the longest a message held by
// a process that died waits before another instance gets it.
const DefaultAckWait = 15 * time.Second

// DefaultStallTimeout is how long a consumer with pending work may make no
// progress before it is reported stalled.
const DefaultStallTimeout = time.Minute

// DefaultBackoff is the redelivery delay by attempt.
var DefaultBackoff = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute}

func (c *Config) defaults() {
	if c.Batch <= 0 {
		c.Batch = 256
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 8 << 20
	}
	if c.Lanes <= 0 {
		c.Lanes = 2
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 4 * c.Batch * c.Lanes
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxHold <= 0 {
		c.MaxHold = 10 * time.Minute
	}

	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Stage == "" {
		c.Stage = c.Durable
	}
}

func (c *Config) backoff(delivered uint64) time.Duration {
	i := int(delivered) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(c.Backoff) {
		i = len(c.Backoff) - 1
	}
	return c.Backoff[i]
}

// input is one fetched message and what became of it.
type input struct {
	msg  *nats.Msg
	in   *stage.Message
	kind string
	outs []*stage.Message
	err  error
	span trace.Span
	ctx  context.Context
	sink bool // written by a sink (counts as one stored output)
}

// consume runs the durable consumer until ctx is done, calling handle with
// batches from Lanes goroutines. After ctx is done it stops fetching,
// finishes what was fetched, and returns.
func (b *conn) consume(ctx context.Context, c Config, handle func(context.Context, []*input)) error {
	if c.StallTimeout <= 0 {
		c.StallTimeout = b.stallTimeout
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	c.defaults()
	cfg := jetstream.ConsumerConfig{
		Durable:        c.Durable,
		Description:    "sightline " + c.Stage,
		FilterSubjects: c.Filters,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  c.MaxAckPending,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	cons, err := b.createConsumer(ctx, c, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: a shutdown, not a failure
		}
		return err
	}
	// Before the first pull: input removed while no process ran this
	// consumer is only visible now.
	lc := loss.NewCheck(b.bus, c.Stream, c.Durable, c.Stage)
	_, _ = lc.Observe(ctx, cons)
	p := newPuller(b, c, cfg)
	p.loss = lc
	p.mu.Lock()
	err = p.subscribe()
	if err == nil {
		p.pull()
	}
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("bus: consume %s: %w", c.Durable, err)
	}
	b.log.Info("consumer started", "stage", c.Stage, "stream", c.Stream, "consumer", c.Durable, "filters", c.Filters)

	pullCtx, stopPull := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPull()
	go p.run(pullCtx)
	go b.watch(pullCtx, p, lc)
	b.health.Serve(b.nc, b.bus.Instance())

	// work gets a context that outlives ctx by DrainTimeout so in-flight
	// batches finish their publishes and acks during shutdown.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		<-ctx.Done()
		// Drain: stop pulling, but hand what the client already received
		// to the lanes so it is processed now rather than after AckWait.
		p.stop(c.DrainTimeout / 2)
		t := time.AfterFunc(c.DrainTimeout, cancelWork)
		<-workCtx.Done()
		t.Stop()
	}()

	var wg sync.WaitGroup
	for _, l := range p.lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				batch := p.gather(ctx, l)
				if len(batch) == 0 {
					return
				}
				ins := b.inputs(batch, c)
				handle(workCtx, ins)
				l.clear()
				p.settled.Add(uint64(len(ins)))
				p.finished.Add(finished(ins))
				signal(p.wake)
			}
		}()
	}
	wg.Wait()
	stopPull()
	// Fetched but never handled (delivered while shutting down): nak them
	// so another instance gets them at once.
	p.nakRest()
	b.log.Info("consumer stopped", "stage", c.Stage, "consumer", c.Durable)
	return nil
}

func (b *conn) inputs(batch []*nats.Msg, c Config) []*input {
	ins := make([]*input, len(batch))
	slab := make([]input, len(batch)) // one allocation for the batch
	for i, m := range batch {
		sm := bus.ToStage(m)
		sm.Meta.Consumer = c.Durable
		slab[i] = input{msg: m, in: sm, kind: kindOf(m.Subject)}
		ins[i] = &slab[i]
		b.obs.Received(c.Stage, ins[i].kind, sm.Meta.Delivered > 1)
	}
	return ins
}

// kindOf returns the kind of sightline.<stream>.<kind>.<...> for the
// metrics: metric, log, snapshot or other (stage.KindOf).
func kindOf(subject string) string {
	kind, _ := stage.KindOf(subject)
	return kind
}

var propagator = propagation.TraceContext{}

type headerCarrier stage.Header

func (h headerCarrier) Get(key string) string { return stage.Header(h).Get(key) }
func (h headerCarrier) Set(key, value string) { stage.Header(h).Set(key, value) }
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

func (b *conn) startSpan(ctx context.Context, c Config, in *input) {
	if !b.traced {
		// Tracing off: no span, and the input's traceparent reaches the
		// outputs through the processor (conform copies it) rather than
		// through a context nobody records.
		in.ctx = ctx
		if cid := correlation.FromHeaders(in.in.Header); cid != "" {
			in.ctx = correlation.NewContext(ctx, cid) // for logs written with ctx
		}
		return
	}
	ctx = propagator.Extract(ctx, headerCarrier(in.in.Header))
	cid := correlation.FromHeaders(in.in.Header)
	if cid != "" {
		ctx = correlation.NewContext(ctx, cid)
	}
	ctx, span := b.tracer.Start(ctx, c.Stage+" "+in.msg.Subject, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", in.msg.Subject),
			attribute.Int64("messaging.message.delivery_count", int64(in.in.Meta.Delivered)),
			attribute.Int64("sightline.stream_sequence", int64(in.in.Meta.Sequence)),
		))
	if cid != "" {
		span.SetAttributes(attribute.String("sightline.correlation_id", cid))
	}
	in.ctx, in.span = ctx, span
}

func (b *conn) endSpan(in *input) {
	if in.span == nil {
		return
	}
	if in.err != nil {
		in.span.RecordError(in.err)
		in.span.SetStatus(codes.Error, in.err.Error())
	}
	in.span.End()
}

// dlqMessage builds the dead letter of an input (stage.DeadLetter).
func dlqMessage(in *stage.Message, stageName string, reason error) *nats.Msg {
	return bus.ToNats(stage.DeadLetter(in, stageName, reason, time.Now()))
}

// createBackoff is the wait between attempts to create a consumer.
var createBackoff = retry.Backoff{Initial: 250 * time.Millisecond, Max: 4 * time.Second}

// createConsumer creates or updates the durable consumer, retrying for up
// to 30 s: a stream just created on a cluster may have no leader yet ("no
// responders"), which must not stop the pipeline at start.
func (b *conn) createConsumer(ctx context.Context, c Config, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; ; n++ {
		cons, err := b.js.CreateOrUpdateConsumer(ctx, c.Stream, cfg)
		if err == nil {
			return cons, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, fmt.Errorf("bus: consumer %s on %s: %w", c.Durable, c.Stream, err)
		}
		b.log.Debug("consumer not created yet, retrying", "consumer", c.Durable, "stream", c.Stream, "error", err)
		_ = retry.Sleep(ctx, createBackoff.Delay(n))
	}
}
