package replay

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/sightline/sightline/internal/stage"
)

// Discard is a sink that keeps nothing and counts what it was given.
type Discard struct {
	n atomic.Uint64
}

// Write counts batch.
func (d *Discard) Write(_ context.Context, batch []*stage.Message) error {
	d.n.Add(uint64(len(batch)))
	return nil
}

// Close does nothing.
func (d *Discard) Close(context.Context) error { return nil }

// Count is the number of messages written.
func (d *Discard) Count() uint64 { return d.n.Load() }

// StreamSink re-publishes messages into the stream (the archive → stream
// direction). Each message keeps its event id as Nats-Msg-Id, so the
// stream drops copies of what it still holds within its duplicate window,
// and the sinks downstream (idempotent by id) absorb the rest.
type StreamSink struct {
	pub        stage.Publisher
	published  atomic.Uint64
	duplicates atomic.Uint64
}

// NewStreamSink publishes through pub.
func NewStreamSink(pub stage.Publisher) *StreamSink { return &StreamSink{pub: pub} }

// Write publishes batch and waits for every ack.
func (s *StreamSink) Write(ctx context.Context, batch []*stage.Message) error {
	for _, m := range batch {
		if m.ID == "" {
			m.ID = m.Header.Get(stage.HeaderMsgID)
		}
		if m.ID == "" {
			return fmt.Errorf("replay: stream sink: message on %s has no id: %w", m.Subject,
				stage.Rejectf("no_id", "message has no id to deduplicate by"))
		}
	}
	res, err := s.pub.Publish(ctx, batch...)
	if err != nil {
		return fmt.Errorf("replay: stream sink: %w", err)
	}
	for _, r := range res {
		if r.Duplicate {
			s.duplicates.Add(1)
		} else {
			s.published.Add(1)
		}
	}
	return nil
}

// Close does nothing: the caller owns the publisher.
func (s *StreamSink) Close(context.Context) error { return nil }

// Published is the number of messages the stream stored.
func (s *StreamSink) Published() uint64 { return s.published.Load() }

// Duplicates is the number the stream dropped as already held.
func (s *StreamSink) Duplicates() uint64 { return s.duplicates.Load() }
