// Package sinktest is the contract every stage.Sink of Sightline passes,
// run against the real backing service: idempotent rewrite, partial and
// transient failure reporting, close draining, concurrent writers and the
// empty batch. A sink adopts it with a Harness (see README.md) and one test:
//
//	func TestContract(t *testing.T) { sinktest.Run(t, harness(t)) }
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/retry"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks"
)

// Record is what the store holds for one event, normalized so two reads of
// the same state compare equal.
type Record struct {
	// Copies is how many times the event is stored (1 is the contract).
	Copies int
	// Value is the normalized stored content (what a reader gets back).
	Value string
}

// Target is one isolated store (a fresh index prefix, graph scope, bucket
// prefix or directory) and the ways to drive and inspect it. Everything the
// Target creates is cleaned up by t.Cleanup.
type Target struct {
	// NewSink returns a fresh sink writing to this store. It is called more
	// than once per test (e.g. again after Close); the suite closes each.
	NewSink func(t testing.TB) stage.Sink
	// Events returns n realistic conformed events for this store, with ids
	// never returned before and Meta (stream, sequence) filled as the bus
	// fills it.
	Events func(t testing.TB, n int) []*stage.Message
	// Read returns the stored records of the given events by event id;
	// events not stored are absent. It may wait for the store to settle
	// (refresh), but must not wait for events to appear.
	Read func(ctx context.Context, events []*stage.Message) (map[string]Record, error)
	// Reject returns a message, made from a good event, that the backing
	// service refuses for good (a mapping conflict, an invalid label, ...).
	// Nil when the sink cannot be made to refuse one: Harness.RejectNA says why.
	Reject func(t testing.TB, good *stage.Message) *stage.Message
	// Outage makes the backing store unavailable for every sink of this
	// Target until the returned restore is called. Nil when it cannot be
	// done: Harness.OutageNA says why.
	Outage func(t testing.TB) (restore func())
}

// Harness describes one sink to the suite.
type Harness struct {
	// Name is printed in failures.
	Name string
	// Open returns a fresh, isolated Target.
	Open func(t *testing.T) *Target
	// RejectNA and OutageNA state why Target.Reject / Target.Outage is nil.
	RejectNA string
	OutageNA string
	// RebatchNA, when set, says why redelivering messages in a different
	// batch shape than the first write may leave more than one copy.
	RebatchNA string
	// Timeout bounds each case (default 2 minutes).
	Timeout time.Duration
}

// Run runs every contract case as a subtest.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatalf("sinktest %s: Harness.Open is nil", h.Name)
	}
	cases := []struct {
		name string
		run  func(t *testing.T, h Harness, ctx context.Context)
	}{
		{"empty batch is a no-op", caseEmpty},
		{"idempotent: same batch twice", caseSameBatchTwice},
		{"idempotent: every message redelivered alone, twice", caseRedeliverAlone},
		{"idempotent: duplicate inside one batch", caseDuplicateInBatch},
		{"idempotent: redelivery in another batch shape", caseRebatch},
		{"partial failure: permanent items named exactly", casePartial},
		{"transient failure: store unavailable, then recovered", caseTransient},
		{"close drains in-flight writes; write after close fails", caseCloseDrains},
		{"concurrent writers", caseConcurrent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := h.Timeout
			if d <= 0 {
				d = 2 * time.Minute
			}
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			c.run(t, h, ctx)
		})
	}
}

func notApplicable(t *testing.T, h Harness, what, reason string) {
	t.Helper()
	if reason == "" {
		reason = "(no reason given: the harness should say why)"
	}
	t.Logf("NOT APPLICABLE to %s: %s: %s", h.Name, what, reason)
	t.Skipf("%s: %s not applicable: %s", h.Name, what, reason)
}

func open(t *testing.T, h Harness) (*Target, stage.Sink) {
	t.Helper()
	tg := h.Open(t)
	if tg == nil || tg.NewSink == nil || tg.Events == nil || tg.Read == nil {
		t.Fatalf("sinktest %s: Open must return a Target with NewSink, Events and Read", h.Name)
	}
	return tg, newSink(t, tg)
}

// newSink opens the target's sink the way `sightline run` does: through
// sinks.Drain, which drains the writes in flight at Close.
func newSink(t *testing.T, tg *Target) stage.Sink {
	t.Helper()
	s := sinks.Drain(tg.NewSink(t))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

func write(t *testing.T, ctx context.Context, s stage.Sink, batch []*stage.Message) {
	t.Helper()
	if err := s.Write(ctx, batch); err != nil {
		t.Fatalf("Write of %d messages: %v", len(batch), err)
	}
}

func read(t *testing.T, ctx context.Context, tg *Target, evs []*stage.Message) map[string]Record {
	t.Helper()
	got, err := tg.Read(ctx, evs)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	return got
}

// expectOnce checks every event is stored exactly once, and returns the state.
func expectOnce(t *testing.T, ctx context.Context, tg *Target, evs []*stage.Message, when string) map[string]Record {
	t.Helper()
	got := read(t, ctx, tg, evs)
	var bad []string
	for _, m := range evs {
		r, ok := got[m.ID]
		switch {
		case !ok:
			bad = append(bad, m.ID+": missing")
		case r.Copies != 1:
			bad = append(bad, fmt.Sprintf("%s: %d copies", m.ID, r.Copies))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%s: %d of %d events not stored exactly once: %s", when, len(bad), len(evs), summarize(bad))
	}
	return got
}

func expectSame(t *testing.T, before, after map[string]Record, when string) {
	t.Helper()
	var diff []string
	for id, b := range before {
		if a := after[id]; a != b {
			diff = append(diff, fmt.Sprintf("%s: %+v, then %+v", id, b, a))
		}
	}
	if len(diff) > 0 {
		slices.Sort(diff)
		t.Fatalf("%s: state changed for %d events: %s", when, len(diff), summarize(diff))
	}
}

func summarize(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], "; ") + fmt.Sprintf("; … (%d more)", len(s)-5)
	}
	return strings.Join(s, "; ")
}

func caseEmpty(t *testing.T, h Harness, ctx context.Context) {
	tg, s := open(t, h)
	for _, b := range [][]*stage.Message{nil, {}} {
		if err := s.Write(ctx, b); err != nil {
			t.Fatalf("Write(%#v) = %v, want nil", b, err)
		}
	}
	// The sink still works after empty batches.
	evs := tg.Events(t, 2)
	write(t, ctx, s, evs)
	expectOnce(t, ctx, tg, evs, "after empty batches and one real one")
}

func caseSameBatchTwice(t *testing.T, h Harness, ctx context.Context) {
	tg, s := open(t, h)
	evs := tg.Events(t, 20)
	write(t, ctx, s, evs)
	first := expectOnce(t, ctx, tg, evs, "after the first write")
	write(t, ctx, s, evs)
	expectSame(t, first, expectOnce(t, ctx, tg, evs, "after writing the same batch again"), "same batch twice")
	// A fresh sink (a restarted process) rewriting the batch changes nothing either.
	write(t, ctx, newSink(t, tg), evs)
	expectSame(t, first, expectOnce(t, ctx, tg, evs, "after a new sink rewrote the batch"), "rewrite by a new sink")
}

func caseRedeliverAlone(t *testing.T, h Harness, ctx context.Context) {
	tg, s := open(t, h)
	evs := tg.Events(t, 6)
	for range 2 {
		for _, m := range evs {
			write(t, ctx, s, []*stage.Message{m})
		}
	}
	expectOnce(t, ctx, tg, evs, "after every message was written alone, twice")
}

func caseDuplicateInBatch(t *testing.T, h Harness, ctx context.Context) {
	tg, s := open(t, h)
	evs := tg.Events(t, 5)
	// A redelivery can land in the batch that still holds the first delivery.
	batch := append(slices.Clone(evs), evs[1], evs[3])
	write(t, ctx, s, batch)
	expectOnce(t, ctx, tg, evs, "after a batch holding two messages twice")
}

func caseRebatch(t *testing.T, h Harness, ctx context.Context) {
	if h.RebatchNA != "" {
		notApplicable(t, h, "redelivery in another batch shape", h.RebatchNA)
	}
	tg, s := open(t, h)
	evs := tg.Events(t, 12)
	write(t, ctx, s, evs)
	first := expectOnce(t, ctx, tg, evs, "after the first write")
	// Redelivered as two overlapping batches of another shape.
	write(t, ctx, s, evs[3:9])
	write(t, ctx, s, evs[6:])
	expectSame(t, first, expectOnce(t, ctx, tg, evs, "after redelivery in other batches"), "re-batched redelivery")
}

func casePartial(t *testing.T, h Harness, ctx context.Context) {
	tg, s := open(t, h)
	if tg.Reject == nil {
		notApplicable(t, h, "permanent refusal by the backing service", h.RejectNA)
	}
	evs := tg.Events(t, 10)
	badIdx := []int{2, 7}
	batch := slices.Clone(evs)
	for _, i := range badIdx {
		batch[i] = tg.Reject(t, evs[i])
	}
	err := s.Write(ctx, batch)
	var be *stage.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("Write with items %v bad = %v (%T), want a *stage.BatchError", badIdx, err, err)
	}
	if got := slices.Sorted(maps.Keys(be.Failed)); !slices.Equal(got, badIdx) {
		t.Fatalf("BatchError names indexes %v, want exactly %v (errors: %v)", got, badIdx, be.Failed)
	}
	for _, i := range badIdx {
		if !stage.IsPermanent(be.Failed[i]) {
			t.Fatalf("item %d: %v is not permanent (it would be retried forever)", i, be.Failed[i])
		}
		t.Logf("item %d refused: %v", i, be.Failed[i])
	}
	var good []*stage.Message
	for i, m := range evs {
		if !slices.Contains(badIdx, i) {
			good = append(good, m)
		}
	}
	expectOnce(t, ctx, tg, good, "good items of a partially failed batch")
	bad := []*stage.Message{batch[2], batch[7]}
	if got := read(t, ctx, tg, bad); len(got) > 0 {
		t.Fatalf("refused items are stored: %v", got)
	}
}

// checkTransient fails unless err reports every message of an n-batch as
// failed, and none permanently.
func checkTransient(t *testing.T, err error, n int) {
	t.Helper()
	if err == nil {
		t.Fatal("Write while the store is unavailable returned nil (the batch would be acked)")
	}
	var be *stage.BatchError
	if errors.As(err, &be) {
		if len(be.Failed) != n {
			t.Fatalf("store unavailable: BatchError names %d of %d items; the others would be acked although not stored: %v", len(be.Failed), n, err)
		}
		for i, e := range be.Failed {
			if stage.IsPermanent(e) {
				t.Fatalf("store unavailable: item %d failed permanently (would go to the DLQ): %v", i, e)
			}
		}
	} else if stage.IsPermanent(err) {
		t.Fatalf("store unavailable: error is permanent (the batch would go to the DLQ): %v", err)
	}
}

func caseTransient(t *testing.T, h Harness, ctx context.Context) {
	tg, s := open(t, h)
	if tg.Outage == nil {
		notApplicable(t, h, "store outage", h.OutageNA)
	}
	// Warm the sink up first, so the outage hits live connections.
	warm := tg.Events(t, 2)
	write(t, ctx, s, warm)
	evs := tg.Events(t, 8)
	restore := tg.Outage(t)
	start := time.Now()
	err := s.Write(ctx, evs)
	restore()
	t.Logf("store unavailable: Write failed after %s with: %v", time.Since(start).Round(time.Millisecond), err)
	checkTransient(t, err, len(evs))
	// After recovery the same batch (redelivered) succeeds; the router retries with backoff.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.Write(ctx, evs)
		if err == nil {
			break
		}
		checkTransient(t, err, len(evs))
		if time.Now().After(deadline) {
			t.Fatalf("store back for 30 s, the batch still fails: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	expectOnce(t, ctx, tg, append(warm, evs...), "after recovery")
}

func caseCloseDrains(t *testing.T, h Harness, ctx context.Context) {
	tg, s := open(t, h)
	const writers = 4
	batches := make([][]*stage.Message, writers)
	for i := range batches {
		batches[i] = tg.Events(t, 25)
	}
	errs := make([]error, writers)
	var wg sync.WaitGroup
	started := make(chan struct{}, writers)
	for i := range writers {
		wg.Go(func() {
			started <- struct{}{}
			errs[i] = s.Write(ctx, batches[i])
		})
	}
	for range writers {
		<-started
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close returned: every Write that reports success must be readable
	// now, before the writers are waited for.
	all := slices.Concat(batches...)
	snapshot := read(t, ctx, tg, all)
	wg.Wait()
	var acked []*stage.Message
	for i, err := range errs {
		if err == nil {
			acked = append(acked, batches[i]...)
		} else {
			t.Logf("writer %d raced Close and failed cleanly: %v", i, err)
		}
	}
	for _, m := range acked {
		if r, ok := snapshot[m.ID]; !ok || r.Copies != 1 {
			t.Fatalf("event %s: Write returned nil but right after Close returned the store had %+v (want 1 copy)", m.ID, r)
		}
	}
	t.Logf("%d of %d racing writers acknowledged (%d events), all readable when Close returned", len(acked)/25, writers, len(acked))
	late := tg.Events(t, 3)
	if err := s.Write(ctx, late); err == nil {
		t.Fatal("Write after Close returned nil")
	} else {
		t.Logf("Write after Close: %v", err)
	}
	if got := read(t, ctx, tg, late); len(got) > 0 {
		t.Fatalf("Write after Close stored %d events", len(got))
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func caseConcurrent(t *testing.T, h Harness, ctx context.Context) {
	tg, s := open(t, h)
	const writers = 6
	own := make([][]*stage.Message, writers)
	for i := range own {
		own[i] = tg.Events(t, 15)
	}
	shared := tg.Events(t, 10)
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for i := range writers {
		wg.Go(func() {
			if err := writeRetrying(ctx, s, own[i]); err != nil {
				errs <- fmt.Errorf("writer %d: %w", i, err)
			}
			// Everyone also writes the same batch at once (redelivery racing the first delivery).
			if err := writeRetrying(ctx, s, shared); err != nil {
				errs <- fmt.Errorf("writer %d, shared batch: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	all := slices.Concat(append(own, shared)...)
	expectOnce(t, ctx, tg, all, "after concurrent writers")
}

// writeRetrying writes like the router: a transient failure (a plain error,
// or a BatchError without permanent items) is retried with backoff until
// ctx ends; a permanent one is returned at once.
func writeRetrying(ctx context.Context, s stage.Sink, batch []*stage.Message) error {
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	for n := 0; ; n++ {
		err := s.Write(ctx, batch)
		if err == nil {
			return nil
		}
		// Redeliver only the failed items, as the router does.
		var rest []*stage.Message
		for i, e := range stage.Outcomes(err, len(batch)).Errs {
			if stage.IsPermanent(e) {
				return fmt.Errorf("item %d failed permanently: %w", i, e)
			}
			if e != nil {
				rest = append(rest, batch[i])
			}
		}
		batch = rest
		if retry.Sleep(ctx, backoff.Delay(n)) != nil {
			return fmt.Errorf("still failing when the case timed out: %w", err)
		}
	}
}
