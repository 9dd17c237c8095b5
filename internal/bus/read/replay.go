package read

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/stage"
)

// ReplayOptions selects a range of a stream to read in order.
type ReplayOptions struct {
	Stream    string   // default SIGHTLINE_EVENTS
	Filters   []string // subject filters; empty = all
	FromSeq   uint64   // start at this sequence (0: see FromTime / start)
	FromTime  time.Time
	ToSeq     uint64    // stop after this sequence (0: the last sequence when the replay started)
	ToTime    time.Time // stop at the first message stored after this time
	Follow    bool      // never stop: wait for new messages (logs --follow)
	FromNew   bool      // with Follow: only messages published from now on
	BatchSize int       // messages per Next (default 1000)
}

// ReplaySource reads a stream range in order with an ephemeral ordered
// consumer. It is not safe for concurrent use.
type ReplaySource struct {
	rd      *Reader
	opts    ReplayOptions
	last    uint64 // last sequence to deliver (when not following)
	total   uint64 // messages in range when the replay started (estimate)
	done    bool
	started bool
}

// ErrEmptyRange is returned when the range holds no message.
var ErrEmptyRange = errors.New("bus: replay range is empty")

// Replay opens a ReplaySource. Next returns io.EOF at the end of the range.
func Replay(ctx context.Context, b *bus.Bus, o ReplayOptions) (*ReplaySource, error) {
	if o.Stream == "" {
		o.Stream = bus.StreamEvents
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	s, err := b.JetStream().Stream(ctx, o.Stream)
	if err != nil {
		return nil, fmt.Errorf("bus: replay %s: %w", o.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("bus: replay %s: %w", o.Stream, err)
	}
	r := &ReplaySource{opts: o, last: info.State.LastSeq}
	if o.ToSeq > 0 && o.ToSeq < r.last {
		r.last = o.ToSeq
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: o.Filters, DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case o.Follow && o.FromNew:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case o.FromSeq > 0:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = o.FromSeq
	case !o.FromTime.IsZero():
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		t := o.FromTime
		cfg.OptStartTime = &t
	}
	if !o.Follow {
		first := info.State.FirstSeq
		if o.FromSeq > first {
			first = o.FromSeq
		}
		if r.last == 0 || first > r.last || info.State.Msgs == 0 {
			return nil, ErrEmptyRange
		}
		r.total = r.last - first + 1
	}
	rd, err := NewReader(ctx, b, o.Stream, jetstream.ConsumerConfig{
		FilterSubjects: cfg.FilterSubjects, DeliverPolicy: cfg.DeliverPolicy,
		OptStartSeq: cfg.OptStartSeq, OptStartTime: cfg.OptStartTime,
	}, max(o.BatchSize, 256), true)
	if err != nil {
		return nil, fmt.Errorf("bus: replay %s: %w", o.Stream, err)
	}
	r.rd = rd
	return r, nil
}

// Total is the number of stream sequences in the range when the replay
// started (an upper bound with filters), 0 when following.
func (r *ReplaySource) Total() uint64 { return r.total }

// Next returns the next batch in stream order, io.EOF after the range.
// When following it waits for messages until ctx is done.
func (r *ReplaySource) Next(ctx context.Context) ([]*stage.Message, error) {
	if r.done {
		return nil, io.EOF
	}
	var out []*stage.Message
	for len(out) < r.opts.BatchSize {
		m, err := r.nextMsg(ctx, len(out) > 0)
		if errors.Is(err, errIdle) {
			break
		}
		if err != nil {
			if len(out) > 0 && errors.Is(err, io.EOF) {
				r.done = true
				return out, nil
			}
			return out, err
		}
		sm := bus.ToStage(m)
		if !r.opts.Follow {
			if sm.Meta.Sequence > r.last || (!r.opts.ToTime.IsZero() && sm.Meta.Timestamp.After(r.opts.ToTime)) {
				r.done = true
				r.Stop()
				if len(out) == 0 {
					return nil, io.EOF
				}
				return out, nil
			}
		}
		out = append(out, sm)
		// Pending 0: nothing more matches the filters (the range's last
		// message may be one they leave out).
		if !r.opts.Follow && (sm.Meta.Sequence >= r.last || sm.Meta.Pending == 0) {
			r.done = true
			r.Stop()
			return out, nil
		}
	}
	return out, nil
}

var errIdle = errors.New("idle")

// nextMsg waits for one message. With haveSome it waits only briefly so a
// partial batch is returned instead of stalling.
func (r *ReplaySource) nextMsg(ctx context.Context, haveSome bool) (*nats.Msg, error) {
	wait := 5 * time.Second
	if haveSome {
		wait = 100 * time.Millisecond
	}
	for {
		m, err := r.rd.Next(ctx, wait)
		switch {
		case err == nil:
			return m, nil
		case ctx.Err() != nil:
			r.Stop()
			return nil, ctx.Err()
		case errors.Is(err, errReaderIdle):
			if haveSome {
				return nil, errIdle
			}
			if !r.opts.Follow && r.total == 0 {
				return nil, io.EOF
			}
		default:
			return nil, err
		}
	}
}

// Stop ends the replay.
func (r *ReplaySource) Stop() {
	if r.rd != nil {
		r.rd.Stop()
	}
}
