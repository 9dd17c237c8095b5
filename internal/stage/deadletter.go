package stage

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/identity"
)

// DeadLetter is the dead letter of an input that stage stageName rejected
// with reason, at time at: the original bytes and headers (NATS control
// headers, Status and Description renamed with HeaderOriginalPrefix so
// they keep their value without acting again), the reason (one line, at
// most 2,000 bytes), the stage, the input's subject, stream and sequence,
// the class of a permanent error, the correlation ID, and the ID
// identity.DeadLetterID (derived from the stage and the input's stream,
// sequence and stored time: the same for a redelivery, unknown to anyone
// before the input is stored). internal/bus publishes every dead
// letter built this way (and cuts its body when it would not fit).
func DeadLetter(in *Message, stageName string, reason error, at time.Time) *Message {
	h := make(Header, len(in.Header)+10)
	for k, v := range in.Header {
		// Status and Description too: with an empty body they make NATS
		// clients (nats.go, the nats CLI) take the dead letter for a
		// server status message and stop reading.
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "nats-") || lk == "status" || lk == "description" {
			h[HeaderOriginalPrefix+k] = v
			continue
		}
		h[k] = v
	}
	text := reason.Error()
	var pe *PermanentError
	if errors.As(reason, &pe) {
		text = pe.Error()
	}
	if len(text) > 2000 {
		text = text[:2000] + "…"
	}
	h.Set(HeaderDLQReason, strings.ReplaceAll(strings.ReplaceAll(text, "\r", " "), "\n", " "))
	h.Set(HeaderDLQStage, stageName)
	h.Set(HeaderDLQSubject, in.Subject)
	h.Set(HeaderDLQStream, in.Meta.Stream)
	h.Set(HeaderDLQSequence, strconv.FormatUint(in.Meta.Sequence, 10))
	h.Set(HeaderDLQTime, at.UTC().Format(time.RFC3339Nano))
	if class := PermanentClass(reason); class != "" {
		h.Set(HeaderDLQClass, class)
	}
	if len(h[HeaderCorrelationID]) == 0 || h[HeaderCorrelationID][0] == "" {
		if cid := correlation.FromHeaders(in.Header); cid != "" {
			h.Set(HeaderCorrelationID, cid)
		}
	}
	id := identity.DeadLetterID(stageName, identity.Position{Stream: in.Meta.Stream, Sequence: in.Meta.Sequence, Time: in.Meta.Timestamp})
	if id == "" { // not from a stream (tests, replays of bytes)
		id = "dlq:" + stageName + ":" + correlation.Mint()
	}
	h.Set(HeaderMsgID, id)
	return &Message{Subject: DeadLetterSubject(stageName, in.Subject), Header: h, Data: in.Data, ID: id}
}

// Duplicate is the reason recorded for an input whose event (id eventID:
// same source, same producer id) the events stream already holds. Its
// dead letter (DeadLetter with this reason) goes to DuplicateSubject, so
// `sightline status` counts it apart from rejections and the input's trail
// says what became of it.
func Duplicate(eventID string) error {
	return Reject(ClassDuplicate, "duplicate of event "+eventID+
		" (the same source sent the same id within the events stream's duplicate window)", nil)
}
