// Package loss accounts for input that never reached the stage meant to
// handle it: messages a stream's limits removed before a durable consumer
// received them (Check), and messages published on the raw subjects that
// the raw stream never stored (WatchDoor). Both are logged, counted by the
// observer and shown in the health registry (`sightline status`).
package loss

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/health"
)

// Observer is implemented by observers that also record input a
// stream removed before a consumer received it, and consumers at risk of
// it (internal/telemetry's metrics).
type Observer interface {
	// Lost counts n messages removed from the stream (its max_age,
	// max_bytes or max_msgs, or a purge) before the consumer received
	// them.
	Lost(stream, consumer string, n uint64)
	// AtRisk records that the consumer's backlog is (true) or is no longer
	// (false) about to be removed by the stream's limits.
	AtRisk(stream, consumer string, risk bool)
}

// riskShare is how close to a stream limit a backlog counts as at risk:
// the stream holds 90 % of its max_bytes or max_msgs and 90 % of what it
// holds is still undelivered to the consumer, or the oldest undelivered
// message has lived 90 % of max_age.
const riskShare = 0.9

// Check watches one consumer for input the stream's limits remove
// before the consumer got it. JetStream removes such messages without a
// word (a stream with discard old drops its oldest messages, delivered or
// not) and the consumer then silently goes on from the stream's first
// message. Two traces are left, and both are read:
//
//   - the stream's first sequence passing the consumer's last delivered
//     one, seen when the consumer starts (a process down longer than the
//     stream keeps input) and at every watch tick;
//   - a gap in the stream sequences of first deliveries, seen as messages
//     arrive (a running consumer whose backlog overflows: the server skips
//     to the stream's first message at once, before any tick could see
//     it). A gap is lost when its sequences are below the stream's first
//     one; above it, another worker of the same consumer received them.
//
// Only a consumer that reads the whole stream can tell: for a filtered one
// a gap may hold messages it never wanted.
type Check struct {
	js     jetstream.JetStream
	log    *slog.Logger
	health *health.Registry
	c      consumer
	stream jetstream.Stream
	lo     Observer
	atRisk bool
	wake   chan struct{} // cap 1: a gap to resolve

	whole   atomic.Bool // known to read the whole stream (set by observe)
	partial bool        // known not to (observe's goroutine only)

	mu      sync.Mutex
	maxSeen uint64   // highest stream sequence first delivered here or counted lost
	gaps    []seqGap // gaps in first deliveries, not yet resolved
}

// seqGap is a range of stream sequences, both ends included.
type seqGap struct{ lo, hi uint64 }

// maxGaps bounds the unresolved gaps held (several workers on one
// consumer make one per batch; a check resolves them within 250 ms): past
// it the newest two are merged, which can only over-count messages that
// another worker received just before the stream removed them.
const maxGaps = 4096

// consumer names the consumer a Check watches.
type consumer struct{ Stream, Durable, Stage string }

// NewCheck returns the check of the durable consumer durable of stream,
// run by stage.
func NewCheck(b *bus.Bus, stream, durable, stage string) *Check {
	lo, _ := b.Observer().(Observer)
	return &Check{js: b.JetStream(), log: b.Logger(), health: b.Health(), c: consumer{stream, durable, stage},
		lo: lo, wake: make(chan struct{}, 1)}
}

// Wake is signalled when a gap in the deliveries waits to be resolved by
// Observe.
func (l *Check) Wake() <-chan struct{} { return l.wake }

// Delivered notes a message as it arrives, in the server's order: a first
// delivery past the next expected sequence leaves a gap to resolve.
func (l *Check) Delivered(m *nats.Msg) {
	if !l.whole.Load() {
		return
	}
	delivered, seq, ok := ackSeqs(m.Reply)
	if !ok || delivered != 1 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq > l.maxSeen+1 {
		if len(l.gaps) == maxGaps {
			last := l.gaps[len(l.gaps)-1]
			l.gaps = l.gaps[:len(l.gaps)-1]
			l.gaps[len(l.gaps)-1].hi = last.hi
		}
		l.gaps = append(l.gaps, seqGap{l.maxSeen + 1, seq - 1})
		bus.Signal(l.wake)
	}
	l.maxSeen = max(l.maxSeen, seq)
}

// Observe reads the stream's state, then the consumer's — in that order:
// a message the stream no longer had when its state was read cannot have
// been delivered after it, so nothing delivered is counted lost — then
// accounts for what is lost and at risk, and returns the consumer's info.
// A consumer found not to read the whole stream costs one request.
func (l *Check) Observe(ctx context.Context, cons jetstream.Consumer) (*jetstream.ConsumerInfo, error) {
	if l.partial {
		return cons.Info(ctx)
	}
	if l.stream == nil {
		s, err := l.js.Stream(ctx, l.c.Stream)
		if err != nil {
			return cons.Info(ctx)
		}
		l.stream = s
	}
	// Only the gaps seen before the stream's state is read can be judged
	// by it: a message removed after it was read would look still there.
	l.mu.Lock()
	judged := len(l.gaps)
	l.mu.Unlock()
	si, err := l.stream.Info(ctx)
	if err != nil {
		l.stream = nil
		return cons.Info(ctx)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, err
	}
	if !readsWholeStream(si.Config.Subjects, info.Config.FilterSubjects) {
		l.partial = true
		return info, nil
	}
	if !l.whole.Load() {
		// The baseline: what the server delivered before this process.
		l.mu.Lock()
		l.maxSeen = max(l.maxSeen, info.Delivered.Stream)
		l.mu.Unlock()
		l.whole.Store(true)
	}
	l.lost(info, si, judged)
	l.risk(ctx, info, si)
	return info, nil
}

// readsWholeStream reports whether a consumer with these filters receives
// every message of a stream with these subjects.
func readsWholeStream(subjects, filters []string) bool {
	if len(filters) == 0 {
		return true
	}
	a, b := slices.Clone(subjects), slices.Clone(filters)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// lost counts what is gone. One cursor, maxSeen, moves through the
// stream's sequences in order, so nothing is counted twice: a gap below a
// first delivery is counted (its part still in the stream went to another
// worker) when the next check resolves it, and the sequences between the
// consumer's last delivered one and the stream's first are counted here
// only once this process has received everything the server delivered
// (else the deliveries on their way will show them as a gap). A consumer
// created on a stream whose history already aged out starts with
// delivered = first - 1 (the server's doing): nothing is reported
// (TestNewConsumerOnAgedStreamReportsNothing).
func (l *Check) lost(info *jetstream.ConsumerInfo, si *jetstream.StreamInfo, judged int) {
	first := si.State.FirstSeq
	if first == 0 {
		return
	}
	var ranges []seqGap
	l.mu.Lock()
	judged = min(judged, len(l.gaps)) // maxGaps may have merged two since
	for _, g := range l.gaps[:judged] {
		g.hi = min(g.hi, first-1)
		if g.lo <= g.hi {
			ranges = append(ranges, g)
		}
	}
	l.gaps = append(l.gaps[:0], l.gaps[judged:]...)
	if d := info.Delivered.Stream; first > d+1 && l.maxSeen == d {
		ranges = append(ranges, seqGap{d + 1, first - 1})
		l.maxSeen = first - 1
	}
	l.mu.Unlock()
	if len(ranges) == 0 {
		return
	}
	n := uint64(0)
	for _, r := range ranges {
		n += r.hi - r.lo + 1
	}
	if l.lo != nil {
		l.lo.Lost(l.c.Stream, l.c.Durable, n)
	}
	l.health.AddLost("consumer "+l.c.Durable, n)
	l.log.Error("messages removed from the stream before this consumer received them: they are lost",
		"stream", l.c.Stream, "consumer", l.c.Durable, "stage", l.c.Stage, "lost", n,
		"first_lost_seq", ranges[0].lo, "last_lost_seq", ranges[len(ranges)-1].hi, "ranges", len(ranges),
		"lost_seqs", rangesText(ranges, 20),
		"max_age", si.Config.MaxAge.String(), "max_bytes", si.Config.MaxBytes, "max_msgs", si.Config.MaxMsgs,
		"hint", "the stream keeps what its limits allow ("+limitKeys(l.c.Stream)+"): raise them, or add workers so the backlog drains before it ages or overflows")
}

// risk reports a backlog about to reach the stream's limits.
func (l *Check) risk(ctx context.Context, info *jetstream.ConsumerInfo, si *jetstream.StreamInfo) {
	why := ""
	st, cfg := si.State, si.Config
	if info.NumPending > 0 && st.Msgs > 0 {
		undelivered := float64(info.NumPending) / float64(st.Msgs)
		full := (cfg.MaxBytes > 0 && float64(st.Bytes) >= riskShare*float64(cfg.MaxBytes)) ||
			(cfg.MaxMsgs > 0 && float64(st.Msgs) >= riskShare*float64(cfg.MaxMsgs))
		if full && undelivered >= riskShare {
			why = "the stream is at 90 % of its size limit and holds mostly undelivered messages"
		}
		if why == "" && cfg.MaxAge > 0 {
			if m, err := l.stream.GetMsg(ctx, max(info.Delivered.Stream+1, st.FirstSeq)); err == nil &&
				time.Since(m.Time) >= time.Duration(riskShare*float64(cfg.MaxAge)) {
				why = "the oldest undelivered message has lived 90 % of the stream's max_age"
			}
		}
	}
	switch {
	case why != "" && !l.atRisk:
		l.atRisk = true
		l.log.Warn("backlog at risk: the stream's limits will soon remove messages this consumer has not received",
			"stream", l.c.Stream, "consumer", l.c.Durable, "why", why, "pending", info.NumPending,
			"stream_msgs", st.Msgs, "stream_bytes", st.Bytes, "max_bytes", cfg.MaxBytes, "max_age", cfg.MaxAge.String(),
			"hint", "raise "+limitKeys(l.c.Stream)+", or add workers")
	case why == "" && l.atRisk:
		l.atRisk = false
		l.log.Info("backlog no longer at risk", "stream", l.c.Stream, "consumer", l.c.Durable)
	default:
		return
	}
	if l.lo != nil {
		l.lo.AtRisk(l.c.Stream, l.c.Durable, l.atRisk)
	}
}

// limitKeys names the configuration keys of a stream's limits.
func limitKeys(stream string) string {
	key := "streams." + strings.ToLower(strings.TrimPrefix(stream, "SIGHTLINE_"))
	return key + ".max_age, " + key + ".max_bytes"
}

// ackSeqs reads the delivery count and the stream sequence from a stored
// message's reply subject, as nats.go's Msg.Metadata does, without its
// allocations (every message of a consumer passes here; measured in
// BENCHMARKS.md, "Input lost to a stream's limits"); TestAckSeqsMatchesMetadata
// keeps the two in step.
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>
//	$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>[.<token>…]
func ackSeqs(reply string) (delivered, seq uint64, ok bool) {
	var dots [13]int
	n := 0
	for i := 0; i < len(reply); i++ {
		if reply[i] == '.' {
			if n == len(dots) {
				break
			}
			dots[n] = i
			n++
		}
	}
	tokens := n + 1
	if n == len(dots) {
		tokens = len(dots) + 1 // at least that many
	}
	var d int // index of the delivered token
	switch {
	case tokens == 9:
		d = 4
	case tokens >= 11:
		d = 6
	default:
		return 0, 0, false
	}
	if !strings.HasPrefix(reply, "$JS.ACK.") {
		return 0, 0, false
	}
	token := func(i int) string { return reply[dots[i-1]+1 : dots[i]] }
	if delivered, ok = parseUint(token(d)); !ok {
		return 0, 0, false
	}
	if seq, ok = parseUint(token(d + 1)); !ok {
		return 0, 0, false
	}
	return delivered, seq, true
}

// parseUint parses a decimal token of a reply subject.
func parseUint(s string) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// rangesText writes up to most ranges as "2-5,9,12-40" (then "…").
func rangesText(rs []seqGap, most int) string {
	var b strings.Builder
	for i, r := range rs {
		if i == most {
			b.WriteString(",…")
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(r.lo, 10))
		if r.hi != r.lo {
			b.WriteByte('-')
			b.WriteString(strconv.FormatUint(r.hi, 10))
		}
	}
	return b.String()
}
