package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pubAckRetry is how long a stage's output (an event, a dead letter)
// waits for its PubAck before it is published again, with the same
// Nats-Msg-Id: the events and dead-letter streams keep it once (their
// duplicate window is minutes). A publish lost with a frozen or dead
// stream leader, or with a connection that moved to another server
// (nats.go fails those at once), is so sent again to whoever leads the
// stream now, instead of waiting out the whole PubAck timeout.
// Against the embedded server (in this process, no other node) the wait
// stays publishAckTimeout.
const pubAckRetry = 4 * time.Second

// PublishAckTimeout bounds how long a stage waits, sends included, for
// its outputs' PubAcks before the input is redelivered.
const PublishAckTimeout = publishAckTimeout

// retryable reports whether a publish that failed with err may simply be
// sent again: no answer, a lost connection, no stream leader yet. A
// refusal by the stream (an API error other than 503 unavailable: too
// large, stream full) is not.
func retryable(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return api.Code == 503
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return false
	}
	return errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrTooManyStalledMsgs) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrReconnectBufExceeded)
}

// OutputJetStream is the handle a stage's outputs are published with:
// its PubAck wait is pubAckRetry on an external server (AwaitAck sends
// again), publishAckTimeout on the embedded one.
func (b *Bus) OutputJetStream() jetstream.JetStream { return b.rjs }

// PublishFailed notes an input handed back for redelivery because its
// output's publish failed: it counts in the publish outage (one line per
// outage, not per input).
func (b *Bus) PublishFailed(err error) { b.pubOut.failed(b, err) }

// AwaitAck waits for f's PubAck. A publish that fails in a way retryable
// allows is sent again (the same message) until done fires or ctx ends;
// sent is how many times it went out. Each retry is noted in the publish
// outage (one log line per outage, not per message).
func (b *Bus) AwaitAck(ctx context.Context, f jetstream.PubAckFuture, done <-chan struct{}) (ack *jetstream.PubAck, sent int, err error) {
	sent = 1
	for {
		select {
		case ack = <-f.Ok():
			b.pubOut.ok(b)
			return ack, sent, nil
		case err = <-f.Err():
		case <-done:
			return nil, sent, fmt.Errorf("timed out waiting for PubAck (sent %d times)", sent)
		case <-ctx.Done():
			return nil, sent, ctx.Err()
		}
		if !retryable(err) || f.Msg().Header.Get(jetstream.MsgIDHeader) == "" {
			return nil, sent, err
		}
		b.pubOut.retried(b, err)
		// An answer that came at once (no responders while a leader is
		// elected, a lost connection) is not sent again in a tight loop.
		wait := time.Duration(0)
		if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			wait = 250 * time.Millisecond
		}
		for {
			select {
			case <-time.After(wait):
			case <-done:
				return nil, sent, fmt.Errorf("timed out waiting for PubAck (sent %d times): %w", sent, err)
			case <-ctx.Done():
				return nil, sent, ctx.Err()
			}
			wait = 100 * time.Millisecond // a full async window or a reconnect buffer
			nf, perr := b.rjs.PublishMsgAsync(f.Msg())
			if perr == nil {
				f = nf
				sent++
				break
			}
			if !retryable(perr) {
				return nil, sent, perr
			}
			err = perr
		}
	}
}

// pubOutage follows publishes that get no PubAck: the first retry (or
// failed input) of an outage marks the "publish" component failing (one
// error line, and /readyz answers 503 naming it); the outage is over at
// the first PubAck that comes a second after the last retry, or once no
// publish has needed a retry for 2 × pubAckRetry (every publish still
// unanswered is retried within pubAckRetry); then one line says how long
// it lasted, how many publishes were sent again and how many inputs were
// handed back for redelivery.
type pubOutage struct {
	active      atomic.Bool // an outage is on (read without the lock on every PubAck)
	mu          sync.Mutex
	since, last time.Time // start, last retry or failure; zero: no outage
	retries     uint64
	redelivered uint64
}

func (o *pubOutage) retried(b *Bus, err error) { o.note(b, err, 1, 0) }

// failed notes an input handed back because its publish failed.
func (o *pubOutage) failed(b *Bus, err error) { o.note(b, err, 0, 1) }

func (o *pubOutage) note(b *Bus, err error, retries, redelivered uint64) {
	o.mu.Lock()
	start := o.since.IsZero()
	now := time.Now()
	if start {
		o.since = now
		o.active.Store(true)
	}
	o.last = now
	o.retries += retries
	o.redelivered += redelivered
	o.mu.Unlock()
	if start {
		b.health.Set("publish", fmt.Errorf("no PubAck for the stage's outputs (publishes are sent again every %s): %w", pubAckRetry, err))
		go o.watch(b)
	}
}

func (o *pubOutage) ok(b *Bus) {
	if !o.active.Load() {
		return
	}
	o.mu.Lock()
	over := !o.since.IsZero() && time.Since(o.last) >= time.Second
	o.mu.Unlock()
	if over {
		o.end(b)
	}
}

// watch ends the outage once no publish has needed a retry for
// 2 × pubAckRetry.
func (o *pubOutage) watch(b *Bus) {
	for {
		time.Sleep(time.Second)
		o.mu.Lock()
		since, last := o.since, o.last
		o.mu.Unlock()
		if since.IsZero() {
			return
		}
		if time.Since(last) >= 2*pubAckRetry {
			o.end(b)
			return
		}
	}
}

func (o *pubOutage) end(b *Bus) {
	o.mu.Lock()
	if o.since.IsZero() {
		o.mu.Unlock()
		return
	}
	since, retries, redelivered := o.since, o.retries, o.redelivered
	o.since, o.retries, o.redelivered = time.Time{}, 0, 0
	o.active.Store(false)
	o.mu.Unlock()
	b.health.Set("publish", nil, "publishes_sent_again", retries, "inputs_redelivered", redelivered,
		"outage", time.Since(since).Round(time.Millisecond).String())
}
