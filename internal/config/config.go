// Package config is the Sightline configuration: a YAML file, SIGHTLINE_*
// environment overrides and --set flags, applied in that order over the
// embedded defaults and checked at start with errors that name the key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sightline/sightline/hosts"
	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/telemetry"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/graph"
	"github.com/sightline/sightline/sinks/index"
)

// Config is the whole configuration of the sightline binary.
type Config struct {
	NATS      NATS       `yaml:"nats"`
	Streams   Streams    `yaml:"streams"`
	Processor Processor  `yaml:"processor"`
	HTTP      HTTP       `yaml:"http"`
	Log       Log        `yaml:"log"`
	Runtime   Runtime    `yaml:"runtime"`
	Telemetry Telemetry  `yaml:"telemetry"`
	Graph     GraphSink  `yaml:"graph"`
	Index     IndexSink  `yaml:"index"`
	Archive   ArchiveSnk `yaml:"archive"`
	Hosts     HostsStore `yaml:"hosts"`
}

// HostsStore is the hosts section: the latest-state store of host
// snapshots behind `sightline search` (enabled plus the store's own keys).
type HostsStore struct {
	Enabled      bool `yaml:"enabled"`
	hosts.Config `yaml:",inline"`
}

// NATS says where JetStream is: an external cluster (urls) or the embedded
// server (listen, store_dir).
type NATS struct {
	URLs       []string `yaml:"urls"`
	Listen     string   `yaml:"listen"`
	StoreDir   string   `yaml:"store_dir"`
	MaxPayload int      `yaml:"max_payload"`
	Name       string   `yaml:"name"`
	CredsFile  string   `yaml:"creds_file"`
	NKeyFile   string   `yaml:"nkey_file"`
	User       string   `yaml:"user"`
	Password   string   `yaml:"password"`
	Token      string   `yaml:"token"`
	TLSCA      string   `yaml:"tls_ca"`
	TLSCert    string   `yaml:"tls_cert"`
	TLSKey     string   `yaml:"tls_key"`
}

// Streams are the limits of the three streams.
type Streams struct {
	Replicas int          `yaml:"replicas"`
	Raw      StreamLimits `yaml:"raw"`
	Events   StreamLimits `yaml:"events"`
	DLQ      StreamLimits `yaml:"dlq"`
}

// StreamLimits of one stream.
type StreamLimits struct {
	MaxAge     time.Duration `yaml:"max_age"`
	MaxBytes   int64         `yaml:"max_bytes"`
	MaxMsgSize int32         `yaml:"max_msg_size"`
	Duplicates time.Duration `yaml:"duplicates"`
}

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
}

// Runtime tunes the Go runtime of `sightline run`.
type Runtime struct {
	// MemoryLimit is the soft memory limit in bytes (GOMEMLIMIT wins when
	// set); 0 leaves the Go default.
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
	Address  string        `yaml:"address"`
	Prefix   string        `yaml:"prefix"`
	Interval time.Duration `yaml:"interval"`
}

// GraphSink is the graph section: enabled plus the sink's own keys.
type GraphSink struct {
	Enabled      bool `yaml:"enabled"`
	graph.Config `yaml:",inline"`
}

// IndexSink is the index section: enabled plus the sink's own keys.
type IndexSink struct {
	Enabled      bool `yaml:"enabled"`
	index.Config `yaml:",inline"`
}

// ArchiveSnk is the archive section: enabled plus the sink's own keys.
type ArchiveSnk struct {
	Enabled        bool `yaml:"enabled"`
	archive.Config `yaml:",inline"`
}

// Default is the embedded default: JetStream on 127.0.0.1:4222 with data
// under .sightline/, the processor, the embedded index and the archive in a
// local directory; the graph sink off until a Neo4j URI is configured.
func Default() *Config {
	s := bus.DefaultStreams()
	lim := func(l bus.StreamLimits) StreamLimits {
		return StreamLimits{MaxAge: l.MaxAge, MaxBytes: l.MaxBytes, MaxMsgSize: l.MaxMsgSize, Duplicates: l.Duplicates}
	}
	return &Config{
		NATS:    NATS{Listen: "127.0.0.1:4222", StoreDir: ".sightline/jetstream", MaxPayload: 8 << 20, Name: "sightline"},
		Streams: Streams{Replicas: s.Replicas, Raw: lim(s.Raw), Events: lim(s.Events), DLQ: lim(s.DLQ)},
		Processor: Processor{Enabled: true, Consumer: "processor", MaxBodyBytes: 512 << 10,
			Attributes: map[string]string{}, Batch: 256, Lanes: 2, AckWait: time.Minute},
		HTTP:      HTTP{Listen: "127.0.0.1:8080", IngestMaxBody: 8 << 20, IngestMaxItems: 10000},
		Runtime:   Runtime{MemoryLimit: 200 << 20, GCPercent: 200},
		Log:       Log{Level: "info", Format: "json"},
		Telemetry: Telemetry{Traces: telemetry.TracingConfig{Exporter: "none", SampleRatio: 1, ServiceName: "sightline"}, Statsd: Statsd{Interval: 10 * time.Second}},
		Graph:     GraphSink{Config: graph.DefaultConfig()},
		Index:     IndexSink{Enabled: true, Config: index.DefaultConfig()},
		Archive:   ArchiveSnk{Enabled: true, Config: archive.DefaultConfig()},
		Hosts:     HostsStore{Enabled: true, Config: hosts.DefaultConfig()},
	}
}

// Load builds the configuration: defaults, then the YAML file (when path is
// not empty), then SIGHTLINE_* variables from env, then each "key=value" of
// sets. It validates the result.
func Load(path string, env []string, sets []string) (*Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := decodeYAML(b, c); err != nil {
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

func decodeYAML(b []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)                                            // a misspelt key is an error, not a silent default
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // an empty file is fine
		return nameKeys(b, err)
	}
	return nil
}

var lineRE = regexp.MustCompile(`line (\d+): `)

// nameKeys rewrites "line 3: cannot unmarshal ..." as
// "processor.batch (line 3): cannot unmarshal ..." so every error names
// its key.
func nameKeys(src []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(src, &root) != nil {
		return err
	}
	keys := map[int]string{}
	var visit func(n *yaml.Node, path string)
	visit = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				visit(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if path != "" {
					k = path + "." + k
				}
				keys[n.Content[i].Line] = k
				visit(n.Content[i+1], k)
			}
		}
	}
	visit(&root, "")
	msg := lineRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
		n, _ := strconv.Atoi(lineRE.FindStringSubmatch(m)[1])
		if k, ok := keys[n]; ok {
			return k + " (line " + strconv.Itoa(n) + "): "
		}
		return m
	})
	return errors.New(msg)
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
	}
	if c.NATS.MaxPayload < 1024 || c.NATS.MaxPayload > 64<<20 {
		bad("nats.max_payload", "must be between 1024 and 67108864, got %d", c.NATS.MaxPayload)
	}
	if (c.NATS.TLSCert == "") != (c.NATS.TLSKey == "") {
		bad("nats.tls_cert", "tls_cert and tls_key must be set together")
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
		if l.Duplicates < 0 || (l.MaxAge > 0 && l.Duplicates > l.MaxAge) {
			bad("streams."+name+".duplicates", "must be between 0 and max_age, got %s", l.Duplicates)
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
	if c.HTTP.IngestMaxBody < 1024 {
		bad("http.ingest_max_body", "must be at least 1024")
	}
	if c.HTTP.IngestMaxItems < 1 {
		bad("http.ingest_max_items", "must be at least 1")
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
	if c.Graph.Enabled {
		errs = append(errs, c.Graph.Config.Validate())
	}
	if c.Index.Enabled {
		errs = append(errs, c.Index.Config.Validate())
	}
	if c.Archive.Enabled {
		errs = append(errs, c.Archive.Config.Validate())
	}
	if c.Hosts.Enabled {
		errs = append(errs, c.Hosts.Config.Validate())
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

// BusOptions converts the nats section.
func (c *Config) BusOptions() bus.Options {
	o := bus.Options{
		URLs: c.NATS.URLs, Name: c.NATS.Name, StoreDir: c.NATS.StoreDir, MaxPayload: c.NATS.MaxPayload,
		CredsFile: c.NATS.CredsFile, NKeyFile: c.NATS.NKeyFile, User: c.NATS.User, Password: c.NATS.Password,
		Token: c.NATS.Token, TLSCA: c.NATS.TLSCA, TLSCert: c.NATS.TLSCert, TLSKey: c.NATS.TLSKey,
	}
	if host, port, err := net.SplitHostPort(c.NATS.Listen); err == nil {
		o.Host = host
		fmt.Sscanf(port, "%d", &o.Port)
	}
	return o
}

// StreamsConfig converts the streams section.
func (c *Config) StreamsConfig() bus.StreamsConfig {
	lim := func(l StreamLimits) bus.StreamLimits {
		return bus.StreamLimits{MaxAge: l.MaxAge, MaxBytes: l.MaxBytes, MaxMsgSize: l.MaxMsgSize, Duplicates: l.Duplicates}
	}
	return bus.StreamsConfig{Replicas: c.Streams.Replicas, Raw: lim(c.Streams.Raw), Events: lim(c.Streams.Events), DLQ: lim(c.Streams.DLQ)}
}

// YAML renders the configuration (secrets masked) for `sightline config`.
func (c *Config) YAML() ([]byte, error) {
	cp := *c
	mask := func(s *string) {
		if *s != "" {
			*s = "********"
		}
	}
	mask(&cp.NATS.Password)
	mask(&cp.NATS.Token)
	mask(&cp.Graph.Password)
	mask(&cp.Index.Password)
	mask(&cp.Index.APIKey)
	mask(&cp.Archive.SecretKey)
	return yaml.Marshal(&cp)
}
