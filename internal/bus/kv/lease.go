package kv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
)

// Leases are exclusive, expiring locks shared by every process connected to
// the same JetStream: one key of a key-value bucket per lease. Taking a
// lease is an atomic create of its key (JetStream refuses a create when
// the key holds a value), renewing it an update conditional on the
// revision the holder wrote, releasing it a delete conditional on that
// revision. The bucket's TTL (max age) removes the key of a holder that
// stopped renewing it (killed, frozen, cut off), so its lease is free
// again TTL after its last renewal.
//
// The holder renews every TTL/4 and counts its lease as lost TTL/2 after
// the last renewal the server confirmed (measured from when it was sent,
// so the server's copy lives at least TTL from then): the lease's context
// is then cancelled, and Err reports it, while the server still keeps the
// key for at least TTL/2 more. A holder that checks Err just before each
// write it protects, and aborts writes when the context ends, writes
// nothing once another process can hold the lease — unless it is frozen
// (SIGSTOP, a VM pause) for more than TTL/2 between that check and the
// write reaching the store.
type Leases struct {
	kv    jetstream.KeyValue
	ttl   time.Duration
	owner string
}

// LeaseConfig describes a bucket of leases.
type LeaseConfig struct {
	Bucket string        // key-value bucket name: letters, digits, '_' and '-'
	TTL    time.Duration // a lease not renewed for TTL expires (default DefaultLeaseTTL, min 2s)
	// Replicas of the bucket's stream; 0 takes the events stream's (1
	// when it does not exist yet).
	Replicas int
	Memory   bool // memory storage (tests)
}

// DefaultLeaseTTL is the lease TTL when LeaseConfig.TTL is 0.
const DefaultLeaseTTL = 20 * time.Second

// ErrLeaseLost reports that a lease can no longer be proven held: its
// renewal failed or was refused for TTL/2, or it was released.
var ErrLeaseLost = errors.New("bus: lease lost")

// OpenLeases creates or updates the bucket (idempotent) and returns it.
func OpenLeases(ctx context.Context, b *bus.Bus, c LeaseConfig) (*Leases, error) {
	if b == nil || b.JetStream() == nil {
		return nil, bus.ErrClosed
	}
	js := b.JetStream()
	ttl := c.TTL
	if ttl == 0 {
		ttl = DefaultLeaseTTL
	}
	if ttl < 2*time.Second {
		return nil, fmt.Errorf("bus: leases %s: TTL %s is under the minimum of 2s", c.Bucket, ttl)
	}
	replicas := c.Replicas
	if replicas == 0 {
		replicas = 1
		if s, err := js.Stream(ctx, bus.StreamEvents); err == nil {
			replicas = max(1, s.CachedInfo().Config.Replicas)
		}
	}
	storage := jetstream.FileStorage
	if c.Memory {
		storage = jetstream.MemoryStorage
	}
	want := jetstream.KeyValueConfig{
		Bucket:      c.Bucket,
		Description: "Sightline leases: one key per lease, removed TTL after its holder's last renewal",
		History:     1,
		TTL:         ttl,
		MaxBytes:    -1,
		Storage:     storage,
		Replicas:    replicas,
	}
	kv, err := js.KeyValue(ctx, c.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, want) // create only: no update request (the worker may not update)
		if err != nil {
			return nil, fmt.Errorf("bus: leases %s: %w", c.Bucket, err)
		}
	} else if err != nil || !sameKV(ctx, kv, want) {
		if kv, err = js.CreateOrUpdateKeyValue(ctx, want); err != nil {
			return nil, fmt.Errorf("bus: leases %s: %w", c.Bucket, err)
		}
	}
	return &Leases{kv: kv, ttl: ttl, owner: b.Instance()}, nil
}

// TTL is the bucket's lease TTL.
func (l *Leases) TTL() time.Duration { return l.ttl }

// Acquire waits until this process holds the lease named key (a valid
// state key, see ValidStateKey) or ctx is done. The lease is renewed in
// the background until Release.
func (l *Leases) Acquire(ctx context.Context, key string) (*Lease, error) {
	if !ValidStateKey(key) {
		return nil, fmt.Errorf("bus: lease: invalid key %q", key)
	}
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	token := []byte(l.owner + "/" + hex.EncodeToString(nonce))
	wait := 2 * time.Millisecond
	var first time.Time // send time of the first create whose outcome is unknown
	for {
		sent := time.Now()
		rev, err := l.kv.Create(ctx, key, token)
		if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && first.IsZero() {
			first = sent
		}
		if err != nil && !first.IsZero() && ctx.Err() == nil {
			// A create may have been stored with its acknowledgement lost:
			// then the key holds our token (held since that create at most).
			if e, gerr := l.kv.Get(ctx, key); gerr == nil && string(e.Value()) == string(token) {
				rev, err, sent = e.Revision(), nil, first
			}
		}
		if err == nil {
			return l.held(ctx, key, token, rev, sent), nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("bus: lease %s: %w", key, context.Cause(ctx))
		}
		// Held by another process (or the request failed): try again
		// soon; a holder releases within one write, a dead one expires.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bus: lease %s: %w", key, context.Cause(ctx))
		case <-time.After(wait + time.Duration(mrand.Int64N(int64(wait)))):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// Lease is a held lease.
type Lease struct {
	l      *Leases
	key    string
	token  []byte
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}

	mu      sync.Mutex
	rev     uint64
	until   time.Time // held for sure until then (last confirmed renewal's send time + TTL/2)
	expired *time.Timer
}

func (l *Leases) held(parent context.Context, key string, token []byte, rev uint64, sent time.Time) *Lease {
	ctx, cancel := context.WithCancelCause(parent)
	ls := &Lease{l: l, key: key, token: token, ctx: ctx, cancel: cancel, done: make(chan struct{}), rev: rev,
		until: sent.Add(l.ttl / 2)}
	ls.expired = time.AfterFunc(time.Until(ls.until), func() { ls.cancel(ErrLeaseLost) })
	go ls.renew()
	return ls
}

// Context is done when the lease is released or can no longer be proven
// held (context.Cause is then ErrLeaseLost), or when Acquire's context is.
// Its Err is exact: it ends the context as soon as it is called past the
// lease's sure time, even if the timer has not fired yet (a process just
// resumed from a freeze). Check it just before each protected write, and
// abort the writes when the context ends.
func (ls *Lease) Context() context.Context { return leaseCtx{ls.ctx, ls} }

type leaseCtx struct {
	context.Context
	ls *Lease
}

func (c leaseCtx) Err() error {
	c.ls.expireIfDue()
	return c.Context.Err()
}

// expireIfDue ends the lease's context when its sure time has passed.
func (ls *Lease) expireIfDue() {
	ls.mu.Lock()
	past := !time.Now().Before(ls.until)
	ls.mu.Unlock()
	if past {
		ls.cancel(ErrLeaseLost)
	}
}

// Err returns nil while the lease is held for sure, ErrLeaseLost (or the
// context's error) otherwise. Check it just before each protected write.
func (ls *Lease) Err() error {
	ls.expireIfDue()
	if ls.ctx.Err() != nil {
		return fmt.Errorf("bus: lease %s: %w", ls.key, context.Cause(ls.ctx))
	}
	return nil
}

func (ls *Lease) renew() {
	defer close(ls.done)
	tick := time.NewTicker(ls.l.ttl / 4)
	defer tick.Stop()
	for {
		select {
		case <-ls.ctx.Done():
			return
		case <-tick.C:
		}
		ls.mu.Lock()
		rev := ls.rev
		ls.mu.Unlock()
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ls.ctx, ls.l.ttl/4)
		next, err := ls.l.kv.Update(rctx, ls.key, ls.token, rev)
		cancel()
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			// Someone else's now (it expired): never ours again.
			ls.cancel(ErrLeaseLost)
			return
		}
		if err != nil {
			continue // lost when until passes without a renewal
		}
		ls.mu.Lock()
		ls.rev = next
		if u := sent.Add(ls.l.ttl / 2); u.After(ls.until) {
			ls.until = u
			ls.expired.Reset(time.Until(u))
		}
		ls.mu.Unlock()
	}
}

// Release gives the lease up: it stops renewing and deletes the key if
// its last revision is still this holder's (a delete conditional on it),
// so the key is free again at once; otherwise it expires by itself.
func (ls *Lease) Release() {
	ls.cancel(ErrLeaseLost)
	<-ls.done
	ls.mu.Lock()
	rev := ls.rev
	ls.expired.Stop()
	ls.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ls.l.kv.Delete(ctx, ls.key, jetstream.LastRevision(rev)); err != nil {
		// A renewal cancelled by Release may have been stored anyway: the
		// key then holds our token at a revision we did not learn.
		if e, gerr := ls.l.kv.Get(ctx, ls.key); gerr == nil && string(e.Value()) == string(ls.token) {
			_ = ls.l.kv.Delete(ctx, ls.key, jetstream.LastRevision(e.Revision()))
		}
	}
}
