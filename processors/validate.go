package processors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// DefaultMaxBodyBytes is the default body size limit (limits.MaxBodyBytes).
const DefaultMaxBodyBytes = limits.MaxBodyBytes

// Validate checks the raw input: a known kind and a valid name in the
// subject, the size limit, UTF-8, JSON where JSON is required, and the
// payload schema of metric and snapshot bodies. It decodes the body into
// Work.Body.
type Validate struct {
	MaxBodyBytes int
	Schemas      *schemas.Validator
}

// Name implements Stage.
func (v *Validate) Name() string { return "validate" }

// Apply implements Stage.
func (v *Validate) Apply(_ context.Context, w *Work) error {
	kind, name, rest, ok := ParseSubject(RawPrefix, w.In.Subject)
	if !ok {
		return stage.Rejectf("bad_subject", "subject %q is not sightline.raw.<kind>.<name>[.<more>]", w.In.Subject)
	}
	if !schemas.KnownKind(kind) {
		return stage.Rejectf("unknown_kind", "unknown kind %q in subject %q: expected one of %s", kind, w.In.Subject, strings.Join(schemas.Kinds(), ", "))
	}
	if !validName(name) {
		return stage.Rejectf("bad_subject", "name %q in subject %q must be 1-128 letters, digits, '_' or '-'", name, w.In.Subject)
	}
	if len(w.In.Subject) > MaxSubjectBytes || !validRest(rest) {
		subj := w.In.Subject
		if len(subj) > 80 {
			subj = subj[:80] + "…"
		}
		return stage.Rejectf("bad_subject", "subject %q (%d bytes) must be at most %d bytes, with tokens after the name non-empty and without spaces, '*' or '>'", subj, len(w.In.Subject), MaxSubjectBytes)
	}
	w.Kind, w.Name, w.Rest = kind, name, rest
	max := v.MaxBodyBytes
	if max <= 0 {
		max = DefaultMaxBodyBytes
	}
	body := w.In.Data
	if len(body) > max {
		return stage.Rejectf("too_large", "body is %d bytes, over the limit of %d bytes", len(body), max)
	}
	if !utf8.Valid(body) {
		return stage.Rejectf("invalid_utf8", "body is not valid UTF-8 (first bad byte at offset %d)", firstInvalid(body))
	}
	trimmed := bytes.TrimSpace(body)
	if kind == schemas.KindLog && (len(trimmed) == 0 || trimmed[0] != '{') {
		w.Body = nil // a plain-text line; conform makes it {message}
		return nil
	}
	if len(trimmed) == 0 {
		return stage.Rejectf("not_json", "%s body is empty: a JSON object is required", kind)
	}
	var doc any
	var err error
	if kind == schemas.KindMetric {
		// The metric body is kept as sent, compacted: one pass does both.
		doc, w.Compact, err = schemas.DecodeCompact(body, nil)
	} else {
		doc, err = schemas.DecodeBody(body)
	}
	if se := (*schemas.SyntaxError)(nil); errors.As(err, &se) && errors.Is(err, schemas.ErrTooDeep) {
		return stage.Rejectf("too_deep", "%s body is nested deeper than the limit of %d levels (at byte offset %d)", kind, limits.MaxBodyDepth, se.Offset)
	}
	if errors.Is(err, schemas.ErrNumberTooLong) {
		return stage.Reject("number_too_long", kind+" body has a number longer than the limit (NumberBytes): common JSON readers refuse such numbers", err)
	}
	if err != nil {
		return stage.Reject("not_json", kind+" body is not valid JSON", err)
	}
	obj, isObj := doc.(map[string]any)
	if !isObj {
		return stage.Rejectf("not_json", "%s body must be a JSON object, got %s", kind, jsonType(doc))
	}
	if kind == schemas.KindSnapshot {
		syncFromHeaders(obj, w.In.Header)
	}
	if kind != schemas.KindLog {
		if err := v.Schemas.ValidatePayload(kind, obj); err != nil {
			return stage.Reject("schema", kind+" body violates "+kind+".schema.json", err)
		}
	}
	if kind == schemas.KindSnapshot {
		// The graph and the host store hold numbers as 64-bit floats.
		if path, n, ok := overflow(obj, ""); ok {
			return stage.Rejectf("schema", "snapshot body has the number %.40s at %s, beyond a 64-bit float", n, path)
		}
		scope, _ := obj["scope"].(string)
		if err := CheckScope(name, rest, scope); err != nil {
			return err
		}
	}
	w.Body = obj
	return nil
}

// syncFromHeaders lets a plain graph document sent with `nats pub` name its
// sync in headers instead of the body.
func syncFromHeaders(obj map[string]any, h stage.Header) {
	if _, ok := obj["scope"]; !ok {
		if s := h.Get(stage.HeaderSyncScope); s != "" {
			obj["scope"] = s
		}
	}
	if _, ok := obj["tag"]; !ok {
		if s := h.Get(stage.HeaderSyncTag); s != "" {
			obj["tag"] = headerInt(s)
		}
	}
	if _, ok := obj["final"]; !ok {
		if s := h.Get(stage.HeaderSyncFinal); s != "" {
			if b, err := strconv.ParseBool(s); err == nil {
				obj["final"] = b
			}
		}
	}
	if _, ok := obj["count"]; !ok {
		if s := h.Get(stage.HeaderSyncCount); s != "" {
			obj["count"] = headerInt(s)
		}
	}
}

// headerInt is a header's integer as a JSON number, or the header text as a
// string when it is not an integer, so the schema rejects it with a reason
// naming the field (a bad json.Number would fail later, in json.Marshal).
func headerInt(s string) any {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return json.Number(strconv.FormatInt(n, 10))
	}
	return s
}

// MaxSubjectBytes bounds an input subject, so the event's source
// ("urn:sightline:subject:" + subject) stays within the envelope's
// (limits.SubjectBytes).
const MaxSubjectBytes = limits.SubjectBytes

// validRest checks the subject tokens after the name (".a.b"): each
// non-empty, without whitespace, control bytes or wildcards, so the output
// subject can be published.
func validRest(rest string) bool {
	if rest == "" {
		return true
	}
	for _, tok := range strings.Split(rest[1:], ".") {
		if tok == "" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c == 0x7f || c == '*' || c == '>' {
				return false
			}
		}
	}
	return true
}

func validName(s string) bool { return stage.NameToken(s) }

// overflow finds a number in v that a 64-bit float cannot hold (1e400),
// and its JSON pointer.
func overflow(v any, path string) (string, string, bool) {
	switch x := v.(type) {
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); err != nil {
			return path, string(x), true
		}
	case map[string]any:
		for k, e := range x {
			if p, n, ok := overflow(e, path+"/"+k); ok {
				return p, n, true
			}
		}
	case []any:
		for i, e := range x {
			if p, n, ok := overflow(e, path+"/"+strconv.Itoa(i)); ok {
				return p, n, true
			}
		}
	}
	return "", "", false
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return "a number"
	}
}
