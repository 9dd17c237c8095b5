// Package processors turns raw input (sightline.raw.>) into conformed
// CloudEvents (sightline.events.>) through composable stages:
// validate → conform → enrich. Bad input comes out as a stage.PermanentError
// with a reason a person can read; the bus sends it to the DLQ.
package processors

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// Subject prefixes of the streams (docs/architecture.md).
const (
	RawPrefix    = stage.RawPrefix
	EventsPrefix = stage.EventsPrefix
	DLQPrefix    = stage.DLQPrefix
)

// Work is what flows through the stages for one input message.
type Work struct {
	In   *stage.Message
	Kind string // metric, log, snapshot
	Name string // the subject token after the kind
	Rest string // any further subject tokens, with their leading dot
	// Body is the decoded JSON body (map[string]any for objects), nil for a
	// plain-text log line.
	Body any
	// Compact is the JSON body without insignificant whitespace (metric
	// bodies; Validate fills it in the same pass that decodes Body).
	Compact []byte
	Event   schemas.Event
	Now     time.Time
}

// Stage is one step of the pipeline.
type Stage interface {
	Name() string
	Apply(ctx context.Context, w *Work) error
}

// Pipeline runs stages in order and emits the conformed event.
type Pipeline struct {
	stages []Stage
	tracer trace.Tracer // nil: no spans
	now    func() time.Time
	// maxEvent bounds an output message (body and headers), so the events
	// stream never refuses what the processor publishes.
	maxEvent int
}

// Option configures a Pipeline.
type Option func(*Pipeline)

// WithTracer sets the tracer used for a span per message per stage.
// A no-op tracer (tracing off) is the same as none.
func WithTracer(t trace.Tracer) Option {
	return func(p *Pipeline) {
		if _, off := t.(noop.Tracer); !off {
			p.tracer = t
		}
	}
}

// WithMaxEventBytes bounds an output message, body and headers (default
// limits.MaxEventBytes): a conformed event larger than n is rejected with
// class event_too_large before it is published. Set it to the events
// stream's max message size less limits.EventHeaderBudget.
func WithMaxEventBytes(n int) Option {
	return func(p *Pipeline) {
		if n > 0 {
			p.maxEvent = n
		}
	}
}

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(p *Pipeline) { p.now = now } }

// NewPipeline composes stages into a stage.Processor.
func NewPipeline(stages []Stage, opts ...Option) *Pipeline {
	p := &Pipeline{stages: stages, now: time.Now, maxEvent: limits.MaxEventBytes}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Config is what the standard pipeline needs.
type Config struct {
	MaxBodyBytes int // bodies larger than this are rejected
	// MaxEventBytes bounds an output message (WithMaxEventBytes); 0:
	// limits.MaxEventBytes.
	MaxEventBytes int
	Attributes    map[string]string // static enrichment attributes
	// IdentityKey verifies the HTTP ingest's seal (Conform.Key; the bus's
	// IdentityKey).
	IdentityKey []byte
}

// Standard builds validate → conform → enrich. The returned Enricher lets
// the caller swap attributes at run time (SIGHUP).
func Standard(cfg Config, v *schemas.Validator, opts ...Option) (*Pipeline, *Enricher) {
	en := NewEnricher(cfg.Attributes)
	return NewPipeline([]Stage{
		&Validate{MaxBodyBytes: cfg.MaxBodyBytes, Schemas: v},
		&Conform{Schemas: v, Key: cfg.IdentityKey},
		en,
	}, append([]Option{WithMaxEventBytes(cfg.MaxEventBytes)}, opts...)...), en
}

// Process implements stage.Processor.
func (p *Pipeline) Process(ctx context.Context, in *stage.Message) ([]*stage.Message, error) {
	w := &Work{In: in, Now: p.now()}
	// A span per stage only when tracing is on and this message is sampled
	// (its parent span records, or it has none): three spans per message
	// cost more than a stage when nobody looks at them.
	tracer := p.tracer
	if parent := trace.SpanFromContext(ctx); parent.SpanContext().IsValid() && !parent.IsRecording() {
		tracer = nil
	}
	for _, s := range p.stages {
		if err := apply(ctx, tracer, s, w); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name(), err)
		}
	}
	out := stage.EventMessage(&w.Event, w.Kind, w.Name, w.Rest)
	if n := len(out.Data) + HeaderBytes(out.Header); n > p.maxEvent {
		return nil, stage.Rejectf("event_too_large",
			"conformed event is %d bytes (from a body of %d bytes), over the limit of %d bytes the events stream takes",
			n, len(in.Data), p.maxEvent)
	}
	return []*stage.Message{out}, nil
}

// HeaderBytes is what h takes in a NATS message: the "NATS/1.0" line, one
// "Key: value" line per value and the blank line.
func HeaderBytes(h stage.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n
}

// apply runs one stage, in a span of its own when tracer is not nil.
func apply(ctx context.Context, tracer trace.Tracer, s Stage, w *Work) error {
	if tracer == nil {
		return s.Apply(ctx, w)
	}
	sctx, span := tracer.Start(ctx, s.Name())
	defer span.End()
	err := s.Apply(sctx, w)
	if w.Event.CorrelationID != "" {
		span.SetAttributes(attribute.String("sightline.correlation_id", w.Event.CorrelationID))
	}
	if err != nil {
		span.RecordError(err)
	}
	return err
}

// ParseSubject splits sightline.<stream>.<kind>.<name>[.<more>] after the
// given prefix.
func ParseSubject(prefix, subject string) (kind, name, rest string, ok bool) {
	s, found := strings.CutPrefix(subject, prefix)
	if !found {
		return "", "", "", false
	}
	kind, s, found = strings.Cut(s, ".")
	if !found || kind == "" {
		return "", "", "", false
	}
	name, rest, _ = strings.Cut(s, ".")
	if name == "" {
		return "", "", "", false
	}
	if rest != "" {
		rest = "." + rest
	}
	return kind, name, rest, true
}

// Enricher adds the configured static attributes (site, env, stage,
// cluster...), ingest time, lag and the producer's identity. Its attributes
// can be replaced while messages flow.
type Enricher struct {
	attrs atomic.Pointer[map[string]string]
}

// NewEnricher returns an Enricher with attrs.
func NewEnricher(attrs map[string]string) *Enricher {
	e := &Enricher{}
	e.SetAttributes(attrs)
	return e
}

// SetAttributes replaces the static attributes.
func (e *Enricher) SetAttributes(attrs map[string]string) {
	cp := make(map[string]string, len(attrs))
	for k, v := range attrs {
		cp[k] = v
	}
	e.attrs.Store(&cp)
}

// Attributes returns the current static attributes.
func (e *Enricher) Attributes() map[string]string { return *e.attrs.Load() }

// Name implements Stage.
func (e *Enricher) Name() string { return "enrich" }

// Apply implements Stage.
func (e *Enricher) Apply(_ context.Context, w *Work) error {
	if attrs := *e.attrs.Load(); len(attrs) > 0 {
		w.Event.Attributes = attrs // read-only from here on
	}
	ingest := w.In.Meta.Timestamp
	if ingest.IsZero() {
		ingest = w.Now
	}
	w.Event.IngestTime = ingest.UTC()
	w.Event.LagMs = ingest.Sub(w.Event.Time).Milliseconds()
	if p := producer(w.In.Header); p != "" {
		w.Event.Producer = p
	}
	return nil
}

// producer names who sent the message, from its headers.
func producer(h stage.Header) string {
	for _, k := range []string{stage.HeaderProducer, "User-Agent"} {
		if v := strings.TrimSpace(h.Get(k)); v != "" {
			if len(v) > limits.ProducerBytes {
				v = strings.ToValidUTF8(v[:limits.ProducerBytes], "") // not cut inside a character
			}
			return v
		}
	}
	return ""
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
