package index

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/stage"
)

// appendDoc appends the JSON of d, the same as json.Marshal(d) but without
// reflection (the sink's hot path). Data is already valid JSON; it is
// compacted if it spans lines, since _bulk is one document per line.
func appendDoc(b []byte, d *Document) ([]byte, error) {
	return appendDocAttrs(b, d, sortedAttrs(d.Attrs))
}

// sortedAttrs returns the attributes sorted by key (nil when none).
func sortedAttrs(m map[string]string) []attr {
	if len(m) == 0 {
		return nil
	}
	attrs := make([]attr, 0, len(m))
	for k, v := range m {
		attrs = append(attrs, attr{k, v})
	}
	slices.SortFunc(attrs, func(a, b attr) int { return strings.Compare(a.k, b.k) })
	return attrs
}

// appendDocAttrs is appendDoc with the attributes given sorted by key
// (d.Attrs is ignored).
func appendDocAttrs(b []byte, d *Document, attrs []attr) ([]byte, error) {
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
	if len(attrs) > 0 {
		b = append(b, `,"attrs":{`...)
		for i, a := range attrs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, a.k)
			b = append(b, ':')
			b = appendJSONString(b, a.v)
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
	i := 0
	for i < len(s) && jsonPlain[s[i]] {
		i++
	}
	if i == len(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	for ; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			if c >= 0x80 && utf8.ValidString(s[i:]) && !strings.ContainsAny(s[i:], "\"\\<>&\u2028\u2029") && noControl(s[i:]) {
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

// jsonPlain marks the bytes encoding/json writes as they are in a string.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

func noControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return false
		}
	}
	return true
}

// appendAction appends the bulk action line and the document line.
func appendAction(b []byte, d *Document, prefix string) ([]byte, error) {
	var name [64]byte
	return appendActionAttrs(b, d, sortedAttrs(d.Attrs), appendIndexName(name[:0], d, prefix))
}

// appendActionAttrs is appendAction with the attributes given sorted by
// key (d.Attrs is ignored) and the index name quoted.
func appendActionAttrs(b []byte, d *Document, attrs []attr, index []byte) ([]byte, error) {
	b = append(b, `{"index":{"_index":`...)
	b = append(b, index...)
	b = append(b, `,"_id":`...)
	b = appendJSONString(b, d.ID)
	b = append(b, "}}\n"...)
	b, err := appendDocAttrs(b, d, attrs)
	if err != nil {
		return b, err
	}
	return append(b, '\n'), nil
}

// appendIndexName appends the quoted d.IndexName(prefix) (Go quoting,
// which for an index name, lowercase ASCII, is JSON's).
func appendIndexName(b []byte, d *Document, prefix string) []byte {
	start := len(b)
	b = append(b, '"')
	b = append(b, prefix...)
	b = append(b, '-')
	b = append(b, d.Kind...)
	b = append(b, '-')
	b = d.Time.UTC().AppendFormat(b, "2006.01.02")
	for _, c := range b[start+1:] {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.AppendQuote(b[:start], d.IndexName(prefix))
		}
	}
	return append(b, '"')
}

// appendMessage appends the bulk action and document of one message, the
// same bytes as appendAction(FromMessage(m)) without the allocations of a
// Document per message: its buffers are reused and its strings are views of
// one copy of the message. Errors are permanent.
func (dec *decoder) appendMessage(b []byte, m *stage.Message, prefix string) ([]byte, error) {
	if isDLQ(m) {
		d, err := fromDLQ(m)
		if err != nil {
			return b, err
		}
		return appendAction(b, d, prefix)
	}
	d := &dec.doc
	if err := d.build(m, &dec.sc, &dec.ev); err != nil {
		return b, err
	}
	return appendActionAttrs(b, d, dec.ev.attrs, dec.indexName(d, prefix))
}

// indexName is the quoted index name of d, remembered while consecutive
// documents go to the same daily index.
func (dec *decoder) indexName(d *Document, prefix string) []byte {
	day := d.Time.Unix()
	day = day/86400 - b2i(day%86400 < 0)
	if dec.idx.name == nil || day != dec.idx.day || d.Kind != dec.idx.kind || prefix != dec.idx.prefix {
		dec.idx.name = appendIndexName(dec.idx.name[:0], d, prefix)
		dec.idx.day, dec.idx.kind, dec.idx.prefix = day, d.Kind, prefix
	}
	return dec.idx.name
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
