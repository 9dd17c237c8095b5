package bus

import "time"

// DropPulls makes the pull loops of b lose (not send) the pull requests of
// their first gen generations, as a server that dropped them would.
func DropPulls(b *Bus, gen uint64) { b.dropPulls.Store(gen) }

// EmbeddedSync is the embedded server's fsync policy as JetStream runs it.
func EmbeddedSync(b *Bus) (always bool, interval time.Duration) {
	c := b.srv.JetStreamConfig()
	return c.SyncAlways, c.SyncInterval
}

// AckSeqs is ackSeqs, for the differential test against nats.go.
var AckSeqs = ackSeqs

// GroupCommit reports whether b runs group commit rounds.
func GroupCommit(b *Bus) bool { return b.committer != nil }
