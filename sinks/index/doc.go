package index

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// KindDLQ is the kind of documents made from dead letters.
const KindDLQ = "dlq"

// maxString caps one string value of the payload, so a huge file content in
// a snapshot cannot exceed the index's term length limit.
const maxString = 8 << 10

// DLQInfo is what a dead letter says about its rejection.
type DLQInfo struct {
	Reason   string `json:"reason,omitempty"`
	Class    string `json:"class,omitempty"`
	Stage    string `json:"stage,omitempty"`
	Subject  string `json:"subject,omitempty"`
	Stream   string `json:"stream,omitempty"`
	Sequence uint64 `json:"sequence,omitempty"`
}

// Document is what the index stores for one event or dead letter. The same
// shape is returned by every Searcher.
type Document struct {
	ID            string            `json:"id"`
	Time          time.Time         `json:"time"`
	IngestTime    *time.Time        `json:"ingesttime,omitempty"`
	Kind          string            `json:"kind"` // metric, log, snapshot, dlq
	Type          string            `json:"type"` // metric.search_made, dlq.log.api
	Name          string            `json:"name,omitempty"`
	CorrelationID string            `json:"correlationid"`
	Source        string            `json:"source,omitempty"`
	Service       string            `json:"service,omitempty"`
	Host          string            `json:"host,omitempty"`
	Site          string            `json:"site,omitempty"`
	Env           string            `json:"env,omitempty"`
	Level         string            `json:"level,omitempty"`
	Producer      string            `json:"producer,omitempty"`
	Message       string            `json:"message,omitempty"`
	Subject       string            `json:"subject,omitempty"` // NATS subject
	SyncScope     string            `json:"syncscope,omitempty"`
	SyncTag       string            `json:"synctag,omitempty"`
	Stream        string            `json:"stream,omitempty"`
	Sequence      uint64            `json:"seq,omitempty"`
	Attrs         map[string]string `json:"attrs,omitempty"`
	Data          json.RawMessage   `json:"data,omitempty"` // a JSON object, or absent
	Raw           string            `json:"raw,omitempty"`  // non-object payload, not indexed
	DLQ           *DLQInfo          `json:"dlq,omitempty"`
}

// IndexName is the daily index of the document: <prefix>-<kind>-YYYY.MM.DD.
func (d *Document) IndexName(prefix string) string {
	return prefix + "-" + d.Kind + "-" + d.Time.UTC().Format("2006.01.02")
}

// FromMessage builds the document of a conformed event (sightline.events.>)
// or a dead letter (sightline.dlq.>). Errors are permanent: the input can
// never be indexed.
func FromMessage(m *stage.Message) (*Document, error) {
	if strings.HasPrefix(m.Subject, "sightline.dlq.") || m.Header.Get(stage.HeaderDLQReason) != "" {
		return fromDLQ(m)
	}
	return fromEvent(m)
}

func fromEvent(m *stage.Message) (*Document, error) {
	ev, err := decodeEvent(m.Data)
	if err != nil {
		return nil, stage.Reject("index_invalid", "conformed event is not valid JSON", err)
	}
	if ev.ID == "" {
		ev.ID = m.ID
	}
	if ev.ID == "" {
		return nil, stage.Rejectf("index_invalid", "conformed event has no id")
	}
	if ev.Time.IsZero() {
		return nil, stage.Rejectf("index_invalid", "conformed event %s has no time", ev.ID)
	}
	d := &Document{
		ID:            ev.ID,
		Time:          ev.Time.UTC(),
		Type:          ev.Type,
		Name:          ev.Name(),
		CorrelationID: ev.CorrelationID,
		Source:        ev.Source,
		Producer:      ev.Producer,
		Subject:       m.Subject,
		SyncScope:     ev.SyncScope,
		SyncTag:       ev.SyncTag,
		Stream:        m.Meta.Stream,
		Sequence:      m.Meta.Sequence,
	}
	if d.CorrelationID == "" {
		d.CorrelationID = m.Header.Get(stage.HeaderCorrelationID)
	}
	if !ev.IngestTime.IsZero() {
		t := ev.IngestTime.UTC()
		d.IngestTime = &t
	}
	d.Kind = ev.Kind()
	if !schemas.KnownKind(d.Kind) {
		d.Kind = "other"
	}
	if len(ev.Attributes) > 0 {
		d.Attrs = make(map[string]string, len(ev.Attributes))
		for k, v := range ev.Attributes {
			d.Attrs[k] = truncate(v, 1024)
		}
		d.Site = ev.Attributes["site"]
		d.Env = ev.Attributes["env"]
		d.Service = ev.Attributes["service"]
		d.Host = ev.Attributes["host"]
	}
	if err := d.setPayload(ev.Data); err != nil {
		return nil, stage.Reject("index_invalid", "event "+ev.ID+": payload", err)
	}
	d.fillFromPayload(ev.Data)
	if d.Service == "" {
		d.Service = serviceFromSource(ev.Producer, ev.Source)
	}
	if d.Message == "" {
		d.Message = summary(d)
	}
	return d, nil
}

// fillFromPayload picks the well-known fields of a payload: message, level,
// service, host.
func (d *Document) fillFromPayload(data json.RawMessage) {
	if len(data) == 0 || data[0] != '{' {
		return
	}
	// data was validated with the whole event.
	members := splitObject(data)
	get := func(k string) string {
		raw := members[k]
		if len(raw) == 0 {
			return ""
		}
		if raw[0] == '"' {
			if v, ok := fastUnquote(raw); ok {
				return v
			}
			var v string
			_ = json.Unmarshal(raw, &v)
			return v
		}
		if raw[0] == '{' || raw[0] == '[' || string(raw) == "null" {
			return ""
		}
		return string(raw)
	}
	if s := get("message"); s != "" {
		d.Message = s
	} else if s := get("msg"); s != "" {
		d.Message = s
	}
	if s := get("level"); s != "" {
		d.Level = strings.ToLower(s)
	}
	if s := get("service"); s != "" {
		d.Service = s
	}
	if s := get("host"); s != "" {
		d.Host = s
	}
	d.Message = truncate(d.Message, 32<<10)
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// serviceFromSource names the service of an event without one: the
// producer, else the last meaningful token of the source URN.
func serviceFromSource(producer, source string) string {
	if producer != "" {
		return producer
	}
	if s, ok := strings.CutPrefix(source, "urn:sightline:producer:"); ok {
		return s
	}
	if s, ok := strings.CutPrefix(source, "urn:sightline:subject:"); ok {
		// sightline.raw.<kind>.<name>...: the name.
		parts := strings.Split(s, ".")
		if len(parts) >= 4 {
			return parts[3]
		}
		return s
	}
	return source
}

// summary is the one-line message of an event without one.
func summary(d *Document) string {
	switch d.Kind {
	case schemas.KindSnapshot:
		return fmt.Sprintf("sync %s tag %s", d.SyncScope, d.SyncTag)
	case schemas.KindMetric:
		return d.Name
	}
	return d.Type
}

// setPayload keeps a JSON object payload (long strings shortened) as Data;
// anything else is kept as Raw text, stored but not indexed.
func (d *Document) setPayload(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return nil
	}
	if data[0] != '{' {
		d.Raw = truncate(string(data), 64<<10)
		return nil
	}
	if len(data) <= maxString {
		// No string inside can be longer than the cap: keep as is.
		d.Data = json.RawMessage(data)
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if !needsShortening(v, 0) {
		d.Data = json.RawMessage(data)
		return nil
	}
	shorten(v, 0)
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	d.Data = b
	return nil
}

const maxDepth = 32

func needsShortening(v any, depth int) bool {
	if depth > maxDepth {
		return true
	}
	switch x := v.(type) {
	case string:
		return len(x) > maxString
	case map[string]any:
		for _, e := range x {
			if needsShortening(e, depth+1) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if needsShortening(e, depth+1) {
				return true
			}
		}
	}
	return false
}

func shorten(v any, depth int) any {
	switch x := v.(type) {
	case string:
		return truncate(x, maxString)
	case map[string]any:
		if depth > maxDepth {
			return "(too deep)"
		}
		for k, e := range x {
			x[k] = shorten(e, depth+1)
		}
	case []any:
		if depth > maxDepth {
			return "(too deep)"
		}
		for i, e := range x {
			x[i] = shorten(e, depth+1)
		}
	}
	return v
}

// truncate cuts s to at most n bytes on a rune boundary and makes it valid UTF-8.
func truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func fromDLQ(m *stage.Message) (*Document, error) {
	h := m.Header
	info := &DLQInfo{
		Reason:  truncate(h.Get(stage.HeaderDLQReason), 4096),
		Class:   h.Get("Sightline-Dlq-Class"),
		Stage:   h.Get(stage.HeaderDLQStage),
		Subject: h.Get(stage.HeaderDLQSubject),
		Stream:  h.Get(stage.HeaderDLQStream),
	}
	info.Sequence, _ = strconv.ParseUint(h.Get(stage.HeaderDLQSequence), 10, 64)
	id := m.ID
	if id == "" {
		id = h.Get(stage.HeaderMsgID)
	}
	if id == "" && info.Stream != "" && info.Sequence > 0 {
		id = "dlq:" + info.Stage + ":" + info.Stream + ":" + strconv.FormatUint(info.Sequence, 10)
	}
	if id == "" && m.Meta.Stream != "" && m.Meta.Sequence > 0 {
		id = "dlq:" + m.Meta.Stream + ":" + strconv.FormatUint(m.Meta.Sequence, 10)
	}
	if id == "" {
		return nil, stage.Rejectf("index_invalid", "dead letter on %s has no id, no Nats-Msg-Id and no stream position", m.Subject)
	}
	t, err := time.Parse(time.RFC3339Nano, h.Get(stage.HeaderDLQTime))
	if err != nil {
		t = m.Meta.Timestamp
	}
	if t.IsZero() {
		return nil, stage.Rejectf("index_invalid", "dead letter %s has no time", id)
	}
	orig := info.Subject
	if orig == "" {
		orig = strings.TrimPrefix(m.Subject, "sightline.dlq.")
	}
	tail := orig
	for _, p := range []string{"sightline.raw.", "sightline.events.", "sightline.dlq."} {
		tail = strings.TrimPrefix(tail, p)
	}
	d := &Document{
		ID:            id,
		Time:          t.UTC(),
		Kind:          KindDLQ,
		Type:          "dlq." + tail,
		CorrelationID: h.Get(stage.HeaderCorrelationID),
		Producer:      h.Get(stage.HeaderProducer),
		Subject:       m.Subject,
		Stream:        m.Meta.Stream,
		Sequence:      m.Meta.Sequence,
		DLQ:           info,
		Level:         "error",
	}
	parts := strings.Split(tail, ".")
	if len(parts) >= 2 {
		d.Name = parts[1]
		d.Service = parts[1]
	}
	if d.Producer != "" {
		d.Service = d.Producer
	}
	// The original bytes: a conformed event when the sink rejected it, raw
	// input when the processor did. Keep it as text, never indexed.
	var ev schemas.Event
	if json.Unmarshal(m.Data, &ev) == nil && ev.ID != "" && ev.Type != "" {
		if d.CorrelationID == "" {
			d.CorrelationID = ev.CorrelationID
		}
		d.Source = ev.Source
		d.Attrs = ev.Attributes
		if ev.Attributes != nil {
			d.Site = ev.Attributes["site"]
		}
	}
	d.Raw = truncate(string(m.Data), 64<<10)
	d.Message = "rejected by " + orDefault(info.Stage, "pipeline") + ": " + info.Reason
	return d, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// decodeEvent reads a conformed event in one pass (schemas.Event's own
// UnmarshalJSON parses twice; this is the sink's hot path).
func decodeEvent(b []byte) (*schemas.Event, error) {
	all, err := topLevel(b)
	if err != nil {
		return nil, err
	}
	ev := &schemas.Event{}
	strField := func(k string, dst *string) {
		raw, ok := all[k]
		if !ok || err != nil {
			return
		}
		delete(all, k)
		if len(raw) > 0 && raw[0] == '"' {
			if v, ok := fastUnquote(raw); ok {
				*dst = v
			} else if e := json.Unmarshal(raw, dst); e != nil {
				err = fmt.Errorf("%s: %w", k, e)
			}
		}
	}
	strField("specversion", &ev.SpecVersion)
	strField("id", &ev.ID)
	strField("source", &ev.Source)
	strField("type", &ev.Type)
	strField("subject", &ev.Subject)
	strField("datacontenttype", &ev.DataContentType)
	strField("correlationid", &ev.CorrelationID)
	strField("syncscope", &ev.SyncScope)
	strField("synctag", &ev.SyncTag)
	strField("producer", &ev.Producer)
	strField("traceparent", &ev.TraceParent)
	var ts, its string
	strField("time", &ts)
	strField("ingesttime", &its)
	if err != nil {
		return nil, err
	}
	if ts != "" {
		if ev.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return nil, fmt.Errorf("time: %w", err)
		}
	}
	if its != "" {
		ev.IngestTime, _ = time.Parse(time.RFC3339Nano, its)
	}
	ev.Data = all["data"]
	for k, raw := range all {
		if schemas.ReservedAttribute(k) || len(raw) == 0 {
			continue
		}
		if ev.Attributes == nil {
			ev.Attributes = map[string]string{}
		}
		var s string
		if raw[0] == '"' {
			var ok bool
			if s, ok = fastUnquote(raw); !ok && json.Unmarshal(raw, &s) != nil {
				continue
			}
		} else {
			s = string(raw)
		}
		ev.Attributes[k] = s
	}
	return ev, nil
}

// fastUnquote returns the content of a JSON string without escapes.
func fastUnquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	if bytes.IndexByte(in, '\\') >= 0 || !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// topLevel splits a JSON object into its members without decoding the
// values. The input is validated first, so the scan can be simple.
func topLevel(b []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v) // for the position of the error
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, err
	}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	return splitObject(b[i:]), nil
}

// splitObject splits a valid JSON object into its members.
func splitObject(b []byte) map[string]json.RawMessage {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil
	}
	out := make(map[string]json.RawMessage, 16)
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return out
	}
	for i < len(b) {
		kEnd := stringEnd(b, i)
		key, ok := fastUnquote(b[i:kEnd])
		if !ok {
			_ = json.Unmarshal(b[i:kEnd], &key)
		}
		i = skipWS(b, kEnd)
		i = skipWS(b, i+1) // ':'
		vEnd := valueEnd(b, i)
		out[key] = json.RawMessage(b[i:vEnd])
		i = skipWS(b, vEnd)
		if i >= len(b) || b[i] == '}' {
			break
		}
		i = skipWS(b, i+1) // ','
	}
	return out
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd returns the index after the (valid) value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	return j
}
