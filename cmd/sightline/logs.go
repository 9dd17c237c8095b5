package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/searchcli"
	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/sinks/index/searchapi"
)

// newLogsCmd is `sightline logs`.
func newLogsCmd(g *globals) *cobra.Command {
	var (
		services, types, kinds, levels []string
		since, until, cid              string
		limit                          int
		follow, asJSON                 bool
		every                          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "logs [FREE TEXT...]",
		Short: "Search indexed logs and events by service, type, level, time and text",
		Long: `Logs searches the index (log lines by default; --kind to widen) and prints the newest
matches oldest first: time, service, level, type, message and correlation ID. Free text is
matched against the message, the dead-letter reason, type, service and host.

--follow keeps printing new matches as they are indexed (it polls the index every --every;
the index is a few seconds behind the stream at most).
TIME is RFC 3339 or a duration back from now (15m, 2h).`,
		Example: `  sightline logs --service checkout --level error --since 1h
  sightline logs timeout upstream --since 15m
  sightline logs --kind log,dlq --follow
  sightline logs --correlation-id req-42 --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			now := time.Now()
			q := index.Query{CorrelationID: cid, Services: services, Types: types, Kinds: kinds, Levels: levels,
				Text: strings.Join(args, " "), Limit: limit, Newest: true}
			if q.From, err = searchapi.ParseTime(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if q.To, err = searchapi.ParseTime(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			s, closeFn, err := g.searcher(cfg)
			if err != nil {
				return err
			}
			defer closeFn()
			enc := json.NewEncoder(termsafe.JSONWriter(os.Stdout))
			emit := func(d index.Document) error {
				if asJSON {
					return enc.Encode(d)
				}
				return searchcli.PrintDocs(os.Stdout, []index.Document{d})
			}
			if follow {
				if q.From.IsZero() {
					q.From = now.Add(-time.Minute)
				}
				return searchcli.Follow(cmd.Context(), s, q, every, 10*time.Second, emit)
			}
			res, err := s.Search(cmd.Context(), q)
			if err != nil {
				return err
			}
			for _, d := range res.Docs {
				if err := emit(d); err != nil {
					return err
				}
			}
			if !asJSON && res.Total > len(res.Docs) {
				more := ""
				if res.TotalCapped {
					more = " or more"
				}
				fmt.Fprintf(os.Stderr, "(%d of %d%s matches shown; --limit to see more)\n", len(res.Docs), res.Total, more)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&services, "service", nil, "only these services (repeat or comma-separate)")
	f.StringSliceVar(&types, "type", nil, "only these event types (log.api, metric.search_made, dlq.log.api)")
	f.StringSliceVar(&kinds, "kind", []string{"log"}, "kinds: log, metric, snapshot, dlq")
	f.StringSliceVar(&levels, "level", nil, "only these levels (info, warn, error, ...)")
	f.StringVar(&cid, "correlation-id", "", "only events carrying this correlation ID")
	f.StringVar(&since, "since", "", "from this time (RFC 3339 or a duration ago: 15m)")
	f.StringVar(&until, "until", "", "up to this time (exclusive)")
	f.IntVar(&limit, "limit", 100, "most matches to print (newest kept)")
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new matches")
	f.DurationVar(&every, "every", 2*time.Second, "how often --follow polls the index")
	f.BoolVar(&asJSON, "json", false, "one JSON document per line")
	return cmd
}
