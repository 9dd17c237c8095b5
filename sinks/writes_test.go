package sinks_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks"
)

// heldSink's Write blocks until release is closed; Close counts its calls.
type heldSink struct {
	release chan struct{}
	closes  atomic.Int32
	writing chan struct{}
}

func (s *heldSink) Write(ctx context.Context, _ []*stage.Message) error {
	s.writing <- struct{}{}
	<-s.release
	return nil
}

func (s *heldSink) Close(context.Context) error { s.closes.Add(1); return nil }

func TestDrainCloseWaitsForWrites(t *testing.T) {
	h := &heldSink{release: make(chan struct{}), writing: make(chan struct{}, 1)}
	s := sinks.Drain(h)
	wrote := make(chan error, 128)
	go func() { wrote <- s.Write(context.Background(), nil) }()
	<-h.writing
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	select {
	case <-closed:
		t.Fatal("Close returned with a write in flight")
	case <-time.After(50 * time.Millisecond):
	}
	if h.closes.Load() != 0 {
		t.Fatal("the sink was closed under a write in flight")
	}
	// Once Close has begun, new writes fail at once (one that came before
	// Close marked the sink closed is accepted and waits too).
	accepted := 0
	for refused := false; !refused; {
		errc := make(chan error, 1)
		go func() { errc <- s.Write(context.Background(), nil) }()
		select {
		case err := <-errc:
			if !errors.Is(err, sinks.ErrClosed) {
				t.Fatalf("Write while Close waits: %v", err)
			}
			refused = true
		case <-h.writing:
			accepted++
			go func() { wrote <- <-errc }()
			if accepted > 100 {
				t.Fatal("Write still accepted while Close waits")
			}
		}
	}
	close(h.release)
	for range 1 + accepted {
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil || h.closes.Load() != 1 {
		t.Fatalf("second Close: %v, sink closed %d times", err, h.closes.Load())
	}
}

func TestDrainClosePastItsContext(t *testing.T) {
	h := &heldSink{release: make(chan struct{}), writing: make(chan struct{}, 1)}
	defer close(h.release)
	s := sinks.Drain(h)
	go func() { _ = s.Write(context.Background(), nil) }()
	<-h.writing
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close past its context: %v", err)
	}
	if h.closes.Load() != 0 {
		t.Fatal("the sink was closed under a write in flight")
	}
}
