package main

import (
	"errors"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/query/trace"
)

// newLogsCmd is `sightline logs`.
func newLogsCmd(g *globals) *cobra.Command {
	var r trace.LogsRequest
	cmd := &cobra.Command{
		Use:   "logs [FREE TEXT...]",
		Short: "Search indexed logs and events by service, type, level, time and text",
		Long: `Logs searches the index (log lines by default; --kind to widen) and prints the newest
matches oldest first: time, service, level, type, message and correlation ID. The words are
a query of the search language (docs/search.md): words of a log's message or a
dead letter's reason, field:value (host, site, service, level, kind, type,
data.<path>, ...), AND, OR, NOT and parentheses.

--follow keeps printing new matches as they are indexed (it polls the index every --every;
the index is a few seconds behind the stream at most).
Exit status 1, with a notice on stderr, when nothing matched.
TIME is RFC 3339 or a duration back from now (15m, 2h).`,
		Example: `  sightline logs --service checkout --level error --since 1h
  sightline logs timeout upstream --since 15m
  sightline logs 'level:error AND NOT host:web-1' --since 1h
  sightline logs --kind log,dlq --follow
  sightline logs --correlation-id req-42 --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			r.Text = args
			s, closeFn, err := g.searcher(cfg)
			if err != nil {
				return trace.OpenError(g.indexConfig(cfg), err)
			}
			defer closeFn()
			err = trace.Logs(cmd.Context(), s, r, os.Stdout, os.Stderr)
			if errors.Is(err, trace.ErrNothingMatched) {
				return errNothingMatched
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&r.Query.Services, "service", nil, "only these services (repeat or comma-separate)")
	f.StringSliceVar(&r.Query.Types, "type", nil, "only these event types (log.api, metric.search_made, dlq.log.api)")
	f.StringSliceVar(&r.Query.Kinds, "kind", []string{"log"}, "kinds: log, metric, snapshot, dlq")
	f.StringSliceVar(&r.Query.Levels, "level", nil, "only these levels (info, warn, error, ...)")
	f.StringVar(&r.Query.CorrelationID, "correlation-id", "", "only events carrying this correlation ID")
	f.StringVar(&r.Since, "since", "", "from this time (RFC 3339 or a duration ago: 15m)")
	f.StringVar(&r.Until, "until", "", "up to this time (exclusive)")
	f.IntVar(&r.Query.Limit, "limit", 100, "most matches to print (newest kept)")
	f.BoolVarP(&r.Follow, "follow", "f", false, "keep printing new matches")
	f.DurationVar(&r.Every, "every", 2*time.Second, "how often --follow polls the index")
	f.BoolVar(&r.JSON, "json", false, "one JSON document per line")
	return cmd
}
