package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/stage"
)

// RunProcessor consumes c.Stream with a durable consumer, runs p on every
// message, publishes the outputs and acks the input only after every
// output's PubAck. Permanent errors send the input to the DLQ (then Term);
// other errors redeliver it with backoff. It returns when ctx is done and
// the in-flight batches are finished.
func RunProcessor(ctx context.Context, bb *bus.Bus, c Config, p stage.Processor) error {
	b := newConn(bb)
	c.defaults()
	return b.consume(ctx, c, func(ctx context.Context, batch []*input) {
		b.processBatch(ctx, c, p, batch)
	})
}

func (b *conn) processBatch(ctx context.Context, c Config, p stage.Processor, batch []*input) {
	start := time.Now()
	// Process in parallel: the stages are CPU work.
	var next atomic.Int64
	var wg sync.WaitGroup
	workers := min(c.Workers, len(batch))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batch) {
					return
				}
				in := batch[i]
				b.startSpan(ctx, c, in)
				in.outs, in.err = safeProcess(in.ctx, p, in.in)
				if in.err == nil && len(in.outs) > 0 {
					ref := []string{inputRef(in.in)}
					for _, o := range in.outs {
						if o.Header == nil {
							o.Header = stage.Header{}
						}
						o.Header[stage.HeaderInput] = ref
						propagator.Inject(in.ctx, headerCarrier(o.Header))
					}
				}
			}
		}()
	}
	wg.Wait()
	keptFailing(c, batch)
	b.settle(ctx, c, batch)
	per := time.Since(start) / time.Duration(len(batch))
	for _, in := range batch {
		b.obs.Observed(c.Stage, in.kind, per)
		b.endSpan(in)
	}
}

// safeProcess turns a panic in a stage into a permanent error: bad input
// never crashes the pipeline.
func safeProcess(ctx context.Context, p stage.Processor, in *stage.Message) (outs []*stage.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = stage.Rejectf("panic", "processor panicked on this input: %v", r)
		}
	}()
	return p.Process(ctx, in)
}

// settle publishes outputs and dead letters, waits for the PubAcks, then
// acks, naks or terms every input.
func (b *conn) settle(ctx context.Context, c Config, batch []*input) {
	type pending struct {
		in   *input
		futs []jetstream.PubAckFuture
		dlq  bool
		err  error
		dup  string // the id of an output the events stream already held
	}
	ps := make([]pending, len(batch))
	for i, in := range batch {
		ps[i].in = in
		switch {
		case in.err == nil:
			for _, o := range in.outs {
				f, err := b.rjs.PublishMsgAsync(bus.ToNats(o))
				if err != nil {
					ps[i].err = err
					break
				}
				ps[i].futs = append(ps[i].futs, f)
			}
		case stage.IsPermanent(in.err) && in.in.Meta.Stream == bus.StreamDLQ:
			// A dead letter a sink cannot take is not dead-lettered again
			// (that would loop): it is logged and terminated below.
			ps[i].dlq = true
		case stage.IsPermanent(in.err):
			ps[i].dlq = true
			f, err := b.rjs.PublishMsgAsync(b.deadLetter(in.in, c.Stage, in.err))
			if err != nil {
				ps[i].err = err
				break
			}
			ps[i].futs = append(ps[i].futs, f)
		}
	}
	expired := make(chan struct{}) // closed: every wait below ends
	timeout := time.AfterFunc(bus.PublishAckTimeout, func() { close(expired) })
	defer timeout.Stop()
	for i := range ps {
		p := &ps[i]
		for _, f := range p.futs {
			if p.err != nil {
				break
			}
			// A publish with no answer is sent again (AwaitAck); a
			// duplicate answer to a second send is our first one.
			ack, sent, err := b.bus.AwaitAck(ctx, f, expired)
			p.err = err
			if ack != nil && ack.Duplicate && !p.dlq && sent == 1 {
				other, err := b.anotherInputs(ctx, ack, f.Msg(), p.in)
				switch {
				case err != nil:
					p.err = err
				case other:
					p.dup = f.Msg().Header.Get(jetstream.MsgIDHeader)
				}
			}
		}
	}
	// Under group commit the outputs and dead letters are on disk before
	// any input is acknowledged: one round for the whole batch.
	published := false
	for i := range ps {
		if ps[i].err == nil && len(ps[i].futs) > 0 {
			published = true
			break
		}
	}
	if published {
		if err := b.commit(ctx); err != nil {
			for i := range ps {
				if ps[i].err == nil && len(ps[i].futs) > 0 {
					ps[i].err = err
				}
			}
		}
	}
	for i := range ps {
		p := &ps[i]
		in := p.in
		// Built only when a line is written: With formats its attributes
		// at once, which cost ~3% of the processor's CPU per message.
		log := func() *slog.Logger {
			return b.log.With("stage", c.Stage, "subject", in.in.Subject, "stream_seq", in.in.Meta.Sequence,
				"correlation_id", inputCorrelation(in))
		}
		switch {
		case in.err != nil && !stage.IsPermanent(in.err):
			b.obs.Retried(c.Stage, in.kind)
			if in.sink {
				// A sink outage fails whole batches: its health (one line per
				// outage and recovery) says so, not a line per message.
				log().Debug("transient failure, will redeliver", "error", in.err, "delivered", in.in.Meta.Delivered)
			} else {
				log().Warn("transient failure, will redeliver", "error", in.err, "delivered", in.in.Meta.Delivered)
			}
			b.nakWithDelay(in.msg, c.backoff(in.in.Meta.Delivered))
		case p.err != nil && !p.dlq && isPayloadTooBig(p.err):
			// The output can never be published: treat as bad input.
			// The same class and wording as the processor's own check
			// (processors: event_too_large), with what refused it.
			size := 0
			for _, o := range in.outs {
				size += len(o.Data)
			}
			perm := stage.Reject("event_too_large", fmt.Sprintf("conformed event is %d bytes, refused for its size", size), p.err)
			in.err = perm
			if _, err := b.js.PublishMsg(ctx, b.deadLetter(in.in, c.Stage, perm)); err != nil {
				b.nakWithDelay(in.msg, c.backoff(in.in.Meta.Delivered))
				continue
			}
			if err := b.commit(ctx); err != nil {
				b.nakWithDelay(in.msg, c.backoff(in.in.Meta.Delivered))
				continue
			}
			b.obs.Rejected(c.Stage, in.kind, stage.PermanentClass(perm))
			b.term(in.msg, stage.PermanentClass(perm))
		case p.err != nil:
			b.obs.Retried(c.Stage, in.kind)
			b.bus.PublishFailed(p.err) // one line per outage ("publish" component)
			log().Debug("publish failed, will redeliver", "error", p.err, "dlq", p.dlq)
			b.nakWithDelay(in.msg, c.backoff(in.in.Meta.Delivered))
		case p.dlq && in.in.Meta.Stream == bus.StreamDLQ:
			b.obs.Rejected(c.Stage, in.kind, stage.PermanentClass(in.err))
			log().Error("dead letter rejected by a sink; dropped from this consumer (it stays in the DLQ stream)", "reason", in.err.Error())
			b.term(in.msg, stage.PermanentClass(in.err))
		case p.dlq:
			b.obs.Rejected(c.Stage, in.kind, stage.PermanentClass(in.err))
			log().Info("rejected to DLQ", "reason", in.err.Error())
			b.term(in.msg, stage.PermanentClass(in.err))
		case p.dup != "" && !in.sink:
			// The same source sent the same id: no new event. Recorded on
			// the duplicates' subject so the input's fate is visible and
			// counted (an input delivered again whose event was published
			// before — a crash, a consumer position rolled back by a power
			// cut — is not a duplicate: it counts as out below).
			nm := b.deadLetter(in.in, c.Stage, stage.Duplicate(p.dup))
			nm.Subject = stage.DuplicateSubject(in.in.Subject)
			pa, err := b.js.PublishMsg(ctx, nm)
			if err != nil {
				b.bus.PublishFailed(err)
				log().Debug("publish failed, will redeliver", "error", err, "duplicate_of", p.dup)
				b.obs.Retried(c.Stage, in.kind)
				b.nakWithDelay(in.msg, c.backoff(in.in.Meta.Delivered))
				continue
			}
			if !pa.Duplicate { // else recorded and counted by an earlier delivery
				b.obs.Duplicate(c.Stage, in.kind)
			}
			log().Debug("duplicate input, recorded", "duplicate_of", p.dup)
			_ = b.nc.Publish(in.msg.Reply, ackAck)
		default:
			n := len(in.outs)
			if in.sink {
				n = 1 // stored
			}
			b.obs.Emitted(c.Stage, in.kind, n)
			_ = b.nc.Publish(in.msg.Reply, ackAck)
		}
	}
}

func isPayloadTooBig(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum)
}

func inputCorrelation(in *input) string {
	for _, o := range in.outs {
		if id := o.Header.Get(stage.HeaderCorrelationID); id != "" {
			return id
		}
	}
	return correlation.FromHeaders(in.in.Header)
}

// RunSink consumes c.Stream and writes batches to s. A nil error acks the
// batch; a *stage.BatchError acks what succeeded, sends permanent failures
// to the DLQ and redelivers the rest with backoff; any other error
// redelivers the whole batch (or dead-letters it when permanent).
func RunSink(ctx context.Context, bb *bus.Bus, c Config, s stage.Sink) error {
	b := newConn(bb)
	if c.Workers <= 0 {
		c.Workers = 1
	}
	c.defaults()
	return b.consume(ctx, c, func(ctx context.Context, batch []*input) {
		b.writeBatch(ctx, c, s, batch)
	})
}

func (b *conn) writeBatch(ctx context.Context, c Config, s stage.Sink, batch []*input) {
	start := time.Now()
	msgs := make([]*stage.Message, len(batch))
	for i, in := range batch {
		b.startSpan(ctx, c, in)
		in.sink = true
		msgs[i] = in.in
	}
	err := safeWrite(ctx, s, msgs)
	out := stage.Outcomes(err, len(batch))
	for i, e := range out.Errs {
		batch[i].err = e
	}
	if !out.Whole() { // a whole batch failing is the sink's outage, not the inputs'
		keptFailing(c, batch)
	}
	per := time.Since(start) / time.Duration(len(batch))
	for _, in := range batch {
		b.obs.Observed(c.Stage, in.kind, per)
	}
	b.settle(ctx, c, batch)
	if out.Whole() {
		b.log.Debug("sink write failed, batch will be redelivered", "stage", c.Stage, "messages", len(batch), "error", out.Cause)
	}
	for _, in := range batch {
		b.endSpan(in)
	}
}

func safeWrite(ctx context.Context, s stage.Sink, msgs []*stage.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sink panicked: %v", r)
		}
	}()
	return s.Write(ctx, msgs)
}
