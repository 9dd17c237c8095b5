// Package track is the Go client library for Sightline metric events: the
// obs.track('search_made', {...}) of Skywatch.
//
//	t := track.New(pub, track.WithService("search-api", "1.4.2"))
//	defer t.Close(ctx)
//	id, err := t.Track(ctx, "search_made", map[string]any{"query": "cats", "n_results": 3})
//
// Every event is published to sightline.raw.metric.<name> with
//   - a Correlation-Id header taken from ctx (correlation.FromContext, or the
//     trace id of the OpenTelemetry span in ctx), minted when ctx has none;
//   - a traceparent header when ctx carries a valid span;
//   - a Nats-Msg-Id (the returned id), so a retried publish never produces a
//     second event; the CloudEvents id is derived from it and the subject
//     (EventID), so no other producer can take it;
//   - a Sightline-Producer header naming the service, version and host.
//
// The name and the property names are checked before anything is sent; a
// bad one returns ErrInvalidName / ErrInvalidProps and publishes nothing.
//
// By default Track publishes synchronously and returns after the PubAck.
// WithAsync buffers events and publishes them in batches from a background
// goroutine; Flush and Close wait for what was buffered.
package track

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/retry"
	"github.com/sightline/sightline/internal/stage"
)

// Message is one message to publish. It is an alias of Sightline's internal
// message type, so code outside this module can build and inspect it.
type Message = stage.Message

// Header is a message header map (NATS spelling of names is kept).
type Header = stage.Header

// PublishResult is the stream position a published message got; Duplicate
// is true when JetStream dropped it as a repeat of a Nats-Msg-Id.
type PublishResult = stage.PublishResult

// Publisher publishes messages to JetStream and waits for every PubAck
// (Sightline's one publishing contract, under a name importable from
// outside the module). *bus.Bus satisfies it; JetStream and Conn adapt
// nats.go handles.
type Publisher = stage.Publisher

// Subject prefix of metric events.
const subjectPrefix = stage.RawPrefix + "metric."

// Limits mirrored from schemas/metric.schema.json, checked before publishing
// so a bad event fails in the caller instead of landing in the DLQ.
const (
	MaxNameLen    = 128
	MaxProperties = 512
	MaxPropLen    = 128
)

// Sentinel errors.
var (
	ErrInvalidName  = errors.New("track: invalid event name")
	ErrInvalidProps = errors.New("track: invalid properties")
	ErrClosed       = errors.New("track: tracker closed")
	ErrPublish      = errors.New("track: publish failed")
)

// Tracker publishes metric events. It is safe for concurrent use.
type Tracker struct {
	pub      Publisher
	log      *slog.Logger
	producer string
	version  string
	host     string
	attempts int
	backoff  time.Duration
	timeout  time.Duration
	onError  func(ids []string, err error)

	// async mode
	async    bool
	bufSize  int
	batch    int
	interval time.Duration
	ch       chan item
	exited   chan struct{}
	mu       sync.RWMutex // guards closed against sends in flight
	closed   bool
	once     sync.Once
}

type item struct {
	msg   *Message
	flush chan error // a Flush/Close marker when non-nil
	stop  bool
}

// Option configures a Tracker.
type Option func(*Tracker)

// WithService names the producing service and its version; they go into the
// Sightline-Producer header ("search-api/1.4.2@host") and become the event's
// producer (its source is the subject).
func WithService(name, version string) Option {
	return func(t *Tracker) { t.producer, t.version = name, version }
}

// WithSource is WithService without a version.
func WithSource(name string) Option { return func(t *Tracker) { t.producer = name } }

// WithHost sets the host part of the producer identity (default os.Hostname;
// "" leaves it out).
func WithHost(host string) Option { return func(t *Tracker) { t.hostSet(host) } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(t *Tracker) { t.log = l } }

// WithRetry sets how many times a publish is attempted (default 3) and the
// first backoff between attempts (default 100ms, doubling). Every attempt
// carries the same Nats-Msg-Id, so retries never duplicate an event.
func WithRetry(attempts int, backoff time.Duration) Option {
	return func(t *Tracker) {
		t.attempts = max(1, attempts)
		t.backoff = max(0, backoff)
	}
}

// WithPublishTimeout bounds one publish attempt (default 10s).
func WithPublishTimeout(d time.Duration) Option { return func(t *Tracker) { t.timeout = d } }

// WithAsync buffers up to buffer events and publishes them in batches of up
// to batch events, at least every interval. Track then returns as soon as
// the event is buffered (blocking while the buffer is full, until ctx is
// done). Use Flush to wait for delivery and Close before exiting.
func WithAsync(buffer, batch int, interval time.Duration) Option {
	return func(t *Tracker) {
		t.async = true
		t.bufSize = max(1, buffer)
		t.batch = max(1, batch)
		t.interval = interval
		if t.interval <= 0 {
			t.interval = 100 * time.Millisecond
		}
	}
}

// WithErrorHandler is called in async mode with the ids of events that
// could not be published after all retries (they are also logged).
func WithErrorHandler(f func(ids []string, err error)) Option {
	return func(t *Tracker) { t.onError = f }
}

// New returns a Tracker publishing through pub.
func New(pub Publisher, opts ...Option) *Tracker {
	t := &Tracker{pub: pub, attempts: 3, backoff: 100 * time.Millisecond, timeout: 10 * time.Second}
	host, _ := os.Hostname()
	t.hostSet(host)
	for _, o := range opts {
		o(t)
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.async {
		t.ch = make(chan item, t.bufSize)
		t.exited = make(chan struct{})
		go t.loop()
	}
	return t
}

func (t *Tracker) hostSet(h string) { t.host = h }

// Producer returns the Sightline-Producer header value this tracker sends.
func (t *Tracker) Producer() string {
	p := t.producer
	if p == "" {
		p = "go-track"
	}
	if t.version != "" {
		p += "/" + t.version
	}
	if t.host != "" {
		p += "@" + t.host
	}
	return p
}

type idKey struct{}
type idemKey struct{}

// WithEventID returns ctx asking the next Track to use id as its
// Nats-Msg-Id (the id Track returns), e.g. to retry a Track that returned
// an error: the processor records the second copy as a duplicate if the
// first one did arrive.
func WithEventID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, idKey{}, id)
}

// WithIdempotencyKey returns ctx making Track derive the event id from key,
// the service and the event name: tracking the same key twice (within the
// stream's 10-minute dedup window) yields one event.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idemKey{}, key)
}

// Track publishes one metric event named name with props as its data and
// returns its id: its Nats-Msg-Id, to pass to WithEventID for a retry;
// EventID(name, id) is the CloudEvents id the conformed event will have.
func (t *Tracker) Track(ctx context.Context, name string, props map[string]any) (string, error) {
	msg, err := t.Build(ctx, name, props)
	if err != nil {
		return "", err
	}
	if !t.async {
		if err := t.publish(ctx, []*Message{msg}); err != nil {
			return msg.ID, err
		}
		return msg.ID, nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return msg.ID, ErrClosed
	}
	select {
	case t.ch <- item{msg: msg}:
		return msg.ID, nil
	case <-t.exited:
		return msg.ID, ErrClosed
	case <-ctx.Done():
		return msg.ID, fmt.Errorf("track %s: buffer full: %w", name, ctx.Err())
	}
}

// EventID is the CloudEvents id of the event Track(ctx, name, ...) makes
// when it returned id: derived from the subject (the event's source) and
// id, by Sightline's one rule for event identity (internal/identity).
func EventID(name, id string) string {
	return identity.ID(identity.Source{Subject: subjectPrefix + name}, id, identity.Position{})
}

// Build returns the message Track would publish, without publishing it.
func (t *Tracker) Build(ctx context.Context, name string, props map[string]any) (*Message, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if err := validProps(props); err != nil {
		return nil, fmt.Errorf("track %s: %w", name, err)
	}
	if props == nil {
		props = map[string]any{}
	}
	data, err := json.Marshal(props)
	if err != nil {
		return nil, fmt.Errorf("track %s: %w: %w", name, ErrInvalidProps, err)
	}
	h := Header{stage.HeaderProducer: {t.Producer()}, stage.HeaderContentType: {"application/json"}}
	if t.version != "" {
		h[stage.HeaderProducerVersion] = []string{t.version}
	}
	cid := correlation.FromContext(ctx)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		h[stage.HeaderTraceParent] = []string{traceParent(sc)}
		if cid == "" {
			cid = sc.TraceID().String()
		}
	}
	if cid == "" {
		cid = correlation.Mint()
	}
	h[stage.HeaderCorrelationID] = []string{cid}
	id, _ := ctx.Value(idKey{}).(string)
	if id == "" {
		if key, _ := ctx.Value(idemKey{}).(string); key != "" {
			id = correlation.Derive("track", t.producer, name, key)
		} else {
			id = uuid.NewString()
		}
	}
	return &Message{Subject: subjectPrefix + name, Header: h, Data: data, ID: id}, nil
}

func traceParent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// ValidName reports whether name can be a metric event name: 1-128 ASCII
// letters, digits, '_' or '-' (one NATS subject token).
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w %q: must be 1-%d characters", ErrInvalidName, name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: character %q at %d is not a letter, digit, '_' or '-'", ErrInvalidName, name, c, i)
		}
	}
	return nil
}

// validProps mirrors metric.schema.json: at most 512 properties named
// ^[A-Za-z_@$][A-Za-z0-9_.@$-]{0,127}$.
func validProps(props map[string]any) error {
	if len(props) > MaxProperties {
		return fmt.Errorf("%w: %d properties, at most %d", ErrInvalidProps, len(props), MaxProperties)
	}
	for k := range props {
		if !validPropName(k) {
			return fmt.Errorf("%w: property name %q must match ^[A-Za-z_@$][A-Za-z0-9_.@$-]{0,127}$", ErrInvalidProps, k)
		}
	}
	return nil
}

func validPropName(k string) bool {
	if k == "" || len(k) > MaxPropLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '@' || c == '$'
		if i > 0 {
			ok = ok || c >= '0' && c <= '9' || c == '.' || c == '-'
		}
		if !ok {
			return false
		}
	}
	return true
}

// publish sends msgs with retries; every attempt reuses the message ids.
func (t *Tracker) publish(ctx context.Context, msgs []*Message) error {
	bo := retry.Backoff{Initial: t.backoff}
	var err error
	for attempt := 1; attempt <= t.attempts; attempt++ {
		actx, cancel := context.WithTimeout(ctx, t.timeout)
		_, err = t.pub.Publish(actx, msgs...)
		cancel()
		if err == nil {
			return nil
		}
		if attempt == t.attempts || ctx.Err() != nil {
			break
		}
		t.log.Warn("publish failed, retrying", "attempt", attempt, "events", len(msgs),
			"correlation_id", msgs[0].Header.Get(stage.HeaderCorrelationID), "error", err)
		_ = retry.Sleep(ctx, bo.Delay(attempt-1)) // a cancelled ctx ends the loop above
	}
	return fmt.Errorf("%w: %d event(s) to %s: %w", ErrPublish, len(msgs), msgs[0].Subject, err)
}

// loop is the async publisher: it batches buffered events and publishes them.
func (t *Tracker) loop() {
	defer close(t.exited)
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	var batch []*Message
	var firstErr error
	send := func() {
		if len(batch) == 0 {
			return
		}
		// Background publishing is not tied to any caller's context;
		// retries and the publish timeout bound it.
		if err := t.publish(context.Background(), batch); err != nil {
			ids := make([]string, len(batch))
			for i, m := range batch {
				ids[i] = m.ID
			}
			t.log.Error("events dropped after retries", "events", len(batch), "error", err,
				"correlation_id", batch[0].Header.Get(stage.HeaderCorrelationID))
			if t.onError != nil {
				t.onError(ids, err)
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		batch = batch[:0:0]
	}
	for {
		select {
		case it := <-t.ch:
			if it.msg != nil {
				batch = append(batch, it.msg)
				if len(batch) >= t.batch {
					send()
				}
				continue
			}
			send()
			if it.flush != nil {
				it.flush <- firstErr
				firstErr = nil
			}
			if it.stop {
				return
			}
		case <-tick.C:
			send()
		}
	}
}

// Flush waits until every event tracked before the call is published and
// returns the first publish error since the last Flush. A no-op when not
// async.
func (t *Tracker) Flush(ctx context.Context) error {
	if !t.async {
		return nil
	}
	return t.marker(ctx, false)
}

func (t *Tracker) marker(ctx context.Context, stop bool) error {
	done := make(chan error, 1)
	select {
	case t.ch <- item{flush: done, stop: stop}:
	case <-t.exited:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("track: flush: %w", ctx.Err())
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("track: flush: %w", ctx.Err())
	}
}

// Close publishes what is buffered and stops the tracker; Track returns
// ErrClosed afterwards. It does not close the Publisher.
func (t *Tracker) Close(ctx context.Context) error {
	if !t.async {
		return nil
	}
	var err error = ErrClosed
	t.once.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
		err = t.marker(ctx, true)
	})
	return err
}
