// Package stage holds the small types every pipeline stage sees: a Message,
// a Processor that turns one message into messages, a Sink that writes a
// batch, and the error classes the router uses to decide ack, nak or DLQ.
//
// Stages never talk to JetStream themselves: internal/bus fetches, calls the
// stage, and alone decides what happens to the input.
//
// Size: ~500 lines but ~70 exported names, over the project's usual bound,
// because it is the written-once contract: every subject, header and
// error class is a constant here so that no other package spells one.
package stage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/schemas"
)

// Header is a NATS-style header map. Lookups through Get are
// case-insensitive, because producers spell header names freely.
type Header map[string][]string

// Get returns the first value for key, matching the exact spelling first and
// any case-insensitive spelling after that.
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Set replaces the values of key.
func (h Header) Set(key, value string) { h[key] = []string{value} }

// Clone returns a deep copy of h.
func (h Header) Clone() Header {
	out := make(Header, len(h))
	for k, v := range h {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Meta describes where an input message came from. The bus fills it.
type Meta struct {
	Stream    string
	Consumer  string
	Sequence  uint64    // stream sequence
	Delivered uint64    // delivery attempt, 1 on first delivery
	Timestamp time.Time // when the stream stored the message
	Pending   uint64    // messages still pending for the consumer
}

// Message is the unit every stage reads and writes.
type Message struct {
	Subject string
	Header  Header
	Data    []byte
	// ID is the Nats-Msg-Id an output message is published with (dedup key).
	ID   string
	Meta Meta
}

// Processor turns one input message into zero or more output messages.
// Returning an error wrapped with Permanent sends the input to the DLQ;
// any other error is retried with backoff.
type Processor interface {
	Process(ctx context.Context, in *Message) ([]*Message, error)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, in *Message) ([]*Message, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, in *Message) ([]*Message, error) {
	return f(ctx, in)
}

// Sink writes batches of messages to an external system. Write must be
// idempotent: the same message written twice leaves one record. Write
// reports outcomes and nothing else: nil when every message is stored, a
// *BatchError naming the failed indexes (permanent errors for bad data,
// others for the store's failures), or an error of any other type for
// every message. What happens next (ack, redelivery, DLQ, the sink's
// health) is decided from Outcomes by the consumer runtime, which also
// finishes every Write before it calls Close.
type Sink interface {
	Write(ctx context.Context, batch []*Message) error
	Close(ctx context.Context) error
}

// Publisher sends messages to JetStream, each with its ID as Nats-Msg-Id,
// and waits for every PubAck: the one publishing contract of producers,
// the HTTP ingest and replay (*bus.Bus implements it).
type Publisher interface {
	Publish(ctx context.Context, msgs ...*Message) ([]PublishResult, error)
}

// PublishResult is the stream position a published message got; Duplicate
// is true when JetStream dropped it as a repeat of its Nats-Msg-Id.
type PublishResult struct {
	Stream    string
	Sequence  uint64
	Duplicate bool
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, msgs ...*Message) ([]PublishResult, error)

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, msgs ...*Message) ([]PublishResult, error) {
	return f(ctx, msgs...)
}

// DiscardPublisher publishes nothing and reports success (dry runs).
var DiscardPublisher Publisher = PublisherFunc(func(_ context.Context, msgs ...*Message) ([]PublishResult, error) {
	return make([]PublishResult, len(msgs)), nil
})

// PermanentError marks bad input: retrying cannot help, the message goes to
// the dead-letter queue with Reason.
type PermanentError struct {
	Class  string // short machine label for metrics, e.g. "invalid_utf8"
	Reason string // human-readable, e.g. "body is not valid UTF-8"
	Err    error
}

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a permanent (bad data) error with a reason.
func Permanent(reason string, err error) error {
	return &PermanentError{Class: "invalid", Reason: reason, Err: err}
}

// Reject builds a permanent error of a class (a metric label such as
// "too_large" or "schema") with a human-readable reason.
func Reject(class, reason string, err error) error {
	return &PermanentError{Class: class, Reason: reason, Err: err}
}

// Rejectf is Reject with a formatted reason and no wrapped error.
func Rejectf(class, format string, args ...any) error {
	return &PermanentError{Class: class, Reason: fmt.Sprintf(format, args...)}
}

// PermanentClass returns the class of a permanent error, "" if err is not one.
func PermanentClass(err error) string {
	var p *PermanentError
	if errors.As(err, &p) {
		if p.Class == "" {
			return "invalid"
		}
		return p.Class
	}
	return ""
}

// IsPermanent reports whether err (or anything it wraps) is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// BatchError reports a sink write that failed for some messages only.
// Failed maps the index in the batch to its error; indexes not present
// succeeded. Errors marked Permanent go to the DLQ, others are retried.
type BatchError struct {
	Failed map[int]error
}

func (e *BatchError) Error() string {
	var perm int
	for _, err := range e.Failed {
		if IsPermanent(err) {
			perm++
		}
	}
	return fmt.Sprintf("%d of the batch failed (%d permanent)", len(e.Failed), perm)
}

// Outcome is what a Sink.Write of a batch did, message by message.
type Outcome struct {
	// Errs is the error of each message, nil where it was stored; nil
	// when every message was stored. A permanent error sends its message
	// to the DLQ, any other has it redelivered with backoff.
	Errs []error
	// Permanent and Transient count the messages that failed each way.
	Permanent, Transient int
	// Cause is the first transient failure, nil when there is none: the
	// store's fault rather than the data's, what the sink's health
	// reports.
	Cause error
}

// Whole reports that every message failed and none permanently: the store
// failed, not the data, and the whole batch is redelivered.
func (o Outcome) Whole() bool { return o.Transient > 0 && o.Transient == len(o.Errs) }

// Rejected reports that every message failed permanently.
func (o Outcome) Rejected() bool { return o.Permanent > 0 && o.Permanent == len(o.Errs) }

// Outcomes reads what a Sink.Write of n messages returned, the one place
// the contract is interpreted (the consumer runtime, the sinks' health,
// replay, the contract suite). A *BatchError fails the indexes it names
// (others in range are stored); any other error fails every message. A
// failure that IsPermanent goes to the DLQ; any other is retried. Whether
// the whole batch failed is read from the messages' outcomes, whatever
// form the sink gave them.
func Outcomes(err error, n int) Outcome {
	if err == nil {
		return Outcome{}
	}
	o := Outcome{Errs: make([]error, n)}
	var be *BatchError
	if !errors.As(err, &be) {
		for i := range o.Errs {
			o.Errs[i] = err
		}
	} else {
		for i, e := range be.Failed {
			if i >= 0 && i < n {
				o.Errs[i] = e
			}
		}
	}
	for _, e := range o.Errs {
		switch {
		case e == nil:
		case IsPermanent(e):
			o.Permanent++
		default:
			o.Transient++
			if o.Cause == nil {
				o.Cause = e
			}
		}
	}
	return o
}

// EventHeader is the NATS header of a conformed event's message: its
// correlation ID, type, content type, traceparent, sync scope and tag, and
// its id as Nats-Msg-Id (so the bus publishes the map without copying it).
func EventHeader(ev *schemas.Event) Header {
	// One backing array for the header values: one allocation, not six.
	vals := [6]string{ev.CorrelationID, ev.Type, "application/cloudevents+json", ev.TraceParent, ev.SyncScope, ev.ID}
	h := make(Header, 7)
	h[HeaderCorrelationID] = vals[0:1:1]
	h[HeaderEventType] = vals[1:2:2]
	h[HeaderContentType] = vals[2:3:3]
	if ev.ID != "" {
		h[HeaderMsgID] = vals[5:6:6]
	}
	if ev.TraceParent != "" {
		h[HeaderTraceParent] = vals[3:4:4]
	}
	if ev.SyncScope != "" {
		h[HeaderSyncScope] = vals[4:5:5]
		h[HeaderSyncTag] = []string{ev.SyncTag}
	}
	return h
}

// EventMessage is the message of a conformed event on the events stream:
// subject sightline.events.<kind>.<name><rest>, the event's header
// (EventHeader) and its JSON envelope. The processors emit every event
// this way, and so does a sink publishing events of its own (the graph's
// sweep decisions).
func EventMessage(ev *schemas.Event, kind, name, rest string) *Message {
	return &Message{
		Subject: EventsPrefix + kind + "." + name + rest,
		Header:  EventHeader(ev),
		Data:    ev.AppendJSON(make([]byte, 0, encodedSize(ev))),
		ID:      ev.ID,
	}
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

// Well-known header names.
const (
	HeaderCorrelationID   = correlation.Header
	HeaderXCorrelationID  = correlation.HeaderX
	HeaderXRequestID      = correlation.HeaderRequestID
	HeaderTraceParent     = "traceparent"
	HeaderTraceState      = "tracestate"
	HeaderMsgID           = "Nats-Msg-Id"
	HeaderProducer        = "Sightline-Producer"
	HeaderDLQReason       = "Sightline-Dlq-Reason"
	HeaderDLQClass        = "Sightline-Dlq-Class"
	HeaderDLQStage        = "Sightline-Dlq-Stage"
	HeaderDLQSubject      = "Sightline-Dlq-Subject"
	HeaderDLQStream       = "Sightline-Dlq-Stream"
	HeaderDLQSequence     = "Sightline-Dlq-Sequence"
	HeaderDLQTime         = "Sightline-Dlq-Time"
	HeaderOriginalPrefix  = "Sightline-Orig-"
	HeaderEventType       = "Sightline-Type"
	HeaderSyncScope       = "Sightline-Sync-Scope"
	HeaderSyncTag         = "Sightline-Sync-Tag"
	HeaderSyncFinal       = "Sightline-Sync-Final"
	HeaderSyncCount       = "Sightline-Sync-Count"
	HeaderContentType     = "Content-Type"
	HeaderProducerVersion = "Sightline-Producer-Version"
	// HeaderSource is the principal the HTTP ingest authenticated
	// (identity.HTTP), and HeaderSourceID the producer's id for it; the
	// processor believes them only when the Nats-Msg-Id is their seal
	// (identity.Seal), which only the worker can make.
	HeaderSource   = "Sightline-Source"
	HeaderSourceID = "Sightline-Source-Id"
	// HeaderInput is set by the processor's runner on every output: the
	// position of the input it came from ("<stream>:<sequence> <stored
	// time, RFC 3339 to the nanosecond>"), replacing any value a stage set. When the events
	// stream answers an output's publish as a duplicate, the runner reads
	// it from the stored event to tell its own earlier output (an input
	// delivered again) from another input's event with the same id.
	HeaderInput = "Sightline-Input"
)

// Classes of dead letters the processor writes for reasons of identity.
const (
	// ClassDuplicate: the input's event is already in the events stream
	// (same source, same producer id); recorded on DuplicateSubject.
	ClassDuplicate = "duplicate"
	// ClassReservedType: the input's type is kept for Sightline's own
	// services (identity.Reserved).
	ClassReservedType = "reserved_type"
	// ClassForgedSource: the input carries Sightline-Source without the
	// worker's seal.
	ClassForgedSource = "forged_source"
)

// Subject prefixes of the three streams (docs/architecture.md).
const (
	RawPrefix    = "sightline.raw."
	EventsPrefix = "sightline.events."
	DLQPrefix    = "sightline.dlq."
)

// SinkDLQPrefix is where the sinks' dead letters go:
// sightline.dlq.sink.<stage>.<kind>.<name>..., apart from the processor's
// rejections of raw input, so each is counted on its own.
const SinkDLQPrefix = DLQPrefix + "sink."

// DuplicatePrefix is where the records of duplicate inputs go
// (DuplicateLetter): sightline.dlq.duplicate.<kind>.<name>..., counted
// apart from rejections.
const DuplicatePrefix = DLQPrefix + "duplicate."

// IsDuplicate reports whether a dead-letter subject holds the record of a
// duplicate input (DuplicateSubject).
func IsDuplicate(subject string) bool { return strings.HasPrefix(subject, DuplicatePrefix) }

// DuplicateSubject is where the record of a duplicate raw input on subject
// goes.
func DuplicateSubject(subject string) string {
	return DuplicatePrefix + strings.TrimPrefix(DLQSubject(subject), DLQPrefix)
}

// DLQSubject is where a rejected message goes: its subject with the raw or
// events prefix swapped for the DLQ prefix (any other subject, and a raw
// subject whose kind would read as sightline.dlq.sink. or
// sightline.dlq.duplicate., is kept whole under sightline.dlq.other.).
func DLQSubject(subject string) string {
	for _, p := range []string{RawPrefix, EventsPrefix} {
		if s, ok := strings.CutPrefix(subject, p); ok && s != "" && !strings.HasPrefix(s, "sink.") && s != "sink" &&
			!strings.HasPrefix(s, "duplicate.") && s != "duplicate" {
			return DLQPrefix + s
		}
	}
	return DLQPrefix + "other." + strings.ReplaceAll(subject, ".", "_")
}

// DeadLetterSubject is where stageName's dead letter of a message on
// subject goes: a conformed event a sink cannot store goes to
// sightline.dlq.sink.<stage>.<kind>.<name>...; anything else to
// DLQSubject(subject).
func DeadLetterSubject(stageName, subject string) string {
	if s, ok := strings.CutPrefix(subject, EventsPrefix); ok && s != "" && NameToken(stageName) {
		return SinkDLQPrefix + stageName + "." + s
	}
	return DLQSubject(subject)
}

// KindOf returns the kind of a message on any Sightline subject, for
// counting: metric, log, snapshot, or "other" for anything else (so a
// hostile subject cannot make a new metric label). For a sink's dead
// letter it also returns the sink's stage.
func KindOf(subject string) (kind, sinkStage string) {
	parts := strings.SplitN(subject, ".", 6)
	if len(parts) < 3 || parts[0] != "sightline" {
		return "other", ""
	}
	kind = parts[2]
	if parts[1] == "dlq" && kind == "sink" && len(parts) >= 5 {
		kind, sinkStage = parts[4], parts[3]
	}
	if parts[1] == "dlq" && kind == "duplicate" && len(parts) >= 4 {
		kind = parts[3]
	}
	if !schemas.KnownKind(kind) {
		kind = "other"
	}
	return kind, sinkStage
}

// NameToken reports whether s is 1-128 of [A-Za-z0-9_-]: a kind or event
// name that is safe as a subject token, an index field and a partition key.
func NameToken(s string) bool {
	if len(s) == 0 || len(s) > limits.NameBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
