package index

// The sink's document building before the one-pass validating scanner
// (commit 929b3ad), kept as the oracle of the differential tests and as the
// "before" of BenchmarkBuildDocs. Its document encoder was the sink's own
// appendDoc, which it now calls; that encoder has its own oracle,
// json.Marshal (TestAppendDocMatchesMarshal).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/jsonscan"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// oldFromMessage is FromMessage before the scanner.
func oldFromMessage(m *stage.Message) (*Document, error) {
	if isDLQ(m) {
		return fromDLQ(m)
	}
	return oldFromEvent(m)
}

func oldFromEvent(m *stage.Message) (*Document, error) {
	ev, err := oldDecodeEvent(m.Data)
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
	if err := oldSetPayload(d, ev.Data); err != nil {
		return nil, stage.Reject("index_invalid", "event "+ev.ID+": payload", err)
	}
	oldFillFromPayload(d, ev.Data)
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
func oldFillFromPayload(d *Document, data json.RawMessage) {
	if len(data) == 0 || data[0] != '{' {
		return
	}
	// data was validated with the whole event.
	members := oldSplitObject(data)
	get := func(k string) string {
		raw := members[k]
		if len(raw) == 0 {
			return ""
		}
		if raw[0] == '"' {
			if v, ok := oldFastUnquote(raw); ok {
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

// anything else is kept as Raw text, stored but not indexed.
func oldSetPayload(d *Document, data []byte) error {
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

// oldDecodeEvent reads a conformed event in one pass (schemas.Event's own
// UnmarshalJSON parses twice; this is the sink's hot path).
func oldDecodeEvent(b []byte) (*schemas.Event, error) {
	all, err := oldTopLevel(b)
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
			if v, ok := oldFastUnquote(raw); ok {
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
			if s, ok = oldFastUnquote(raw); !ok && json.Unmarshal(raw, &s) != nil {
				continue
			}
		} else {
			s = string(raw)
		}
		ev.Attributes[k] = s
	}
	return ev, nil
}

// oldFastUnquote returns the content of a JSON string without escapes.
func oldFastUnquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	if bytes.IndexByte(in, '\\') >= 0 || !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// oldTopLevel splits a JSON object into its members without decoding the
// values. The input is validated first, so the scan can be simple.
func oldTopLevel(b []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v) // for the position of the error
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, err
	}
	i := jsonscan.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	return oldSplitObject(b[i:]), nil
}

// oldSplitObject splits a valid JSON object into its members.
func oldSplitObject(b []byte) map[string]json.RawMessage {
	i := jsonscan.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil
	}
	out := make(map[string]json.RawMessage, 16)
	i = jsonscan.SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return out
	}
	for i < len(b) {
		kEnd := oldStringEnd(b, i)
		key, ok := oldFastUnquote(b[i:kEnd])
		if !ok {
			_ = json.Unmarshal(b[i:kEnd], &key)
		}
		i = jsonscan.SkipSpace(b, kEnd)
		i = jsonscan.SkipSpace(b, i+1) // ':'
		vEnd := oldValueEnd(b, i)
		out[key] = json.RawMessage(b[i:vEnd])
		i = jsonscan.SkipSpace(b, vEnd)
		if i >= len(b) || b[i] == '}' {
			break
		}
		i = jsonscan.SkipSpace(b, i+1) // ','
	}
	return out
}

// oldStringEnd returns the index after the string starting at b[i] == '"'.
func oldStringEnd(b []byte, i int) int {
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

// oldValueEnd returns the index after the (valid) value starting at b[i].
func oldValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return oldStringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = oldStringEnd(b, j) - 1
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

// oldAppendAction appends the bulk action line and the document line.
func oldAppendAction(b []byte, d *Document, prefix string) ([]byte, error) {
	b = append(b, `{"index":{"_index":`...)
	b = strconv.AppendQuote(b, d.IndexName(prefix))
	b = append(b, `,"_id":`...)
	idq, err := json.Marshal(d.ID)
	if err != nil {
		return b, err
	}
	b = append(b, idq...)
	b = append(b, "}}\n"...)
	b, err = appendDoc(b, d) // the encoder is checked against json.Marshal (TestAppendDocMatchesMarshal)
	if err != nil {
		return b, err
	}
	return append(b, '\n'), nil
}
