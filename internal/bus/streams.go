package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names (DESIGN.md contracts).
const (
	StreamRaw    = "SIGHTLINE_RAW"
	StreamEvents = "SIGHTLINE_EVENTS"
	StreamDLQ    = "SIGHTLINE_DLQ"
)

// StreamLimits are the limits of one stream.
type StreamLimits struct {
	MaxAge     time.Duration
	MaxBytes   int64
	MaxMsgSize int32
	Duplicates time.Duration // dedup window by Nats-Msg-Id
}

// StreamsConfig configures the three streams.
type StreamsConfig struct {
	Replicas int
	Memory   bool // memory storage instead of file (tests)
	Raw      StreamLimits
	Events   StreamLimits
	DLQ      StreamLimits
}

// DefaultStreams are sensible production limits.
func DefaultStreams() StreamsConfig {
	return StreamsConfig{
		Replicas: 1,
		Raw:      StreamLimits{MaxAge: 72 * time.Hour, MaxBytes: 10 << 30, MaxMsgSize: 1 << 20, Duplicates: 10 * time.Minute},
		Events:   StreamLimits{MaxAge: 7 * 24 * time.Hour, MaxBytes: 20 << 30, MaxMsgSize: 2 << 20, Duplicates: 10 * time.Minute},
		DLQ:      StreamLimits{MaxAge: 30 * 24 * time.Hour, MaxBytes: 5 << 30, MaxMsgSize: 2 << 20, Duplicates: 10 * time.Minute},
	}
}

// StreamConfigs returns the JetStream configuration of the three streams.
func (c StreamsConfig) StreamConfigs() []jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if c.Memory {
		storage = jetstream.MemoryStorage
	}
	mk := func(name, desc, subject string, l StreamLimits) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subject},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			Storage:     storage,
			Replicas:    max(1, c.Replicas),
			MaxAge:      l.MaxAge,
			MaxBytes:    l.MaxBytes,
			MaxMsgSize:  l.MaxMsgSize,
			Duplicates:  l.Duplicates,
		}
	}
	return []jetstream.StreamConfig{
		mk(StreamRaw, "Sightline raw input from producers (nats pub, collectors, HTTP ingest); deduplicated by Nats-Msg-Id; processors read here", "sightline.raw.>", c.Raw),
		mk(StreamEvents, "Sightline conformed CloudEvents (validated, conformed, enriched); every sink and every replay reads here", "sightline.events.>", c.Events),
		mk(StreamDLQ, "Sightline dead letters: rejected input with its original bytes and headers and a Sightline-Dlq-Reason header", "sightline.dlq.>", c.DLQ),
	}
}

// EnsureStreams creates or updates the three streams (idempotent).
func (b *Bus) EnsureStreams(ctx context.Context, c StreamsConfig) error {
	for _, sc := range c.StreamConfigs() {
		if _, err := b.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("bus: ensure stream %s: %w", sc.Name, err)
		}
	}
	return nil
}
