package main

import (
	"encoding/json"
	"os"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/producers/host"
)

// newCollectCmd is `sightline collect host`.
func newCollectCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Collect snapshots of this machine and publish them",
		Example: `  sightline collect host --collector-config /etc/sightline/collector.yaml --dry-run
  sightline collect host -f collector.yaml --full`,
	}
	var (
		file, hostname, state string
		dryRun, full, asJSON  bool
	)
	hostCmd := &cobra.Command{
		Use:   "host --collector-config FILE",
		Short: "Snapshot this host's files, command outputs and facts as one sync of scope host:<name>",
		Long: `Collect reads the files and globs, runs the commands (each with a timeout) and builds the
facts document listed in the collector config, then publishes them as one sync of scope
host:<name> on sightline.raw.snapshot.host.<name> (parts under max_part_bytes, the last one final
with the item count). A collector identity minted with ` + "`sightline creds collector --host NAME`" + `
may publish there and nowhere else. Each object carries its content, md5, stat, line/word/byte counts, collection
time and exit status; a failed command or unreadable file is published with its error.

Objects whose md5 is the one sent last time (state_file) go as cheap "still the same" records
without content; full_every (default 24h) or --full resends everything. Run it from cron or a
systemd timer every few minutes. --dry-run prints what would be sent and publishes nothing.

The NATS connection comes from the Sightline configuration (--config, nats.urls, nats.nkey_file).

Collector config (YAML):
  host: web-01                     # default: the hostname
  labels: {site: lva1, cluster: c3, role: web, env: prod}
  files: [/etc/passwd, "/etc/sysctl.d/*.conf"]
  commands:
    - {name: sysctl-a, run: [sysctl, -a], timeout: 30s}
    - {name: rpm-qa, shell: "rpm -qa | sort"}
  facts: true
  state_file: /var/lib/sightline/host-state.json`,
		Example: `  sightline collect host --collector-config /etc/sightline/collector.yaml
  sightline collect host --collector-config collector.yaml --dry-run
  sightline collect host --collector-config collector.yaml --full --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg := host.DefaultConfig()
			if file != "" {
				var err error
				if cfg, err = host.LoadConfig(file); err != nil {
					return err
				}
			}
			if hostname != "" {
				cfg.Host = hostname
			}
			if state != "" {
				cfg.StateFile = state
			}
			c, err := host.NewCollector(cfg)
			if err != nil {
				return err
			}
			pub := stage.DiscardPublisher
			if !dryRun {
				// Replies on the host's own inbox: the one a least-privilege
				// collector identity may subscribe to (sightline creds).
				b, err := g.bus(ctx, func(o *bus.Options) {
					if o.InboxPrefix == "" {
						o.InboxPrefix = host.InboxPrefix(c.Host())
					}
				})
				if err != nil {
					return err
				}
				pub = b
			}
			rep, err := host.Run(ctx, c, pub, host.RunOptions{DryRun: dryRun, ForceFull: full})
			if rep != nil {
				if asJSON {
					enc := json.NewEncoder(termsafe.JSONWriter(os.Stdout))
					enc.SetIndent("", "  ")
					if eerr := enc.Encode(rep); eerr != nil {
						return eerr
					}
				} else if perr := rep.Print(os.Stdout); perr != nil {
					return perr
				}
			}
			return err
		},
	}
	f := hostCmd.Flags()
	f.StringVarP(&file, "collector-config", "f", os.Getenv("SIGHTLINE_COLLECTOR_CONFIG"), "collector config YAML (files, commands, labels, state file)")
	f.StringVar(&hostname, "host", "", "host name (overrides host: in the collector config)")
	f.StringVar(&state, "state", "", "state file (overrides state_file:)")
	f.BoolVar(&dryRun, "dry-run", false, "collect and print what would be sent; publish nothing, keep the state file")
	f.BoolVar(&full, "full", false, "send every object's content, even unchanged ones")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.AddCommand(hostCmd)
	return cmd
}
