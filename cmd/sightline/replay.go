package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/replay"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/graph"
	"github.com/sightline/sightline/sinks/index"
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
		Use:   "replay --from TIME|SEQ [--to TIME|SEQ] --to-sink graph|index|archive|discard | --from-archive URL [--to-sink stream]",
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
					return errors.New("--to-sink is required (graph, index, archive or discard)")
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
				acfg := cfg.Archive.Config
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
				rs, err := b.Replay(ctx, bus.ReplayOptions{
					Filters: subjects, FromSeq: start.Seq, FromTime: start.Time,
					ToSeq: stop.Seq, ToTime: stop.Time, BatchSize: batch,
				})
				if errors.Is(err, bus.ErrEmptyRange) {
					fmt.Fprintln(cmd.OutOrStdout(), "nothing to replay: the range is empty")
					return nil
				}
				if err != nil {
					return err
				}
				defer rs.Stop()
				src = rs
			}

			// The sink.
			var sink stage.Sink
			switch toSink {
			case "discard":
				sink = &replay.Discard{}
			case "stream":
				if !dryRun {
					sink = replay.NewStreamSink(b)
				} else {
					sink = &replay.Discard{}
				}
			case "archive":
				sink, err = archive.New(ctx, cfg.Archive.Config, archive.WithLogger(log))
			case "graph":
				sink, err = graph.New(ctx, cfg.Graph.Config, graph.WithLogger(log))
			case "index":
				sink, err = index.Open(cfg.Index.Config, index.WithLogger(log))
			default:
				return fmt.Errorf("--to-sink %q: want graph, index, archive, stream or discard", toSink)
			}
			if err != nil {
				return err
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
	f.StringVar(&toSink, "to-sink", "", "graph, index, archive, discard, or stream (only with --from-archive, its default)")
	f.StringVar(&fromArchive, "from-archive", "", "read archived objects instead: s3://bucket/prefix or a directory")
	f.BoolVar(&dryRun, "dry-run", false, "count what would be replayed, write nothing")
	f.Float64Var(&rate, "rate", 0, "limit to N events per second (0: unlimited)")
	f.IntVar(&batch, "batch", 1000, "events per sink write")
	return cmd
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && !strings.EqualFold(os.Getenv("TERM"), "dumb")
}
