package sinks

import (
	"context"
	"sync"
)

// Writes tracks a sink's writes in flight so that Close drains them: Begin
// before each write (false once closed: the write must fail), Done after
// it, Close to refuse new writes and wait for those running.
type Writes struct {
	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

// Begin registers a write; false when the sink is closed.
func (w *Writes) Begin() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false
	}
	w.wg.Add(1)
	return true
}

// Done ends a write Begin registered.
func (w *Writes) Done() { w.wg.Done() }

// Close refuses new writes and waits for those in flight, or for ctx. It
// reports first=false when an earlier Close already ran (nothing to do).
func (w *Writes) Close(ctx context.Context) (first bool, err error) {
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
