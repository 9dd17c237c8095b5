package consume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/stage"
)

// Telling a duplicate input from an input delivered again.
//
// The events stream drops an output whose id it already holds and answers
// its publish as a duplicate. That is either another input with the same
// id (the same source sent it twice: a duplicate, dead-lettered as such)
// or this very input delivered again after its event was stored — after a
// crash before its ack, or after a power cut rolled the consumer's
// position back (its state is not synced by a commit round), in which case
// it comes as a first delivery. Every output carries its input's position
// (stage.HeaderInput, set by the runner, never by a producer): on a
// duplicate answer the runner reads the stored event and compares.

// inputRef is the value of stage.HeaderInput for the outputs of in: its
// stream and sequence, then the time the server stored it to the
// nanosecond (a message put at the same sequence after a stream lost its
// tail has another time), e.g. "SIGHTLINE_RAW:2 2026-12-07T19:25:56.708674685Z".
func inputRef(in *stage.Message) string {
	b := make([]byte, 0, len(in.Meta.Stream)+52)
	b = append(b, in.Meta.Stream...)
	b = append(b, ':')
	b = strconv.AppendUint(b, in.Meta.Sequence, 10)
	b = append(b, ' ')
	b = in.Meta.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
	return string(b)
}

// anotherInputs reports whether the stored message that made ack a
// duplicate came from another input than in. A stored message without the
// header (written before outputs carried it) or no longer in the stream
// is judged as before: another input's unless in was delivered before.
// An error (the stream did not answer) means in is to be tried again.
func (b *conn) anotherInputs(ctx context.Context, ack *jetstream.PubAck, out *nats.Msg, in *input) (bool, error) {
	ours := out.Header.Get(stage.HeaderInput)
	if ours == "" {
		return in.in.Meta.Delivered <= 1, nil
	}
	ctx, cancel := context.WithTimeout(ctx, bus.PublishAckTimeout)
	defer cancel()
	s, err := b.js.Stream(ctx, ack.Stream)
	var m *jetstream.RawStreamMsg
	if err == nil {
		m, err = s.GetMsg(ctx, ack.Sequence)
	}
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return in.in.Meta.Delivered <= 1, nil
	case err != nil:
		return false, fmt.Errorf("reading event %d of stream %s, of which output %q is a duplicate: %w", ack.Sequence, ack.Stream, out.Header.Get(jetstream.MsgIDHeader), err)
	}
	stored := m.Header.Get(stage.HeaderInput)
	if stored == "" {
		return in.in.Meta.Delivered <= 1, nil
	}
	return stored != ours, nil
}
