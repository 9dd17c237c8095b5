package schemas

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// SpecVersion is the CloudEvents version of every event.
const SpecVersion = "1.0"

// Event is a conformed event: CloudEvents 1.0, structured JSON mode, with
// the Sightline extensions. Attributes holds the configured static
// enrichment attributes (site, env, stage, cluster, ...), written as
// top-level CloudEvents extension attributes.
type Event struct {
	SpecVersion     string            `json:"specversion"`
	ID              string            `json:"id"`
	Source          string            `json:"source"`
	Type            string            `json:"type"`
	Subject         string            `json:"subject,omitempty"`
	Time            time.Time         `json:"time"`
	DataContentType string            `json:"datacontenttype"`
	CorrelationID   string            `json:"correlationid"`
	SyncScope       string            `json:"syncscope,omitempty"`
	SyncTag         string            `json:"synctag,omitempty"`
	IngestTime      time.Time         `json:"ingesttime,omitzero"`
	LagMs           int64             `json:"lagms"`
	Producer        string            `json:"producer,omitempty"`
	TraceParent     string            `json:"traceparent,omitempty"`
	Attributes      map[string]string `json:"-"`
	Data            json.RawMessage   `json:"data"`
}

// Kind returns the kind part of Type ("metric" of "metric.search_made").
func (e *Event) Kind() string {
	for i := 0; i < len(e.Type); i++ {
		if e.Type[i] == '.' {
			return e.Type[:i]
		}
	}
	return e.Type
}

// Name returns the name part of Type ("search_made" of "metric.search_made").
func (e *Event) Name() string {
	for i := 0; i < len(e.Type); i++ {
		if e.Type[i] == '.' {
			return e.Type[i+1:]
		}
	}
	return ""
}

// reserved are the attribute names an enrichment attribute may not take.
var reserved = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true,
	"time": true, "datacontenttype": true, "dataschema": true, "correlationid": true,
	"syncscope": true, "synctag": true, "ingesttime": true, "lagms": true,
	"producer": true, "traceparent": true, "tracestate": true, "data": true, "data_base64": true,
}

// ReservedAttribute reports whether name is a CloudEvents or Sightline
// attribute that enrichment must not overwrite.
func ReservedAttribute(name string) bool { return reserved[name] }

// MarshalJSON writes the event with its attributes inline. It appends by
// hand: this is the hot path of every processor.
func (e *Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 256+len(e.Data))), nil
}

// AppendJSON appends the JSON encoding of e to b.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"specversion":`...)
	b = strconv.AppendQuote(b, orDefault(e.SpecVersion, SpecVersion))
	b = appendField(b, "id", e.ID)
	b = appendField(b, "source", e.Source)
	b = appendField(b, "type", e.Type)
	if e.Subject != "" {
		b = appendField(b, "subject", e.Subject)
	}
	b = append(b, `,"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "datacontenttype", orDefault(e.DataContentType, "application/json"))
	b = appendField(b, "correlationid", e.CorrelationID)
	if e.SyncScope != "" {
		b = appendField(b, "syncscope", e.SyncScope)
	}
	if e.SyncTag != "" {
		b = appendField(b, "synctag", e.SyncTag)
	}
	if !e.IngestTime.IsZero() {
		b = append(b, `,"ingesttime":"`...)
		b = e.IngestTime.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `,"lagms":`...)
	b = strconv.AppendInt(b, e.LagMs, 10)
	if e.Producer != "" {
		b = appendField(b, "producer", e.Producer)
	}
	if e.TraceParent != "" {
		b = appendField(b, "traceparent", e.TraceParent)
	}
	if len(e.Attributes) > 0 {
		keys := make([]string, 0, len(e.Attributes))
		for k := range e.Attributes {
			if !reserved[k] {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			b = appendField(b, k, e.Attributes[k])
		}
	}
	b = append(b, `,"data":`...)
	if len(e.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Data...)
	}
	return append(b, '}')
}

func appendField(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendString appends a JSON string. strconv.AppendQuote is not JSON-safe
// for every input, so strings with unusual bytes go through encoding/json,
// without HTML escaping ('<' stays one byte, not six).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s) // a string: cannot fail
			return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// UnmarshalJSON reads an event, collecting unknown primitive extension
// attributes into Attributes.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for k, raw := range all {
		if reserved[k] {
			continue
		}
		raw = bytes.TrimSpace(raw)
		if p.Attributes == nil {
			p.Attributes = map[string]string{}
		}
		var s string
		if len(raw) > 0 && raw[0] == '"' {
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("attribute %s: %w", k, err)
			}
		} else {
			s = string(raw)
		}
		p.Attributes[k] = s
	}
	*e = Event(p)
	return nil
}

// LogData is the payload of a log event. Fields holds any other structured
// fields of the line.
type LogData struct {
	Message string         `json:"message"`
	Level   string         `json:"level,omitempty"`
	Service string         `json:"service,omitempty"`
	Host    string         `json:"host,omitempty"`
	Fields  map[string]any `json:"-"`
}

// SnapshotData is the payload of a snapshot event: one part of the sync of
// Scope at update tag Tag.
type SnapshotData struct {
	Scope  string `json:"scope"`
	Tag    int64  `json:"tag"`
	Part   int    `json:"part,omitempty"`
	Final  bool   `json:"final,omitempty"`
	Count  int    `json:"count,omitempty"`
	Source string `json:"source,omitempty"`
	// Force is ignored by the graph sink: forcing a sweep past the share
	// guard is an operator action (`sightline graph sweep --force`), never
	// a producer's. Kept so older producers' messages still decode.
	Force         bool           `json:"force,omitempty"`
	Nodes         []Node         `json:"nodes,omitempty"`
	Relationships []Relationship `json:"relationships,omitempty"`
	Objects       []HostObject   `json:"objects,omitempty"`
}

// Items is the number of items this part carries.
func (s *SnapshotData) Items() int {
	return len(s.Nodes) + len(s.Relationships) + len(s.Objects)
}

// Node is a graph node: Label and Key identify it within a scope's graph.
type Node struct {
	Label      string         `json:"label"`
	Labels     []string       `json:"labels,omitempty"`
	Key        string         `json:"key"`
	Properties map[string]any `json:"properties,omitempty"`
}

// NodeRef names a node by label and key.
type NodeRef struct {
	Label string `json:"label"`
	Key   string `json:"key"`
}

// Relationship is a directed, typed edge between two nodes.
type Relationship struct {
	Type       string         `json:"type"`
	From       NodeRef        `json:"from"`
	To         NodeRef        `json:"to"`
	Properties map[string]any `json:"properties,omitempty"`
}

var hostnameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$`)

// ValidHostname reports whether name can be a host name (it becomes the
// sync scope host:<name>). Dots separate non-empty labels: the name is
// also the tail of a subject.
func ValidHostname(name string) bool { return len(name) <= 250 && hostnameRe.MatchString(name) }

// HostObject is one file, command output or facts document of a host
// (sysops-api style): what the host collector sends in a host snapshot
// part (scope host:<name>), what ReadHostPart checks, and, without its
// content, what the host store keeps of it (key m.<object>.<host>) and a
// fleet search returns. Only Host and Name are required by the schema.
//
// The field order is the order of the stored JSON; stored records of
// every earlier build decode into it (sinks/hosts/testdata).
type HostObject struct {
	Host    string `json:"host"`
	Name    string `json:"name"`
	Type    string `json:"type,omitempty"` // file, command, facts
	Content string `json:"content,omitempty"`
	// Encoding is "base64" when the content is not valid UTF-8.
	Encoding string `json:"encoding,omitempty"`
	// Unchanged: the content is the one last sent in full (no Content).
	Unchanged bool       `json:"unchanged,omitempty"`
	MD5       string     `json:"md5,omitempty"`
	Mode      string     `json:"mode,omitempty"`
	Owner     string     `json:"owner,omitempty"`
	Group     string     `json:"group,omitempty"`
	Size      int64      `json:"size,omitempty"`
	MTime     *time.Time `json:"mtime,omitempty"`
	// Lines, Words and Bytes count the full content like wc(1).
	Lines int `json:"lines"`
	Words int `json:"words"`
	Bytes int `json:"bytes"`
	// Truncated: the content was cut at the collector's max_object_bytes;
	// MD5 and the counts are those of the full content.
	Truncated bool      `json:"truncated,omitempty"`
	Collected time.Time `json:"collected,omitzero"`
	// Updated is when this content (this md5) was first collected; the
	// host store always sets it (the collection time when absent).
	Updated  *time.Time        `json:"updated,omitempty"`
	ExitCode *int              `json:"exit_code,omitempty"`
	Error    string            `json:"error,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Tag is set by the host store: the sync tag of the part that last
	// wrote the object (a value sent by a producer is replaced).
	Tag int64 `json:"tag,omitempty"`
}

// UpdatedAt is when the object's content last changed: Updated, or the
// collection time when it is not set.
func (o *HostObject) UpdatedAt() time.Time {
	if o.Updated != nil {
		return *o.Updated
	}
	return o.Collected
}

// Decoded returns the content bytes carried (base64 decoded when needed).
func (o *HostObject) Decoded() ([]byte, error) {
	switch o.Encoding {
	case "":
		return []byte(o.Content), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(o.Content)
		if err != nil {
			return nil, fmt.Errorf("host object %s of %s: base64 content: %w", o.Name, o.Host, err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("host object %s of %s: unknown encoding %q", o.Name, o.Host, o.Encoding)
	}
}
