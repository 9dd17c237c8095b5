package archive

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/stage"
)

// Compression names accepted in Config.Compression.
const (
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
	CompressionNone = "none"
)

// Format names accepted in Config.Format.
const (
	FormatNDJSON  = "ndjson"
	FormatParquet = "parquet"
)

// DefaultDir is the local archive directory of the embedded default.
const DefaultDir = ".sightline/archive"

// Config is the `archive` section of the Sightline configuration.
type Config struct {
	// Enabled starts the archive sink in `sightline run`.
	Enabled bool `yaml:"enabled"`
	// URL is where objects go: "s3://bucket/prefix", "file:///abs/dir" or a plain
	// directory path. Empty means DefaultDir.
	URL string `yaml:"url"`
	// Endpoint of an S3-compatible server (http://127.0.0.1:9000); empty for AWS.
	Endpoint string `yaml:"endpoint"`
	// Region of the bucket; S3-compatible servers usually accept us-east-1.
	Region string `yaml:"region"`
	// The access key ID is archive.username, the secret access key
	// archive.password or archive.password_file (config.Credentials says
	// why); none set means the AWS default chain (env, profile, IMDS).
	config.Credentials `yaml:",inline" accepts:"username,password"`
	// TLS of an https:// Endpoint: archive.ca_file, archive.cert_file,
	// archive.key_file, archive.insecure_skip_verify.
	config.TLS `yaml:",inline"`
	// PathStyle addresses buckets as endpoint/bucket/key (needed by MinIO, versitygw).
	PathStyle bool `yaml:"path_style"`

	// Compression of NDJSON objects: gzip (default), zstd or none.
	Compression string `yaml:"compression"`
	// Format of data objects: ndjson (default) or parquet.
	Format string `yaml:"format"`
	// ManifestMaxIDs is how many distinct correlation IDs a manifest lists
	// verbatim; above it the manifest holds a bloom filter instead.
	ManifestMaxIDs int `yaml:"manifest_max_ids"`
	// BloomFalsePositive is the target false-positive rate of those bloom filters.
	BloomFalsePositive float64 `yaml:"bloom_false_positive"`
	// Concurrency is how many partition objects of one batch are uploaded at once.
	Concurrency int `yaml:"concurrency"`
	// PutTimeout bounds one Write (all its PUTs); the batch is retried after it.
	PutTimeout time.Duration `yaml:"put_timeout"`
	// PartSize is the multipart upload part size (the upload buffer per object).
	PartSize int `yaml:"part_size"`
	// WindowSequences is W: an object holds the events of one partition
	// whose stream sequences fall in [k*W, (k+1)*W). An event's object
	// depends on the event alone, never on how it was batched.
	WindowSequences int `yaml:"window_sequences"`
	// LeaseTTL is the TTL of the per-window leases (a JetStream key-value
	// bucket) that serialize merges of an S3 archive across processes
	// under `sightline run`; 0 turns them off (merges then rely on the
	// store's conditional PUT alone). A killed worker's lease frees its
	// window after at most this long.
	LeaseTTL time.Duration `yaml:"lease_ttl"`

	// Subject is the filter subject of the archive consumer.
	Subject string `yaml:"subject"`
	// Batch* are the router batch settings recommended for the archive consumer:
	// one Write becomes one object per partition, so large batches make large
	// objects. The sink does not buffer across Write calls (Write returning nil
	// means ack, and it must only ack what is stored).
	BatchMaxMessages int           `yaml:"batch_max_messages"`
	BatchMaxBytes    int           `yaml:"batch_max_bytes"`
	BatchMaxAge      time.Duration `yaml:"batch_max_age"`
}

// DefaultConfig is the production default: a local directory, gzip NDJSON,
// batches of up to 5,000 messages / 16 MiB / 2 minutes (objects of a few
// MB compressed; the batch is held in memory until its Write is acked).
func DefaultConfig() Config {
	return Config{
		Enabled:            true,
		URL:                DefaultDir,
		Region:             "us-east-1",
		Compression:        CompressionGzip,
		Format:             FormatNDJSON,
		ManifestMaxIDs:     10000,
		BloomFalsePositive: 0.01,
		Concurrency:        4,
		PutTimeout:         5 * time.Minute,
		PartSize:           8 << 20,
		WindowSequences:    20000,
		LeaseTTL:           20 * time.Second,
		Subject:            stage.EventsPrefix + ">",
		BatchMaxMessages:   5000,
		BatchMaxBytes:      16 << 20,
		BatchMaxAge:        2 * time.Minute,
	}
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid archive configuration")

// IsEnabled implements config.Section.
func (c *Config) IsEnabled() bool { return c.Enabled }

// Validate checks the configuration; errors name the key as archive.<key>.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: archive.%s: %s", ErrConfig, key, fmt.Sprintf(format, args...)))
	}
	if strings.HasPrefix(c.URL, "s3://") {
		if bucket, _ := splitS3URL(c.URL); bucket == "" {
			bad("url", "%q has no bucket (want s3://bucket/prefix)", c.URL)
		}
	} else if strings.Contains(c.URL, "://") && !strings.HasPrefix(c.URL, "file://") {
		bad("url", "%q: scheme must be s3:// or file:// (or a plain directory path)", c.URL)
	}
	if key := c.TLS.FirstSet("archive"); key != "" && !strings.HasPrefix(c.Endpoint, "https://") {
		errs = append(errs, fmt.Errorf("%w: %s: set, but archive.endpoint %q is not https://", ErrConfig, key, c.Endpoint))
	}
	if err := c.TLS.Validate("archive"); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrConfig, err))
	}
	if err := c.Credentials.Validate("archive"); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrConfig, err))
	}
	if c.Username != "" && c.Password == "" && c.PasswordFile == "" {
		bad("password", "archive.username (the access key ID) is set: set its secret key as archive.password or archive.password_file")
	}
	switch c.Compression {
	case CompressionGzip, CompressionZstd, CompressionNone, "":
	default:
		bad("compression", "must be gzip, zstd or none, not %q", c.Compression)
	}
	switch c.Format {
	case FormatNDJSON, "":
	case FormatParquet:
		if !parquetAvailable {
			bad("format", "parquet is not available in this build; use ndjson")
		}
	default:
		bad("format", "must be ndjson or parquet, not %q", c.Format)
	}
	if c.ManifestMaxIDs < 0 {
		bad("manifest_max_ids", "must be >= 0")
	}
	if c.BloomFalsePositive <= 0 || c.BloomFalsePositive >= 0.5 {
		bad("bloom_false_positive", "must be between 0 and 0.5 (exclusive)")
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		bad("concurrency", "must be between 1 and 64")
	}
	if c.PutTimeout <= 0 {
		bad("put_timeout", "must be positive")
	}
	if c.PartSize < 5<<20 {
		bad("part_size", "must be at least 5 MiB (the S3 multipart minimum)")
	}
	if c.WindowSequences < 0 || c.WindowSequences > 10_000_000 {
		bad("window_sequences", "must be between 1 and 10000000 (0: the default 20000)")
	}
	if c.LeaseTTL != 0 && c.LeaseTTL < 2*time.Second {
		bad("lease_ttl", "must be 0 (off) or at least 2s, got %s", c.LeaseTTL)
	}
	if c.Subject == "" {
		bad("subject", "must not be empty")
	}
	if c.BatchMaxMessages < 1 {
		bad("batch_max_messages", "must be at least 1")
	}
	if c.BatchMaxBytes < 1 {
		bad("batch_max_bytes", "must be at least 1")
	}
	if c.BatchMaxAge <= 0 {
		bad("batch_max_age", "must be positive")
	}
	return errors.Join(errs...)
}

func (c Config) compression() string {
	if c.Compression == "" {
		return CompressionGzip
	}
	return c.Compression
}

func (c Config) format() string {
	if c.Format == "" {
		return FormatNDJSON
	}
	return c.Format
}

// splitS3URL splits s3://bucket/prefix.
func splitS3URL(u string) (bucket, prefix string) {
	rest := strings.TrimPrefix(u, "s3://")
	bucket, prefix, _ = strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return bucket, prefix
}
