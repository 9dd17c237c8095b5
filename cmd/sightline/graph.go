package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/graph"
)

// newGraphCmd is `sightline graph status|sweep`.
func newGraphCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Inspect and sweep the Neo4j graph the graph sink keeps current",
		Long: `The graph sink writes syncs (snapshot events with nodes and relationships) to Neo4j and
sweeps what a complete, newest sync did not touch. These commands show each scope's syncs and
run or preview a sweep by hand (for example one the share guard refused).`,
		Example: `  sightline graph status
  sightline graph sweep --dry-run cloudmap:prod
  sightline graph scope reset --dry-run cloudmap:prod`,
	}
	open := func(cmd *cobra.Command, opts ...graph.Option) (*graph.Sink, error) {
		cfg, err := g.config()
		if err != nil {
			return nil, err
		}
		gc, err := sinks.SectionOf[graph.Config](cfg, "graph")
		if err != nil {
			return nil, err
		}
		return graph.New(cmd.Context(), *gc, append([]graph.Option{graph.WithLogger(g.logger())}, opts...)...)
	}

	var asJSON bool
	status := &cobra.Command{
		Use:   "status [SCOPE...]",
		Short: "List scopes: last complete sync, tag, node/relationship counts, refused or incomplete syncs",
		Example: `  sightline graph status
  sightline graph status cloudmap:prod host:web-01 --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open(cmd)
			if err != nil {
				return err
			}
			defer s.Close(cmd.Context())
			list, err := s.Status(cmd.Context(), args...)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(termsafe.JSONWriter(cmd.OutOrStdout()))
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			if len(list) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no scopes yet")
				return nil
			}
			return graph.PrintStatus(cmd.OutOrStdout(), list)
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	// operator names who runs a destructive command, for the audit line:
	// the OS user and the Neo4j user whose credentials the command uses.
	operator := func() string {
		who := os.Getenv("USER")
		if u, err := user.Current(); err == nil && u.Username != "" {
			who = u.Username
		}
		if who == "" {
			who = "unknown"
		}
		if cfg, err := g.config(); err == nil {
			if gc, err := sinks.SectionOf[graph.Config](cfg, "graph"); err == nil {
				who += " (neo4j user " + gc.Username + ")"
			}
		}
		return who
	}

	var opts graph.SweepOptions
	var sweepJSON bool
	sweep := &cobra.Command{
		Use:   "sweep [--dry-run] [--force] [--tag T] SCOPE",
		Short: "Sweep a scope for its newest complete sync (--dry-run prints what would go)",
		Long: `Deletes the nodes and relationships of SCOPE whose lastupdated is older than the newest
complete sync not yet swept (or --tag), in bounded transactions; items another scope still
claims are released, not deleted. A sweep that would delete more than graph.sweep_max_share of
the scope is refused unless --force. Forcing is an operator's decision (a producer's message
cannot force): it connects to Neo4j with the operator's credentials (graph.username,
graph.password_file) and logs an audit line (who, what, how many deleted).`,
		Example: `  sightline graph sweep --dry-run cloudmap:prod
  sightline graph sweep --force --set graph.username=ops --set graph.password_file=/run/secrets/neo4j cloudmap:prod`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Operator = operator()
			var report []graph.Option
			if !opts.DryRun {
				report = append(report, graph.WithSweepReporter(func(ctx context.Context, rep graph.SweepReport) {
					publishDecision(ctx, g, rep)
				}))
			}
			s, err := open(cmd, report...)
			if err != nil {
				return err
			}
			defer s.Close(cmd.Context())
			rep, err := s.Sweep(cmd.Context(), args[0], opts)
			if err != nil && !errors.Is(err, graph.ErrNothingToSwep) {
				return err
			}
			printOut(cmd, sweepJSON, rep, func(w io.Writer) { graph.PrintReport(w, rep) })
			if rep.Result == "refused" {
				fmt.Fprintln(os.Stderr, "refused: rerun with --force to sweep anyway, or --dry-run to see what would go")
				return fmt.Errorf("sweep of %s refused by the share guard", args[0])
			}
			return nil
		},
	}
	sweep.Flags().BoolVar(&opts.DryRun, "dry-run", false, "count and list what would be deleted; change nothing")
	sweep.Flags().BoolVar(&opts.Force, "force", false, "sweep even over graph.sweep_max_share")
	sweep.Flags().Int64Var(&opts.Tag, "tag", 0, "sweep for this sync tag (default: newest complete sync not yet swept)")
	sweep.Flags().BoolVar(&sweepJSON, "json", false, "print JSON")

	var resetDry, resetYes, resetJSON bool
	reset := &cobra.Command{
		Use:   "reset [--dry-run] [--yes] SCOPE",
		Short: "Recover a scope frozen by a sync tagged in the future (run --dry-run first)",
		Long: `A sync whose tag lies in the future (beyond graph.max_tag_skew, e.g. 9007199254740991) freezes
its scope: later syncs have lower tags, so they can neither update nor sweep it. reset removes
the future syncs' records, sets the scope's last completed tag back to its newest swept sync in
range, and lowers the scope's future tags on nodes and relationships to that tag; the next real
sync then updates what it carries and sweeps the rest (under the share guard).

--dry-run prints what it would do and changes nothing; without --yes the command prints the
same plan and stops. It is an operator action: it uses the operator's Neo4j credentials and
logs an audit line.`,
		Example: `  sightline graph scope reset --dry-run cloudmap:prod
  sightline graph scope reset --yes cloudmap:prod`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open(cmd)
			if err != nil {
				return err
			}
			defer s.Close(cmd.Context())
			ro := graph.ResetOptions{DryRun: resetDry || !resetYes, Operator: operator()}
			rep, err := s.ResetScope(cmd.Context(), args[0], ro)
			if err != nil {
				return err
			}
			printOut(cmd, resetJSON, rep, func(w io.Writer) { graph.PrintReset(w, rep) })
			if !resetDry && !resetYes {
				fmt.Fprintln(os.Stderr, "nothing changed: rerun with --yes to apply this plan")
			}
			return nil
		},
	}
	reset.Flags().BoolVar(&resetDry, "dry-run", false, "print what would change; change nothing")
	reset.Flags().BoolVar(&resetYes, "yes", false, "apply the plan")
	reset.Flags().BoolVar(&resetJSON, "json", false, "print JSON")
	scope := &cobra.Command{Use: "scope", Short: "Operator actions on one scope (reset)",
		Example: "  sightline graph scope reset --dry-run cloudmap:prod\n  sightline graph scope reset --yes cloudmap:prod"}
	scope.AddCommand(reset)

	cmd.AddCommand(status, sweep, scope)
	return cmd
}

// printOut writes v as indented JSON, or with text.
func printOut(cmd *cobra.Command, asJSON bool, v any, text func(io.Writer)) {
	if asJSON {
		enc := json.NewEncoder(termsafe.JSONWriter(cmd.OutOrStdout()))
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
		return
	}
	text(cmd.OutOrStdout())
}

// publishDecision puts an operator's sweep decision on the events stream,
// like `sightline run` does for the sink's own (indexed, archived,
// traceable); without a reachable NATS it says so on stderr (the audit
// line still records the decision).
func publishDecision(ctx context.Context, g *globals, rep graph.SweepReport) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := g.bus(ctx)
	if err == nil {
		_, err = b.Publish(ctx, graph.SweepEvent(rep, time.Now()))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "note: the sweep decision was not published as an event (the audit line records it): "+
			termsafe.String(err.Error()))
	}
}
