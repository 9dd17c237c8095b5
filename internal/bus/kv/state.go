// Package kv holds what processes keep in JetStream key-value buckets:
// latest-state buckets (State: the hosts store) and expiring exclusive
// leases (Leases: one archive writer per object).
package kv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/read"
)

// StateConfig describes a latest-state bucket: a JetStream key-value bucket
// (one stream, one subject per key) keeping the last History versions of
// every key. `nats kv ls` and `nats kv get` work on it.
type StateConfig struct {
	Bucket      string // bucket name: letters, digits, '_' and '-'
	Description string
	History     int   // versions kept per key, 1..64 (default 1)
	MaxBytes    int64 // 0 or -1: unlimited
	Memory      bool  // memory storage (tests)
	Replicas    int
	Compression bool // S2 compression of the stream's file blocks (server side)
}

// StateEntry is one stored version of a key.
type StateEntry struct {
	Key      string
	Value    []byte
	Revision uint64    // stream sequence of this version
	Time     time.Time // when the stream stored it
}

// StatePut is one key to write.
type StatePut struct {
	Key   string
	Value []byte
}

// ErrStateNotFound is returned by Get when a key has no value.
var ErrStateNotFound = errors.New("bus: state key not found")

// State is a latest-state bucket.
type State struct {
	b      *bus.Bus
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream string
	prefix string // "$KV.<bucket>."
}

// OpenState creates or updates the bucket (idempotent) and returns it.
func OpenState(ctx context.Context, b *bus.Bus, c StateConfig) (*State, error) {
	if b == nil || b.JetStream() == nil {
		return nil, bus.ErrClosed
	}
	js := b.JetStream()
	hist := c.History
	if hist <= 0 {
		hist = 1
	}
	if hist > 64 {
		return nil, fmt.Errorf("bus: state %s: history %d is over the JetStream limit of 64", c.Bucket, hist)
	}
	storage := jetstream.FileStorage
	if c.Memory {
		storage = jetstream.MemoryStorage
	}
	maxBytes := c.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	want := jetstream.KeyValueConfig{
		Bucket:      c.Bucket,
		Description: c.Description,
		History:     uint8(hist),
		MaxBytes:    maxBytes,
		Storage:     storage,
		Replicas:    max(1, c.Replicas),
		Compression: c.Compression,
	}
	// A bucket that already has this configuration is used as it is: no
	// update request, so a read-only identity (stream info only) opens it.
	kv, err := js.KeyValue(ctx, c.Bucket)
	if err == nil && sameKV(ctx, kv, want) {
		return &State{b: b, js: js, kv: kv, stream: "KV_" + c.Bucket, prefix: "$KV." + c.Bucket + "."}, nil
	}
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, want) // create only: no update request (the worker may not update)
	} else {
		kv, err = js.CreateOrUpdateKeyValue(ctx, want)
	}
	if err != nil {
		return nil, fmt.Errorf("bus: state bucket %s: %w", c.Bucket, err)
	}
	return &State{b: b, js: js, kv: kv, stream: "KV_" + c.Bucket, prefix: "$KV." + c.Bucket + "."}, nil
}

// sameKV reports whether kv already has the configuration want.
func sameKV(ctx context.Context, kv jetstream.KeyValue, want jetstream.KeyValueConfig) bool {
	st, err := kv.Status(ctx)
	if err != nil {
		return false
	}
	si, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return false
	}
	cfg := si.StreamInfo().Config
	return cfg.Description == want.Description && st.History() == int64(want.History) &&
		cfg.MaxBytes == want.MaxBytes && cfg.Storage == want.Storage &&
		cfg.Replicas == want.Replicas && st.IsCompressed() == want.Compression && st.TTL() == want.TTL
}

// ValidStateKey reports whether key can be stored: dot-separated tokens of
// letters, digits and -/_=, none empty.
func ValidStateKey(key string) bool {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' || strings.Contains(key, "..") {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '/' || c == '_' || c == '=' || c == '.':
		default:
			return false
		}
	}
	return true
}

// Get returns the latest version of key, ErrStateNotFound if there is none
// (or it was deleted).
func (s *State) Get(ctx context.Context, key string) (StateEntry, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return StateEntry{}, fmt.Errorf("%w: %s", ErrStateNotFound, key)
	}
	if err != nil {
		return StateEntry{}, fmt.Errorf("bus: state get %s: %w", key, err)
	}
	return StateEntry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Time: e.Created()}, nil
}

// History returns the kept versions of key, oldest first (deletes
// excluded). A key never written returns ErrStateNotFound.
func (s *State) History(ctx context.Context, key string) ([]StateEntry, error) {
	hist, err := s.kv.History(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrStateNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("bus: state history %s: %w", key, err)
	}
	out := make([]StateEntry, 0, len(hist))
	for _, e := range hist {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		out = append(out, StateEntry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Time: e.Created()})
	}
	return out, nil
}

// PutMany writes every entry (asynchronously, all at once) and waits for
// every acknowledgement. Entries are stored in order.
func (s *State) PutMany(ctx context.Context, puts []StatePut) error {
	if len(puts) == 0 {
		return nil
	}
	futs := make([]jetstream.PubAckFuture, 0, len(puts))
	for _, p := range puts {
		if !ValidStateKey(p.Key) {
			return fmt.Errorf("bus: state put: invalid key %q", p.Key)
		}
		f, err := s.js.PublishMsgAsync(&nats.Msg{Subject: s.prefix + p.Key, Data: p.Value})
		if err != nil {
			return fmt.Errorf("bus: state put %s: %w", p.Key, err)
		}
		futs = append(futs, f)
	}
	var first error
	for i, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = fmt.Errorf("bus: state put %s: %w", puts[i].Key, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("bus: state put: %w", ctx.Err())
		}
	}
	if first != nil {
		return first
	}
	return s.b.Commit(ctx)
}

// Delete removes keys (a delete marker; the history is purged).
func (s *State) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := s.kv.Purge(ctx, k); err != nil {
			return fmt.Errorf("bus: state delete %s: %w", k, err)
		}
	}
	return s.b.Commit(ctx)
}

// ScanOption tunes Scan.
type ScanOption func(*scanOpts)

type scanOpts struct {
	batch    int
	progress func(done, total uint64)
}

// ScanBatch sets how many messages are requested at once (default 1024).
func ScanBatch(n int) ScanOption { return func(o *scanOpts) { o.batch = n } }

// ScanProgress is called every so often with the entries read and the total
// expected.
func ScanProgress(f func(done, total uint64)) ScanOption {
	return func(o *scanOpts) { o.progress = f }
}

// Scan calls fn with the latest version of every key matching one of the
// patterns (NATS wildcards: '*' one token, '>' the rest), in stream order,
// deletes excluded. It reads a point-in-time view: keys written after the
// scan started may or may not be seen. fn owns Value. An error from fn
// stops the scan and is returned.
func (s *State) Scan(ctx context.Context, patterns []string, fn func(StateEntry) error, opts ...ScanOption) error {
	o := scanOpts{batch: 1024}
	for _, f := range opts {
		f(&o)
	}
	if len(patterns) == 0 {
		patterns = []string{">"}
	}
	subs := make([]string, len(patterns))
	for i, p := range patterns {
		subs[i] = s.prefix + p
	}
	// An ephemeral consumer, not an ordered one: an ordered consumer that
	// misses heartbeats under load re-creates itself from the next stream
	// sequence, which drops "last per subject" and delivers superseded
	// revisions (seen as a stale value and a count of 101 for 100 keys).
	// This one keeps its position on the server across re-pulls, and the
	// bus's reader takes a stored entry with an empty value and a Status
	// header for an entry, not for the server's "no messages".
	rd, err := read.NewReader(ctx, s.b, s.stream, jetstream.ConsumerConfig{
		FilterSubjects: subs,
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	}, o.batch, false)
	if err != nil {
		return fmt.Errorf("bus: state scan %s: %w", strings.Join(patterns, ","), err)
	}
	defer rd.Stop()
	cons, err := s.js.Consumer(ctx, s.stream, rd.Name())
	if err != nil {
		return fmt.Errorf("bus: state scan %s: %w", strings.Join(patterns, ","), err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("bus: state scan %s: %w", strings.Join(patterns, ","), err)
	}
	total := info.NumPending
	if total == 0 {
		return nil
	}
	var done uint64
	for {
		m, err := rd.Next(ctx, time.Hour)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("bus: state scan: %w", ctx.Err())
			}
			return fmt.Errorf("bus: state scan: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("bus: state scan: %w", err)
		}
		done++
		if op := m.Header.Get("KV-Operation"); op == "" {
			key := strings.TrimPrefix(m.Subject, s.prefix)
			if err := fn(StateEntry{Key: key, Value: m.Data, Revision: md.Sequence.Stream, Time: md.Timestamp}); err != nil {
				return err
			}
		}
		if o.progress != nil && (done%1024 == 0 || md.NumPending == 0) {
			o.progress(done, done+md.NumPending)
		}
		if md.NumPending == 0 {
			return nil
		}
	}
}
