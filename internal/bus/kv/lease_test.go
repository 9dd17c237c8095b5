package kv_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/kv"
)

// connectTo opens a second client connection (another "process") to the
// server of b.
func connectTo(t testing.TB, b *bus.Bus) *bus.Bus {
	t.Helper()
	o, err := bus.Connect(context.Background(), bus.Options{URLs: []string{b.ClientURL()}, Logger: bustest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

// Two processes (two connections) take turns on one lease: a read, a
// pause and a write of a shared counter under it never lose an increment.
func TestLeaseExclusive(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	ctx := context.Background()
	var leases []*kv.Leases
	for _, c := range []*bus.Bus{b, connectTo(t, b)} {
		l, err := kv.OpenLeases(ctx, c, kv.LeaseConfig{Bucket: "test_leases", TTL: 5 * time.Second, Memory: true})
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	var (
		counter int
		inside  int
		mu      sync.Mutex // guards only the test's bookkeeping, not the critical section
		wg      sync.WaitGroup
	)
	const workers, rounds = 8, 15
	for w := range workers {
		wg.Go(func() {
			for range rounds {
				ls, err := leases[w%2].Acquire(ctx, "window.a/b=c")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				if inside > 1 {
					t.Errorf("%d holders at once", inside)
				}
				v := counter
				mu.Unlock()
				time.Sleep(time.Millisecond)
				if err := ls.Err(); err != nil {
					t.Errorf("lease lost while held: %v", err)
				}
				mu.Lock()
				counter = v + 1
				inside--
				mu.Unlock()
				ls.Release()
			}
		})
	}
	wg.Wait()
	if counter != workers*rounds {
		t.Fatalf("counter %d, want %d", counter, workers*rounds)
	}
}

// A holder renews its lease for longer than the TTL; a holder cut off from
// NATS loses it (its context ends within TTL/2) and another process takes
// it after the TTL, not before.
func TestLeaseRenewedAndExpires(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	ctx := context.Background()
	const ttl = 2 * time.Second
	holderBus := connectTo(t, b)
	holder, err := kv.OpenLeases(ctx, holderBus, kv.LeaseConfig{Bucket: "test_leases", TTL: ttl, Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	other, err := kv.OpenLeases(ctx, b, kv.LeaseConfig{Bucket: "test_leases", TTL: ttl, Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := holder.Acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// Held across 2 TTLs by renewals: the other cannot take it.
	short, cancel := context.WithTimeout(ctx, 2*ttl)
	_, err = other.Acquire(short, "k")
	cancel()
	if err == nil {
		t.Fatal("a second process took a renewed lease")
	}
	if err := ls.Err(); err != nil {
		t.Fatalf("renewed lease reported lost: %v", err)
	}
	// The holder is cut off (its connection closed, as if killed).
	cut := time.Now()
	holderBus.Close()
	select {
	case <-ls.Context().Done():
		if !errors.Is(context.Cause(ls.Context()), kv.ErrLeaseLost) {
			t.Fatalf("cause %v", context.Cause(ls.Context()))
		}
	case <-time.After(ttl):
		t.Fatal("the cut-off holder's lease context did not end within TTL/2 (+margin)")
	}
	lost := time.Since(cut)
	got, err := other.Acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	taken := time.Since(cut)
	got.Release()
	t.Logf("cut-off holder stopped trusting its lease after %s; another process took it after %s (TTL %s)", lost, taken, ttl)
	if taken < lost {
		t.Fatalf("taken (%s) before the holder stopped trusting it (%s)", taken, lost)
	}
	if taken > 3*ttl {
		t.Fatalf("expired lease taken only after %s (TTL %s)", taken, ttl)
	}
}

// A released lease is free at once.
func TestLeaseReleaseFreesAtOnce(t *testing.T) {
	b := bustest.Open(t, "")
	defer b.Close()
	ctx := context.Background()
	l, err := kv.OpenLeases(ctx, b, kv.LeaseConfig{Bucket: "test_leases", TTL: 10 * time.Second, Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		start := time.Now()
		ls, err := l.Acquire(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		ls.Release()
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("acquire after release took %s", d)
		}
	}
}

// BenchmarkLeaseAcquireRelease is the cost a lease adds to each protected
// write (an archive window merge): one create and one delete, uncontended,
// on the embedded server with sync always.
func BenchmarkLeaseAcquireRelease(b *testing.B) {
	bb, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: b.TempDir(), Logger: bustest.Logger(b), Sync: bus.SyncAlways})
	if err != nil {
		b.Fatal(err)
	}
	defer bb.Close()
	ctx := context.Background()
	l, err := kv.OpenLeases(ctx, bb, kv.LeaseConfig{Bucket: "bench_leases"})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ls, err := l.Acquire(ctx, fmt.Sprintf("k%d", i%64))
		if err != nil {
			b.Fatal(err)
		}
		ls.Release()
	}
}
