package index

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// KindDLQ is the kind of documents made from dead letters.
const KindDLQ = "dlq"

// maxString caps one string value of the payload, so a huge file content in
// a snapshot cannot exceed the index's term length limit.
const maxString = limits.IndexStringBytes

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
	return new(decoder).document(m)
}

// document is FromMessage reusing dec's buffers (one decoder per batch).
func (dec *decoder) document(m *stage.Message) (*Document, error) {
	if isDLQ(m) {
		return fromDLQ(m)
	}
	return dec.fromEvent(m)
}

// isDLQ tells a dead letter from a conformed event: its subject, or a
// rejection reason in its header (m.Header.Get(stage.HeaderDLQReason) != "",
// without comparing every key case-insensitively).
func isDLQ(m *stage.Message) bool {
	if strings.HasPrefix(m.Subject, stage.DLQPrefix) {
		return true
	}
	for k, v := range m.Header {
		if len(k) == len(stage.HeaderDLQReason) && len(v) > 0 && v[0] != "" && strings.EqualFold(k, stage.HeaderDLQReason) {
			return true
		}
	}
	return false
}

func (dec *decoder) fromEvent(m *stage.Message) (*Document, error) {
	ev := &eventView{attrs: dec.ev.attrs[:0]} // the Document keeps &ev.ingestTime
	d := &Document{}
	err := d.build(m, &dec.sc, ev)
	dec.ev.attrs = ev.attrs[:0]
	if err != nil {
		return nil, err
	}
	if len(ev.attrs) > 0 {
		d.Attrs = make(map[string]string, len(ev.attrs))
		for _, a := range ev.attrs {
			d.Attrs[a.k] = a.v
		}
	}
	return d, nil
}

// decoder reads conformed events; its buffers are reused from one event to
// the next (one per Remote.Write and Embedded.Write; FromMessage takes a fresh one).
type decoder struct {
	sc   scanner
	ev   eventView
	data dataWalker // the embedded index's data terms
	doc  Document
	idx  struct { // the last index name
		prefix, kind string
		day          int64
		name         []byte
	}
}

// build fills d from the conformed event of m, read with s into ev; the
// attributes are left in ev.attrs (sorted by key, values shortened), not
// in d.Attrs. Errors are permanent.
func (d *Document) build(m *stage.Message, s *scanner, ev *eventView) error {
	if err := ev.decode(s, m.Data); err != nil {
		return stage.Reject("index_invalid", "conformed event is not valid JSON", err)
	}
	if ev.id == "" {
		ev.id = m.ID
	}
	if ev.id == "" {
		return stage.Rejectf("index_invalid", "conformed event has no id")
	}
	if ev.time.IsZero() {
		return stage.Rejectf("index_invalid", "conformed event %s has no time", ev.id)
	}
	*d = Document{
		ID:            ev.id,
		Time:          ev.time.UTC(),
		Type:          ev.typ,
		Name:          ev.name(),
		CorrelationID: ev.correlationID,
		Source:        ev.source,
		Producer:      ev.producer,
		Subject:       m.Subject,
		SyncScope:     ev.syncScope,
		SyncTag:       ev.syncTag,
		Stream:        m.Meta.Stream,
		Sequence:      m.Meta.Sequence,
	}
	if d.CorrelationID == "" {
		d.CorrelationID = m.Header.Get(stage.HeaderCorrelationID)
	}
	if !ev.ingestTime.IsZero() {
		ev.ingestTime = ev.ingestTime.UTC()
		d.IngestTime = &ev.ingestTime
	}
	d.Kind = ev.kind()
	if !schemas.KnownKind(d.Kind) {
		d.Kind = "other"
	}
	if len(ev.attrs) > 0 {
		d.Site = ev.attr("site")
		d.Env = ev.attr("env")
		d.Service = ev.attr("service")
		d.Host = ev.attr("host")
		for i := range ev.attrs {
			ev.attrs[i].v = truncate(ev.attrs[i].v, 1024)
		}
	}
	if err := d.setPayload(ev.data); err != nil {
		return stage.Reject("index_invalid", "event "+ev.id+": payload", err)
	}
	d.fillFromPayload(ev, s)
	if d.Service == "" {
		d.Service = serviceFromSource(ev.producer, ev.source)
	}
	if d.Message == "" {
		d.Message = summary(d)
	}
	return nil
}

// fillFromPayload picks the well-known fields of a payload: message, level,
// service, host.
func (d *Document) fillFromPayload(ev *eventView, s *scanner) {
	data := ev.data
	if len(data) == 0 || data[0] != '{' {
		return
	}
	members := s.data
	if s.dv0 != ev.dataOff {
		// The payload under an escaped key ("d\u0061ta"): split it now
		// (already validated).
		s.data = s.data[:0]
		s.members(ev.dataOff, 1)
		members = s.data
	}
	const (
		fMessage = iota
		fMsg
		fLevel
		fService
		fHost
		nFields
	)
	var at [nFields]int
	for i := range at {
		at[i] = -1
	}
	for i, mb := range members {
		f := -1
		switch mb.Key(ev.src, s.B) {
		case "message":
			f = fMessage
		case "msg":
			f = fMsg
		case "level":
			f = fLevel
		case "service":
			f = fService
		case "host":
			f = fHost
		}
		if f >= 0 {
			at[f] = i // the last one wins, like decoding into a map
		}
	}
	get := func(f int) string {
		if at[f] < 0 {
			return ""
		}
		mb := members[at[f]]
		raw := s.B[mb.V0:mb.V1]
		if raw[0] == '{' || raw[0] == '[' || string(raw) == "null" {
			return ""
		}
		return mb.Value(ev.src, s.B)
	}
	if v := get(fMessage); v != "" {
		d.Message = v
	} else if v := get(fMsg); v != "" {
		d.Message = v
	}
	if v := get(fLevel); v != "" {
		d.Level = strings.ToLower(v)
	}
	if v := get(fService); v != "" {
		d.Service = v
	}
	if v := get(fHost); v != "" {
		d.Host = v
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
	if i := strings.Index(source, ":subject:"); strings.HasPrefix(source, "urn:sightline:") && i >= 0 {
		// urn:sightline:[<principal>:]subject:sightline.raw.<kind>.<name>...
		s := source[i+len(":subject:"):]
		// sightline.raw.log.<name>...: the name is the service writing
		// the log. A metric's or a snapshot's name says what it measures
		// or syncs, not who sent it: no service.
		parts := strings.Split(s, ".")
		if len(parts) >= 4 && parts[2] == "log" {
			return parts[3]
		}
		return ""
	}
	return source
}

// summary is the one-line message of an event without one.
func summary(d *Document) string {
	switch d.Kind {
	case schemas.KindSnapshot:
		return "sync " + d.SyncScope + " tag " + d.SyncTag
	case schemas.KindMetric:
		return d.Name
	}
	return d.Type
}

// setPayload keeps a JSON object payload (long strings shortened, invalid
// UTF-8 replaced) as Data; anything else is kept as Raw text, stored but not
// indexed.
func (d *Document) setPayload(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return nil
	}
	if data[0] != '{' {
		d.Raw = truncate(string(data), limits.IndexRawBytes)
		return nil
	}
	valid := utf8.Valid(data)
	if len(data) <= maxString && valid && jsonDepth(data) <= maxDepth+1 {
		// No string inside can be longer than the cap, nothing is nested
		// deeper than the servers take: keep as is.
		d.Data = json.RawMessage(data)
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if valid && !needsShortening(v, 0) {
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

// maxDepth is the depth of the payload kept whole (limits.IndexDataDepth):
// the index servers refuse deeper documents.
const maxDepth = limits.IndexDataDepth

// jsonDepth is the nesting depth of the JSON value b (valid JSON: only
// brackets outside strings count), {} being 1.
func jsonDepth(b []byte) int {
	depth, deepest, inStr := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

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
		Class:   h.Get(stage.HeaderDLQClass),
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
		orig = strings.TrimPrefix(m.Subject, stage.DLQPrefix)
	}
	tail := orig
	for _, p := range []string{stage.RawPrefix, stage.EventsPrefix, stage.DLQPrefix} {
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
		if parts[0] == "log" {
			d.Service = parts[1]
		}
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
	d.Raw = truncate(string(m.Data), limits.IndexRawBytes)
	d.Message = "rejected by " + orDefault(info.Stage, "pipeline") + ": " + info.Reason
	return d, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// eventView is a conformed event as the sink reads it: its strings are
// views of src, one copy of the message's bytes.
type eventView struct {
	src                                                          string
	id, source, typ, correlationID, syncScope, syncTag, producer string
	time, ingestTime                                             time.Time
	data                                                         []byte // the payload's JSON, a slice of the message; nil when absent
	dataOff                                                      int    // offset of data in the message
	attrs                                                        []attr // sorted by key, one per key
}

// attr is one enrichment attribute (a top-level member that is not a
// CloudEvents or Sightline attribute).
type attr struct{ k, v string }

// decode reads the conformed event b in one validating pass (schemas.Event's
// own UnmarshalJSON parses twice; this is the sink's hot path). Like
// decoding into a map, the last of duplicate members wins.
func (ev *eventView) decode(s *scanner, b []byte) error {
	if err := s.scanObject(b); err != nil {
		return err
	}
	*ev = eventView{src: string(b), attrs: ev.attrs[:0], dataOff: -1}
	src := ev.src
	var ts, its string
	for i := range s.top {
		mb := &s.top[i]
		var dst *string
		switch k := mb.Key(src, b); k {
		case "id":
			dst = &ev.id
		case "source":
			dst = &ev.source
		case "type":
			dst = &ev.typ
		case "correlationid":
			dst = &ev.correlationID
		case "syncscope":
			dst = &ev.syncScope
		case "synctag":
			dst = &ev.syncTag
		case "producer":
			dst = &ev.producer
		case "time":
			dst = &ts
		case "ingesttime":
			dst = &its
		case "data":
			ev.data, ev.dataOff = b[mb.V0:mb.V1], mb.V0
			continue
		case "specversion", "datacontenttype", "subject", "traceparent":
			continue // reserved, not in the document
		default:
			if !schemas.ReservedAttribute(k) {
				ev.attrs = append(ev.attrs, attr{k, mb.Value(src, b)})
			}
			continue
		}
		*dst = ""
		if b[mb.V0] == '"' {
			*dst = mb.Value(src, b)
		}
	}
	if ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return fmt.Errorf("time: %w", err)
		}
		ev.time = t
	}
	if its != "" {
		ev.ingestTime, _ = time.Parse(time.RFC3339Nano, its)
	}
	if len(ev.attrs) > 1 {
		// Sorted by key (the order of the document), and of duplicate keys
		// the last one (a stable sort keeps their order).
		slices.SortStableFunc(ev.attrs, func(a, b attr) int { return strings.Compare(a.k, b.k) })
		out := ev.attrs[:0]
		for i, a := range ev.attrs {
			if i+1 < len(ev.attrs) && ev.attrs[i+1].k == a.k {
				continue
			}
			out = append(out, a)
		}
		ev.attrs = out
	}
	return nil
}

// attr returns the value of attribute k ("" when absent).
func (ev *eventView) attr(k string) string {
	for _, a := range ev.attrs {
		if a.k == k {
			return a.v
		}
	}
	return ""
}

// kind is the kind part of the type ("metric" of "metric.search_made").
func (ev *eventView) kind() string {
	if i := strings.IndexByte(ev.typ, '.'); i >= 0 {
		return ev.typ[:i]
	}
	return ev.typ
}

// name is the name part of the type ("search_made" of "metric.search_made").
func (ev *eventView) name() string {
	if i := strings.IndexByte(ev.typ, '.'); i >= 0 {
		return ev.typ[i+1:]
	}
	return ""
}
