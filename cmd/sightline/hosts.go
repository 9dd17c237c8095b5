package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/hosts"
)

// newHostsCmd is `sightline hosts`, the operator's commands on the host
// store.
func newHostsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hosts",
		Short: "Operate the host store that `sightline search` reads",
		Example: `  sightline hosts reset web-09 --dry-run
  sightline hosts reset web-09`,
	}
	var dryRun, asJSON bool
	reset := &cobra.Command{
		Use:   "reset HOST",
		Short: "Release a host frozen by a sync tag in the future",
		Long: `The host store skips every part of a host's sync older than the newest it applied. A part
tagged far in the future (stored before the store refused such tags, or while the server's clock
was ahead) therefore freezes the host: its real syncs are skipped and search keeps showing the
old content. Reset deletes the objects stored with a tag beyond the server's clock plus the
tag skew, and lowers the host's tags to the newest that remains, so the next sync is applied.
A host without such a tag is left as it is. The reset is logged.`,
		Example: `  sightline hosts reset web-09 --dry-run
  sightline hosts reset web-09 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			hc, err := g.hostConfig()
			if err != nil {
				return err
			}
			kv, err := g.hostStore(ctx, hc)
			if err != nil {
				return err
			}
			rep, err := hosts.Reset(ctx, kv, args[0], time.Now(), dryRun)
			if err != nil {
				return err
			}
			if !dryRun && rep.Frozen() {
				g.logger().Warn("hosts: host reset by an operator", "host", rep.Host, "tag", rep.Tag, "new_tag", rep.NewTag,
					"complete_tag", rep.CompleteTag, "new_complete_tag", rep.NewCompleteTag, "objects_deleted", len(rep.Objects))
			}
			if asJSON {
				return json.NewEncoder(termsafe.JSONWriter(os.Stdout)).Encode(rep)
			}
			h := termsafe.String(rep.Host)
			if !rep.Frozen() {
				fmt.Printf("%s is not frozen: its newest tag %d is within the server's clock plus the skew (%d); nothing to reset\n", h, rep.Tag, rep.Limit)
				return nil
			}
			verb := "reset"
			if dryRun {
				verb = "would reset (dry run)"
			}
			fmt.Printf("%s %s: tag %d → %d, complete tag %d → %d, %d objects with a tag in the future deleted\n",
				verb, h, rep.Tag, rep.NewTag, rep.CompleteTag, rep.NewCompleteTag, len(rep.Objects))
			for _, o := range rep.Objects {
				fmt.Printf("  %s\n", termsafe.String(o))
			}
			return nil
		},
	}
	reset.Flags().BoolVar(&dryRun, "dry-run", false, "say what would change, change nothing")
	reset.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	cmd.AddCommand(reset)
	return cmd
}

// hostConfig is the configuration's hosts section.
func (g *globals) hostConfig() (hosts.Config, error) {
	cfg, err := g.config()
	if err != nil {
		return hosts.Config{}, err
	}
	hc, err := sinks.SectionOf[hosts.Config](cfg, "hosts")
	if err != nil {
		return hosts.Config{}, err
	}
	return *hc, nil
}

// hostStore opens the host store hc describes through the bus.
func (g *globals) hostStore(ctx context.Context, hc hosts.Config) (*kv.State, error) {
	b, err := g.bus(ctx)
	if err != nil {
		return nil, err
	}
	return hosts.Open(ctx, b, hc)
}
