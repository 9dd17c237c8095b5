package index

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendDoc appends the JSON of d, the same as json.Marshal(d) but without
// reflection (the sink's hot path). Data is already valid JSON; it is
// compacted if it spans lines, since _bulk is one document per line.
func appendDoc(b []byte, d *Document) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, d.ID)
	b = append(b, `,"time":"`...)
	b = d.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if d.IngestTime != nil {
		b = append(b, `,"ingesttime":"`...)
		b = d.IngestTime.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = appendKV(b, "kind", d.Kind, false)
	b = appendKV(b, "type", d.Type, false)
	b = appendKV(b, "name", d.Name, true)
	b = appendKV(b, "correlationid", d.CorrelationID, false)
	b = appendKV(b, "source", d.Source, true)
	b = appendKV(b, "service", d.Service, true)
	b = appendKV(b, "host", d.Host, true)
	b = appendKV(b, "site", d.Site, true)
	b = appendKV(b, "env", d.Env, true)
	b = appendKV(b, "level", d.Level, true)
	b = appendKV(b, "producer", d.Producer, true)
	b = appendKV(b, "message", d.Message, true)
	b = appendKV(b, "subject", d.Subject, true)
	b = appendKV(b, "syncscope", d.SyncScope, true)
	b = appendKV(b, "synctag", d.SyncTag, true)
	b = appendKV(b, "stream", d.Stream, true)
	if d.Sequence != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, d.Sequence, 10)
	}
	if len(d.Attrs) > 0 {
		keys := make([]string, 0, len(d.Attrs))
		for k := range d.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, `,"attrs":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, d.Attrs[k])
		}
		b = append(b, '}')
	}
	if len(d.Data) > 0 {
		b = append(b, `,"data":`...)
		if bytes.ContainsAny(d.Data, "\r\n") {
			var buf bytes.Buffer
			if err := json.Compact(&buf, d.Data); err != nil {
				return b, err
			}
			b = append(b, buf.Bytes()...)
		} else {
			b = append(b, d.Data...)
		}
	}
	b = appendKV(b, "raw", d.Raw, true)
	if d.DLQ != nil {
		dj, err := json.Marshal(d.DLQ)
		if err != nil {
			return b, err
		}
		b = append(b, `,"dlq":`...)
		b = append(b, dj...)
	}
	return append(b, '}'), nil
}

func appendKV(b []byte, k, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

// appendJSONString appends s as a JSON string (escaping like encoding/json,
// invalid UTF-8 replaced).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			if c >= 0x80 && utf8.ValidString(s[i:]) && !bytes.ContainsAny([]byte(s[i:]), "\"\\<>&\u2028\u2029") && noControl(s[i:]) {
				b = append(b, '"')
				b = append(b, s...)
				return append(b, '"')
			}
			enc, _ := json.Marshal(s)
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func noControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return false
		}
	}
	return true
}
