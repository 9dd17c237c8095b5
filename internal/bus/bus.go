// Package bus is the connection to NATS JetStream, the root of the one
// package family that talks to it. It starts an embedded server or
// connects to a cluster, declares the streams, publishes (under group
// commit, once the store is synced) and keeps the process's health
// registry. The packages under it do the rest, each on a *Bus:
//
//   - consume: durable pull consumers for processors and sinks; alone
//     decides whether an input is acked, redelivered with backoff, or
//     terminated to the DLQ;
//   - kv: latest-state buckets and leases;
//   - read: in-order reading of a stream (replay, state scans);
//   - loss: input a stream removed before a consumer got it, and input
//     the raw stream never stored;
//   - health: the components' states, answered on health.Subject;
//   - status: the streams, consumers and per-kind counts.
//
// Stages never see these packages: they get the small interfaces of
// internal/stage.
//
// Size: ~1,550 lines and ~45 exported names, about the project's bound:
// about ten of the names are the accessors the packages under it need
// (Logger, Observer, Tracer, Health, Commit, ...).
package bus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/sightline/sightline/internal/bus/health"
	"github.com/sightline/sightline/internal/limits"
)

// Options says where the bus is. With no URLs an embedded JetStream server
// is started.
type Options struct {
	URLs []string `yaml:"urls"` // external cluster; empty starts the embedded server
	Name string   `yaml:"name"` // client connection name

	// Embedded server.
	Host       string `yaml:"-"`           // default 127.0.0.1
	Port       int    `yaml:"-"`           // default 4222; -1 picks a free port (tests)
	StoreDir   string `yaml:"store_dir"`   // JetStream file storage
	MaxPayload int    `yaml:"max_payload"` // bytes; default limits.ServerMaxPayload
	// ServerConfig is a nats-server configuration file for the embedded
	// server (users, nkeys, accounts, permissions): the file's settings
	// apply, Host, Port, StoreDir, MaxPayload and Sync above win over its own.
	// The in-process connection then authenticates with the credentials
	// below, like a client of an external cluster.
	ServerConfig string `yaml:"server_config"`
	// Sync is the embedded server's fsync policy: SyncGroup (group
	// commit; `sightline run`'s default), SyncAlways (the server fsyncs
	// every message before its PubAck) or a duration between syncs; empty
	// keeps NATS's own default (2m). See ParseSync and docs/consumers.md.
	Sync string `yaml:"sync"`

	// StallTimeout is how long a consumer may have pending work without
	// progress before it is reported stalled and its pull loop restarted
	// (ConsumerConfig.StallTimeout; default DefaultStallTimeout).
	StallTimeout time.Duration `yaml:"stall_timeout"`

	// Authentication for an external cluster (or an embedded server with
	// ServerConfig), set from the nats section's credentials block.
	CredsFile string `yaml:"-"`
	NKeyFile  string `yaml:"-"`
	User      string `yaml:"-"`
	Password  string `yaml:"-"`
	Token     string `yaml:"-"`
	// InboxPrefix replaces _INBOX in this connection's reply subjects, so
	// a server can let an identity subscribe to its own replies only.
	InboxPrefix string `yaml:"inbox_prefix"`

	// TLS of the connection (nil: the client's defaults), built from the
	// nats section's TLS block by config.TLS.ClientConfig, the one place
	// that loads certificate files.
	TLS *tls.Config `yaml:"-"`

	Logger   *slog.Logger `yaml:"-"`
	Tracer   trace.Tracer `yaml:"-"`
	Observer Observer     `yaml:"-"`
}

// Fsync policies of the embedded server (config key nats.sync).
const (
	// SyncAlways: the server fsyncs every message before its PubAck.
	SyncAlways = "always"
	// SyncGroup: group commit (commit.go). The server writes every
	// message at once; this process fsyncs the store once per group of
	// writers before it acknowledges anything itself, and in the
	// background every groupCommitInterval (`sightline run`'s default).
	SyncGroup = "group"
)

// ParseSync reads a sync policy: "always" → fsync before every
// acknowledgement; "group" → group commit (the server itself keeps its
// 2-minute interval); a Go duration ("2m", "30s") → fsync at that
// interval; empty → the server's own default (an interval of 2 minutes).
func ParseSync(s string) (always bool, interval time.Duration, err error) {
	switch s {
	case "", SyncGroup:
		return false, 0, nil
	case SyncAlways:
		return true, 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return false, 0, fmt.Errorf("sync %q: want \"group\", \"always\" or a positive duration such as \"2m\"", s)
	}
	return false, d, nil
}

// Connection liveness: a server that stops answering (a frozen node) is
// given up after about pingInterval × (maxPingsOut+1) and the client moves
// to another server of the cluster; a write that cannot be flushed for
// flusherTimeout does the same; a PubAck not back in publishAckTimeout
// (lost with a node, or a server that fsyncs thousands of messages
// slowly) fails its publish, and the input is redelivered.
const (
	pingInterval      = 2 * time.Second
	maxPingsOut       = 2
	flusherTimeout    = 10 * time.Second
	publishAckTimeout = 30 * time.Second
	// embeddedPingInterval applies to the in-process connection to the
	// embedded server: it has no other node to move to and lives and dies
	// with this process, so quick pings only turned a busy moment (megabyte
	// messages under -race on a loaded machine) into a "stale connection".
	embeddedPingInterval = 30 * time.Second
)

// Bus is a connection to JetStream (and the embedded server, if any).
type Bus struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	rjs    jetstream.JetStream // stage outputs: PubAck waits of pubAckRetry, then sent again (retry.go)
	pubOut pubOutage
	denied chan error // permissions violations the server reported (cap 1, latest kept when free)
	srv    *server.Server
	log    *slog.Logger
	tracer trace.Tracer
	traced bool // tracer is a real one (not the no-op)
	obs    Observer
	health *health.Registry
	// instance names this process to others: connection name, host, pid.
	instance string

	stallTimeout time.Duration // consumers' default

	// dlqMax is the largest dead letter the DLQ stream and the server
	// take (EnsureStreams); 0 until known.
	dlqMax atomic.Int64
	// identityKey is identity.Key of the raw stream (EnsureStreams).
	identityKey atomic.Pointer[[]byte]

	// committer runs group commit rounds over the embedded store
	// (nats.sync: group); nil otherwise. stopCommit ends its background
	// rounds.
	committer  *committer
	stopCommit context.CancelFunc

	// embeddedAuth authenticates further in-process connections to the
	// embedded server (WatchDoor) when it has a configuration file.
	embeddedAuth []nats.Option
}

// ErrClosed is returned by operations on a closed bus.
var ErrClosed = errors.New("bus: closed")

// Connect starts the embedded server (when no URL is given) and connects.
func Connect(ctx context.Context, o Options) (*Bus, error) {
	b := &Bus{log: o.Logger, tracer: o.Tracer, obs: o.Observer, stallTimeout: o.StallTimeout}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.tracer == nil {
		b.tracer = noop.NewTracerProvider().Tracer("")
	}
	_, off := b.tracer.(noop.Tracer)
	b.traced = !off
	if b.obs == nil {
		b.obs = NopObserver
	}
	b.health = health.New(b.log, b.Connected)
	host, _ := os.Hostname()
	b.instance = fmt.Sprintf("%s@%s pid %d", orDefault(o.Name, "sightline"), host, os.Getpid())
	urls := strings.Join(o.URLs, ",")
	// A permissions violation while connecting (an identity refused its
	// inbox or the JetStream API) ends the connect at once.
	denied := make(chan error, 1)
	b.denied = denied
	nopts := []nats.Option{
		nats.Name(orDefault(o.Name, "sightline")),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectBufSize(64 << 20),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.FlusherTimeout(flusherTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.health.Set("nats", fmt.Errorf("disconnected: %w", err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			b.health.Set("nats", nil)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			b.log.Warn("nats async error", "subject", subj, "error", err)
			if errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case denied <- err:
				default:
				}
			}
		}),
	}
	if urls == "" {
		srv, err := startEmbedded(o, b.log)
		if err != nil {
			return nil, err
		}
		b.srv = srv
		urls = srv.ClientURL()
		if o.Sync == SyncGroup {
			if err := b.startCommitter(storeDir(o)); err != nil {
				b.shutdownServer()
				return nil, err
			}
		}
		nopts = append(nopts, nats.InProcessServer(srv), nats.PingInterval(embeddedPingInterval))
		if o.ServerConfig != "" {
			auth, err := authOptions(o)
			if err != nil {
				b.shutdownServer()
				return nil, err
			}
			nopts = append(nopts, auth...)
			b.embeddedAuth = auth
		}
	} else {
		auth, err := authOptions(o)
		if err != nil {
			return nil, err
		}
		nopts = append(nopts, auth...)
	}
	if o.InboxPrefix != "" {
		nopts = append(nopts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	nc, err := nats.Connect(urls, nopts...)
	if err != nil {
		b.shutdownServer()
		return nil, connectErr(urls, err)
	}
	b.nc = nc
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(publishAckTimeout))
	if err != nil {
		nc.Close()
		b.shutdownServer()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b.js = js
	b.rjs = js // the embedded server has no other node to send again to
	if b.srv == nil {
		if b.rjs, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(pubAckRetry)); err != nil {
			b.Close()
			return nil, fmt.Errorf("bus: jetstream: %w", err)
		}
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-denied:
			cancel(err)
		case <-actx.Done():
		}
	}()
	if _, err := js.AccountInfo(actx); err != nil {
		b.Close()
		if cause := context.Cause(actx); errors.Is(cause, nats.ErrPermissionViolation) {
			return nil, fmt.Errorf("bus: %s refused this identity: %w", redact(urls), cause)
		}
		return nil, fmt.Errorf("bus: JetStream is not enabled on %s: %w", redact(urls), err)
	}
	b.health.Set("nats", nil)
	return b, nil
}

func startEmbedded(o Options, log *slog.Logger) (*server.Server, error) {
	port := o.Port
	if port == 0 {
		port = 4222
	}
	dir := storeDir(o)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("bus: embedded server: store dir: %w", err)
	}
	maxPayload := o.MaxPayload
	if maxPayload <= 0 {
		maxPayload = limits.ServerMaxPayload
	}
	always, interval, err := ParseSync(o.Sync)
	if err != nil {
		return nil, fmt.Errorf("bus: embedded server: %w", err)
	}
	sopts := &server.Options{}
	if o.ServerConfig != "" {
		fo, err := server.ProcessConfigFile(o.ServerConfig)
		if err != nil {
			return nil, fmt.Errorf("bus: embedded server: config %s: %w", o.ServerConfig, err)
		}
		if err := checkEmbeddedAuth(o.ServerConfig, orDefault(o.Host, "127.0.0.1"), fo); err != nil {
			return nil, err
		}
		sopts = fo
	}
	sopts.ServerName = "sightline-embedded"
	sopts.Host = orDefault(o.Host, "127.0.0.1")
	sopts.Port = port
	sopts.JetStream = true
	sopts.StoreDir = dir
	sopts.MaxPayload = int32(maxPayload)
	sopts.NoSigs = true
	sopts.SyncAlways, sopts.SyncInterval = always, interval
	// The stream ingest queue takes bursts of core publishes (which get no
	// answer) instead of dropping them; what it still drops, WatchDoor
	// counts.
	sopts.StreamMaxBufferedMsgs, sopts.StreamMaxBufferedSize = limits.StreamIngestQueueMsgs, limits.StreamIngestQueueBytes
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("bus: embedded server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("bus: embedded server on %s:%d did not start (port in use? set nats.embedded.port or nats.url)", orDefault(o.Host, "127.0.0.1"), port)
	}
	log.Info("embedded JetStream server started", "url", srv.ClientURL(), "store_dir", dir, "sync", orDefault(o.Sync, "server default (2m)"))
	return srv, nil
}

// storeDir is where the embedded server keeps its streams.
func storeDir(o Options) string {
	if o.StoreDir == "" {
		return ".sightline/jetstream"
	}
	return o.StoreDir
}

// startCommitter makes the store durable as it stands (streams recovered
// or created by an earlier run under another policy included) and starts
// the background rounds.
func (b *Bus) startCommitter(dir string) error {
	c := newCommitter(dir)
	c.warn = func(msg string, err error) { b.log.Warn(msg, "error", err) }
	if c.watchErr != nil && !errors.Is(c.watchErr, errors.ErrUnsupported) {
		// Linux without inotify to spare (fs.inotify.max_user_instances).
		c.warn("group commit: no file system watch; every commit round walks the store (more CPU per round, the same guarantee)", c.watchErr)
	}
	if err := syncParents(dir); err != nil {
		c.close()
		return fmt.Errorf("bus: group commit: store dir %s: %w", dir, err)
	}
	if err := c.Wait(context.Background()); err != nil {
		c.close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.committer, b.stopCommit = c, cancel
	go c.background(ctx, groupCommitInterval, func(err error) {
		b.log.Error("group commit failed: acknowledgements wait until the store can be synced", "error", err)
	})
	return nil
}

func authOptions(o Options) ([]nats.Option, error) {
	var opts []nats.Option
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("bus: nkey %s: %w", o.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.TLS != nil {
		opts = append(opts, nats.Secure(o.TLS))
	}
	return opts, nil
}

// Connected reports whether the connection is up.
func (b *Bus) Connected() bool { return b.nc != nil && b.nc.IsConnected() }

// ClientURL is the URL clients (e.g. `nats pub`) use to reach the bus.
func (b *Bus) ClientURL() string {
	if b.srv != nil {
		return b.srv.ClientURL()
	}
	return b.nc.ConnectedUrlRedacted()
}

// JetStream gives the bus's JetStream handle to code inside internal/bus
// tests and to the producer library adapters.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Conn is the underlying NATS connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// What the packages under internal/bus use of a connection.

// Logger is the bus's logger.
func (b *Bus) Logger() *slog.Logger { return b.log }

// Observer is told what the consumers do (Options.Observer).
func (b *Bus) Observer() Observer { return b.obs }

// Tracer is the tracer of consumer spans, nil when tracing is off.
func (b *Bus) Tracer() trace.Tracer {
	if !b.traced {
		return nil
	}
	return b.tracer
}

// Health is the process's health registry.
func (b *Bus) Health() *health.Registry { return b.health }

// Instance names this process (connection name, host and pid) to others.
func (b *Bus) Instance() string { return b.instance }

// StallTimeout is Options.StallTimeout (0: the consumers' default).
func (b *Bus) StallTimeout() time.Duration { return b.stallTimeout }

// DLQMax is the largest dead letter the DLQ stream and the server take,
// known after EnsureStreams (0 before).
func (b *Bus) DLQMax() int64 { return b.dlqMax.Load() }

// Server is the embedded server, nil on an external cluster.
func (b *Bus) Server() *server.Server { return b.srv }

// ConnectEmbedded opens another in-process connection to the embedded
// server, authenticated like the bus's own (nil, nil on an external
// cluster).
func (b *Bus) ConnectEmbedded(name string) (*nats.Conn, error) {
	if b.srv == nil {
		return nil, nil
	}
	return nats.Connect(b.srv.ClientURL(), append(b.embeddedAuth, nats.InProcessServer(b.srv), nats.Name(name),
		nats.MaxReconnects(-1), nats.PingInterval(embeddedPingInterval))...)
}

// Close drains the connection and stops the embedded server.
func (b *Bus) Close() {
	if b.nc != nil {
		if err := b.nc.Drain(); err != nil {
			b.nc.Close()
		}
		deadline := time.Now().Add(10 * time.Second)
		for !b.nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		b.nc.Close()
	}
	b.shutdownServer()
}

func (b *Bus) shutdownServer() {
	if b.stopCommit != nil {
		b.stopCommit()
		b.stopCommit = nil
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
		b.srv = nil
		if b.committer != nil {
			// What the server flushed while stopping.
			if err := b.committer.Wait(context.Background()); err != nil {
				b.log.Error("group commit at shutdown failed", "error", err)
			}
			b.committer.close()
			b.log.Info("group commit stopped", "rounds", b.committer.rounds.Load(), "fsyncs", b.committer.synced.Load(), "store_walks", b.committer.walks.Load(), "fs_events", b.committer.events.Load())
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// redact hides passwords in URLs.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndex(u, "@"); at > 0 {
			if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
				parts[i] = u[:scheme+3] + "***" + u[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}
