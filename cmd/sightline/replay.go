package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/bus"
	busread "github.com/sightline/sightline/internal/bus/read"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/replay"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/archive"
)

// newReplayCmd is `sightline replay`.
func newReplayCmd(g *globals) *cobra.Command {
	var (
		from, to, toSink, fromArchive string
		subjects                      []string
		dryRun                        bool
		rate                          float64
		batch                         int
	)
	cmd := &cobra.Command{
		Use:   "replay --from TIME|SEQ [--to TIME|SEQ] --to-sink SINK|discard | --from-archive URL [--to-sink stream]",
		Short: "Re-feed events from the stream (or the archive) into a sink",
		Long: `Replay reads SIGHTLINE_EVENTS in order with an ephemeral consumer (no durable state is
touched) and writes every batch to the chosen sink; sinks are idempotent, so a replay can be
repeated safely. With --from-archive it reads archived objects instead (s3://bucket/prefix or a
directory) and, by default, re-publishes the events into the stream with their event id as
Nats-Msg-Id, so the running sinks pick them up and nothing is duplicated.

TIME is RFC 3339 (2026-11-22T05:00:00Z), a date (2026-11-22) or a duration ago (2h, 7d);
SEQ is a stream sequence. A progress line (rate, ETA) is drawn on a terminal, and a summary
is printed at the end; an interrupted replay says the last sequence done to resume from.`,
		Example: `  sightline replay --from 2h --to-sink index
  sightline replay --from 120000 --to 130000 --subject 'sightline.events.snapshot.>' --to-sink graph
  sightline replay --from 2026-11-01 --to-sink discard --dry-run
  sightline replay --from-archive s3://sightline/archive --from 2026-10-01 --to 2026-10-02 --rate 20000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			now := time.Now()
			start, err := replay.ParsePoint(from, now)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			stop, err := replay.ParsePoint(to, now)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if toSink == "" {
				toSink = "stream"
				if fromArchive == "" {
					return fmt.Errorf("--to-sink is required (%s or discard)", strings.Join(sinkNames(), ", "))
				}
			}
			if fromArchive == "" && start.IsZero() {
				return errors.New("--from is required when replaying the stream (a sequence, a time, or 7d for a week)")
			}
			if fromArchive == "" && toSink == "stream" {
				return errors.New("--to-sink stream re-publishes into the stream, only with --from-archive")
			}
			if fromArchive != "" && (start.Seq > 0 || stop.Seq > 0) {
				return errors.New("--from-archive selects by event time: give --from/--to as times, not sequences")
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			log := g.logger()

			// The source.
			var src replay.Source
			if fromArchive != "" {
				ac, err := sinks.SectionOf[archive.Config](cfg, "archive")
				if err != nil {
					return err
				}
				acfg := *ac
				acfg.URL = fromArchive
				bucket, err := archive.OpenBucket(ctx, acfg)
				if err != nil {
					return err
				}
				defer bucket.Close()
				var subject string
				if len(subjects) > 1 {
					return errors.New("--from-archive takes one --subject filter")
				} else if len(subjects) == 1 {
					subject = subjects[0]
				}
				as, err := replay.NewArchiveSource(ctx, archive.NewReader(bucket),
					archive.Filter{From: start.Time, To: stop.Time}, subject, batch)
				if err != nil {
					return err
				}
				defer as.Stop()
				fmt.Fprintf(cmd.ErrOrStderr(), "%d archived objects, up to %d events\n", len(as.Objects()), as.Total())
				src = as
			}
			var b *bus.Bus
			if fromArchive == "" || (toSink == "stream" && !dryRun) {
				if b, err = g.bus(ctx); err != nil {
					return err
				}
			}
			if fromArchive == "" {
				rs, err := busread.Replay(ctx, b, busread.ReplayOptions{
					Filters: subjects, FromSeq: start.Seq, FromTime: start.Time,
					ToSeq: stop.Seq, ToTime: stop.Time, BatchSize: batch,
				})
				if errors.Is(err, busread.ErrEmptyRange) {
					fmt.Fprintln(cmd.OutOrStdout(), "nothing to replay: the range is empty")
					return nil
				}
				if err != nil {
					return err
				}
				defer rs.Stop()
				src = rs
			}

			// The sink (a dry run opens none: it only counts).
			var sink stage.Sink
			switch {
			case toSink == "discard" || dryRun:
				if _, ok := sinkSpec(toSink); !ok && toSink != "discard" && toSink != "stream" {
					return fmt.Errorf("--to-sink %q: want %s, stream or discard", toSink, strings.Join(sinkNames(), ", "))
				}
				sink = &replay.Discard{}
			case toSink == "stream":
				sink = replay.NewStreamSink(b)
			default:
				spec, ok := sinkSpec(toSink)
				if !ok {
					return fmt.Errorf("--to-sink %q: want %s, stream or discard", toSink, strings.Join(sinkNames(), ", "))
				}
				o, err := openWithin(ctx, openTimeout, func(ctx context.Context) (*sinks.Opened, error) {
					return spec.Open(ctx, cfg.Section(toSink), sinks.Env{Log: log, Bus: func(ctx context.Context) (*bus.Bus, error) { return g.bus(ctx) }})
				})
				if held := errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK); held || errors.Is(err, errOpenTimeout) {
					what := "is held by another process"
					if !held {
						what = fmt.Sprintf("did not open within %s", openTimeout)
					}
					return fmt.Errorf("--to-sink %s: the sink's store %s (%w): a running `sightline run` holds the embedded index; "+
						"stop it, or let it do the work with --from-archive ... --to-sink stream; `sightline trace --api %s` reads through it",
						toSink, what, err, apiHint(g, cfg))
				}
				if err != nil {
					return err
				}
				sink = o.Sink
			}
			defer sink.Close(ctx)

			sum, err := replay.Run(ctx, src, sink, replay.Options{
				Rate: rate, DryRun: dryRun, Progress: cmd.ErrOrStderr(), Interactive: isTerminal(os.Stderr),
				Logger: log,
			})
			fmt.Fprintln(cmd.OutOrStdout(), sum.String())
			if ss, ok := sink.(*replay.StreamSink); ok {
				fmt.Fprintf(cmd.OutOrStdout(), "stream stored %d, dropped %d already held (same id)\n", ss.Published(), ss.Duplicates())
			}
			if err != nil && sum.LastSeq > 0 {
				return fmt.Errorf("%w (resume with --from %d)", err, sum.LastSeq+1)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "start: stream sequence, RFC 3339 time, date, or duration ago (2h, 7d)")
	f.StringVar(&to, "to", "", "stop after: sequence or time (default: the end of the stream when the replay starts)")
	f.StringArrayVar(&subjects, "subject", nil, "subject filter, e.g. 'sightline.events.metric.>' (repeatable)")
	f.StringVar(&toSink, "to-sink", "", "a sink ("+strings.Join(sinkNames(), ", ")+"), discard, or stream (only with --from-archive, its default)")
	f.StringVar(&fromArchive, "from-archive", "", "read archived objects instead: s3://bucket/prefix or a directory")
	f.BoolVar(&dryRun, "dry-run", false, "count what would be replayed, write nothing")
	f.Float64Var(&rate, "rate", 0, "limit to N events per second (0: unlimited)")
	f.IntVar(&batch, "batch", 1000, "events per sink write")
	return cmd
}

// openTimeout bounds how long replay waits for a sink to open: the
// embedded index waits for its file lock while `sightline run` holds it.
var openTimeout = 10 * time.Second

var errOpenTimeout = errors.New("timed out")

// openWithin runs open and gives up after d (the open goes on in the
// background and is closed if it ever finishes).
func openWithin(ctx context.Context, d time.Duration, open func(context.Context) (*sinks.Opened, error)) (*sinks.Opened, error) {
	type res struct {
		o   *sinks.Opened
		err error
	}
	ch := make(chan res, 1)
	go func() {
		o, err := open(ctx)
		ch <- res{o, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.o, r.err
	case <-t.C:
	case <-ctx.Done():
	}
	go func() { // close it if it opens after all
		if r := <-ch; r.err == nil && r.o != nil {
			_ = r.o.Sink.Close(context.Background())
		}
	}()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, errOpenTimeout
}

// apiHint is the HTTP address of the running `sightline run`: --api, or
// the configured http.listen.
func apiHint(g *globals, cfg *config.Config) string {
	if g.api.url != "" {
		return g.api.url
	}
	if cfg.HTTP.Listen == "" {
		return "http://127.0.0.1:8080"
	}
	return "http://" + cfg.HTTP.Listen
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && !strings.EqualFold(os.Getenv("TERM"), "dumb")
}
