// Package replay feeds a range of events into a sink: from SIGHTLINE_EVENTS
// (an ephemeral ordered consumer, through the bus) or from the archive, into
// the graph, index or archive sink, back into the stream, or nowhere (to
// count). Idempotent sinks and Nats-Msg-Id dedup make replays safe to repeat.
// See README.md.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sightline/sightline/internal/retry"
	"github.com/sightline/sightline/internal/stage"
)

// Source yields batches of messages in order; io.EOF after the last one.
// *read.ReplaySource implements it (stream), as does *ArchiveSource.
type Source interface {
	Next(ctx context.Context) ([]*stage.Message, error)
}

// Totaler is implemented by sources that know how many messages (at most)
// they will yield, for the progress bar's percentage and ETA.
type Totaler interface {
	Total() uint64
}

// ErrGaveUp is returned when a batch kept failing with transient errors.
var ErrGaveUp = errors.New("replay: sink kept failing")

// Options tunes a replay.
type Options struct {
	// Rate limits the replay to this many events per second (0: unlimited).
	Rate float64
	// DryRun reads and counts the range without writing anything.
	DryRun bool
	// Progress receives the progress display (nil: none).
	Progress io.Writer
	// Interactive redraws one progress line in place (a terminal); otherwise
	// a progress line is written every ProgressEvery.
	Interactive   bool
	ProgressEvery time.Duration
	// MaxAttempts is how many times a batch is written before giving up on
	// transient errors (default 8), with Backoff between attempts.
	MaxAttempts int
	Backoff     func(attempt int) time.Duration
	Logger      *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.Backoff == nil {
		o.Backoff = retry.Backoff{Initial: 250 * time.Millisecond, Max: 30 * time.Second}.Delay
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 10 * time.Second
	}
}

// Summary is what a replay did.
type Summary struct {
	Read     uint64 // messages read from the source
	Written  uint64 // messages the sink accepted (0 on a dry run)
	Rejected uint64 // messages the sink rejected permanently (bad data)
	Retries  int    // batch writes retried after a transient failure
	Batches  int
	Bytes    uint64 // payload bytes read
	// FirstSeq and LastSeq are the stream sequences read (0 from the archive).
	FirstSeq, LastSeq uint64
	// FirstTime and LastTime are the stream timestamps read (zero from the archive).
	FirstTime, LastTime time.Time
	Elapsed             time.Duration
	DryRun              bool
}

// Rate is messages read per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Read) / s.Elapsed.Seconds()
}

func (s Summary) String() string {
	verb := "replayed"
	if s.DryRun {
		verb = "would replay"
	}
	out := fmt.Sprintf("%s %d events (%s) in %s, %.0f events/s", verb, s.Read, humanBytes(s.Bytes),
		s.Elapsed.Round(time.Millisecond), s.Rate())
	if !s.DryRun {
		out += fmt.Sprintf("; written %d, rejected %d, retries %d", s.Written, s.Rejected, s.Retries)
	}
	if s.LastSeq > 0 {
		out += fmt.Sprintf("; stream sequences %d..%d", s.FirstSeq, s.LastSeq)
	}
	if !s.FirstTime.IsZero() {
		out += fmt.Sprintf(" (%s .. %s)", s.FirstTime.UTC().Format(time.RFC3339), s.LastTime.UTC().Format(time.RFC3339))
	}
	return out
}

// Run reads src to its end and writes every batch to sink (unless DryRun).
// Transient sink failures are retried with backoff for the failed messages
// only; permanent ones are counted and logged (they are bad data, as on the
// first pass). On error the summary says how far the replay got, so it can
// be resumed with --from <LastSeq+1>.
func Run(ctx context.Context, src Source, sink stage.Sink, o Options) (Summary, error) {
	o.defaults()
	var sum Summary
	sum.DryRun = o.DryRun
	start := time.Now()
	var total uint64
	if t, ok := src.(Totaler); ok {
		total = t.Total()
	}
	prog := newProgress(o.Progress, o.Interactive, o.ProgressEvery, total, start)
	defer func() { sum.Elapsed = time.Since(start) }()
	for {
		batch, err := src.Next(ctx)
		if len(batch) > 0 {
			sum.Batches++
			for _, m := range batch {
				sum.Read++
				sum.Bytes += uint64(len(m.Data))
				if s := m.Meta.Sequence; s > 0 {
					if sum.FirstSeq == 0 {
						sum.FirstSeq = s
					}
					sum.LastSeq = s
				}
				if t := m.Meta.Timestamp; !t.IsZero() {
					if sum.FirstTime.IsZero() {
						sum.FirstTime = t
					}
					sum.LastTime = t
				}
			}
			if !o.DryRun {
				if werr := write(ctx, sink, batch, &o, &sum); werr != nil {
					sum.Elapsed = time.Since(start)
					prog.finish(sum)
					return sum, werr
				}
			}
			pace(ctx, o.Rate, sum.Read, start)
			prog.update(sum.Read)
		}
		if errors.Is(err, io.EOF) {
			sum.Elapsed = time.Since(start)
			prog.finish(sum)
			return sum, nil
		}
		if err != nil {
			sum.Elapsed = time.Since(start)
			prog.finish(sum)
			return sum, fmt.Errorf("replay: read after %d events (last sequence %d): %w", sum.Read, sum.LastSeq, err)
		}
	}
}

// write writes one batch, retrying what failed transiently.
func write(ctx context.Context, sink stage.Sink, batch []*stage.Message, o *Options, sum *Summary) error {
	pending := batch
	for attempt := 0; ; attempt++ {
		err := sink.Write(ctx, pending)
		if err == nil {
			sum.Written += uint64(len(pending))
			return nil
		}
		out := stage.Outcomes(err, len(pending))
		var again []*stage.Message
		if out.Rejected() {
			sum.Rejected += uint64(len(pending))
			o.Logger.WarnContext(ctx, "replay: sink rejected batch", "messages", len(pending), "error", err)
		} else {
			for i, m := range pending {
				switch ferr := out.Errs[i]; {
				case ferr == nil:
					sum.Written++
				case stage.IsPermanent(ferr):
					sum.Rejected++
					o.Logger.WarnContext(ctx, "replay: sink rejected event", "subject", m.Subject, "id", m.ID,
						"sequence", m.Meta.Sequence, "correlation_id", m.Header.Get(stage.HeaderCorrelationID), "error", ferr)
				default:
					again = append(again, m)
				}
			}
		}
		if len(again) == 0 {
			return nil
		}
		if attempt+1 >= o.MaxAttempts {
			return fmt.Errorf("%w: %d messages after %d attempts (resume from sequence %d): %w",
				ErrGaveUp, len(again), o.MaxAttempts, again[0].Meta.Sequence, err)
		}
		sum.Retries++
		o.Logger.WarnContext(ctx, "replay: sink write failed, retrying", "messages", len(again), "attempt", attempt+1, "error", err)
		if err := retry.Sleep(ctx, o.Backoff(attempt)); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		pending = again
	}
}

// pace sleeps until done events fit the rate since start.
func pace(ctx context.Context, rate float64, done uint64, start time.Time) {
	if rate <= 0 {
		return
	}
	due := start.Add(time.Duration(float64(done) / rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
}
