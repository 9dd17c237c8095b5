package sinks

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sightline/sightline/internal/stage"
)

// ErrClosed is returned by a Write after Close of a sink wrapped by Drain.
var ErrClosed = errors.New("sink closed")

// Drain wraps s so that Close first refuses new writes (they fail with
// ErrClosed) and waits for those in flight, then closes s, once: the drain
// at close is done here, for every sink, so a sink's own Close only
// releases what it holds. `sightline run` closes every sink of the table
// through it, and the sinktest suite checks every sink through it.
func Drain(s stage.Sink) stage.Sink { return &drained{Sink: s} }

type drained struct {
	stage.Sink
	w writes
}

func (d *drained) Write(ctx context.Context, batch []*stage.Message) error {
	if !d.w.begin() {
		return ErrClosed
	}
	defer d.w.done()
	return d.Sink.Write(ctx, batch)
}

func (d *drained) Close(ctx context.Context) error {
	first, err := d.w.close(ctx)
	if err != nil {
		return fmt.Errorf("sink: close: %w", err)
	}
	if !first {
		return nil
	}
	return d.Sink.Close(ctx)
}

// writes tracks the writes in flight: begin before each write (false once
// closed: the write must fail), done after it, close to refuse new writes
// and wait for those running.
type writes struct {
	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

func (w *writes) begin() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false
	}
	w.wg.Add(1)
	return true
}

func (w *writes) done() { w.wg.Done() }

// close reports first=false when an earlier close already ran.
func (w *writes) close(ctx context.Context) (first bool, err error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false, nil
	}
	w.closed = true
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true, nil
	case <-ctx.Done():
		return true, ctx.Err()
	}
}
