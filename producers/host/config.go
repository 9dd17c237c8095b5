package host

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sightline/sightline/internal/stage"

	"github.com/sightline/sightline/schemas"
)

// Config is the collector configuration file (`sightline collect host
// --config FILE`).
type Config struct {
	// Host is the host name; default os.Hostname().
	Host string `yaml:"host"`
	// Labels scope queries: site, cluster, role, env (any identifier keys).
	Labels map[string]string `yaml:"labels"`
	// Files are paths or globs (filepath.Match syntax). A literal path that
	// cannot be read and a glob matching nothing are reported as objects
	// with an error.
	Files []string `yaml:"files"`
	// Commands are run with a timeout; their stdout is the object.
	Commands []Command `yaml:"commands"`
	// Facts publishes the "facts" JSON document (hostname, OS, kernel,
	// CPUs, memory, addresses, labels, ExtraFacts).
	Facts      bool           `yaml:"facts"`
	ExtraFacts map[string]any `yaml:"extra_facts"`

	// StateFile keeps the md5 last sent per object (for "still the same"
	// records) and the last tag.
	StateFile string `yaml:"state_file"`
	// FullEvery resends full content even when unchanged once this long
	// has passed since it was last sent in full (heals a wiped store).
	FullEvery time.Duration `yaml:"full_every"`
	// CommandTimeout is the default timeout of a command.
	CommandTimeout time.Duration `yaml:"command_timeout"`
	// FileTimeout bounds the reading of one file (a huge file, or a /proc
	// or /sys file whose read blocks); the object gets an error.
	FileTimeout time.Duration `yaml:"file_timeout"`
	// MaxObjectBytes cuts the content of one object (truncated: true).
	MaxObjectBytes int `yaml:"max_object_bytes"`
	// MaxPartBytes bounds the JSON body of one message.
	MaxPartBytes int `yaml:"max_part_bytes"`
	// Subject is the prefix parts are published under: the collector of
	// host H publishes on <subject>.H, the subject NATS permissions give
	// that host alone (see SubjectFor).
	Subject string `yaml:"subject"`
}

// Command is one command whose output is an object.
type Command struct {
	// Name is the object name, sysops-api style ("sysctl-a").
	Name string `yaml:"name"`
	// Run is the argv (no shell). Exactly one of Run and Shell.
	Run []string `yaml:"run"`
	// Shell is run with /bin/sh -c.
	Shell   string        `yaml:"shell"`
	Timeout time.Duration `yaml:"timeout"`
}

// Subject is the default subject prefix of host snapshots; the snapshots of
// host H travel on Subject + "." + H.
const Subject = stage.RawPrefix + "snapshot.host"

// SubjectFor is the subject the collector of hostname publishes on:
// prefix.hostname (a dotted host name spans several subject tokens). The
// processor refuses a sync on it whose scope is not host:<hostname>.
func SubjectFor(prefix, hostname string) string { return prefix + "." + hostname }

// InboxPrefix is the reply-subject prefix of the collector of hostname:
// one subject token per host ('.' becomes '~', which host names cannot
// hold), so the server can let each collector subscribe to its own
// replies only (_INBOX.host.<token>.>).
func InboxPrefix(hostname string) string {
	return "_INBOX.host." + strings.ReplaceAll(hostname, ".", "~")
}

// Defaults for the collector.
const (
	DefaultMaxObjectBytes = 256 << 10
	DefaultMaxPartBytes   = 448 << 10
	DefaultCommandTimeout = 30 * time.Second
	DefaultFullEvery      = 24 * time.Hour
	DefaultFileTimeout    = time.Minute
)

// DefaultConfig returns a config with every default set and nothing to
// collect.
func DefaultConfig() Config {
	st := "/var/lib/sightline/host-state.json"
	if d, err := os.UserCacheDir(); err == nil && os.Geteuid() != 0 {
		st = filepath.Join(d, "sightline", "host-state.json")
	}
	return Config{
		Facts:          true,
		StateFile:      st,
		FullEvery:      DefaultFullEvery,
		CommandTimeout: DefaultCommandTimeout,
		FileTimeout:    DefaultFileTimeout,
		MaxObjectBytes: DefaultMaxObjectBytes,
		MaxPartBytes:   DefaultMaxPartBytes,
		Subject:        Subject,
	}
}

// LoadConfig reads a YAML collector config over the defaults. Unknown keys
// are errors.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("host: config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("host: config %s: %w", path, err)
	}
	return c, c.Validate()
}

var (
	labelRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
)

// Validate reports every invalid key by name.
func (c *Config) Validate() error {
	var errs []error
	if c.Host != "" && !schemas.ValidHostname(c.Host) {
		errs = append(errs, fmt.Errorf("host: %q must be letters, digits, '_' or '-', labels separated by single dots (up to 250)", c.Host))
	}
	for k := range c.Labels {
		if !labelRe.MatchString(k) || k == "labels" || strings.HasPrefix(k, "fact_") || reservedProp[k] {
			errs = append(errs, fmt.Errorf("labels.%s: a label name must be an identifier, not a reserved name", k))
		}
	}
	seen := map[string]bool{}
	for i, cmd := range c.Commands {
		switch {
		case cmd.Name == "":
			errs = append(errs, fmt.Errorf("commands[%d].name: must not be empty", i))
		case seen[cmd.Name]:
			errs = append(errs, fmt.Errorf("commands[%d].name: %q is used twice", i, cmd.Name))
		case cmd.Name == FactsName && c.Facts:
			errs = append(errs, fmt.Errorf("commands[%d].name: %q is the facts object", i, cmd.Name))
		}
		seen[cmd.Name] = true
		if (len(cmd.Run) == 0) == (cmd.Shell == "") {
			errs = append(errs, fmt.Errorf("commands[%d]: set exactly one of run and shell", i))
		}
		if cmd.Timeout < 0 {
			errs = append(errs, fmt.Errorf("commands[%d].timeout: must not be negative", i))
		}
	}
	for i, f := range c.Files {
		if f == "" {
			errs = append(errs, fmt.Errorf("files[%d]: must not be empty", i))
		} else if _, err := filepath.Match(f, ""); err != nil {
			errs = append(errs, fmt.Errorf("files[%d]: %q is not a valid glob: %w", i, f, err))
		}
	}
	if c.CommandTimeout <= 0 {
		errs = append(errs, errors.New("command_timeout: must be positive"))
	}
	if c.FileTimeout <= 0 {
		errs = append(errs, errors.New("file_timeout: must be positive"))
	}
	if c.FullEvery < 0 {
		errs = append(errs, errors.New("full_every: must not be negative (0 disables)"))
	}
	if c.MaxObjectBytes < 1 {
		errs = append(errs, errors.New("max_object_bytes: must be positive"))
	}
	if c.MaxPartBytes < 4096 {
		errs = append(errs, errors.New("max_part_bytes: must be at least 4096"))
	}
	if !strings.HasPrefix(c.Subject, stage.RawPrefix+"snapshot.") || strings.ContainsAny(c.Subject, " *>") || strings.HasSuffix(c.Subject, ".") || strings.Contains(c.Subject, "..") {
		errs = append(errs, fmt.Errorf("subject: %q must be a subject under sightline.raw.snapshot. (the host name is appended)", c.Subject))
	}
	return errors.Join(errs...)
}

var reservedProp = map[string]bool{"id": true, "lastupdated": true, "firstseen": true, "syncscope": true, "correlationid": true}
