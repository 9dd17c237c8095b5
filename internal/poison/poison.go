// Package poison reads the poison corpus (testdata/poison/*.json): hostile
// and edge-case input, each case with the fate it must meet (an event, a
// dead letter of a class, or a refusal to the publisher), and publishes it
// the way producers do: a plain core publish with optional headers (as
// `nats pub`), a JetStream publish, raw protocol bytes for headers no
// client library writes, or POST /v1/events.
//
// The corpus runs against a real pipeline in this package's tests, on the
// embedded server and on an external NATS cluster.
package poison

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sightline/sightline/internal/limits"
)

// How a case is published.
const (
	ViaCore      = "core"      // nats.go Publish (headers: PublishMsg), like `nats pub`
	ViaJetStream = "jetstream" // a JetStream publish, waiting for the PubAck
	ViaRaw       = "raw"       // raw protocol (HPUB/PUB) on a TCP connection: any header bytes
	ViaHTTP      = "http"      // POST /v1/events
)

// RequiresAligned: the raw stream takes every message the server takes
// (its max message size is at least the server's max payload), and dead
// letters are cut to fit.
const RequiresAligned = "aligned"

// Fates.
const (
	FateEvent   = "event"   // one conformed event on sightline.events.>
	FateDLQ     = "dlq"     // a dead letter from the processor with Expect.Class
	FateRefused = "refused" // the publisher is told no (error or HTTP status); nothing stored
	// FateDropped: a core publish the server does not store and cannot
	// answer (a JetStream control header, a header block over 64 KiB),
	// counted as dropped (sightline_input_dropped_total, the "input
	// SIGHTLINE_RAW" line of `sightline status`). Embedded server only.
	FateDropped = "dropped"
)

// Case is one poison input.
type Case struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Subject     string `json:"subject"`
	// Headers in order; a key may repeat.
	Headers [][2]string `json:"headers,omitempty"`
	// RawHeader is the header block sent verbatim with Via raw
	// ("NATS/1.0\r\n...\r\n\r\n").
	RawHeader string `json:"raw_header,omitempty"`
	// RawHeaderBase64 is RawHeader for bytes JSON text cannot hold.
	RawHeaderBase64 string `json:"raw_header_base64,omitempty"`

	// One of Text ("body"), BodyBase64 and Gen.
	Text       *string `json:"body,omitempty"`
	BodyBase64 string  `json:"body_base64,omitempty"`
	Gen        *Gen    `json:"gen,omitempty"`

	Via string `json:"via,omitempty"` // default core

	// HTTP requests: Content-Type and query (?type=...).
	ContentType string `json:"content_type,omitempty"`
	Query       string `json:"query,omitempty"`

	Expect Expect `json:"expect"`

	// Pending names what the case waits for; it is not published while
	// set.
	Pending string `json:"pending,omitempty"`
	// Requires names a property of the target the case needs, checked
	// before it is published: RequiresAligned.
	Requires string `json:"requires,omitempty"`

	File string `json:"-"`
}

// Expect is a case's fate.
type Expect struct {
	Fate  string `json:"fate"`
	Class string `json:"class,omitempty"` // the Sightline-Dlq-Class of a dead letter
	// Reason is a fragment the dead letter's reason or the refusal must
	// contain.
	Reason string `json:"reason,omitempty"`
	Status int    `json:"status,omitempty"` // HTTP status
}

// Gen generates a body: Prefix, Fill repeated, Suffix, so that the body is
// exactly Size bytes (a limit's name from internal/limits or a number,
// plus Delta). With Depth instead, the body is an object nested Depth
// (+Delta) levels: {"a":[[...]]}.
type Gen struct {
	Prefix string `json:"prefix,omitempty"`
	Fill   string `json:"fill,omitempty"`
	Suffix string `json:"suffix,omitempty"`
	Size   string `json:"size,omitempty"`
	Depth  string `json:"depth,omitempty"`
	Delta  int    `json:"delta,omitempty"`
	// HeaderRoom subtracts the bytes of the case's headers from Size, so
	// that the whole message (headers and body) is Size bytes.
	HeaderRoom bool `json:"header_room,omitempty"`
}

// Named are the limits a case may refer to by name.
var Named = map[string]int{
	"ServerMaxPayload": limits.ServerMaxPayload,
	"RawMaxMsgSize":    limits.RawMaxMsgSize,
	"EventsMaxMsgSize": limits.EventsMaxMsgSize,
	"MaxEventBytes":    limits.MaxEventBytes,
	"MaxBodyBytes":     limits.MaxBodyBytes,
	"MaxBodyDepth":     limits.MaxBodyDepth,
	"DecoderMaxDepth":  limits.DecoderMaxDepth,
	"IndexDataDepth":   limits.IndexDataDepth,
	"HTTPMaxBodyBytes": limits.HTTPMaxBodyBytes,
	"HTTPMaxItemBytes": limits.HTTPMaxItemBytes,
	"HTTPMaxItems":     limits.HTTPMaxItems,
	"SubjectBytes":     limits.SubjectBytes,
	"NameBytes":        limits.NameBytes,
	"IDBytes":          limits.IDBytes,
	"ScopeBytes":       limits.ScopeBytes,
	"LabelBytes":       limits.LabelBytes,
	"KeyBytes":         limits.KeyBytes,
	"DLQMaxBodyBytes":  limits.DLQMaxBodyBytes,
	"HeaderBlockBytes": limits.HeaderBlockBytes,
	"OldRawMaxMsgSize": 1 * limits.MiB, // the raw stream's limit before it was aligned with the server
}

func value(s string) (int, error) {
	if n, ok := Named[s]; ok {
		return n, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither a limit nor a number", s)
	}
	return n, nil
}

// RawHeaderBytes is the header block sent verbatim with Via raw.
func (c *Case) RawHeaderBytes() ([]byte, error) {
	if c.RawHeaderBase64 != "" {
		return base64.StdEncoding.DecodeString(c.RawHeaderBase64)
	}
	return []byte(c.RawHeader), nil
}

// HeaderBytes is what the case's headers take on the wire.
func (c *Case) HeaderBytes() int {
	if c.Via == ViaRaw {
		h, _ := c.RawHeaderBytes()
		return len(h)
	}
	if len(c.Headers) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n\r\n")
	for _, kv := range c.Headers {
		n += len(kv[0]) + len(": \r\n") + len(kv[1])
	}
	return n
}

// Body returns the case's body.
func (c *Case) Body() ([]byte, error) {
	switch {
	case c.Text != nil:
		return []byte(*c.Text), nil
	case c.BodyBase64 != "":
		return base64.StdEncoding.DecodeString(c.BodyBase64)
	case c.Gen == nil:
		return nil, fmt.Errorf("%s: one of body, body_base64 and gen is required", c.Name)
	}
	g := c.Gen
	if g.Depth != "" {
		d, err := value(g.Depth)
		if err != nil {
			return nil, fmt.Errorf("%s: gen.depth: %w", c.Name, err)
		}
		d += g.Delta
		// {"a": plus d-1 arrays.
		return []byte(g.Prefix + `{"a":` + strings.Repeat("[", d-1) + strings.Repeat("]", d-1) + "}" + g.Suffix), nil
	}
	size, err := value(g.Size)
	if err != nil {
		return nil, fmt.Errorf("%s: gen.size: %w", c.Name, err)
	}
	size += g.Delta
	if g.HeaderRoom {
		size -= c.HeaderBytes()
	}
	fill := g.Fill
	if fill == "" {
		fill = "x"
	}
	n := size - len(g.Prefix) - len(g.Suffix)
	if n < 0 || n%len(fill) != 0 {
		return nil, fmt.Errorf("%s: %d bytes of fill %q do not make the size %d", c.Name, n, fill, size)
	}
	b := make([]byte, 0, size)
	b = append(b, g.Prefix...)
	for len(b) < len(g.Prefix)+n {
		b = append(b, fill...)
	}
	return append(b, g.Suffix...), nil
}

// Load reads every *.json file of dir: each holds {"cases": [...]}.
func Load(dir string) ([]*Case, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []*Case
	seen := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Description string  `json:"description"`
			Cases       []*Case `json:"cases"`
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, c := range doc.Cases {
			c.File = filepath.Base(f)
			if prev, dup := seen[c.Name]; dup {
				return nil, fmt.Errorf("%s: case %q is also in %s", f, c.Name, prev)
			}
			seen[c.Name] = c.File
			if c.Via == "" {
				c.Via = ViaCore
			}
			if err := c.check(); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

func (c *Case) check() error {
	switch {
	case c.Name == "" || c.Description == "":
		return fmt.Errorf("case %q: name and description are required", c.Name)
	case c.Via != ViaCore && c.Via != ViaJetStream && c.Via != ViaRaw && c.Via != ViaHTTP:
		return fmt.Errorf("case %s: via %q", c.Name, c.Via)
	case c.Expect.Fate != FateEvent && c.Expect.Fate != FateDLQ && c.Expect.Fate != FateRefused && c.Expect.Fate != FateDropped:
		return fmt.Errorf("case %s: expect.fate %q", c.Name, c.Expect.Fate)
	case c.Expect.Fate == FateDLQ && c.Expect.Class == "":
		return fmt.Errorf("case %s: a dead letter needs expect.class", c.Name)
	case c.Expect.Fate == FateDropped && c.Via != ViaCore && c.Via != ViaRaw:
		return fmt.Errorf("case %s: only a core publish is dropped unanswered", c.Name)
	case c.Via != ViaHTTP && c.Subject == "":
		return fmt.Errorf("case %s: subject is required", c.Name)
	case c.Requires != "" && c.Requires != RequiresAligned:
		return fmt.Errorf("case %s: requires %q", c.Name, c.Requires)
	case (c.RawHeader != "" || c.RawHeaderBase64 != "") && c.Via != ViaRaw:
		return fmt.Errorf("case %s: raw_header needs via raw", c.Name)
	}
	_, err := c.Body()
	return err
}
