package track

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
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
	return bus.PublishTo(ctx, p.js, msgs...)
}
