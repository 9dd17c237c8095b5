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

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// Subject prefixes of the streams (DESIGN.md contracts).
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

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(p *Pipeline) { p.now = now } }

// NewPipeline composes stages into a stage.Processor.
func NewPipeline(stages []Stage, opts ...Option) *Pipeline {
	p := &Pipeline{stages: stages, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Config is what the standard pipeline needs.
type Config struct {
	MaxBodyBytes int               // bodies larger than this are rejected
	Attributes   map[string]string // static enrichment attributes
}

// Standard builds validate → conform → enrich. The returned Enricher lets
// the caller swap attributes at run time (SIGHUP).
func Standard(cfg Config, v *schemas.Validator, opts ...Option) (*Pipeline, *Enricher) {
	en := NewEnricher(cfg.Attributes)
	return NewPipeline([]Stage{
		&Validate{MaxBodyBytes: cfg.MaxBodyBytes, Schemas: v},
		&Conform{Schemas: v},
		en,
	}, opts...), en
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
	return []*stage.Message{Output(&w.Event, w.Kind, w.Name, w.Rest)}, nil
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

// Output builds the output message of a conformed event.
func Output(ev *schemas.Event, kind, name, rest string) *stage.Message {
	return &stage.Message{
		Subject: EventsPrefix + kind + "." + name + rest,
		Header:  OutputHeader(ev),
		Data:    ev.AppendJSON(make([]byte, 0, encodedSize(ev))),
		ID:      ev.ID,
	}
}

// OutputHeader is the NATS header of a conformed event's message: its
// correlation ID, type, content type, traceparent, sync scope and tag, and
// its id as Nats-Msg-Id (so the bus publishes the map without copying it).
func OutputHeader(ev *schemas.Event) stage.Header {
	// One backing array for the header values: one allocation, not six.
	vals := [6]string{ev.CorrelationID, ev.Type, "application/cloudevents+json", ev.TraceParent, ev.SyncScope, ev.ID}
	h := make(stage.Header, 7)
	h[stage.HeaderCorrelationID] = vals[0:1:1]
	h[stage.HeaderEventType] = vals[1:2:2]
	h[stage.HeaderContentType] = vals[2:3:3]
	if ev.ID != "" {
		h[stage.HeaderMsgID] = vals[5:6:6]
	}
	if ev.TraceParent != "" {
		h[stage.HeaderTraceParent] = vals[3:4:4]
	}
	if ev.SyncScope != "" {
		h[stage.HeaderSyncScope] = vals[4:5:5]
		h[stage.HeaderSyncTag] = []string{ev.SyncTag}
	}
	return h
}

// encodedSize is a close upper estimate of the envelope's JSON length, so
// AppendJSON writes into one allocation.
func encodedSize(ev *schemas.Event) int {
	n := 320 + len(ev.Data) + len(ev.ID) + len(ev.Source) + len(ev.Type) + len(ev.Subject) +
		len(ev.CorrelationID) + len(ev.SyncScope) + len(ev.SyncTag) + len(ev.Producer) + len(ev.TraceParent)
	for k, v := range ev.Attributes {
		n += len(k) + len(v) + 6
	}
	return n + n/8 // escapes
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
			if len(v) > 256 {
				v = strings.ToValidUTF8(v[:256], "") // not cut inside a character
			}
			return v
		}
	}
	return ""
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
