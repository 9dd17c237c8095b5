package httpingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/stage"
)

// Item is one event of a request body (the envelope form):
//
//	{"type":"metric.search_made","data":{"query":"cats"},"correlationid":"abc","id":"e-1"}
//
// type is <kind>.<name>[.<more>] with kind metric, log or snapshot; it names
// the subject sightline.raw.<type>. data is the payload: a JSON object, or
// for log events a JSON string holding a plain-text line. id (optional)
// is the producer's id: the event id is derived from it and the source
// (the subject and the request's token, identity.ID); correlationid (optional,
// also correlation_id) overrides the request's correlation ID for this item.
type Item struct {
	Type          string          `json:"type"`
	Data          json.RawMessage `json:"data"`
	ID            string          `json:"id,omitempty"`
	CorrelationID string          `json:"correlationid,omitempty"`
	CorrelationX  string          `json:"correlation_id,omitempty"`
}

// parsed is an item ready to publish.
type parsed struct {
	subject string
	data    []byte
	id      string
	cid     string
}

// LineError names the line (NDJSON) or the array element (JSON array),
// counted from 1, that made a request fail.
type LineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// limits bounds what decode accepts.
type limits struct {
	maxItems     int
	maxItemBytes int
}

// Sentinel errors of decoding; the handler maps them to status codes.
var (
	errTooMany   = errors.New("too many items")
	errItemLarge = errors.New("item too large")
	errBadInput  = errors.New("bad input")
)

// decodeError is a failed decode: the class (one of the sentinels), a
// message, and the per-line errors.
type decodeError struct {
	class error
	msg   string
	lines []LineError
}

func (e *decodeError) Error() string { return e.msg }
func (e *decodeError) Unwrap() error { return e.class }

const maxLineErrors = 20

// decode turns a request body into items. ndjson splits the body into lines
// (blank lines are skipped); otherwise the body is one JSON value: an
// envelope object or an array of them. With typ set (the ?type= query
// parameter) each line or the whole body is the data itself. Any bad item
// fails the whole request: nothing is published and every bad line is named
// (up to 20).
func decode(body []byte, ndjson bool, typ string, lim limits) ([]parsed, error) {
	if lim.maxItems <= 0 {
		lim.maxItems = DefaultMaxItems
	}
	if lim.maxItemBytes <= 0 {
		lim.maxItemBytes = DefaultMaxItemBytes
	}
	var subject string
	if typ != "" {
		s, err := subjectOf(typ)
		if err != nil {
			return nil, &decodeError{class: errBadInput, msg: "query parameter type: " + err.Error()}
		}
		subject = s
	}
	var chunks [][]byte // one per item
	var lines []int     // the line (or element) number of each chunk
	switch {
	case ndjson:
		n := 0
		for rest := body; len(rest) > 0; {
			n++
			line := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				line, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				continue
			}
			if len(chunks) == lim.maxItems {
				return nil, &decodeError{class: errTooMany, msg: fmt.Sprintf("more than %d items in one request", lim.maxItems)}
			}
			chunks, lines = append(chunks, line), append(lines, n)
		}
	case typ != "":
		chunks, lines = [][]byte{body}, []int{1}
	default:
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) > 0 && trimmed[0] == '[' {
			var arr []json.RawMessage
			if err := json.Unmarshal(trimmed, &arr); err != nil {
				return nil, &decodeError{class: errBadInput, msg: "body is not a valid JSON array: " + err.Error()}
			}
			if len(arr) > lim.maxItems {
				return nil, &decodeError{class: errTooMany, msg: fmt.Sprintf("%d items in one request, more than %d", len(arr), lim.maxItems)}
			}
			for i, a := range arr {
				chunks, lines = append(chunks, a), append(lines, i+1)
			}
		} else if len(trimmed) > 0 {
			chunks, lines = [][]byte{trimmed}, []int{1}
		}
	}
	if len(chunks) == 0 {
		return nil, &decodeError{class: errBadInput, msg: "no events in the body"}
	}
	out := make([]parsed, 0, len(chunks))
	var bad []LineError
	class := errBadInput
	for i, c := range chunks {
		var p parsed
		var err error
		if typ != "" {
			p, err = dataItem(subject, c, lim)
		} else {
			p, err = envelopeItem(c, lim)
		}
		if err != nil {
			if errors.Is(err, errItemLarge) {
				class = errItemLarge
			}
			if len(bad) < maxLineErrors {
				bad = append(bad, LineError{Line: lines[i], Error: err.Error()})
			}
			continue
		}
		out = append(out, p)
	}
	if len(bad) > 0 {
		what := "line"
		if !ndjson {
			what = "item"
		}
		msg := fmt.Sprintf("%s %d: %s", what, bad[0].Line, bad[0].Error)
		if n := len(chunks) - len(out); n > 1 {
			msg += fmt.Sprintf(" (and %d more bad %ss); nothing was accepted", n-1, what)
		} else {
			msg += "; nothing was accepted"
		}
		return nil, &decodeError{class: class, msg: msg, lines: bad}
	}
	return out, nil
}

func envelopeItem(b []byte, lim limits) (parsed, error) {
	if len(b) > lim.maxItemBytes+4096 {
		return parsed{}, fmt.Errorf("%w: %d bytes, over the limit of %d", errItemLarge, len(b), lim.maxItemBytes)
	}
	if !utf8.Valid(b) {
		return parsed{}, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var it Item
	if err := dec.Decode(&it); err != nil {
		return parsed{}, fmt.Errorf("not a valid event object %s: %w", `{"type":"<kind>.<name>","data":{...}}`, err)
	}
	if dec.More() {
		return parsed{}, errors.New("extra data after the JSON object (use Content-Type: application/x-ndjson for one event per line)")
	}
	if it.Type == "" {
		return parsed{}, errors.New(`missing "type" (e.g. "metric.search_made")`)
	}
	subject, err := subjectOf(it.Type)
	if err != nil {
		return parsed{}, err
	}
	kind, _, _ := strings.Cut(it.Type, ".")
	var data []byte
	d := bytes.TrimSpace(it.Data)
	switch {
	case len(d) == 0 || string(d) == "null":
		if kind != "metric" {
			return parsed{}, fmt.Errorf(`missing "data" for a %s event`, kind)
		}
		data = []byte("{}")
	case d[0] == '{':
		data = d
	case d[0] == '"' && kind == "log":
		var s string
		if err := json.Unmarshal(d, &s); err != nil {
			return parsed{}, fmt.Errorf(`"data": %w`, err)
		}
		data = []byte(s)
	default:
		if kind == "log" {
			return parsed{}, errors.New(`"data" must be a JSON object or a string (a plain-text log line)`)
		}
		return parsed{}, fmt.Errorf(`"data" must be a JSON object for a %s event`, kind)
	}
	if len(data) > lim.maxItemBytes {
		return parsed{}, fmt.Errorf("%w: data is %d bytes, over the limit of %d", errItemLarge, len(data), lim.maxItemBytes)
	}
	cid := it.CorrelationID
	if cid == "" {
		cid = it.CorrelationX
	}
	if cid != "" && !token(cid, 256) {
		return parsed{}, errors.New(`"correlationid" must be 1-256 printable characters without spaces`)
	}
	if it.ID != "" && !token(it.ID, 256) {
		return parsed{}, errors.New(`"id" must be 1-256 printable characters without spaces`)
	}
	return parsed{subject: subject, data: data, id: it.ID, cid: cid}, nil
}

// dataItem is a raw payload sent with ?type=.
func dataItem(subject string, b []byte, lim limits) (parsed, error) {
	if len(b) > lim.maxItemBytes {
		return parsed{}, fmt.Errorf("%w: %d bytes, over the limit of %d", errItemLarge, len(b), lim.maxItemBytes)
	}
	if !utf8.Valid(b) {
		return parsed{}, errors.New("not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(b)
	isLog := strings.HasPrefix(subject, rawPrefix+"log.")
	if isLog && (len(trimmed) == 0 || trimmed[0] != '{') {
		if len(trimmed) == 0 {
			return parsed{}, errors.New("empty log line")
		}
		return parsed{subject: subject, data: b}, nil // a plain-text line
	}
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return parsed{}, errors.New("not a JSON object")
	}
	return parsed{subject: subject, data: trimmed}, nil
}

var kinds = map[string]bool{"metric": true, "log": true, "snapshot": true}

// subjectOf checks <kind>.<name>[.<more>] and returns the raw subject.
func subjectOf(typ string) (string, error) {
	if len(typ) > 512 {
		return "", errors.New(`"type" is longer than 512 characters`)
	}
	toks := strings.Split(typ, ".")
	if len(toks) < 2 || !kinds[toks[0]] {
		return "", fmt.Errorf(`"type" %q must be <kind>.<name>[.<more>] with kind metric, log or snapshot`, typ)
	}
	for _, t := range toks[1:] {
		if !nameToken(t) {
			return "", fmt.Errorf(`"type" %q: each part after the kind must be 1-128 letters, digits, '_' or '-'`, typ)
		}
	}
	if identity.Reserved(typ) {
		return "", fmt.Errorf(`"type" %q is reserved for Sightline's own services (log.graph_sweep, names starting with "sightline"): only the worker emits it`, typ)
	}
	return rawPrefix + typ, nil
}

func nameToken(s string) bool { return stage.NameToken(s) }

func token(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] == 0x7f {
			return false
		}
	}
	return true
}
