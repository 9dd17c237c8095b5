package track

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream adapts a nats.go JetStream handle to Publisher, for services
// that talk to NATS themselves and do not import Sightline's internal
// packages. Messages are published asynchronously and every PubAck awaited.
func JetStream(js jetstream.JetStream) Publisher { return jsPublisher{js} }

// Conn adapts a plain NATS connection (JetStream enabled on the server).
func Conn(nc *nats.Conn) (Publisher, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("track: jetstream: %w", err)
	}
	return jsPublisher{js}, nil
}

type jsPublisher struct{ js jetstream.JetStream }

func (p jsPublisher) Publish(ctx context.Context, msgs ...*Message) ([]PublishResult, error) {
	futs := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		nm := nats.NewMsg(m.Subject)
		for k, v := range m.Header {
			nm.Header[k] = v
		}
		if m.ID != "" {
			nm.Header.Set(jetstream.MsgIDHeader, m.ID)
		}
		nm.Data = m.Data
		f, err := p.js.PublishMsgAsync(nm)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", m.Subject, err)
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
				first = fmt.Errorf("publish %s: %w", msgs[i].Subject, err)
			}
		case <-ctx.Done():
			return res, fmt.Errorf("publish: %w", ctx.Err())
		}
	}
	return res, first
}
