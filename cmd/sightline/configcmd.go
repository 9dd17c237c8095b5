package main

// The configuration reference (docs/config-reference.md) and each sink's
// sample.yaml are generated from the configuration's types.
//go:generate go test -run ^TestConfigReferenceIsCurrent$ -update-config-reference .

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/httpauth"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the effective configuration, list the keys, or check a file",
		Example: `  sightline --config sightline.yaml config check
  sightline config keys | grep nats
  sightline --set http.listen=127.0.0.1:9090 config show`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:     "show",
		Short:   "Print the effective configuration as YAML (secrets masked)",
		Example: "  sightline config show\n  sightline --config /etc/sightline/sightline.yaml --set graph.enabled=true config show",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			y, err := cfg.YAML()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(y)
			return err
		},
	}, &cobra.Command{
		Use:     "check",
		Short:   "Load and validate the configuration; exit status 1 with every bad key named",
		Example: "  sightline --config /etc/sightline/sightline.yaml config check\n  SIGHTLINE_PROCESSOR_BATCH=0 sightline config check",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			if err := httpauth.Check(cfg.HTTP.Auth); err != nil { // the files the keys name, as run reads them
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
			return nil
		},
	}, &cobra.Command{
		Use:     "keys",
		Short:   "List every key with the environment variable that overrides it",
		Example: "  sightline config keys\n  sightline config keys | grep archive",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tENVIRONMENT")
			for _, k := range config.Default(sinkSections()...).Keys() {
				fmt.Fprintf(tw, "%s\t%s\n", k, config.EnvName(k))
			}
			return tw.Flush()
		},
	})
	return cmd
}
