package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/hosts"
)

// newSetupCmd is `sightline setup`: what only the operator identity may do
// on a NATS server with the shipped permissions (docs/security-nats.md).
func newSetupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "setup",
		Short: "Create or update the streams and key-value buckets with an operator NATS identity, then exit",
		Long: `Setup creates the three streams and the key-value buckets (hosts store, archive leases) of
this configuration, or changes them to match it (limits, replicas), and exits. Run it with the
operator identity (nats.username/nats.password, nats.nkey_file or nats.creds_file of the operator
role): the worker identity sightline run holds may create what is missing but never change or
empty a stream, so a changed streams.* or hosts.* configuration is applied here.`,
		Example: `  SIGHTLINE_NATS_USERNAME=operator SIGHTLINE_NATS_PASSWORD=… sightline setup --config /etc/sightline/sightline.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			o, err := cfg.BusOptions()
			if err != nil {
				return err
			}
			if len(o.URLs) == 0 {
				return fmt.Errorf("setup: nats.urls is empty: sightline run sets up its embedded server itself")
			}
			o.Logger = g.logger()
			b, err := bus.Connect(cmd.Context(), o)
			if err != nil {
				return err
			}
			defer b.Close()
			if err := b.EnsureStreams(cmd.Context(), cfg.StreamsConfig()); err != nil {
				return err
			}
			done := []string{bus.StreamRaw, bus.StreamEvents, bus.StreamDLQ}
			if hc, err := sinks.SectionOf[hosts.Config](cfg, "hosts"); err == nil && hc.IsEnabled() {
				if _, err := hosts.Open(cmd.Context(), b, *hc); err != nil {
					return err
				}
				done = append(done, "KV_"+hc.Bucket)
			}
			if ac, err := sinks.SectionOf[archive.Config](cfg, "archive"); err == nil && ac.IsEnabled() &&
				strings.HasPrefix(ac.URL, "s3://") && ac.LeaseTTL > 0 {
				if _, err := kv.OpenLeases(cmd.Context(), b, kv.LeaseConfig{Bucket: archive.LeaseBucket, TTL: ac.LeaseTTL}); err != nil {
					return err
				}
				done = append(done, "KV_"+archive.LeaseBucket)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "set up on %s: %s\n", b.ClientURL(), strings.Join(done, ", "))
			return nil
		},
	}
}
