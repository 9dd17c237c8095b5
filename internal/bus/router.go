package bus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/stage"
)

// ConsumerConfig configures a durable pull consumer and how its messages
// are batched.
type ConsumerConfig struct {
	Stage         string   // name for metrics, logs and DLQ headers: "process", "graph", ...
	Stream        string   // stream to read
	Durable       string   // durable consumer name
	Filters       []string // filter subjects
	Batch         int      // most messages per batch (default 256)
	BatchBytes    int      // most payload bytes per batch (default 8 MiB)
	Linger        time.Duration
	Lanes         int           // batches in flight at once (default 2)
	Workers       int           // goroutines processing one batch (processors; default GOMAXPROCS)
	MaxAckPending int           // bounded in-flight work (default 4 * Batch * Lanes)
	AckWait       time.Duration // default 60s
	Backoff       []time.Duration
	// DrainTimeout bounds how long in-flight work may take after shutdown
	// starts (default 30s).
	DrainTimeout time.Duration
}

// maxPrefetch bounds the messages a consumer buffers ahead of its batches.
const maxPrefetch = 2048

// pullExpiry is how long one pull request of a consumer lives.
const pullExpiry = 2 * time.Second

// DefaultBackoff is the redelivery delay by attempt.
var DefaultBackoff = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute}

func (c *ConsumerConfig) defaults() {
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
		c.AckWait = time.Minute
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

func (c *ConsumerConfig) backoff(delivered uint64) time.Duration {
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
	msg  jetstream.Msg
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
func (b *Bus) consume(ctx context.Context, c ConsumerConfig, handle func(context.Context, []*input)) error {
	c.defaults()
	cons, err := b.js.CreateOrUpdateConsumer(ctx, c.Stream, jetstream.ConsumerConfig{
		Durable:        c.Durable,
		Description:    "sightline " + c.Stage,
		FilterSubjects: c.Filters,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  c.MaxAckPending,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("bus: consumer %s on %s: %w", c.Durable, c.Stream, err)
	}
	// Prefetch: what the client holds beyond the batches being gathered and
	// handled. Lanes batches ahead, but never more than maxPrefetch
	// messages: a sink with 50,000-message batches (the archive) would
	// otherwise buffer 100,000 messages (~130 MB) before its first Write.
	prefetch := min(c.Batch*c.Lanes, maxPrefetch)
	ch := make(chan jetstream.Msg, prefetch)
	stopped := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case ch <- m:
		case <-stopped:
			_ = m.Nak() // shutting down: hand it back now, not after AckWait
		}
	},
		jetstream.PullMaxMessages(prefetch),
		// Pull requests live 2s instead of 30s. nats.go's Consume can stop
		// re-pulling when every message of a request is handled before it
		// notes the request as sent; only its missed-heartbeat check
		// (2 × expiry/2) then pulls again. That was a 30s stall in ~1 core
		// benchmark round of 8; now it costs at most 2s. (A Fetch loop
		// avoids the race but cost ~15% more CPU per event here.)
		jetstream.PullExpiry(pullExpiry),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				b.log.Warn("consume error", "stage", c.Stage, "consumer", c.Durable, "error", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("bus: consume %s: %w", c.Durable, err)
	}
	b.log.Info("consumer started", "stage", c.Stage, "stream", c.Stream, "consumer", c.Durable, "filters", c.Filters)

	go b.watchPending(ctx, cons, c)

	// work gets a context that outlives ctx by DrainTimeout so in-flight
	// batches finish their publishes and acks during shutdown.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		<-ctx.Done()
		// Drain: stop pulling, but hand what the client already buffered
		// to the lanes so it is processed now rather than after AckWait.
		cc.Drain()
		select {
		case <-cc.Closed():
		case <-time.After(c.DrainTimeout / 2):
			cc.Stop()
		}
		close(stopped)
		t := time.AfterFunc(c.DrainTimeout, cancelWork)
		<-workCtx.Done()
		t.Stop()
	}()

	var wg sync.WaitGroup
	for range c.Lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				batch := b.gather(ctx, ch, stopped, c)
				if len(batch) == 0 {
					return
				}
				handle(workCtx, b.inputs(batch, c))
			}
		}()
	}
	wg.Wait()
	// Fetched but never handled (delivered while shutting down): nak them
	// so another instance gets them at once.
	for {
		select {
		case m := <-ch:
			_ = m.Nak()
			continue
		case <-time.After(100 * time.Millisecond):
		}
		break
	}
	b.log.Info("consumer stopped", "stage", c.Stage, "consumer", c.Durable)
	return nil
}

// gather blocks for one message, then takes what else is ready (waiting up
// to Linger) until the batch is full. After stop it drains what is left in
// the channel and returns an empty batch when nothing is.
func (b *Bus) gather(ctx context.Context, ch chan jetstream.Msg, stopped chan struct{}, c ConsumerConfig) []jetstream.Msg {
	var first jetstream.Msg
	select {
	case first = <-ch:
	case <-stopped:
		select {
		case first = <-ch:
		case <-time.After(50 * time.Millisecond):
			return nil
		}
	}
	batch := []jetstream.Msg{first}
	size := len(first.Data())
	var timer <-chan time.Time
	if c.Linger > 0 {
		t := time.NewTimer(c.Linger)
		defer t.Stop()
		timer = t.C
	}
	for len(batch) < c.Batch && size < c.BatchBytes {
		select {
		case m := <-ch:
			batch = append(batch, m)
			size += len(m.Data())
			continue
		default:
		}
		if timer == nil || ctx.Err() != nil {
			break
		}
		select {
		case m := <-ch:
			batch = append(batch, m)
			size += len(m.Data())
			continue
		case <-timer:
		case <-ctx.Done():
		}
		break
	}
	return batch
}

func (b *Bus) inputs(batch []jetstream.Msg, c ConsumerConfig) []*input {
	ins := make([]*input, len(batch))
	slab := make([]input, len(batch)) // one allocation for the batch
	for i, m := range batch {
		sm := toStage(m)
		sm.Meta.Consumer = c.Durable
		slab[i] = input{msg: m, in: sm, kind: kindOf(m.Subject())}
		ins[i] = &slab[i]
		b.obs.Received(c.Stage, ins[i].kind, sm.Meta.Delivered > 1)
	}
	return ins
}

func toStage(m jetstream.Msg) *stage.Message {
	sm := &stage.Message{Subject: m.Subject(), Header: stage.Header(m.Headers()), Data: m.Data()}
	if sm.Header == nil {
		sm.Header = stage.Header{}
	}
	sm.ID = sm.Header.Get(jetstream.MsgIDHeader)
	if md, err := m.Metadata(); err == nil {
		sm.Meta = stage.Meta{
			Stream: md.Stream, Sequence: md.Sequence.Stream, Delivered: md.NumDelivered,
			Timestamp: md.Timestamp, Pending: md.NumPending,
		}
	}
	return sm
}

// kindOf returns the kind token of sightline.<stream>.<kind>.<...>.
func kindOf(subject string) string {
	parts := strings.SplitN(subject, ".", 4)
	if len(parts) >= 3 && parts[0] == "sightline" {
		return parts[2]
	}
	return "unknown"
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

func (b *Bus) startSpan(ctx context.Context, c ConsumerConfig, in *input) {
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
	ctx, span := b.tracer.Start(ctx, c.Stage+" "+in.msg.Subject(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", in.msg.Subject()),
			attribute.Int64("messaging.message.delivery_count", int64(in.in.Meta.Delivered)),
			attribute.Int64("sightline.stream_sequence", int64(in.in.Meta.Sequence)),
		))
	if cid != "" {
		span.SetAttributes(attribute.String("sightline.correlation_id", cid))
	}
	in.ctx, in.span = ctx, span
}

func (b *Bus) endSpan(in *input) {
	if in.span == nil {
		return
	}
	if in.err != nil {
		in.span.RecordError(in.err)
		in.span.SetStatus(codes.Error, in.err.Error())
	}
	in.span.End()
}

// toNats converts an output message for publishing. Headers that already
// carry the message's ID as Nats-Msg-Id (what processors.Output builds)
// are used as they are; otherwise they are copied, never changed.
func toNats(m *stage.Message) *nats.Msg {
	if m.ID != "" && len(m.Header[jetstream.MsgIDHeader]) == 1 && m.Header[jetstream.MsgIDHeader][0] == m.ID {
		return &nats.Msg{Subject: m.Subject, Header: nats.Header(m.Header), Data: m.Data}
	}
	nm := nats.NewMsg(m.Subject)
	for k, v := range m.Header {
		nm.Header[k] = v
	}
	nm.Data = m.Data
	if m.ID != "" {
		nm.Header.Set(jetstream.MsgIDHeader, m.ID)
	}
	return nm
}

// dlqMessage builds the dead letter of an input: original bytes, original
// headers (NATS control headers renamed so they keep their value without
// acting again), and the reason.
func dlqMessage(in *stage.Message, stageName string, reason error) *nats.Msg {
	nm := nats.NewMsg(stage.DLQSubject(in.Subject))
	for k, v := range in.Header {
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			nm.Header[stage.HeaderOriginalPrefix+k] = v
			continue
		}
		nm.Header[k] = v
	}
	nm.Data = in.Data
	text := reason.Error()
	var pe *stage.PermanentError
	if errors.As(reason, &pe) {
		text = pe.Error()
	}
	if len(text) > 2000 {
		text = text[:2000] + "…"
	}
	nm.Header.Set(stage.HeaderDLQReason, strings.ReplaceAll(strings.ReplaceAll(text, "\r", " "), "\n", " "))
	nm.Header.Set(stage.HeaderDLQStage, stageName)
	nm.Header.Set(stage.HeaderDLQSubject, in.Subject)
	nm.Header.Set(stage.HeaderDLQStream, in.Meta.Stream)
	nm.Header.Set(stage.HeaderDLQSequence, strconv.FormatUint(in.Meta.Sequence, 10))
	nm.Header.Set(stage.HeaderDLQTime, time.Now().UTC().Format(time.RFC3339Nano))
	if class := stage.PermanentClass(reason); class != "" {
		nm.Header.Set("Sightline-Dlq-Class", class)
	}
	if nm.Header.Get(stage.HeaderCorrelationID) == "" {
		if cid := correlation.FromHeaders(in.Header); cid != "" {
			nm.Header.Set(stage.HeaderCorrelationID, cid)
		}
	}
	nm.Header.Set(jetstream.MsgIDHeader, "dlq:"+stageName+":"+in.Meta.Stream+":"+strconv.FormatUint(in.Meta.Sequence, 10))
	return nm
}

// watchPending reports the consumer backlog every few seconds.
func (b *Bus) watchPending(ctx context.Context, cons jetstream.Consumer, c ConsumerConfig) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if info, err := cons.Info(ctx); err == nil {
			b.obs.Pending(c.Stream, c.Durable, info.NumPending+uint64(info.NumAckPending))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
