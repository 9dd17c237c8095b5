package bus

import "time"

// EmbeddedSync is the embedded server's fsync policy as JetStream runs it.
func EmbeddedSync(b *Bus) (always bool, interval time.Duration) {
	c := b.srv.JetStreamConfig()
	return c.SyncAlways, c.SyncInterval
}

// GroupCommit reports whether b runs group commit rounds.
func GroupCommit(b *Bus) bool { return b.committer != nil }
