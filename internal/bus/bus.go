// Package bus is the one package that talks to NATS JetStream. It starts an
// embedded server or connects to a cluster, declares the streams, runs
// durable pull consumers for processors and sinks, and alone decides whether
// an input is acked, redelivered with backoff, or terminated to the DLQ.
package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Options says where the bus is. With no URLs an embedded JetStream server
// is started.
type Options struct {
	URLs []string // external cluster; empty starts the embedded server
	Name string   // client connection name

	// Embedded server.
	Host       string // default 127.0.0.1
	Port       int    // default 4222; -1 picks a free port (tests)
	StoreDir   string // JetStream file storage
	MaxPayload int    // bytes; default 8 MiB

	// Authentication for an external cluster.
	CredsFile string
	NKeyFile  string
	User      string
	Password  string
	Token     string

	// TLS for an external cluster.
	TLSCA                 string
	TLSCert               string
	TLSKey                string
	TLSInsecureSkipVerify bool

	Logger   *slog.Logger
	Tracer   trace.Tracer
	Observer Observer
}

// Bus is a connection to JetStream (and the embedded server, if any).
type Bus struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	srv    *server.Server
	log    *slog.Logger
	tracer trace.Tracer
	traced bool // tracer is a real one (not the no-op)
	obs    Observer
}

// ErrClosed is returned by operations on a closed bus.
var ErrClosed = errors.New("bus: closed")

// Connect starts the embedded server (when no URL is given) and connects.
func Connect(ctx context.Context, o Options) (*Bus, error) {
	b := &Bus{log: o.Logger, tracer: o.Tracer, obs: o.Observer}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.tracer == nil {
		b.tracer = noop.NewTracerProvider().Tracer("")
	}
	_, off := b.tracer.(noop.Tracer)
	b.traced = !off
	if b.obs == nil {
		b.obs = NopObserver{}
	}
	urls := strings.Join(o.URLs, ",")
	nopts := []nats.Option{
		nats.Name(orDefault(o.Name, "sightline")),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectBufSize(64 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { b.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			b.log.Warn("nats async error", "subject", subj, "error", err)
		}),
	}
	if urls == "" {
		srv, err := startEmbedded(o, b.log)
		if err != nil {
			return nil, err
		}
		b.srv = srv
		urls = srv.ClientURL()
		nopts = append(nopts, nats.InProcessServer(srv))
	} else {
		auth, err := authOptions(o)
		if err != nil {
			return nil, err
		}
		nopts = append(nopts, auth...)
	}
	nc, err := nats.Connect(urls, nopts...)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("bus: connect %s: %w", redact(urls), err)
	}
	b.nc = nc
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		b.shutdownServer()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b.js = js
	if _, err := js.AccountInfo(ctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("bus: JetStream is not enabled on %s: %w", redact(urls), err)
	}
	return b, nil
}

func startEmbedded(o Options, log *slog.Logger) (*server.Server, error) {
	port := o.Port
	if port == 0 {
		port = 4222
	}
	dir := o.StoreDir
	if dir == "" {
		dir = ".sightline/jetstream"
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("bus: embedded server: store dir: %w", err)
	}
	maxPayload := o.MaxPayload
	if maxPayload <= 0 {
		maxPayload = 8 << 20
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "sightline-embedded",
		Host:       orDefault(o.Host, "127.0.0.1"),
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		MaxPayload: int32(maxPayload),
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: embedded server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("bus: embedded server on %s:%d did not start (port in use? set nats.embedded.port or nats.url)", orDefault(o.Host, "127.0.0.1"), port)
	}
	log.Info("embedded JetStream server started", "url", srv.ClientURL(), "store_dir", dir)
	return srv, nil
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
	if o.TLSCA != "" || o.TLSCert != "" || o.TLSInsecureSkipVerify {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.TLSInsecureSkipVerify} //nolint:gosec // opt-in
		if o.TLSCA != "" {
			pem, err := os.ReadFile(o.TLSCA)
			if err != nil {
				return nil, fmt.Errorf("bus: tls ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("bus: tls ca %s: no certificate found", o.TLSCA)
			}
			cfg.RootCAs = pool
		}
		if o.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
			if err != nil {
				return nil, fmt.Errorf("bus: tls cert: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, nats.Secure(cfg))
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
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
		b.srv = nil
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
