package sinks_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sightline/sightline/sinks"
)

func TestWritesCloseDrains(t *testing.T) {
	var w sinks.Writes
	if !w.Begin() {
		t.Fatal("Begin on an open sink")
	}
	closed := make(chan error, 1)
	go func() { _, err := w.Close(context.Background()); closed <- err }()
	select {
	case <-closed:
		t.Fatal("Close returned with a write in flight")
	case <-time.After(50 * time.Millisecond):
	}
	for deadline := time.Now().Add(5 * time.Second); w.Begin(); {
		w.Done() // Close has not marked the sink closed yet
		if time.Now().After(deadline) {
			t.Fatal("Begin still succeeds while Close waits")
		}
	}
	w.Done()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if first, err := w.Close(context.Background()); first || err != nil {
		t.Fatalf("second Close: %v %v", first, err)
	}
	var w2 sinks.Writes
	w2.Begin()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := w2.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close past its context: %v", err)
	}
}
