package config

import (
	"reflect"
)

// A Section is one sink's part of the configuration, owned by the sink's
// package: a pointer to a struct whose yaml tags name its keys (an
// `enabled` key among them), whose `secret:"true"` fields are masked by
// `config show`, and whose Validate reports every bad key as
// <section>.<key>. The configuration holds the sections the binary's sink
// table lists (SectionDef), so adding a sink edits nothing here.
type Section interface {
	// IsEnabled reports whether `sightline run` starts the sink.
	IsEnabled() bool
	// Validate reports every invalid key, each named <section>.<key>.
	Validate() error
}

// SectionDef declares a section: its top-level key and its defaults.
type SectionDef struct {
	// Name is the top-level key (graph, index, ...).
	Name string
	// New returns a fresh section holding the defaults.
	New func() Section
}

type namedSection struct {
	name  string
	value Section
}

// Section returns the section named name, nil when the binary has none.
func (c *Config) Section(name string) Section {
	for _, s := range c.sections {
		if s.name == name {
			return s.value
		}
	}
	return nil
}

// SectionNames lists the sections in the order of the sink table.
func (c *Config) SectionNames() []string {
	out := make([]string, len(c.sections))
	for i, s := range c.sections {
		out[i] = s.name
	}
	return out
}

// clone returns a copy of c whose sections are copies too (a reload must
// not change the running configuration's sections).
func (c *Config) clone() *Config {
	cp := *c
	cp.sections = make([]namedSection, len(c.sections))
	for i, s := range c.sections {
		v := reflect.New(reflect.TypeOf(s.value).Elem())
		v.Elem().Set(reflect.ValueOf(s.value).Elem())
		cp.sections[i] = namedSection{s.name, v.Interface().(Section)}
	}
	return &cp
}

// each calls f for the core configuration and every section with the
// prefix of its keys ("" for the core, "index." for the index section).
func (c *Config) each(f func(prefix string, v reflect.Value)) {
	f("", reflect.ValueOf(c).Elem())
	for _, s := range c.sections {
		f(s.name+".", reflect.ValueOf(s.value).Elem())
	}
}
