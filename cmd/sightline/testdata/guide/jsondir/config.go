package jsondir

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sightline/sightline/internal/stage"
)

// Config is the `jsondir` section of the Sightline configuration.
type Config struct {
	// Enabled starts the jsondir sink in `sightline run`.
	Enabled bool `yaml:"enabled"`
	// Dir receives one file <event id>.json per event.
	Dir string `yaml:"dir"`
	// Subject is the filter of the sink's consumer on the events stream.
	Subject string `yaml:"subject"`
	// Batch is how many events one Write receives at most.
	Batch int `yaml:"batch"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Dir: ".sightline/jsondir", Subject: stage.EventsPrefix + ">", Batch: 100}
}

// IsEnabled implements config.Section.
func (c *Config) IsEnabled() bool { return c.Enabled }

// Validate reports every invalid key as jsondir.<key>.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("jsondir.dir: must not be empty"))
	}
	if !strings.HasPrefix(c.Subject, stage.EventsPrefix) {
		errs = append(errs, fmt.Errorf("jsondir.subject: %q must be under %s", c.Subject, stage.EventsPrefix))
	}
	if c.Batch < 1 || c.Batch > 10000 {
		errs = append(errs, fmt.Errorf("jsondir.batch: must be between 1 and 10000, got %d", c.Batch))
	}
	return errors.Join(errs...)
}
