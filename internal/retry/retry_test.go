package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/retry"
)

func TestDelayDoublesUpToMax(t *testing.T) {
	b := retry.Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Delay(i); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %s, want %s", i, got, w*time.Millisecond)
		}
	}
	if got := (retry.Backoff{Initial: time.Second}).Delay(1000); got <= 0 {
		t.Errorf("no cap, attempt 1000: %s (overflowed)", got)
	}
	j := retry.Backoff{Initial: 100 * time.Millisecond, Jitter: 0.5}
	for range 100 {
		if d := j.Delay(1); d < 100*time.Millisecond || d > 200*time.Millisecond {
			t.Fatalf("jittered Delay(1) = %s, want within [100ms, 200ms]", d)
		}
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("Sleep outlived its context")
	}
	if err := retry.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
