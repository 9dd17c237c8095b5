package processors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// Conform builds the CloudEvents envelope: id, correlation ID, time, source,
// type and data in the shape of the kind's schema.
type Conform struct {
	Schemas *schemas.Validator
	// Key verifies the HTTP ingest's seal (identity.Seal); without it an
	// input claiming an HTTP token's identity is refused.
	Key []byte
}

// Name implements Stage.
func (c *Conform) Name() string { return "conform" }

// Apply implements Stage.
func (c *Conform) Apply(_ context.Context, w *Work) error {
	ev := &w.Event
	ev.SpecVersion = schemas.SpecVersion
	ev.DataContentType = "application/json"
	ev.Type = w.Kind + "." + w.Name
	if identity.Reserved(ev.Type) {
		return stage.Rejectf(stage.ClassReservedType, "type %s is reserved for Sightline's own services: only the worker emits it", ev.Type)
	}
	src, pid, err := Identify(w.In, c.Key)
	if err != nil {
		return err
	}
	ev.Source = src.URN()
	ev.ID = identity.ID(src, pid, position(w.In))
	if ev.ID == "" {
		ev.ID = uuid.NewString() // neither a producer id nor a stream position (tests)
	}
	obj, _ := w.Body.(map[string]any)

	ev.CorrelationID = correlation.FromHeaders(w.In.Header)
	if ev.CorrelationID == "" && obj != nil {
		ev.CorrelationID = correlation.FromFields(obj)
	}
	if ev.CorrelationID == "" {
		// Minted deterministically from the event id, so a redelivered
		// input gets the same correlation ID it got the first time.
		ev.CorrelationID = correlation.Derive("correlation", ev.ID)
	}
	ev.TraceParent = correlation.TraceParent(w.In.Header.Get(stage.HeaderTraceParent))

	ev.Time = w.In.Meta.Timestamp
	if ev.Time.IsZero() {
		ev.Time = w.Now
	}
	if obj != nil {
		if t, ok := bodyTime(obj); ok {
			// The stored time, not the clock: a redelivery or a replay
			// decides the same.
			ref := w.In.Meta.Timestamp
			if ref.IsZero() {
				ref = w.Now
			}
			if limit := ref.Add(limits.TimeSkew); t.After(limit) {
				return stage.Rejectf("future_time", "body time %s is %s ahead of the time the input was stored (%s), over the limit of %s (TimeSkew): "+
					"search sorts by event time, and a time in the future would sort first until then", timeText(t), aheadText(t.Sub(ref)),
					ref.UTC().Format(time.RFC3339), limits.TimeSkew)
			}
			if y := t.UTC().Year(); y >= 1 && y <= 9999 {
				ev.Time = t
			}
		}
	}
	ev.Time = ev.Time.UTC()

	switch w.Kind {
	case schemas.KindMetric:
		ev.Data = w.Compact
		if ev.Data == nil { // Conform used without Validate
			ev.Data, err = compact(w.In.Data)
		}
	case schemas.KindLog:
		ev.Data, err = c.conformLog(w, obj)
	case schemas.KindSnapshot:
		ev.SyncScope, _ = obj["scope"].(string)
		if n, ok := obj["tag"].(json.Number); ok {
			// The schema takes 1.0 or 1.7e9 as integers: write the tag in
			// the one form the envelope's synctag and the sinks read.
			ev.SyncTag = canonicalInt(n)
			obj["tag"] = json.Number(ev.SyncTag)
		}
		ev.Subject = ev.SyncScope
		if ev.Data, err = marshal(obj); err != nil {
			return err
		}
		// A host's sync is read here exactly as the host store reads it,
		// so the store never dead-letters what the processor accepted.
		if _, err := schemas.ReadHostPart(ev.Data); err != nil {
			return stage.Reject("schema", "host snapshot cannot be stored", err)
		}
	}
	return err
}

// EventID is the id the event made of in has (if it is made): derived
// from its source and producer id (Identify, the seal unchecked), else
// from the input's stream position, so a redelivery produces the same id
// and the events stream drops the copy. For tools that look for an
// input's event; the processor itself checks the seal.
func EventID(in *stage.Message) string {
	src := identity.Source{Subject: in.Subject, Principal: in.Header.Get(stage.HeaderSource)}
	pid := in.Header.Get(stage.HeaderMsgID)
	if src.Principal != "" {
		pid = in.Header.Get(stage.HeaderSourceID)
	}
	return identity.ID(src, producerID(pid), position(in))
}

// Identify returns the source of in and the id its producer gave it: the
// subject alone, with the Nats-Msg-Id as the producer's id; or, when the
// HTTP ingest published it (Sightline-Source sealed with key in the
// Nats-Msg-Id), the subject and the ingest's token, with the item's id.
// A Sightline-Source without a valid seal is refused: only the worker
// makes one.
func Identify(in *stage.Message, key []byte) (identity.Source, string, error) {
	src := identity.Source{Subject: in.Subject}
	principal := in.Header.Get(stage.HeaderSource)
	if principal == "" && len(in.Header[stage.HeaderSource]) == 0 {
		return src, producerID(in.Header.Get(stage.HeaderMsgID)), nil
	}
	src.Principal = principal
	pid := in.Header.Get(stage.HeaderSourceID)
	if !strings.HasPrefix(principal, "http") || !identity.Verify(key, src, pid, in.Header.Get(stage.HeaderMsgID)) {
		return identity.Source{}, "", stage.Rejectf(stage.ClassForgedSource,
			"header %s is set only by Sightline's HTTP ingest, with its seal in %s; this input's is missing or invalid", stage.HeaderSource, stage.HeaderMsgID)
	}
	return src, producerID(pid), nil
}

// producerID is a producer's id as the rule takes it: trimmed, and only
// when it is valid UTF-8 of at most limits.IDBytes (else the input counts
// as unnamed and its stream position names it).
func producerID(id string) string {
	if id = strings.TrimSpace(id); id != "" && len(id) <= limits.IDBytes && utf8.ValidString(id) {
		return id
	}
	return ""
}

func position(in *stage.Message) identity.Position {
	return identity.Position{Stream: in.Meta.Stream, Sequence: in.Meta.Sequence, Time: in.Meta.Timestamp}
}

// canonicalInt writes a JSON number the schema accepted as an integer in
// plain decimal digits.
func canonicalInt(n json.Number) string {
	if i, err := n.Int64(); err == nil {
		return strconv.FormatInt(i, 10)
	}
	if f, err := n.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return strconv.FormatInt(int64(f), 10)
	}
	return n.String()
}

func compact(b []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	buf.Grow(len(b))
	if err := json.Compact(&buf, b); err != nil {
		return nil, stage.Reject("not_json", "body is not valid JSON", err)
	}
	return buf.Bytes(), nil
}

var timeFields = []string{"time", "timestamp", "@timestamp", "ts"}

// bodyTime reads the event time a producer put in the body: RFC 3339, or
// Unix seconds / milliseconds as a number or a numeric string (the Skywatch
// log example sends "time": "1509385330").
func bodyTime(m map[string]any) (time.Time, bool) {
	for _, k := range timeFields {
		v, ok := m[k]
		if !ok {
			continue
		}
		var t time.Time
		switch x := v.(type) {
		case string:
			var err error
			if t, err = time.Parse(time.RFC3339Nano, x); err != nil {
				t, _ = epoch(x)
			}
		case json.Number:
			t, _ = epoch(x.String())
		}
		// A time RFC 3339 cannot write in UTC (year 0 at +01:00 is year -1)
		// is not a usable event time; one after year 9999 is returned, for
		// the caller to refuse as in the future.
		if y := t.UTC().Year(); !t.IsZero() && y >= 1 {
			return t, true
		}
	}
	return time.Time{}, false
}

// timeText writes t in RFC 3339, or as Unix seconds beyond year 9999.
func timeText(t time.Time) string {
	if t.UTC().Year() > 9999 {
		return fmt.Sprintf("%d (Unix seconds)", t.Unix())
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// aheadText writes how far ahead d is, in years past a duration's range.
func aheadText(d time.Duration) string {
	if d > 100*365*24*time.Hour || d < 0 { // d < 0: the difference overflowed
		return "more than 100 years"
	}
	return d.Round(time.Second).String()
}

func epoch(s string) (time.Time, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return time.Time{}, false
	}
	switch {
	case f < 1e11: // seconds (until year 5138)
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	case f < 1e14: // milliseconds
		return time.UnixMilli(int64(f)), true
	case f < 1e17: // microseconds
		return time.UnixMicro(int64(f)), true
	case f < math.MaxInt64: // nanoseconds
		return time.Unix(0, int64(f)), true
	default:
		return time.Time{}, false
	}
}

var (
	messageFields = []string{"message", "msg", "log", "text", "@message"}
	levelFields   = []string{"level", "severity", "lvl", "loglevel", "log.level"}
	levels        = map[string]string{
		"trace": "trace", "debug": "debug", "dbg": "debug", "info": "info", "information": "info",
		"informational": "info", "notice": "notice", "warn": "warn", "warning": "warn",
		"error": "error", "err": "error", "crit": "critical", "critical": "critical",
		"alert": "fatal", "emerg": "fatal", "emergency": "fatal", "fatal": "fatal", "panic": "fatal",
	}
	// plainLevel finds "[info]", "level=warn", " ERROR " style levels near
	// the start of a plain-text line.
	plainLevel = regexp.MustCompile(`(?i)(?:\[|level=|\s|^)(trace|debug|info|notice|warn|warning|error|err|crit|critical|alert|emerg|fatal)(?:\]|\s|:|$)`)
)

func (c *Conform) conformLog(w *Work, obj map[string]any) (json.RawMessage, error) {
	if obj == nil {
		line := strings.TrimRight(string(w.In.Data), "\r\n")
		d := map[string]any{"message": line, "service": w.Name}
		head := line
		if len(head) > 120 {
			head = head[:120]
		}
		if m := plainLevel.FindStringSubmatch(head); m != nil {
			d["level"] = levels[strings.ToLower(m[1])]
		}
		return marshal(d)
	}
	if _, ok := obj["message"].(string); !ok {
		for _, k := range messageFields[1:] {
			if s, ok := obj[k].(string); ok {
				obj["message"] = s
				delete(obj, k)
				break
			}
		}
	}
	if _, ok := obj["message"]; !ok {
		obj["message"] = ""
	}
	for _, k := range levelFields {
		v, ok := obj[k]
		if !ok {
			continue
		}
		s, _ := v.(string)
		norm, known := levels[strings.ToLower(strings.TrimSpace(s))]
		if k != "level" {
			delete(obj, k)
		}
		if known {
			obj["level"] = norm
		} else {
			delete(obj, "level")
			obj["level_raw"] = v
		}
		break
	}
	if _, ok := obj["service"]; !ok {
		obj["service"] = w.Name
	}
	if err := c.Schemas.ValidatePayload(schemas.KindLog, obj); err != nil {
		return nil, stage.Reject("schema", "log body violates log.schema.json", err)
	}
	return marshal(obj)
}

// marshal is json.Marshal without HTML escaping: '<', '>' and '&' stay one
// byte each instead of six, so conforming a body never inflates it by more
// than JSON itself requires.
func marshal(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return b[:len(b)-1], nil // Encode ends with a newline
}
