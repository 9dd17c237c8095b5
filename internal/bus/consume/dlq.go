package consume

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

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
	// HeaderDLQHeadersCut names the original headers a dead letter left
	// out so that its header block fits JetStream's limit (HeaderBlockBytes):
	// "N headers, M bytes: Name1, Name2, …". The whole message stays in its
	// stream.
	HeaderDLQHeadersCut = "Sightline-Dlq-Headers-Cut"
)

// dlqHeaderRoom is the room in a dead letter's header block kept for the
// Sightline-Dlq-* headers and the note of fitHeaders.
const dlqHeaderRoom = limits.DLQHeaderBudget + 2*limits.KiB

// fitHeaders leaves out the largest original headers of a dead letter until
// its header block fits JetStream's limit with room for the dead letter's
// own headers, and names them in HeaderDLQHeadersCut. An input whose
// headers nearly filled the limit could otherwise never be dead-lettered
// and was redelivered for ever, holding a slot of its consumer.
func fitHeaders(nm *nats.Msg) {
	size := func(k string, vs []string) int {
		n := 0
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
		return n
	}
	total := 0
	var orig []string
	for k, vs := range nm.Header {
		total += size(k, vs)
		if !strings.HasPrefix(k, "Sightline-Dlq-") && k != stage.HeaderMsgID && k != stage.HeaderCorrelationID {
			orig = append(orig, k)
		}
	}
	if total <= limits.HeaderBlockBytes-dlqHeaderRoom {
		return
	}
	sort.Slice(orig, func(i, j int) bool { return size(orig[i], nm.Header[orig[i]]) > size(orig[j], nm.Header[orig[j]]) })
	var cut []string
	bytes := 0
	for _, k := range orig {
		if total <= limits.HeaderBlockBytes-dlqHeaderRoom {
			break
		}
		n := size(k, nm.Header[k])
		total -= n
		bytes += n
		cut = append(cut, k)
		delete(nm.Header, k)
	}
	note := fmt.Sprintf("%d headers, %d bytes: %s", len(cut), bytes, strings.Join(cut, ", "))
	if len(note) > limits.KiB {
		note = strings.ToValidUTF8(note[:limits.KiB], "") + "…"
	}
	nm.Header.Set(HeaderDLQHeadersCut, note)
}

// deadLetter builds the dead letter of an input (dlqMessage) and cuts its
// body when the whole would not fit the DLQ stream or the server, so that
// a dead letter can always be stored: an input of the server's max payload
// otherwise has no room left for the reason headers and would be
// redelivered forever.
func (b *conn) deadLetter(in *stage.Message, stageName string, reason error) *nats.Msg {
	nm := dlqMessage(in, stageName, reason)
	fitHeaders(nm)
	limit := b.bus.DLQMax()
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
