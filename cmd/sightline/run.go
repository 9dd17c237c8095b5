package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/hosts"
	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/telemetry"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/producers/httpingest"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/graph"
	"github.com/sightline/sightline/sinks/index"
)

func newRunCmd(g *globals) *cobra.Command {
	var (
		statsdEnabled bool
		statsdHost    string
		statsdPort    int
		statsdPrefix  string
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline: JetStream (embedded unless nats.urls is set), processor, sinks, HTTP API",
		Long: `Run starts the pipeline. On the embedded defaults it serves JetStream on 127.0.0.1:4222 with
data under .sightline/, conforms everything published on sightline.raw.> into
sightline.events.>, indexes events and dead letters into an embedded index (trace search),
archives them under .sightline/archive, and serves /healthz, /readyz, /metrics, POST /v1/events,
the trace/search API and the trace page on 127.0.0.1:8080.

SIGINT/SIGTERM drain: fetching stops, in-flight batches finish and are acked. SIGHUP reloads the
configuration file: log.level and processor.attributes change at once; other keys need a restart.`,
		Example: `  sightline run
  nats pub sightline.raw.metric.search_made '{"query":"cats","n_results":3,"user_id":"1234"}'
  sightline status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if statsdEnabled {
				g.sets = append(g.sets, fmt.Sprintf("telemetry.statsd.address=%s", net.JoinHostPort(statsdHost, fmt.Sprint(statsdPort))))
				if statsdPrefix != "" {
					g.sets = append(g.sets, "telemetry.statsd.prefix="+statsdPrefix)
				}
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			return runPipeline(cmd.Context(), g, cfg)
		},
	}
	// The Cartography seed's statsd flags (same as telemetry.statsd.*).
	f := cmd.Flags()
	f.BoolVar(&statsdEnabled, "statsd-enabled", false, "send pipeline counters to statsd (DogStatsD tags)")
	f.StringVar(&statsdHost, "statsd-host", "127.0.0.1", "statsd host")
	f.IntVar(&statsdPort, "statsd-port", 8125, "statsd UDP port")
	f.StringVar(&statsdPrefix, "statsd-prefix", "", "metric name prefix (default \"sightline.\")")
	return cmd
}

// pipeline is what `sightline run` holds while it runs.
type pipeline struct {
	cfg     *config.Config
	log     *slog.Logger
	bus     *bus.Bus
	metrics *telemetry.Metrics
	mux     *http.ServeMux
	ready   atomic.Bool
	enrich  *processors.Enricher
	closers []func(context.Context) error
}

func runPipeline(ctx context.Context, g *globals, cfg *config.Config) error {
	log := g.logger()
	// A soft memory limit keeps RSS bounded while a large backlog drains,
	// and under it a higher GC target saves CPU (both measured in
	// BENCHMARKS.md); GOMEMLIMIT and GOGC, when set, win.
	cfg.Runtime.Apply()
	p := &pipeline{cfg: cfg, log: log, metrics: telemetry.NewMetrics(), mux: http.NewServeMux()}

	tracer, shutdownTraces, err := telemetry.NewTracer(ctx, cfg.Telemetry.Traces, version)
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTraces(context.Background()) }()
	observers := telemetry.Fanout{p.metrics}
	grp, gctx := errgroup.WithContext(ctx)
	if cfg.Telemetry.Statsd.Address != "" {
		sd, err := telemetry.NewStatsd(cfg.Telemetry.Statsd.Address, cfg.Telemetry.Statsd.Prefix, cfg.Telemetry.Statsd.Interval)
		if err != nil {
			return err
		}
		observers = append(observers, sd)
		grp.Go(func() error { sd.Run(gctx); return nil })
	}

	o := cfg.BusOptions()
	o.Logger, o.Tracer, o.Observer = log, tracer, observers
	if len(o.URLs) == 0 {
		if err := os.MkdirAll(cfg.NATS.StoreDir, 0o750); err != nil {
			return fmt.Errorf("nats.store_dir: %w", err)
		}
	}
	b, err := bus.Connect(ctx, o)
	if err != nil {
		return err
	}
	p.bus = b
	defer b.Close()
	if err := b.EnsureStreams(ctx, cfg.StreamsConfig()); err != nil {
		return err
	}

	// The HTTP server first, so /healthz answers while sinks connect.
	srv, err := p.startHTTP(grp, gctx)
	if err != nil {
		return err
	}

	if cfg.Processor.Enabled {
		if err := p.startProcessor(grp, gctx, tracer); err != nil {
			return err
		}
	}
	if cfg.Index.Enabled {
		if err := p.startIndex(grp, gctx); err != nil {
			return err
		}
	}
	if cfg.Graph.Enabled {
		if err := p.startGraph(grp, gctx); err != nil {
			return err
		}
	}
	if cfg.Archive.Enabled {
		if err := p.startArchive(grp, gctx); err != nil {
			return err
		}
	}
	if cfg.Hosts.Enabled {
		grp.Go(func() error { return hosts.Run(gctx, b, cfg.Hosts.Config, log.With("sink", "hosts")) })
	}
	grp.Go(func() error { p.reloadOnHUP(gctx, g); return nil })
	p.ready.Store(true)
	log.Info("sightline running", "version", version, "nats", b.ClientURL(), "http", cfg.HTTP.Listen,
		"processor", cfg.Processor.Enabled, "index", indexMode(cfg), "graph", cfg.Graph.Enabled, "archive", cfg.Archive.Enabled, "hosts", cfg.Hosts.Enabled)

	err = grp.Wait()
	p.ready.Store(false)
	log.Info("sightline stopping: consumers drained, closing sinks")
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := len(p.closers) - 1; i >= 0; i-- {
		if cerr := p.closers[i](closeCtx); cerr != nil {
			log.Warn("close", "error", cerr)
		}
	}
	if srv != nil {
		_ = srv.Shutdown(closeCtx)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("sightline stopped")
	return nil
}

func indexMode(cfg *config.Config) string {
	switch {
	case !cfg.Index.Enabled:
		return "off"
	case cfg.Index.Remote():
		return strings.Join(cfg.Index.URLs, ",")
	default:
		return "embedded:" + cfg.Index.EmbeddedPath
	}
}

func (p *pipeline) startHTTP(grp *errgroup.Group, ctx context.Context) (*http.Server, error) {
	p.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	p.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !p.ready.Load() || !p.bus.Connected() {
			http.Error(w, "not ready: starting, stopping or disconnected from NATS", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	p.mux.Handle("GET /metrics", p.metrics.Handler())
	p.mux.Handle("POST /v1/events", httpingest.New(p.bus, httpingest.WithLogger(p.log.With("component", "ingest")),
		httpingest.WithMaxBodyBytes(int64(p.cfg.HTTP.IngestMaxBody)), httpingest.WithMaxItems(p.cfg.HTTP.IngestMaxItems),
		httpingest.WithMaxItemBytes(p.cfg.Processor.MaxBodyBytes)))
	if p.cfg.HTTP.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", p.cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	srv := &http.Server{Handler: p.mux, ReadHeaderTimeout: 10 * time.Second}
	grp.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	grp.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	})
	return srv, nil
}

func (p *pipeline) startProcessor(grp *errgroup.Group, ctx context.Context, tracer trace.Tracer) error {
	v, err := schemas.NewValidator()
	if err != nil {
		return err
	}
	pc := p.cfg.Processor
	proc, en := processors.Standard(processors.Config{MaxBodyBytes: pc.MaxBodyBytes, Attributes: pc.Attributes}, v, processors.WithTracer(tracer))
	p.enrich = en
	cc := bus.ConsumerConfig{
		Stage: "process", Stream: bus.StreamRaw, Durable: pc.Consumer,
		Batch: pc.Batch, Lanes: pc.Lanes, Workers: pc.Workers, MaxAckPending: pc.MaxAckPending, AckWait: pc.AckWait,
	}
	grp.Go(func() error { return p.bus.RunProcessor(ctx, cc, proc) })
	return nil
}

// runSink runs s behind a durable consumer and closes it after the consumer
// has drained.
func (p *pipeline) runSink(grp *errgroup.Group, ctx context.Context, cc bus.ConsumerConfig, s stage.Sink) {
	grp.Go(func() error { return p.bus.RunSink(ctx, cc, s) })
}

func (p *pipeline) startIndex(grp *errgroup.Group, ctx context.Context) error {
	idx, err := index.Open(p.cfg.Index.Config, index.WithLogger(p.log.With("sink", "index")))
	if err != nil {
		return fmt.Errorf("index sink: %w", err)
	}
	p.closers = append(p.closers, idx.Close)
	p.runSink(grp, ctx, bus.ConsumerConfig{Stage: "index", Stream: bus.StreamEvents, Durable: "index",
		Filters: []string{p.cfg.Index.EventsSubject}, Batch: 1000, Linger: 200 * time.Millisecond, AckWait: 2 * time.Minute}, idx)
	p.runSink(grp, ctx, bus.ConsumerConfig{Stage: "index-dlq", Stream: bus.StreamDLQ, Durable: "index-dlq",
		Filters: []string{p.cfg.Index.DLQSubject}, Batch: 500, Linger: 200 * time.Millisecond, AckWait: 2 * time.Minute}, idx)
	grp.Go(func() error { idx.RunRetention(ctx); return nil })

	locators := []index.Locator{index.StreamLocator}
	if p.cfg.Archive.Enabled {
		if bkt, err := archive.OpenBucket(ctx, p.cfg.Archive.Config); err == nil {
			p.closers = append(p.closers, func(context.Context) error { return bkt.Close() })
			locators = append(locators, archive.TraceLocator(archive.NewReader(bkt), p.cfg.Archive.URL))
		} else {
			p.log.Warn("trace search will not list archive objects", "error", err)
		}
	}
	index.RegisterAPI(p.mux, index.NewAPI(idx, p.log.With("component", "api"), locators...))
	return nil
}

func (p *pipeline) startGraph(grp *errgroup.Group, ctx context.Context) error {
	s, err := graph.New(ctx, p.cfg.Graph.Config, graph.WithLogger(p.log.With("sink", "graph")),
		graph.WithRegisterer(p.metrics.Registry()))
	if err != nil {
		return fmt.Errorf("graph sink (graph.uri %s): %w", p.cfg.Graph.URI, err)
	}
	p.closers = append(p.closers, s.Close)
	// Syncs of one scope are serialized by the sink's scope lock; one lane
	// keeps the parts of a sync in order.
	p.runSink(grp, ctx, bus.ConsumerConfig{Stage: "graph", Stream: bus.StreamEvents, Durable: p.cfg.Graph.Consumer,
		Filters: []string{p.cfg.Graph.Subject}, Batch: 500, Lanes: 1, Linger: 100 * time.Millisecond, AckWait: 2 * time.Minute}, s)
	return nil
}

func (p *pipeline) startArchive(grp *errgroup.Group, ctx context.Context) error {
	a := p.cfg.Archive
	s, err := archive.New(ctx, a.Config, archive.WithLogger(p.log.With("sink", "archive")))
	if err != nil {
		return fmt.Errorf("archive sink (archive.url %s): %w", a.URL, err)
	}
	p.closers = append(p.closers, s.Close)
	// Messages wait in the batch unacked: AckWait covers linger + upload.
	p.runSink(grp, ctx, bus.ConsumerConfig{Stage: "archive", Stream: bus.StreamEvents, Durable: "archive",
		Filters: []string{a.Subject}, Batch: a.BatchMaxMessages, BatchBytes: a.BatchMaxBytes, Linger: a.BatchMaxAge,
		Lanes: 1, AckWait: a.BatchMaxAge + a.PutTimeout + time.Minute, MaxAckPending: 2 * a.BatchMaxMessages}, s)
	return nil
}

// reloadOnHUP re-reads the configuration on SIGHUP and applies what can
// change while running: the log level and the enrichment attributes.
func (p *pipeline) reloadOnHUP(ctx context.Context, g *globals) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		sets := g.sets
		if g.logLevel != "" {
			sets = append(append([]string(nil), sets...), "log.level="+g.logLevel)
		}
		nc, err := config.Load(g.configPath, os.Environ(), sets)
		if err != nil {
			p.log.Error("reload refused: the new configuration is invalid; keeping the running one", "error", err)
			continue
		}
		lv, _ := telemetry.ParseLevel(nc.Log.Level)
		g.level.Set(lv)
		if p.enrich != nil {
			p.enrich.SetAttributes(nc.Processor.Attributes)
		}
		p.log.Info("configuration reloaded", "log_level", nc.Log.Level, "attributes", nc.Processor.Attributes)
		if needsRestart(p.cfg, nc) {
			p.log.Warn("the reloaded configuration changes keys other than log.level and processor.attributes; they apply after a restart")
		}
	}
}

// needsRestart reports whether next differs from running in anything but
// the keys a reload applies.
func needsRestart(running, next *config.Config) bool {
	a, b := *running, *next
	a.Log.Level, b.Log.Level = "", ""
	a.Processor.Attributes, b.Processor.Attributes = nil, nil
	ya, errA := a.YAML()
	yb, errB := b.YAML()
	return errA != nil || errB != nil || !bytes.Equal(ya, yb)
}
