package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/telemetry"
)

// globals are the flags every command shares and what they build lazily:
// the configuration, the logger and a client connection to the bus.
type globals struct {
	configPath string
	sets       []string
	logLevel   string
	natsURL    string  // --nats: shorthand for --set nats.urls=URL
	api        apiAuth // --api, --token-file, --api-ca

	once    sync.Once
	cfg     *config.Config
	cfgErr  error
	level   slog.LevelVar
	log     *slog.Logger
	clients []*bus.Bus
	stderr  io.Writer // where configuration warnings go (the command's stderr)
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "sightline",
		Short: "A live picture of your infrastructure, on NATS JetStream",
		Long: `Sightline turns host snapshots, inventory and metric events into a live picture of your
infrastructure: collectors publish to NATS JetStream, processors validate, conform and enrich
them, and sinks write Neo4j, an Elasticsearch-compatible index and S3 archives.

Configuration: defaults, then --config FILE (or SIGHTLINE_CONFIG), then SIGHTLINE_* variables,
then --set key=value. ` + "`sightline config keys`" + ` lists every key.`,
		Example: `  sightline run                                   # the pipeline on embedded defaults, data under .sightline/
  nats sub 'sightline.events.>'                   # watch what comes out (and 'sightline.dlq.>')
  sightline trace abc                             # everything that carried correlation id abc
  sightline status
  sightline --set http.listen=127.0.0.1:9090 run  # the API elsewhere; NATS stays on nats.listen`,
		SilenceUsage:     true,
		SilenceErrors:    true,
		Version:          version,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) { g.stderr = cmd.ErrOrStderr() },
		PersistentPostRun: func(*cobra.Command, []string) {
			for _, b := range g.clients {
				b.Close()
			}
		},
	}
	f := root.PersistentFlags()
	f.StringVarP(&g.configPath, "config", "c", os.Getenv("SIGHTLINE_CONFIG"), "YAML configuration file")
	f.StringArrayVar(&g.sets, "set", nil, "override one key, e.g. --set processor.attributes.site=lab1 (repeatable)")
	f.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (overrides log.level)")
	f.StringVar(&g.natsURL, "nats", "", "NATS server(s) to use, e.g. nats://127.0.0.1:5222 (same as --set nats.urls=...; env SIGHTLINE_NATS_URLS); "+
		"without it, commands reach the embedded server of sightline run at nats.listen (env SIGHTLINE_NATS_LISTEN)")
	addAPIFlags(f, &g.api)
	root.AddCommand(
		newRunCmd(g), newStatusCmd(g), newConfigCmd(g),
		newTraceCmd(g), newLogsCmd(g),
		newGraphCmd(g), newInventoryCmd(g),
		newReplayCmd(g),
		newCollectCmd(g), newSearchCmd(g), newHostsCmd(g),
		newSetupCmd(g),
		newCredsCmd(),
	)
	return root
}

// config loads and validates the configuration once.
func (g *globals) config() (*config.Config, error) {
	g.once.Do(func() {
		sets := g.allSets()
		g.cfg, g.cfgErr = config.Load(g.configPath, os.Environ(), sets, sinkSections()...)
		if g.cfgErr != nil {
			return
		}
		w := g.stderr
		if w == nil {
			w = os.Stderr
		}
		for _, warning := range g.cfg.Warnings() {
			fmt.Fprintln(w, "sightline: warning:", warning)
		}
		lv, _ := telemetry.ParseLevel(g.cfg.Log.Level)
		g.level.Set(lv)
		g.log, g.cfgErr = telemetry.NewLogger(os.Stderr, g.cfg.Log.Format, &g.level)
	})
	return g.cfg, g.cfgErr
}

// allSets is --set plus the global flags that stand for keys.
func (g *globals) allSets() []string {
	sets := append([]string(nil), g.sets...)
	if g.natsURL != "" {
		sets = append(sets, "nats.urls="+g.natsURL)
	}
	if g.logLevel != "" {
		sets = append(sets, "log.level="+g.logLevel)
	}
	return sets
}

// logger is the configured logger (a plain stderr logger before the
// configuration loads or when it is invalid).
func (g *globals) logger() *slog.Logger {
	if _, err := g.config(); err != nil || g.log == nil {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return g.log
}

// bus connects as a client: to nats.urls, or to the embedded server of a
// running `sightline run` at nats.listen. It never starts a server. tune
// adjusts the options (a collector's inbox prefix).
func (g *globals) bus(ctx context.Context, tune ...func(*bus.Options)) (*bus.Bus, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, err
	}
	o, err := cfg.BusOptions()
	if err != nil {
		return nil, err
	}
	o.Name = "sightline-cli"
	if len(o.URLs) == 0 {
		o.URLs = []string{"nats://" + cfg.NATS.Listen}
	}
	o.Logger = g.logger()
	for _, f := range tune {
		f(&o)
	}
	b, err := bus.Connect(ctx, o)
	if err != nil {
		if len(cfg.NATS.URLs) == 0 {
			return nil, fmt.Errorf("%w (is `sightline run` running? it serves JetStream on %s; or set nats.urls)", err, cfg.NATS.Listen)
		}
		return nil, err
	}
	g.clients = append(g.clients, b)
	return b, nil
}
