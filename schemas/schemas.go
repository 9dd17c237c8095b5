// Package schemas holds the JSON Schemas of every Sightline event and the Go
// types that match them. Validation uses github.com/santhosh-tekuri/jsonschema.
package schemas

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed *.schema.json
var files embed.FS

// Kinds of events.
const (
	KindMetric   = "metric"
	KindLog      = "log"
	KindSnapshot = "snapshot"
)

// Kinds lists the known kinds in a stable order.
var kinds = []string{KindMetric, KindLog, KindSnapshot}

// Kinds returns the known kinds.
func Kinds() []string { return append([]string(nil), kinds...) }

// KnownKind reports whether k is a known kind.
func KnownKind(k string) bool {
	return k == KindMetric || k == KindLog || k == KindSnapshot
}

const baseURL = "https://sightline.dev/schemas/"

// Validator validates events and payloads against the embedded schemas.
// It is safe for concurrent use.
type Validator struct {
	envelope *jsonschema.Schema
	payload  map[string]*jsonschema.Schema
	shapes   map[string]*shapeCache // kinds whose schema reads only property names
}

// NewValidator compiles the embedded schemas.
func NewValidator() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil, fmt.Errorf("schemas: list: %w", err)
	}
	for _, e := range entries {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, fmt.Errorf("schemas: read %s: %w", e.Name(), err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schemas: parse %s: %w", e.Name(), err)
		}
		if err := c.AddResource(baseURL+e.Name(), doc); err != nil {
			return nil, fmt.Errorf("schemas: add %s: %w", e.Name(), err)
		}
	}
	v := &Validator{payload: map[string]*jsonschema.Schema{}, shapes: map[string]*shapeCache{}}
	if v.envelope, err = c.Compile(baseURL + "envelope.schema.json"); err != nil {
		return nil, fmt.Errorf("schemas: compile envelope: %w", err)
	}
	for _, k := range kinds {
		s, err := c.Compile(baseURL + k + ".schema.json")
		if err != nil {
			return nil, fmt.Errorf("schemas: compile %s: %w", k, err)
		}
		v.payload[k] = s
		if keySetOnly(s) {
			v.shapes[k] = newShapeCache()
		}
	}
	return v, nil
}

// Source returns the text of one embedded schema ("envelope", "metric", ...).
func Source(name string) ([]byte, error) {
	return files.ReadFile(name + ".schema.json")
}

// ValidatePayload validates a decoded payload (from Decode) of a kind.
func (v *Validator) ValidatePayload(kind string, doc any) error {
	s, ok := v.payload[kind]
	if !ok {
		return fmt.Errorf("unknown kind %q", kind)
	}
	if c, obj := v.shapes[kind], asObject(doc); c != nil && obj != nil {
		return c.validate(obj, func() error { return readable(s.Validate(doc)) })
	}
	return readable(s.Validate(doc))
}

func asObject(doc any) map[string]any {
	m, _ := doc.(map[string]any)
	return m
}

// ValidateEvent validates a decoded conformed event against the envelope and
// its payload against the schema of its kind.
func (v *Validator) ValidateEvent(doc any) error {
	if err := readable(v.envelope.Validate(doc)); err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	m, _ := doc.(map[string]any)
	typ, _ := m["type"].(string)
	kind, _, _ := strings.Cut(typ, ".")
	if err := v.ValidatePayload(kind, m["data"]); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	return nil
}

var printer = message.NewPrinter(language.English)

// SchemaError is a validation failure in words a person can read: one line
// per violated rule, each naming the JSON pointer of the offending value.
type SchemaError struct {
	Problems []string
}

func (e *SchemaError) Error() string { return strings.Join(e.Problems, "; ") }

func readable(err error) error {
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	seen := map[string]bool{}
	var out []string
	// prefix is set below a propertyNames failure: the causes there
	// validate the name alone and carry an empty location, so the message
	// names the object holding the property instead. That object is the
	// parent's location: jsonschema v6.0.3 does not copy the location of a
	// propertyNames error, so a later sibling can overwrite it.
	var walk func(e *jsonschema.ValidationError, parent []string, prefix string)
	walk = func(e *jsonschema.ValidationError, parent []string, prefix string) {
		if pn, ok := e.ErrorKind.(*kind.PropertyNames); ok {
			prefix = fmt.Sprintf("at /%s: property name %q: ", strings.Join(parent, "/"), pn.Property)
		}
		if len(e.Causes) == 0 {
			text := e.ErrorKind.LocalizedString(printer)
			if _, ok := e.ErrorKind.(*kind.FalseSchema); ok {
				text = "not allowed"
			}
			msg := prefix + text
			if prefix == "" {
				msg = fmt.Sprintf("at /%s: %s", strings.Join(e.InstanceLocation, "/"), text)
			}
			if !seen[msg] {
				seen[msg] = true
				out = append(out, msg)
			}
			return
		}
		for _, c := range e.Causes {
			walk(c, e.InstanceLocation, prefix)
		}
	}
	walk(ve, nil, "")
	sort.Strings(out)
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("and %d more", len(out)-5))
	}
	return &SchemaError{Problems: out}
}
