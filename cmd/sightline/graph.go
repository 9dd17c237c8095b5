package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

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
	}
	open := func(cmd *cobra.Command) (*graph.Sink, error) {
		cfg, err := g.config()
		if err != nil {
			return nil, err
		}
		return graph.New(cmd.Context(), cfg.Graph.Config, graph.WithLogger(g.logger()))
	}

	var asJSON bool
	status := &cobra.Command{
		Use:   "status [SCOPE...]",
		Short: "List scopes: last complete sync, tag, node/relationship counts, refused or incomplete syncs",
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
				enc := json.NewEncoder(cmd.OutOrStdout())
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

	var opts graph.SweepOptions
	var sweepJSON bool
	sweep := &cobra.Command{
		Use:   "sweep [--dry-run] [--force] [--tag T] SCOPE",
		Short: "Sweep a scope for its newest complete sync (--dry-run prints what would go)",
		Long: `Deletes the nodes and relationships of SCOPE whose lastupdated is older than the newest
complete sync not yet swept (or --tag), in bounded transactions. A sweep that would delete more
than graph.sweep_max_share of the scope is refused unless --force.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open(cmd)
			if err != nil {
				return err
			}
			defer s.Close(cmd.Context())
			rep, err := s.Sweep(cmd.Context(), args[0], opts)
			if err != nil && !errors.Is(err, graph.ErrNothingToSwep) {
				return err
			}
			if sweepJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				_ = enc.Encode(rep)
			} else {
				graph.PrintReport(cmd.OutOrStdout(), rep)
			}
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

	cmd.AddCommand(status, sweep)
	return cmd
}
