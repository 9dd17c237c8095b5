package index

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/index/esclient"
)

// Flavors of remote index servers.
const (
	FlavorAuto          = esclient.FlavorAuto
	FlavorOpenSearch    = esclient.FlavorOpenSearch
	FlavorElasticsearch = esclient.FlavorElasticsearch
)

// DefaultEmbeddedPath is where the embedded index lives when no
// remote index is configured.
const DefaultEmbeddedPath = ".sightline/index"

// Config is the `index` section of the Sightline configuration.
type Config struct {
	// Enabled starts the index sink in `sightline run`.
	Enabled bool `yaml:"enabled"`
	// URLs of the OpenSearch / Elasticsearch nodes (http://127.0.0.1:9200).
	// Empty means the embedded index at EmbeddedPath.
	URLs []string `yaml:"urls"`
	// Flavor is auto (detected from the server), opensearch or elasticsearch.
	Flavor string `yaml:"flavor"`
	// Prefix of every index: <prefix>-<kind>-YYYY.MM.DD. The index template
	// <prefix>-events covers <prefix>-*.
	Prefix string `yaml:"prefix"`
	// Shards and Replicas of each daily index.
	Shards   int `yaml:"shards"`
	Replicas int `yaml:"replicas"`

	// Authentication: basic auth (index.username with index.password or
	// index.password_file), or an API key as index.token or
	// index.token_file (sent as "Authorization: ApiKey <token>").
	config.Credentials `yaml:",inline" accepts:"username,password,token"`
	// TLS of https:// URLs: index.ca_file, index.cert_file,
	// index.key_file, index.insecure_skip_verify.
	config.TLS `yaml:",inline"`

	// MaxBulkBytes caps one _bulk request body; a larger batch is split.
	MaxBulkBytes int `yaml:"max_bulk_bytes"`
	// MaxDocBytes rejects (to the DLQ) a single document larger than this.
	MaxDocBytes int `yaml:"max_doc_bytes"`
	// Timeout of one HTTP request.
	Timeout time.Duration `yaml:"timeout"`

	// Retention: daily indices older than this are deleted every
	// RetentionInterval. Zero keeps everything.
	Retention         time.Duration `yaml:"retention"`
	RetentionInterval time.Duration `yaml:"retention_interval"`

	// EmbeddedPath is the directory of the embedded index used when
	// URLs is empty; "" with Embedded in memory is for tests only.
	EmbeddedPath string `yaml:"embedded_path"`

	// Subjects the index consumers read: conformed events and dead letters.
	EventsSubject string `yaml:"events_subject"`
	DLQSubject    string `yaml:"dlq_subject"`
}

// DefaultConfig is the embedded index with 30 days of retention.
func DefaultConfig() Config {
	return Config{
		Enabled:           true,
		Flavor:            FlavorAuto,
		Prefix:            "sightline",
		Shards:            1,
		Replicas:          0,
		MaxBulkBytes:      8 << 20,
		MaxDocBytes:       4 << 20,
		Timeout:           30 * time.Second,
		Retention:         30 * 24 * time.Hour,
		RetentionInterval: time.Hour,
		EmbeddedPath:      DefaultEmbeddedPath,
		EventsSubject:     stage.EventsPrefix + ">",
		DLQSubject:        stage.DLQPrefix + ">",
	}
}

// Remote reports whether a remote index server is configured.
func (c Config) Remote() bool { return len(c.URLs) > 0 }

var prefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("invalid index configuration")

// IsEnabled implements config.Section.
func (c *Config) IsEnabled() bool { return c.Enabled }

// Validate checks the section; errors name the key as index.<key>.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: index.%s: %s", ErrConfig, key, fmt.Sprintf(format, args...)))
	}
	for i, u := range c.URLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			bad(fmt.Sprintf("urls[%d]", i), "%q is not an http(s) URL (a password with %% / # ? @ must be percent-encoded, or set index.password)", withoutUserinfo(u))
		}
	}
	switch c.Flavor {
	case "", FlavorAuto, FlavorOpenSearch, FlavorElasticsearch:
	default:
		bad("flavor", "must be auto, opensearch or elasticsearch, not %q", c.Flavor)
	}
	if !prefixRE.MatchString(c.Prefix) {
		bad("prefix", "must match %s (lowercase index name), got %q", prefixRE, c.Prefix)
	}
	if c.Shards < 0 || c.Replicas < 0 {
		bad("shards", "shards and replicas must not be negative")
	}
	if err := c.Credentials.Validate("index"); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrConfig, err))
	}
	if err := c.TLS.Validate("index"); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrConfig, err))
	}
	if c.MaxBulkBytes < 1024 {
		bad("max_bulk_bytes", "must be at least 1024")
	}
	if c.MaxDocBytes < 256 || c.MaxDocBytes > c.MaxBulkBytes {
		bad("max_doc_bytes", "must be between 256 and max_bulk_bytes")
	}
	if c.Timeout <= 0 {
		bad("timeout", "must be positive")
	}
	if c.Retention < 0 {
		bad("retention", "must not be negative")
	}
	if c.Retention > 0 && c.RetentionInterval <= 0 {
		bad("retention_interval", "must be positive when retention is set")
	}
	if !strings.HasPrefix(c.EventsSubject, stage.EventsPrefix) {
		bad("events_subject", "must be under sightline.events., got %q", c.EventsSubject)
	}
	if !strings.HasPrefix(c.DLQSubject, stage.DLQPrefix) {
		bad("dlq_subject", "must be under sightline.dlq., got %q", c.DLQSubject)
	}
	return errors.Join(errs...)
}

// withDefaults fills the keys left empty with their defaults and reads the
// credentials' files (config.Credentials.Resolved; a file that cannot be
// read is left for Validate to report, naming its key).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if cred, err := c.Credentials.Resolved("index"); err == nil {
		c.Credentials = cred
	}
	if c.Flavor == "" {
		c.Flavor = d.Flavor
	}
	if c.Prefix == "" {
		c.Prefix = d.Prefix
	}
	if c.Shards == 0 {
		c.Shards = d.Shards
	}
	if c.MaxBulkBytes == 0 {
		c.MaxBulkBytes = d.MaxBulkBytes
	}
	if c.MaxDocBytes == 0 {
		c.MaxDocBytes = min(d.MaxDocBytes, c.MaxBulkBytes)
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = d.RetentionInterval
	}
	if c.EventsSubject == "" {
		c.EventsSubject = d.EventsSubject
	}
	if c.DLQSubject == "" {
		c.DLQSubject = d.DLQSubject
	}
	return c
}
