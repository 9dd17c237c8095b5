package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/query/trace"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/index"
)

// newTraceCmd is `sightline trace CORRELATION_ID`.
func newTraceCmd(g *globals) *cobra.Command {
	var (
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "trace CORRELATION_ID",
		Short: "Show everything that carried one correlation ID, in time order",
		Long: `Trace searches the index (OpenSearch/Elasticsearch when index.urls is set, else the embedded
index) for every metric event, log line, snapshot and dead letter carrying the correlation ID,
and prints them oldest first with the service, the type, the offset from the first event and
the message, then where else the ID lives (stream sequences).

The embedded index is where ` + "`sightline run`" + ` keeps it: .sightline/index under the directory it
runs in (index.embedded_path). While it runs, trace reads through its API at http.listen by
itself; --api reaches any other. From another directory, point at the index with
--set index.embedded_path=DIR/.sightline/index, or use --api.
Exit status 1 when nothing carries the ID.`,
		Example: `  sightline trace 4bf92f3577b34da6a3ce929d0e0e4736
  sightline trace req-42 --json | jq '.events[] | {offset_ms, service, type}'
  sightline trace req-42 --api http://127.0.0.1:8080
  sightline trace req-42 --api https://sightline:8080 --token-file ~/.sightline/read.token --api-ca ca.pem`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			s, closeFn, err := g.searcher(cfg)
			if err != nil {
				return trace.OpenError(g.indexConfig(cfg), err)
			}
			defer closeFn()
			return trace.Show(cmd.Context(), s, args[0], asJSON, os.Stdout)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the timeline as JSON")
	return cmd
}

// indexConfig is the configuration's index section (the defaults when it
// does not read: g.searcher has said why).
func (g *globals) indexConfig(cfg *config.Config) index.Config {
	if ic, err := sinks.SectionOf[index.Config](cfg, "index"); err == nil {
		return *ic
	}
	return index.DefaultConfig()
}
