package bus_test

import (
	"testing"

	"github.com/sightline/sightline/internal/bus"
)

// Signal never blocks: a second wake while one is pending is dropped, and
// the waiter sees one.
func TestSignalNeverBlocks(t *testing.T) {
	ch := make(chan struct{}, 1)
	bus.Signal(ch)
	bus.Signal(ch)
	<-ch
	select {
	case <-ch:
		t.Fatal("two wakes pending in a channel of one")
	default:
	}
	bus.Signal(make(chan struct{})) // nobody waiting: returns
}
