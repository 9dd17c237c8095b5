package graph

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
)

// Config is the `graph` section of the Sightline configuration.
type Config struct {
	// Enabled starts the graph sink (off until a Neo4j server is configured) in `sightline run`.
	Enabled bool `yaml:"enabled"`
	// URI of the Neo4j server, e.g. bolt://127.0.0.1:7687 or neo4j://host:7687.
	URI string `yaml:"uri"`
	// Basic auth: graph.username with graph.password or graph.password_file
	// (the file keeps the secret out of the configuration file).
	config.Credentials `yaml:",inline" accepts:"username,password"`
	// TLS of a TLS URI (bolt+s://, neo4j+s://): graph.ca_file,
	// graph.cert_file, graph.key_file, graph.insecure_skip_verify.
	config.TLS `yaml:",inline"`
	// Database is the Neo4j database name; empty means the server default.
	Database string `yaml:"database"`

	// Consumer is the durable consumer name on SIGHTLINE_EVENTS; Subject its filter.
	Consumer string `yaml:"consumer"`
	Subject  string `yaml:"subject"`

	// SweepMaxShare refuses a sweep that would delete more than this share
	// (0..1] of the scope's nodes and relationships, unless forced.
	SweepMaxShare float64 `yaml:"sweep_max_share"`
	// SweepWindow: the share guard also bounds what the scope's sweeps
	// delete together within this window (limits.GraphSweepWindow); 0
	// judges each sync alone.
	SweepWindow time.Duration `yaml:"sweep_window"`
	// SweepBatch bounds each delete transaction of a sweep (rows).
	SweepBatch int `yaml:"sweep_batch"`
	// WriteChunk bounds the rows of one UNWIND statement.
	WriteChunk int `yaml:"write_chunk"`
	// RetryTime bounds the driver's retries of transient errors inside one
	// Write; past it the error goes back to the router, which naks.
	RetryTime time.Duration `yaml:"retry_time"`
	// MaxTagSkew rejects parts whose tag (ms since 1970) is further than this
	// ahead of the sink's clock: one far-future sync would freeze its scope.
	MaxTagSkew time.Duration `yaml:"max_tag_skew"`
	// OpenSyncMaxAge: a sync still open after this long is logged and
	// counted in sightline_graph_open_syncs_over_age (alert rule in
	// deploy/prometheus/alerts.yml).
	OpenSyncMaxAge time.Duration `yaml:"open_sync_max_age"`
}

// DefaultConfig returns the defaults: local Neo4j, 50% share guard,
// 10,000-row sweep batches.
func DefaultConfig() Config {
	return Config{
		Enabled:        false,
		URI:            "bolt://127.0.0.1:7687",
		Credentials:    config.Credentials{Username: "neo4j"},
		Consumer:       "graph",
		Subject:        stage.EventsPrefix + "snapshot.>",
		SweepMaxShare:  0.5,
		SweepWindow:    limits.GraphSweepWindow,
		SweepBatch:     10000,
		WriteChunk:     5000,
		RetryTime:      10 * time.Second,
		MaxTagSkew:     limits.GraphMaxTagSkew,
		OpenSyncMaxAge: time.Hour,
	}
}

// IsEnabled implements config.Section.
func (c *Config) IsEnabled() bool { return c.Enabled }

// Validate reports every invalid key as graph.<key>.
func (c Config) Validate() error {
	var errs []error
	if c.URI == "" {
		errs = append(errs, errors.New("graph.uri: must not be empty"))
	} else if !strings.Contains(c.URI, "://") {
		errs = append(errs, fmt.Errorf("graph.uri: %q is not a URI (bolt://host:7687 or neo4j://host:7687)", c.URI))
	}
	if key := c.TLS.FirstSet("graph"); key != "" && !strings.HasPrefix(c.URI, "bolt+s://") && !strings.HasPrefix(c.URI, "neo4j+s://") {
		errs = append(errs, fmt.Errorf("%s: set, but graph.uri %q does not use TLS (bolt+s:// or neo4j+s://)", key, c.URI))
	}
	errs = append(errs, c.TLS.Validate("graph"))
	errs = append(errs, c.Credentials.Validate("graph"))
	if c.Consumer == "" {
		errs = append(errs, errors.New("graph.consumer: must not be empty"))
	}
	if !strings.HasPrefix(c.Subject, stage.EventsPrefix) {
		errs = append(errs, fmt.Errorf("graph.subject: %q must be under sightline.events.", c.Subject))
	}
	if c.SweepMaxShare <= 0 || c.SweepMaxShare > 1 {
		errs = append(errs, fmt.Errorf("graph.sweep_max_share: must be between 0 (exclusive) and 1, got %v", c.SweepMaxShare))
	}
	if c.SweepBatch < 1 || c.SweepBatch > 1_000_000 {
		errs = append(errs, fmt.Errorf("graph.sweep_batch: must be between 1 and 1000000, got %d", c.SweepBatch))
	}
	if c.WriteChunk < 1 || c.WriteChunk > 100_000 {
		errs = append(errs, fmt.Errorf("graph.write_chunk: must be between 1 and 100000, got %d", c.WriteChunk))
	}
	if c.RetryTime < 0 {
		errs = append(errs, fmt.Errorf("graph.retry_time: must not be negative, got %s", c.RetryTime))
	}
	if c.SweepWindow < 0 {
		errs = append(errs, fmt.Errorf("graph.sweep_window: must not be negative, got %s", c.SweepWindow))
	}
	if c.MaxTagSkew < time.Second {
		errs = append(errs, fmt.Errorf("graph.max_tag_skew: must be at least 1s, got %s", c.MaxTagSkew))
	}
	if c.OpenSyncMaxAge < time.Second {
		errs = append(errs, fmt.Errorf("graph.open_sync_max_age: must be at least 1s, got %s", c.OpenSyncMaxAge))
	}
	return errors.Join(errs...)
}
