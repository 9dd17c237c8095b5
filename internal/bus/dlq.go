package bus

import (
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
)

// Headers of a dead letter whose original body was cut to fit.
const (
	// HeaderDLQBodyBytes is the original body's size in bytes.
	HeaderDLQBodyBytes = "Sightline-Dlq-Body-Bytes"
	// HeaderDLQBodyCut says the dead letter keeps only the first
	// (value) bytes of the body; the whole message stays in its stream
	// (Sightline-Dlq-Stream, Sightline-Dlq-Sequence) within its retention.
	HeaderDLQBodyCut = "Sightline-Dlq-Body-Cut"
)

// deadLetter builds the dead letter of an input (dlqMessage) and cuts its
// body when the whole would not fit the DLQ stream or the server, so that
// a dead letter can always be stored: an input of the server's max payload
// otherwise has no room left for the reason headers and would be
// redelivered forever.
func (b *Bus) deadLetter(in *stage.Message, stageName string, reason error) *nats.Msg {
	nm := dlqMessage(in, stageName, reason)
	limit := b.dlqMax.Load()
	if limit <= 0 {
		limit = limits.DLQMaxMsgSize
	}
	// The header block as the server counts it, plus room for the two
	// headers added below.
	hdr := int64(len("NATS/1.0\r\n\r\n")) + int64(len(HeaderDLQBodyBytes)+len(HeaderDLQBodyCut)+2*(4+20))
	for k, vs := range nm.Header {
		for _, v := range vs {
			hdr += int64(len(k) + len(v) + 4)
		}
	}
	if hdr+int64(len(nm.Data)) <= limit {
		return nm
	}
	keep := max(0, limit-hdr)
	nm.Header.Set(HeaderDLQBodyBytes, strconv.Itoa(len(nm.Data)))
	nm.Header.Set(HeaderDLQBodyCut, strconv.FormatInt(keep, 10))
	nm.Data = nm.Data[:keep]
	return nm
}
