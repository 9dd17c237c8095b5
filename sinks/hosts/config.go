package hosts

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sightline/sightline/internal/stage"
)

// Config is the `hosts` section of the Sightline configuration.
type Config struct {
	// Enabled starts the hosts sink (the store behind `sightline search`) in `sightline run`.
	Enabled bool `yaml:"enabled"`
	// Bucket is the JetStream key-value bucket of the latest-state store
	// (stream KV_<bucket>).
	Bucket string `yaml:"bucket"`
	// History is how many versions of each key are kept (2: the current
	// and the previous one, for diffs).
	History int `yaml:"history"`
	// MaxBytes bounds the bucket (0: unlimited).
	MaxBytes int64 `yaml:"max_bytes"`
	// Replicas of the bucket's stream in a cluster.
	Replicas int `yaml:"replicas"`
	// Compress stores contents as S2 blocks (smaller store, less to read).
	Compress bool `yaml:"compress"`
	// Consumer is the durable consumer on SIGHTLINE_EVENTS; Subject its filter.
	Consumer string `yaml:"consumer"`
	Subject  string `yaml:"subject"`
	// DefaultScope of `sightline search`: global, site or local.
	DefaultScope string `yaml:"default_scope"`
	// Local are the labels of the local scope (e.g. {site: lva1, cluster:
	// c3}); the site scope uses only its site label.
	Local map[string]string `yaml:"local"`
	// Workers decode and grep contents in parallel (0: one per CPU).
	Workers int `yaml:"workers"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:      true,
		Bucket:       "sightline_hosts",
		History:      2,
		Compress:     true,
		Consumer:     "hosts",
		Subject:      stage.EventsPrefix + "snapshot.host.>",
		DefaultScope: "global",
	}
}

// Filters are the consumer's subjects: Subject, and for the default
// "<prefix>.>" also the bare prefix, where collectors published before the
// subject carried the host (sightline.raw.snapshot.host).
func (c Config) Filters() []string {
	if p, ok := strings.CutSuffix(c.Subject, ".>"); ok && p == legacySubject {
		return []string{c.Subject, p}
	}
	return []string{c.Subject}
}

// legacySubject is the events subject of host snapshots published on the
// bare sightline.raw.snapshot.host.
const legacySubject = "sightline.events.snapshot.host"

var bucketRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// IsEnabled implements config.Section.
func (c *Config) IsEnabled() bool { return c.Enabled }

// Validate reports every invalid key as hosts.<key>.
func (c Config) Validate() error {
	var errs []error
	if !bucketRe.MatchString(c.Bucket) {
		errs = append(errs, fmt.Errorf("hosts.bucket: must be 1-64 letters, digits, '_' or '-', got %q", c.Bucket))
	}
	if c.History < 2 || c.History > 64 {
		errs = append(errs, fmt.Errorf("hosts.history: must be between 2 (current and previous, for diffs) and 64, got %d", c.History))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("hosts.max_bytes: must not be negative, got %d", c.MaxBytes))
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("hosts.replicas: must be between 0 and 5, got %d", c.Replicas))
	}
	if c.Consumer == "" || strings.ContainsAny(c.Consumer, ". *>") {
		errs = append(errs, fmt.Errorf("hosts.consumer: must be a non-empty name without '.', '*', '>' or spaces, got %q", c.Consumer))
	}
	if !strings.HasPrefix(c.Subject, stage.EventsPrefix+"snapshot.") {
		errs = append(errs, fmt.Errorf("hosts.subject: %q must be under sightline.events.snapshot.", c.Subject))
	}
	switch c.DefaultScope {
	case "global", "site", "local":
	default:
		errs = append(errs, fmt.Errorf("hosts.default_scope: must be global, site or local, got %q", c.DefaultScope))
	}
	if c.DefaultScope == "site" && c.Local["site"] == "" {
		errs = append(errs, errors.New("hosts.local: default_scope site needs local.site"))
	}
	if c.DefaultScope == "local" && len(c.Local) == 0 {
		errs = append(errs, errors.New("hosts.local: default_scope local needs the local labels (e.g. {site: lva1, cluster: c3})"))
	}
	if c.Workers < 0 || c.Workers > 256 {
		errs = append(errs, fmt.Errorf("hosts.workers: must be between 0 and 256, got %d", c.Workers))
	}
	return errors.Join(errs...)
}
