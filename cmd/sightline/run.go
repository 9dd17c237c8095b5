package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/bus/loss"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/httpauth"
	"github.com/sightline/sightline/internal/httplimit"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/telemetry"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/producers/httpingest"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/sinks/index/searchapi"
)

func newRunCmd(g *globals) *cobra.Command {
	var (
		statsdEnabled bool
		statsdHost    string
		statsdPort    int
		statsdPrefix  string
		stages        []string
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
configuration file: log.level and processor.attributes change at once; other keys need a restart.

Scale-out: workers started against one JetStream cluster (nats.urls) share the durable
consumers, so they split the work; --stages runs a subset of the stages in a worker, so the busy
one scales alone (docs/operations.md, "Scale-out and crashes").`,
		Example: `  sightline run
  nats pub sightline.raw.metric.search_made '{"query":"cats","n_results":3,"user_id":"1234"}'
  sightline status
  sightline run --set nats.urls=nats://n1:4222,nats://n2:4222 --stages processor,index`,
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
			filter, err := parseStages(stages, cfg)
			if err != nil {
				return err
			}
			return runPipeline(cmd.Context(), g, cfg, filter)
		},
	}
	// Cartography's statsd flags (same as telemetry.statsd.*).
	f := cmd.Flags()
	f.BoolVar(&statsdEnabled, "statsd-enabled", false, "send pipeline counters, gauges and timings to statsd (plain statsd lines)")
	f.StringVar(&statsdHost, "statsd-host", "127.0.0.1", "statsd host")
	f.IntVar(&statsdPort, "statsd-port", 8125, "statsd UDP port")
	f.StringVar(&statsdPrefix, "statsd-prefix", "", "metric name prefix (default \"sightline.\")")
	f.StringSliceVar(&stages, "stages", nil, "run only these stages (processor and sink names, comma-separated); default: every enabled one")
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
	opened  map[string]*sinks.Opened
	closers []func(context.Context) error
	onHUP   []func() // reloads that ride on SIGHUP beside the configuration's (tokens, certificate)
	// mu guards opened and closers: a sink whose service was down at
	// start is opened later, from its retry goroutine.
	mu sync.Mutex
	// stages is the subset of stages this worker runs (--stages); nil: all.
	stages stageFilter
}

func runPipeline(ctx context.Context, g *globals, cfg *config.Config, stages stageFilter) error {
	log := g.logger()
	// A soft memory limit keeps RSS bounded while a large backlog drains,
	// and under it a higher GC target saves CPU (both measured in
	// BENCHMARKS.md); GOMEMLIMIT and GOGC, when set, win.
	cfg.Runtime.Apply()
	p := &pipeline{cfg: cfg, log: log, metrics: telemetry.NewMetrics(), mux: http.NewServeMux(), stages: stages}

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

	o, err := cfg.BusOptions()
	if err != nil {
		return err
	}
	o.Logger, o.Tracer, o.Observer = log, tracer, observers
	if len(o.URLs) == 0 {
		if err := os.MkdirAll(cfg.NATS.StoreDir, 0o750); err != nil {
			return fmt.Errorf("nats.store_dir: %w", err)
		}
	}
	release, err := claimEmbedded(cfg)
	if err != nil {
		return err
	}
	defer release()
	if len(o.URLs) == 0 && cfg.NATS.ServerConfig == "" && !cfg.NATS.Loopback() {
		log.Warn("nats.insecure is true: the embedded NATS server accepts every client without authentication, including deletes (docs/security-nats.md)",
			"listen", cfg.NATS.Listen)
	}
	if len(o.URLs) == 0 && cfg.NATS.ServerConfig == "" && cfg.NATS.Loopback() && cfg.HTTP.Auth.Enabled() {
		log.Warn("http.auth is on but the embedded NATS server on loopback has no users: any local process may read and write every stream through NATS without a token; set nats.server_config (docs/security-nats.md)",
			"nats_listen", cfg.NATS.Listen)
	}
	b, err := connectBus(ctx, o, log)
	if err != nil {
		return err
	}
	p.bus = b
	defer b.Close()
	if err := p.ensureStreams(ctx); err != nil {
		return err
	}
	if err := loss.WatchDoor(gctx, b); err != nil { // input the embedded server did not store
		return err
	}
	// Readiness follows whether the streams answer, not only the connection
	// (an external server or cluster: the embedded one lives in this process).
	if len(o.URLs) > 0 {
		grp.Go(func() error { b.WatchStreams(gctx, bus.StreamRaw, bus.StreamEvents, bus.StreamDLQ); return nil })
	}

	// The HTTP server first, so /healthz answers while sinks connect.
	srv, err := p.startHTTP(grp, gctx)
	if err != nil {
		return err
	}

	if cfg.Processor.Enabled && stages.runs("processor") {
		if err := p.startProcessor(grp, gctx, tracer); err != nil {
			return err
		}
	}
	p.startSinks(grp, gctx)
	grp.Go(func() error { p.reloadOnHUP(gctx, g); return nil })
	p.ready.Store(true)
	log.Info("sightline running", append([]any{"version", version, "nats", b.ClientURL(), "http", cfg.HTTP.Listen,
		"processor", cfg.Processor.Enabled}, sinkStates(cfg)...)...)

	err = grp.Wait()
	p.ready.Store(false)
	log.Info("sightline stopping: consumers drained, closing sinks")
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.mu.Lock()
	closers := p.closers
	p.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		if cerr := closers[i](closeCtx); cerr != nil {
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

// sinkStates are the start-up log attributes of the sinks: off, on, or
// where the sink writes when its section says (Summary).
func sinkStates(cfg *config.Config) []any {
	var out []any
	for _, name := range cfg.SectionNames() {
		sec := cfg.Section(name)
		var v any = sec.IsEnabled()
		if s, ok := sec.(interface{ Summary() string }); ok {
			v = "off"
			if sec.IsEnabled() {
				v = s.Summary()
			}
		}
		out = append(out, name, v)
	}
	return out
}

func (p *pipeline) startHTTP(grp *errgroup.Group, ctx context.Context) (*http.Server, error) {
	p.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	p.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !p.ready.Load() || !p.bus.Connected() {
			http.Error(w, "not ready: starting, stopping or disconnected from NATS", http.StatusServiceUnavailable)
			return
		}
		if why := p.bus.Health().NotReady(); why != "" { // a stalled consumer, a failing component (docs/consumers.md)
			if httpauth.Anonymous(r.Context()) { // the reason names services and errors: token holders only
				why = "a component is failing (send a read token, or see GET /healthz/components)"
			}
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	p.registerComponents()
	p.mux.Handle("GET /metrics", p.metrics.Handler())
	p.mux.Handle("POST /v1/events", httpingest.New(p.bus, httpingest.WithLogger(p.log.With("component", "ingest")),
		httpingest.WithMaxBodyBytes(int64(p.cfg.HTTP.IngestMaxBody)), httpingest.WithMaxItems(p.cfg.HTTP.IngestMaxItems),
		httpingest.WithMaxItemBytes(p.cfg.Processor.MaxBodyBytes), httpingest.WithMaxConcurrent(p.cfg.HTTP.IngestMaxConcurrent),
		httpingest.WithReadTimeout(p.cfg.HTTP.IngestReadTimeout), httpingest.WithIdentityKey(p.bus.IdentityKey()),
		httpingest.WithMaxPerClient(p.cfg.HTTP.IngestMaxPerClient)))
	if p.cfg.HTTP.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", p.cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	// No server-wide read or write timeout: the ingest bounds its own body
	// read (http.ingest_read_timeout); a search stops when its client goes.
	// Bodies the handlers do not bound themselves are bounded here, and
	// connections by number (internal/httplimit).
	maxConns := httplimit.MaxConnections(p.cfg.HTTP.MaxConnections)
	if maxConns < p.cfg.HTTP.MaxConnections {
		p.log.Info("http.max_connections held to half the open-file limit", "max_connections", maxConns)
	}
	ln = httplimit.NewListener(ln, maxConns)
	srv := &http.Server{Handler: p.mux, ReadHeaderTimeout: limits.HTTPReadHeaderTimeout,
		IdleTimeout: limits.HTTPIdleTimeout, MaxHeaderBytes: limits.HTTPMaxHeaderBytes}
	if ln, err = p.secureHTTP(ctx, srv, ln); err != nil {
		return nil, err
	}
	srv.Handler = httplimit.BodyDeadline(srv.Handler, limits.HTTPBodyReadTimeout, "/v1/events") // before authentication answers too
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
	proc, en := processors.Standard(processors.Config{MaxBodyBytes: pc.MaxBodyBytes, Attributes: pc.Attributes, IdentityKey: p.bus.IdentityKey(),
		// An external server's max payload may be below the events stream's limit.
		MaxEventBytes: min(int(p.cfg.Streams.Events.MaxMsgSize), int(p.bus.Conn().MaxPayload())) - limits.EventHeaderBudget}, v, processors.WithTracer(tracer))
	p.enrich = en
	cc := consume.Config{
		Stage: "process", Stream: bus.StreamRaw, Durable: pc.Consumer,
		Batch: pc.Batch, Lanes: pc.Lanes, Workers: pc.Workers, MaxAckPending: pc.MaxAckPending, AckWait: pc.AckWait,
	}
	grp.Go(func() error { return consume.RunProcessor(ctx, p.bus, cc, proc) })
	return nil
}

// startSinks opens every enabled sink of the table and runs its
// consumers; each sink is closed after its consumers have drained. A sink
// whose service is unreachable does not stop the others: it is retried in
// the background (openSink) and reported failing meanwhile.
func (p *pipeline) startSinks(grp *errgroup.Group, ctx context.Context) {
	env := sinks.Env{
		Registerer: p.metrics.Registry(),
		Bus:        func(context.Context) (*bus.Bus, error) { return p.bus, nil },
		Publish: func(ctx context.Context, msgs ...*stage.Message) error {
			_, err := p.bus.Publish(ctx, msgs...)
			return err
		},
		Handle: p.mux.Handle,
	}
	p.opened = map[string]*sinks.Opened{}
	for _, spec := range sinkTable {
		sec := p.cfg.Section(spec.Name)
		if sec == nil || !sec.IsEnabled() || !p.stages.runs(spec.Name) {
			continue
		}
		env.Log = p.log.With("sink", spec.Name)
		p.openSink(grp, ctx, spec, sec, env)
	}
}

// runOpened runs the consumers and background loops of an opened sink.
func (p *pipeline) runOpened(grp *errgroup.Group, ctx context.Context, name string, o *sinks.Opened) {
	// The sink's consumers write through drained; closing it waits for
	// their writes in flight, then closes the sink once.
	drained := sinks.Drain(o.Sink)
	p.mu.Lock()
	p.opened[name] = o
	p.closers = append(p.closers, drained.Close)
	p.mu.Unlock()
	reported := healthSink{Sink: drained, name: "sink " + name, bus: p.bus}
	for _, cc := range o.Consumers {
		grp.Go(func() error { return consume.RunSink(ctx, p.bus, cc, reported) })
	}
	for _, run := range o.Background {
		grp.Go(func() error { run(ctx); return nil })
	}
	if name == "index" {
		p.startSearchAPI(ctx, o)
	}
}

// startSearchAPI serves the trace/search API and page from the index
// sink's store, listing archive objects too when the archive is on.
func (p *pipeline) startSearchAPI(ctx context.Context, o *sinks.Opened) {
	idx, ok := o.Sink.(index.Index)
	if !ok {
		return
	}
	locators := []index.Locator{index.StreamLocator}
	if ac, err := sinks.SectionOf[archive.Config](p.cfg, "archive"); err == nil && ac.Enabled {
		if bkt, err := archive.OpenBucket(ctx, *ac); err == nil {
			p.mu.Lock()
			p.closers = append(p.closers, func(context.Context) error { return bkt.Close() })
			p.mu.Unlock()
			locators = append(locators, index.SpanLocator(archive.TraceLocator(archive.NewReader(bkt), ac.URL)))
		} else {
			p.log.Warn("trace search will not list archive objects", "error", err)
		}
	}
	searchapi.Register(p.mux, searchapi.New(idx, p.log.With("component", "api"), locators...))
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
		for _, f := range p.onHUP {
			f()
		}
		nc, err := config.Load(g.configPath, os.Environ(), g.allSets(), sinkSections()...)
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
// the keys a reload applies (secrets included).
func needsRestart(running, next *config.Config) bool {
	return running.Changed(next, "log.level", "processor.attributes")
}
