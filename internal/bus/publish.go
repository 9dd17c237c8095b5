package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/stage"
)

// ErrPublish wraps failures to publish.
var ErrPublish = errors.New("bus: publish")

// PublishResult is the stream position a published message got.
type PublishResult = stage.PublishResult

var _ stage.Publisher = (*Bus)(nil)

// Publish sends msgs to JetStream (asynchronously, all at once) and waits for
// every PubAck, and under group commit for the round that puts them on
// disk, so a caller may acknowledge what it published. Each message's ID
// becomes its Nats-Msg-Id.
func (b *Bus) Publish(ctx context.Context, msgs ...*stage.Message) ([]PublishResult, error) {
	res, err := PublishTo(ctx, b.js, msgs...)
	if err != nil {
		return res, err
	}
	if err := b.Commit(ctx); err != nil {
		return res, fmt.Errorf("%w: %w", ErrPublish, err)
	}
	return res, nil
}

// PublishTo is Publish on any JetStream handle (producers that hold their
// own connection use it through producers/track).
func PublishTo(ctx context.Context, js jetstream.JetStream, msgs ...*stage.Message) ([]PublishResult, error) {
	futs := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := js.PublishMsgAsync(ToNats(m))
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrPublish, m.Subject, err)
		}
		futs[i] = f
	}
	res := make([]PublishResult, len(msgs))
	var first error
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			res[i] = PublishResult{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}
		case err := <-f.Err():
			if first == nil {
				first = fmt.Errorf("%w %s: %w", ErrPublish, msgs[i].Subject, err)
			}
		case <-ctx.Done():
			return res, fmt.Errorf("%w: %w", ErrPublish, ctx.Err())
		}
	}
	return res, first
}
