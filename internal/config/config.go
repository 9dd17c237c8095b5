// Package config is the Sightline configuration: a YAML file, SIGHTLINE_*
// environment overrides and --set flags, applied in that order over the
// embedded defaults and checked at start with errors that name the key.
//
// Size: ~1,500 lines, at the project's bound: the loader (strict keys with
// their YAML line, did-you-mean, renamed keys, secret masking) and the
// reference generator read the same declarations. A maintained layering
// library was measured against it and not taken (docs/configuration.md,
// "Why not koanf").
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/httpauth"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/telemetry"
)

// Config is the whole configuration of the sightline binary: the core
// sections below, then one section per sink of the binary's sink table
// (Section), each owned by its sink's package.
type Config struct {
	NATS      NATS      `yaml:"nats"`
	Streams   Streams   `yaml:"streams"`
	Processor Processor `yaml:"processor"`
	HTTP      HTTP      `yaml:"http"`
	Log       Log       `yaml:"log"`
	Runtime   Runtime   `yaml:"runtime"`
	Telemetry Telemetry `yaml:"telemetry"`

	sections []namedSection
	warnings []string
}

// Warnings are the problems Load found that do not stop a command (a
// variable an earlier release read); the commands print them on stderr.
func (c *Config) Warnings() []string { return c.warnings }

// NATS says where JetStream is: an external cluster (urls) or the embedded
// server (listen, store_dir).
type NATS struct {
	// The connection's options (urls, name, store_dir, max_payload,
	// server_config, inbox_prefix): the bus's own type, so every option it
	// has can be set here. Its credentials and TLS come from the blocks
	// below (BusOptions).
	bus.Options `yaml:",inline"`
	// Credentials of an external cluster (or of the embedded server with
	// server_config): nats.username and nats.password (password_file),
	// nats.token (token_file), nats.creds_file or nats.nkey_file.
	Credentials `yaml:",inline" accepts:"username,password,token,creds_file,nkey_file"`
	// TLS to an external cluster: nats.ca_file, nats.cert_file,
	// nats.key_file, nats.insecure_skip_verify.
	TLS TLS `yaml:",inline"`
	// Listen is the embedded server's host:port.
	Listen string `yaml:"listen"`
	// Insecure lets the embedded server listen beyond loopback without
	// server_config (anyone who reaches it may publish and read anything).
	Insecure bool `yaml:"insecure"`
}

// Streams are the limits of the three streams (the bus's own type).
type Streams = bus.StreamsConfig

// StreamLimits of one stream.
type StreamLimits = bus.StreamLimits

// Processor configures validate → conform → enrich.
type Processor struct {
	Enabled       bool              `yaml:"enabled"`
	Consumer      string            `yaml:"consumer"`
	MaxBodyBytes  int               `yaml:"max_body_bytes"`
	Attributes    map[string]string `yaml:"attributes"`
	Batch         int               `yaml:"batch"`
	Lanes         int               `yaml:"lanes"`
	Workers       int               `yaml:"workers"`
	MaxAckPending int               `yaml:"max_ack_pending"`
	AckWait       time.Duration     `yaml:"ack_wait"`
}

// HTTP is the operations and API listener.
type HTTP struct {
	Listen         string `yaml:"listen"`
	IngestMaxBody  int    `yaml:"ingest_max_body"`
	IngestMaxItems int    `yaml:"ingest_max_items"`
	// IngestMaxConcurrent bounds the ingest requests served at once; one
	// more waits a second for a slot, then gets 429.
	IngestMaxConcurrent int `yaml:"ingest_max_concurrent"`
	// IngestReadTimeout bounds the time to read one ingest body; a client
	// still sending after it gets 408.
	IngestReadTimeout time.Duration `yaml:"ingest_read_timeout"`
	// IngestMaxPerClient bounds the ingest requests one client (remote IP)
	// has served at once; one more gets 429.
	IngestMaxPerClient int `yaml:"ingest_max_per_client"`
	// MaxConnections bounds the HTTP connections open at once (held to
	// half the open-file limit); one more is answered 503 and closed.
	MaxConnections int `yaml:"max_connections"`
	// TLSCert and TLSKey (PEM files) serve HTTPS; SIGHUP re-reads them.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// Auth names the bearer-token files (internal/httpauth); empty: no
	// authentication, allowed only on a loopback listener or with Insecure.
	Auth httpauth.Config `yaml:"auth"`
	// Insecure allows a listener beyond loopback without authentication;
	// `sightline run` then logs a warning at every start.
	Insecure bool `yaml:"insecure"`
	// AllowedHosts are host names (besides IP addresses, localhost and
	// *.localhost) a loopback listener answers to (DNS rebinding
	// protection, httpauth.BrowserGuard).
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// Loopback reports whether the listener accepts loopback connections only
// (127.0.0.0/8, ::1 or localhost).
func (h HTTP) Loopback() bool { return loopbackAddr(h.Listen) }

// Loopback reports whether the embedded server's listener accepts loopback
// connections only.
func (n NATS) Loopback() bool { return loopbackAddr(n.Listen) }

// loopbackAddr reports whether a host:port listener accepts loopback
// connections only (127.0.0.0/8, ::1 or localhost).
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Runtime tunes the Go runtime of `sightline run`.
type Runtime struct {
	// MemoryLimit is the soft memory limit in bytes (GOMEMLIMIT wins when
	// set); 0 leaves the Go default. The default, 1 GiB, is above what the
	// embedded defaults hold while a backlog drains: at 200 MiB the
	// collector ran without pause and took ~2/3 of the CPU (BENCHMARKS.md).
	MemoryLimit int64 `yaml:"memory_limit"`
	// GCPercent is the garbage collector's target (GOGC wins when set); 0
	// leaves the Go default of 100, -1 turns the proportional collector off
	// (then only the memory limit triggers collections). With a memory
	// limit bounding RSS, a higher target trades idle heap for CPU: 200
	// measured ~11% less CPU per processed event (BENCHMARKS.md).
	GCPercent int `yaml:"gc_percent"`
}

// Apply sets the Go runtime's memory limit and GC target from r, leaving
// whatever GOMEMLIMIT or GOGC already set. It returns a function restoring
// the previous values (tests and benchmarks).
func (r Runtime) Apply() (restore func()) {
	prevLimit, prevGC := int64(-1), -1
	if r.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		prevLimit = debug.SetMemoryLimit(r.MemoryLimit)
	}
	gcSet := r.GCPercent != 0 && os.Getenv("GOGC") == ""
	if gcSet {
		prevGC = debug.SetGCPercent(r.GCPercent)
	}
	return func() {
		if prevLimit >= 0 {
			debug.SetMemoryLimit(prevLimit)
		}
		if gcSet {
			debug.SetGCPercent(prevGC)
		}
	}
}

// Log configures slog output.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Telemetry configures tracing and statsd.
type Telemetry struct {
	Traces telemetry.TracingConfig `yaml:"traces"`
	Statsd Statsd                  `yaml:"statsd"`
}

// Statsd is the optional statsd feed; empty address disables it.
type Statsd struct {
	// Address is the host:port (UDP) of a DogStatsD or statsd server;
	// empty sends nothing.
	Address string `yaml:"address"`
	// Prefix of every metric name (empty: "sightline.").
	Prefix string `yaml:"prefix"`
	// Interval between sends: counters and gauges are summed over it,
	// timings sampled (at most 64 values per series).
	Interval time.Duration `yaml:"interval"`
}

// Default is the embedded default: JetStream on 127.0.0.1:4222 with data
// under .sightline/, the processor, and each section of sections with its
// own defaults.
func Default(sections ...SectionDef) *Config {
	c := &Config{
		NATS: NATS{Listen: "127.0.0.1:4222", Options: bus.Options{StoreDir: ".sightline/jetstream", MaxPayload: limits.ServerMaxPayload, Name: "sightline",
			Sync: bus.SyncGroup, StallTimeout: consume.DefaultStallTimeout}},
		Streams: bus.DefaultStreams(),
		Processor: Processor{Enabled: true, Consumer: "processor", MaxBodyBytes: limits.MaxBodyBytes,
			Attributes: map[string]string{}, Batch: 256, Lanes: 2, AckWait: consume.DefaultAckWait},
		HTTP: HTTP{Listen: "127.0.0.1:8080", IngestMaxBody: limits.HTTPMaxBodyBytes, IngestMaxItems: limits.HTTPMaxItems,
			IngestMaxConcurrent: limits.HTTPMaxConcurrentIngest, IngestReadTimeout: limits.HTTPIngestReadTimeout,
			IngestMaxPerClient: limits.HTTPMaxIngestPerClient, MaxConnections: limits.HTTPMaxConnections},
		Runtime:   Runtime{MemoryLimit: 1 << 30, GCPercent: 200},
		Log:       Log{Level: "info", Format: "json"},
		Telemetry: Telemetry{Traces: telemetry.TracingConfig{Exporter: "none", SampleRatio: 1, ServiceName: "sightline"}, Statsd: Statsd{Interval: 10 * time.Second}},
		sections:  make([]namedSection, 0, len(sections)),
	}
	for _, d := range sections {
		c.sections = append(c.sections, namedSection{d.Name, d.New()})
	}
	return c
}

// Load builds the configuration: defaults, then the YAML file (when path is
// not empty), then SIGHTLINE_* variables from env, then each "key=value" of
// sets. It validates the result. sections are the sink sections of the
// binary (its sink table).
func Load(path string, env []string, sets []string, sections ...SectionDef) (*Config, error) {
	c := Default(sections...)
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := c.decodeYAML(b); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(c, env); err != nil {
		return nil, err
	}
	for _, s := range sets {
		if err := Set(c, s); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks every section; each error names its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.NATS.URLs) == 0 {
		if _, _, err := net.SplitHostPort(c.NATS.Listen); err != nil {
			bad("nats.listen", "%q is not host:port", c.NATS.Listen)
		}
		if c.NATS.StoreDir == "" {
			bad("nats.store_dir", "must not be empty with the embedded server")
		}
		if _, _, err := net.SplitHostPort(c.NATS.Listen); err == nil && !loopbackAddr(c.NATS.Listen) && c.NATS.ServerConfig == "" && !c.NATS.Insecure {
			bad("nats.listen", "%q is beyond loopback without authentication: set nats.server_config (users and permissions, see docs/security-nats.md) or nats.insecure: true", c.NATS.Listen)
		}
	}
	if c.NATS.MaxPayload < 1024 || c.NATS.MaxPayload > 64<<20 {
		bad("nats.max_payload", "must be between 1024 and 67108864, got %d", c.NATS.MaxPayload)
	}
	if _, _, err := bus.ParseSync(c.NATS.Sync); err != nil {
		bad("nats.sync", "%v", err)
	}
	if c.NATS.StallTimeout < time.Second {
		bad("nats.stall_timeout", "must be at least 1s, got %s", c.NATS.StallTimeout)
	}
	if err := c.NATS.TLS.Validate("nats"); err != nil {
		errs = append(errs, err)
	}
	if err := c.NATS.Credentials.Validate("nats"); err != nil {
		errs = append(errs, err)
	}
	if c.Streams.Replicas < 1 || c.Streams.Replicas > 5 {
		bad("streams.replicas", "must be between 1 and 5, got %d", c.Streams.Replicas)
	}
	for name, l := range map[string]StreamLimits{"raw": c.Streams.Raw, "events": c.Streams.Events, "dlq": c.Streams.DLQ} {
		if l.MaxAge < 0 {
			bad("streams."+name+".max_age", "must not be negative")
		}
		if l.MaxMsgSize <= 0 || int(l.MaxMsgSize) > c.NATS.MaxPayload {
			bad("streams."+name+".max_msg_size", "must be between 1 and nats.max_payload (%d), got %d", c.NATS.MaxPayload, l.MaxMsgSize)
		}
		if l.Duplicates < 0 || (l.Duplicates > 0 && l.Duplicates < 100*time.Millisecond) || (l.MaxAge > 0 && l.Duplicates > l.MaxAge) {
			bad("streams."+name+".duplicates", "must be 0 (the server's default, 2m) or between 100ms (the least JetStream takes) and max_age, got %s", l.Duplicates)
		}
	}
	p := c.Processor
	if p.Consumer == "" {
		bad("processor.consumer", "must not be empty")
	}
	if p.MaxBodyBytes < 64 || p.MaxBodyBytes > int(c.Streams.Raw.MaxMsgSize) {
		bad("processor.max_body_bytes", "must be between 64 and streams.raw.max_msg_size (%d), got %d", c.Streams.Raw.MaxMsgSize, p.MaxBodyBytes)
	}
	for k := range p.Attributes {
		if !attrName(k) {
			bad("processor.attributes."+k, "attribute names are 1-20 lowercase letters or digits (CloudEvents extension names)")
		}
	}
	if p.Batch < 1 || p.Batch > 10000 {
		bad("processor.batch", "must be between 1 and 10000, got %d", p.Batch)
	}
	if p.Lanes < 1 || p.Lanes > 64 {
		bad("processor.lanes", "must be between 1 and 64, got %d", p.Lanes)
	}
	if p.Workers < 0 || p.MaxAckPending < 0 {
		bad("processor.workers", "workers and max_ack_pending must not be negative")
	}
	if p.AckWait < time.Second {
		bad("processor.ack_wait", "must be at least 1s, got %s", p.AckWait)
	}
	if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			bad("http.listen", "%q is not host:port (empty disables the HTTP server)", c.HTTP.Listen)
		}
	}
	if c.HTTP.Listen != "" && !c.HTTP.Loopback() && !c.HTTP.Auth.Enabled() && !c.HTTP.Insecure {
		bad("http.listen", "%s is not a loopback address and authentication is off: set http.auth.tokens_file or "+
			"http.auth.token_files (README, Security), or set http.insecure: true to serve without authentication", c.HTTP.Listen)
	}
	if err := pairError("http.tls_cert", c.HTTP.TLSCert, "http.tls_key", c.HTTP.TLSKey); err != nil {
		errs = append(errs, err)
	}
	for _, tf := range c.HTTP.Auth.TokenFiles {
		if err := httpauth.CheckTokenFileEntry(tf); err != nil {
			bad("http.auth.token_files", "%v", err)
		}
	}
	if c.HTTP.IngestMaxBody < 1024 {
		bad("http.ingest_max_body", "must be at least 1024")
	}
	if c.HTTP.IngestMaxItems < 1 {
		bad("http.ingest_max_items", "must be at least 1")
	}
	if c.HTTP.IngestMaxConcurrent < 1 {
		bad("http.ingest_max_concurrent", "must be at least 1")
	}
	if c.HTTP.IngestMaxPerClient < 1 {
		bad("http.ingest_max_per_client", "must be at least 1")
	}
	if c.HTTP.MaxConnections < 1 {
		bad("http.max_connections", "must be at least 1")
	}
	if c.HTTP.IngestReadTimeout < time.Second {
		bad("http.ingest_read_timeout", "must be at least 1s, got %s", c.HTTP.IngestReadTimeout)
	}
	if g := c.Runtime.GCPercent; g < -1 || (g > 0 && g < 25) {
		bad("runtime.gc_percent", "must be -1 (off), 0 (Go default) or at least 25, got %d", g)
	}
	if l := c.Runtime.MemoryLimit; l != 0 && l < 64<<20 {
		bad("runtime.memory_limit", "must be 0 (Go default) or at least 67108864 bytes, got %d", l)
	}
	if _, err := telemetry.ParseLevel(c.Log.Level); err != nil {
		bad("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format", "must be json or text, not %q", c.Log.Format)
	}
	if err := c.Telemetry.Traces.Validate("telemetry.traces"); err != nil {
		errs = append(errs, err)
	}
	if a := c.Telemetry.Statsd.Address; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("telemetry.statsd.address", "%q is not host:port", a)
		}
	}
	for _, s := range c.sections {
		if s.value.IsEnabled() {
			errs = append(errs, s.value.Validate())
		}
	}
	return errors.Join(errs...)
}

func attrName(s string) bool {
	if len(s) == 0 || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// BusOptions converts the nats section: the credentials with their files
// read (Credentials.Resolved) and the TLS files loaded
// (TLS.ClientConfig). An error names the key of the file at fault.
func (c *Config) BusOptions() (bus.Options, error) {
	o := c.NATS.Options
	cred, err := c.NATS.Credentials.Resolved("nats")
	if err != nil {
		return o, err
	}
	o.User, o.Password, o.Token, o.CredsFile, o.NKeyFile = cred.Username, cred.Password, cred.Token, cred.CredsFile, cred.NKeyFile
	if o.TLS, err = c.NATS.TLS.ClientConfig("nats"); err != nil {
		return o, err
	}
	if host, port, err := net.SplitHostPort(c.NATS.Listen); err == nil {
		o.Host = host
		fmt.Sscanf(port, "%d", &o.Port)
	}
	return o, nil
}

// StreamsConfig converts the streams section.
func (c *Config) StreamsConfig() bus.StreamsConfig { return c.Streams }

// YAML renders the configuration (secrets masked) for `sightline config`.
func (c *Config) YAML() ([]byte, error) { return c.render(true) }

// Changed reports whether next differs from c, secrets included (compared
// unmasked), ignoring the keys listed (the ones a reload applies).
func (c *Config) Changed(next *Config, ignore ...string) bool {
	a, b := c.clone(), next.clone()
	for _, k := range ignore {
		_ = a.clearKey(k)
		_ = b.clearKey(k)
	}
	ya, errA := a.render(false)
	yb, errB := b.render(false)
	return errA != nil || errB != nil || !bytes.Equal(ya, yb)
}
