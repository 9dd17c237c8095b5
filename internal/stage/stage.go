// Package stage holds the small types every pipeline stage sees: a Message,
// a Processor that turns one message into messages, a Sink that writes a
// batch, and the error classes the router uses to decide ack, nak or DLQ.
//
// Stages never talk to JetStream themselves: internal/bus fetches, calls the
// stage, and alone decides what happens to the input.
package stage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
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
// idempotent: the same message written twice leaves one record. A partial
// failure is reported with a *BatchError naming the failed indexes; an error
// of any other type fails the whole batch.
type Sink interface {
	Write(ctx context.Context, batch []*Message) error
	Close(ctx context.Context) error
}

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

// Well-known header names.
const (
	HeaderCorrelationID   = "Correlation-Id"
	HeaderXCorrelationID  = "X-Correlation-Id"
	HeaderXRequestID      = "X-Request-Id"
	HeaderTraceParent     = "traceparent"
	HeaderTraceState      = "tracestate"
	HeaderMsgID           = "Nats-Msg-Id"
	HeaderProducer        = "Sightline-Producer"
	HeaderDLQReason       = "Sightline-Dlq-Reason"
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
)

// Subject prefixes of the three streams (DESIGN.md contracts).
const (
	RawPrefix    = "sightline.raw."
	EventsPrefix = "sightline.events."
	DLQPrefix    = "sightline.dlq."
)

// DLQSubject is where a rejected message goes: its subject with the raw or
// events prefix swapped for the DLQ prefix (any other subject is kept whole
// under sightline.dlq.other.).
func DLQSubject(subject string) string {
	for _, p := range []string{RawPrefix, EventsPrefix} {
		if s, ok := strings.CutPrefix(subject, p); ok && s != "" {
			return DLQPrefix + s
		}
	}
	return DLQPrefix + "other." + strings.ReplaceAll(subject, ".", "_")
}

// NameToken reports whether s is 1-128 of [A-Za-z0-9_-]: a kind or event
// name that is safe as a subject token, an index field and a partition key.
func NameToken(s string) bool {
	if len(s) == 0 || len(s) > 128 {
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
