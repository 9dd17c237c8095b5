package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
)

// Stream names (docs/architecture.md).
const (
	StreamRaw    = "SIGHTLINE_RAW"
	StreamEvents = "SIGHTLINE_EVENTS"
	StreamDLQ    = "SIGHTLINE_DLQ"
)

// StreamLimits are the limits of one stream.
type StreamLimits struct {
	MaxAge     time.Duration `yaml:"max_age"`
	MaxBytes   int64         `yaml:"max_bytes"`
	MaxMsgSize int32         `yaml:"max_msg_size"`
	Duplicates time.Duration `yaml:"duplicates"` // dedup window by Nats-Msg-Id
}

// StreamsConfig configures the three streams.
type StreamsConfig struct {
	Replicas int          `yaml:"replicas"`
	Memory   bool         `yaml:"-"` // memory storage instead of file (tests)
	Raw      StreamLimits `yaml:"raw"`
	Events   StreamLimits `yaml:"events"`
	DLQ      StreamLimits `yaml:"dlq"`
	// FitStorage lets EnsureStreams shrink the streams' MaxBytes (all by
	// the same factor, halving until they fit) when the server or cluster
	// has less storage than they ask for; without it such a start fails
	// with an error naming the keys to set.
	FitStorage bool `yaml:"fit_storage"`
}

// RawDuplicates is the raw stream's duplicate window: the least JetStream
// allows (a window under 100ms is refused, 0 means its default of 2
// minutes; de-duplication cannot be turned off). The raw stream's window
// is global over every subject and keyed by the producer's own
// Nats-Msg-Id, so within it one producer could make the stream drop
// another's message by sending its id first; Sightline de-duplicates on
// the events stream instead, by the event id derived from the source and
// the producer's id (internal/identity).
const RawDuplicates = 100 * time.Millisecond

// DefaultStreams are sensible production limits. The message sizes come
// from internal/limits: the raw stream takes every message the server
// takes, so a core publish is either stored or refused to its publisher.
func DefaultStreams() StreamsConfig {
	return StreamsConfig{
		Replicas:   1,
		Raw:        StreamLimits{MaxAge: 72 * time.Hour, MaxBytes: 10 << 30, MaxMsgSize: limits.RawMaxMsgSize, Duplicates: RawDuplicates},
		Events:     StreamLimits{MaxAge: 7 * 24 * time.Hour, MaxBytes: 20 << 30, MaxMsgSize: limits.EventsMaxMsgSize, Duplicates: 10 * time.Minute},
		DLQ:        StreamLimits{MaxAge: 30 * 24 * time.Hour, MaxBytes: 5 << 30, MaxMsgSize: limits.DLQMaxMsgSize, Duplicates: 10 * time.Minute},
		FitStorage: true,
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
		mk(StreamRaw, "Sightline raw input from producers (nats pub, collectors, HTTP ingest); processors read here and de-duplicate by source and id on the events stream", stage.RawPrefix+">", c.Raw),
		mk(StreamEvents, "Sightline conformed CloudEvents (validated, conformed, enriched); every sink and every replay reads here", stage.EventsPrefix+">", c.Events),
		mk(StreamDLQ, "Sightline dead letters: rejected input with its original bytes and headers and a Sightline-Dlq-Reason header", stage.DLQPrefix+">", c.DLQ),
	}
}

// EnsureStreams creates or updates the three streams (idempotent).
//
// Sizes are checked against the server first: a raw stream whose
// MaxMsgSize is below the server's max payload is raised to it (a core
// publish between the two would be taken by the server and dropped by the
// stream without a word to the publisher), and dead letters are cut to
// what both the DLQ stream and the server take. When the streams' MaxBytes
// do not fit the storage the server or cluster offers ("insufficient
// storage", "no suitable peers for placement"), FitStorage halves them all
// until they fit and logs the sizes chosen; otherwise the error names the
// keys to set.
func (b *Bus) EnsureStreams(ctx context.Context, c StreamsConfig) error {
	serverMax := b.nc.MaxPayload()
	if serverMax > 0 && c.Raw.MaxMsgSize > 0 && int64(c.Raw.MaxMsgSize) < serverMax {
		b.log.Info("raw stream max message size raised to the server's max payload, so that no core publish the server takes is dropped",
			"key", "streams.raw.max_msg_size", "configured", c.Raw.MaxMsgSize, "server_max_payload", serverMax)
		c.Raw.MaxMsgSize = int32(serverMax)
	}
	dlqMax := serverMax
	if c.DLQ.MaxMsgSize > 0 && (dlqMax <= 0 || int64(c.DLQ.MaxMsgSize) < dlqMax) {
		dlqMax = int64(c.DLQ.MaxMsgSize)
	}
	b.dlqMax.Store(dlqMax)

	first, kept := b.firstFit(ctx, c)
	if kept && first > 1 {
		// Kept as fitted before; the server refuses nothing that is not
		// changed, so say now if it no longer offers what they reserve.
		if err := b.overReserved(); err != nil {
			return err
		}
	}
	for div := first; ; div *= 2 {
		err := b.ensureStreams(ctx, c, div)
		if err == nil {
			if err := b.loadIdentityKey(ctx); err != nil {
				return err
			}
			if div > 1 {
				b.log.Warn("stream sizes shrunk to fit the storage the server or cluster offers; set streams.<raw|events|dlq>.max_bytes to choose them",
					"replicas", max(1, c.Replicas), "raw_max_bytes", c.Raw.MaxBytes/div, "events_max_bytes", c.Events.MaxBytes/div, "dlq_max_bytes", c.DLQ.MaxBytes/div)
			}
			return nil
		}
		if !insufficientStorage(err) {
			return err
		}
		if err := b.overReserved(); err != nil {
			return err
		}
		if !c.FitStorage || div >= maxFitDivisor {
			return fmt.Errorf("%w: the server or cluster has not the storage for these streams (max_bytes raw %d, events %d, dlq %d, %d replicas): "+
				"set streams.raw.max_bytes, streams.events.max_bytes and streams.dlq.max_bytes (or streams.replicas) to what it offers, "+
				"or streams.fit_storage: true to shrink them to fit", err, c.Raw.MaxBytes/div, c.Events.MaxBytes/div, c.DLQ.MaxBytes/div, max(1, c.Replicas))
		}
	}
}

// firstFit is the divisor EnsureStreams starts from, and whether it is the
// one the streams already have. With fit_storage on, streams that exist
// at the configured sizes divided by one power of two (a previous start
// shrank them to fit) keep that divisor: the sizes are chosen once, not at
// every start from the storage free then (which the store itself has
// used), so a restart neither resizes the streams nor sends an update the
// worker identity may not send; a changed max_bytes starts over from 1.
// On an embedded server where none of the streams exists yet it is the
// least power of two at which all of them fit the storage the server has
// left. Starting there matters for the worker identity: it may create
// streams but not change them, so a stream created at full size before
// another was refused for want of storage could never be shrunk by it.
func (b *Bus) firstFit(ctx context.Context, c StreamsConfig) (div int64, kept bool) {
	if !c.FitStorage {
		return 1, false
	}
	found := false
	for _, sc := range c.StreamConfigs() {
		s, err := b.js.Stream(ctx, sc.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return 1, false
		}
		found = true
		if sc.MaxBytes <= 0 { // not divided: says nothing of the divisor
			continue
		}
		d := fittedBy(sc.MaxBytes, s.CachedInfo().Config.MaxBytes)
		if d == 0 || (div != 0 && d != div) {
			return 1, false
		}
		div = d
	}
	if found {
		return max(div, 1), div != 0
	}
	if b.srv == nil {
		return 1, false
	}
	cfg := b.srv.JetStreamConfig()
	_, reserved, err := b.srv.JetStreamReservedResources()
	if err != nil || cfg == nil || cfg.MaxStore <= 0 {
		return 1, false
	}
	free := cfg.MaxStore - reserved
	var want int64
	for _, sc := range c.StreamConfigs() {
		if sc.MaxBytes > 0 && sc.Storage == jetstream.FileStorage {
			want += sc.MaxBytes
		}
	}
	div = 1
	for free > 0 && want/div > free && div < maxFitDivisor {
		div *= 2
	}
	return div, false
}

// maxFitDivisor is the most fit_storage divides the streams' sizes by.
const maxFitDivisor = 1024

// fittedBy is the power of two d (up to maxFitDivisor) with want/d == have,
// as EnsureStreams divides, or 0 when there is none.
func fittedBy(want, have int64) int64 {
	for d := int64(1); d <= maxFitDivisor; d *= 2 {
		if want/d == have {
			return d
		}
	}
	return 0
}

// loadIdentityKey derives the identity key from the raw stream's creation
// time (identity.Key), the same for every worker of the stream.
func (b *Bus) loadIdentityKey(ctx context.Context) error {
	s, err := b.js.Stream(ctx, StreamRaw)
	if err != nil {
		return fmt.Errorf("bus: stream %s: %w", StreamRaw, err)
	}
	k := identity.Key(StreamRaw, s.CachedInfo().Created)
	b.identityKey.Store(&k)
	return nil
}

// IdentityKey is the key that seals the HTTP ingest's inputs
// (identity.Seal) and lets the processor verify them; nil before
// EnsureStreams.
func (b *Bus) IdentityKey() []byte {
	if k := b.identityKey.Load(); k != nil {
		return *k
	}
	return nil
}

// overReserved explains the one refusal no shrinking can get past: streams
// already in the embedded server's store that reserve more than it now
// offers (its max_file_store, by default a share of the disk space free at
// start, shrinks as the disk fills). The server then refuses every change
// to them, a smaller size too.
func (b *Bus) overReserved() error {
	if b.srv == nil {
		return nil
	}
	_, reserved, err := b.srv.JetStreamReservedResources()
	cfg := b.srv.JetStreamConfig()
	if err != nil || cfg == nil || reserved <= cfg.MaxStore {
		return nil
	}
	return fmt.Errorf("bus: the streams already in %s reserve %d bytes of file storage but the embedded server offers %d "+
		"(its max_file_store: by default 75%% of the disk space free when it starts), and it refuses any change to them while they do, "+
		"a smaller size too: set max_file_store to at least %d in the file named by nats.server_config (jetstream { max_file_store: ... }), "+
		"or free disk space", cfg.StoreDir, reserved, cfg.MaxStore, reserved)
}

// ensureStreams creates or updates every stream at 1/div of its MaxBytes,
// in order, stopping at the first refusal. (Trying the refused ones again
// after the others was tried: on a cluster it created the smaller streams
// beside a refused one, and the nodes' reservations then passed their
// storage, which the server holds against every later change.)
func (b *Bus) ensureStreams(ctx context.Context, c StreamsConfig, div int64) error {
	for _, sc := range c.StreamConfigs() {
		if sc.MaxBytes > 0 {
			sc.MaxBytes /= div
		}
		// A stream that already has this configuration is left as it is:
		// no update request, so the worker identity (which may create the
		// streams but not change them, docs/security-nats.md) starts on
		// streams the operator set up.
		s, err := b.js.Stream(ctx, sc.Name)
		if err == nil && sameStream(s.CachedInfo().Config, sc) {
			continue
		}
		if err == nil { // differs: an update, which the worker role may not send
			if err := b.updateStream(ctx, s.CachedInfo().Config, sc); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) { // create only: no update request
			if _, err = b.js.CreateStream(ctx, sc); err == nil || !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				if err != nil {
					return fmt.Errorf("bus: create stream %s: %w", sc.Name, err)
				}
				continue
			}
		}
		if _, err := b.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("bus: ensure stream %s: %w (an identity that may not update streams, the worker role, cannot apply a changed configuration: run `sightline setup` with the operator identity)", sc.Name, err)
		}
	}
	return nil
}

// insufficientStorage reports a refusal for want of storage (one server:
// "insufficient storage resources available"; a cluster: "no suitable
// peers for placement, insufficient storage").
func insufficientStorage(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "insufficient")
}

// sameStream reports whether the stream's configuration has every field
// EnsureStreams sets as want has it.
func sameStream(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Discard == want.Discard && have.Storage == want.Storage &&
		have.Replicas == want.Replicas && have.MaxAge == want.MaxAge && have.MaxBytes == want.MaxBytes &&
		have.MaxMsgSize == want.MaxMsgSize && have.Duplicates == want.Duplicates
}
