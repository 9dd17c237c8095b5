package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/config"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the effective configuration, list the keys, or check a file",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration as YAML (secrets masked)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			y, err := cfg.YAML()
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(y)
			return err
		},
	}, &cobra.Command{
		Use:   "check",
		Short: "Load and validate the configuration; exit status 1 with every bad key named",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if _, err := g.config(); err != nil {
				return err
			}
			fmt.Println("configuration is valid")
			return nil
		},
	}, &cobra.Command{
		Use:   "keys",
		Short: "List every key with the environment variable that overrides it",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tENVIRONMENT")
			for _, k := range config.Keys() {
				fmt.Fprintf(tw, "%s\t%s\n", k, config.EnvName(k))
			}
			return tw.Flush()
		},
	})
	return cmd
}
