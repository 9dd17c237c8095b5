package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
)

// The embedded server fsyncs before every acknowledgement with nats.sync
// "always", at the interval named otherwise, and at NATS's own 2-minute
// interval when the option is left empty or under "group" (`sightline
// run`'s default), where the bus runs the commit rounds.
func TestEmbeddedSyncPolicy(t *testing.T) {
	for _, c := range []struct {
		sync     string
		always   bool
		interval time.Duration
	}{{"", false, 2 * time.Minute}, {bus.SyncGroup, false, 2 * time.Minute}, {bus.SyncAlways, true, 0}, {"2m", false, 2 * time.Minute}, {"5s", false, 5 * time.Second}} {
		b, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: t.TempDir(), Sync: c.sync})
		if err != nil {
			t.Fatal(err)
		}
		always, interval := bus.EmbeddedSync(b)
		group := bus.GroupCommit(b)
		b.Close()
		if group != (c.sync == bus.SyncGroup) {
			t.Errorf("sync %q: group commit %v", c.sync, group)
		}
		if always != c.always || (!c.always && interval != c.interval) {
			t.Errorf("sync %q: server runs always=%v interval=%s", c.sync, always, interval)
		}
	}
	if _, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: t.TempDir(), Sync: "sometimes"}); err == nil {
		t.Error("sync \"sometimes\" accepted")
	}
}
