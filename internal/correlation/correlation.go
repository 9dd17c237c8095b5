// Package correlation finds, carries and mints correlation IDs: the one ID
// that follows a request through every service, message and sink.
package correlation

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/sightline/sightline/internal/limits"
)

// Header is the header every Sightline output message carries; HeaderX and
// HeaderRequestID are the other request headers an ID is taken from.
const (
	Header          = "Correlation-Id"
	HeaderX         = "X-Correlation-Id"
	HeaderRequestID = "X-Request-Id"
)

// headerNames are the request headers a correlation ID is taken from, in
// order of preference.
var headerNames = []string{Header, HeaderX, HeaderRequestID}

// MaxLen bounds an accepted correlation ID; longer values are ignored.
const MaxLen = limits.CorrelationIDBytes

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the correlation ID carried by ctx, or "".
func FromContext(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Getter reads a header value; http.Header, nats.Header (via a func) and
// stage.Header all fit.
type Getter interface{ Get(string) string }

// FromHeaders returns the correlation ID named by the headers: Correlation-Id,
// X-Correlation-Id, X-Request-Id, or else the trace id of a W3C traceparent.
func FromHeaders(h Getter) string {
	for _, name := range headerNames {
		if v := clean(h.Get(name)); v != "" {
			return v
		}
	}
	return TraceID(h.Get("traceparent"))
}

// TraceParent returns a W3C traceparent value in the form the envelope
// carries ("<2 hex version>-<32 hex trace id>-<16 hex parent id>-<2 hex
// flags>", fields of a later version dropped), or "" when it is not valid.
func TraceParent(traceparent string) string {
	tp := strings.TrimSpace(traceparent)
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ""
	}
	// Version 00 has exactly four fields; a later version may add more
	// after a '-', and version ff is invalid.
	if (tp[:2] == "00" && len(tp) != 55) || (len(tp) > 55 && tp[55] != '-') || tp[:2] == "ff" {
		return ""
	}
	if !lowerHex(tp[:2]) || !lowerHex(tp[53:55]) || !nonZeroHex(tp[3:35]) || !nonZeroHex(tp[36:52]) {
		return ""
	}
	return tp[:55]
}

// TraceID returns the trace id of a valid W3C traceparent, or "".
func TraceID(traceparent string) string {
	if tp := TraceParent(traceparent); tp != "" {
		return tp[3:35]
	}
	return ""
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func nonZeroHex(s string) bool {
	return lowerHex(s) && strings.Trim(s, "0") != ""
}

// FromFields returns a correlation ID from a decoded JSON object's
// "correlationid" or "correlation_id" field (also "correlationId").
func FromFields(m map[string]any) string {
	for _, k := range []string{"correlationid", "correlation_id", "correlationId"} {
		if s, ok := m[k].(string); ok {
			if v := clean(s); v != "" {
				return v
			}
		}
	}
	return ""
}

// Mint returns a fresh random correlation ID (UUID v4).
func Mint() string { return uuid.NewString() }

// namespace is the UUID namespace of IDs Sightline derives.
var namespace = uuid.MustParse("8f0c3f8e-6d1a-4c55-9a53-2f6f3b1c5e10")

// Derive returns a deterministic UUID (v5) from parts: the same input always
// gives the same ID, so a redelivered message gets the ID it had before.
func Derive(parts ...string) string {
	// uuid.NewSHA1(namespace, join(parts, "\x00")), without its hasher and
	// string allocations: this runs twice per processed message.
	var stack [256]byte
	b := append(stack[:0], namespace[:]...)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	sum := sha1.Sum(b)
	var u uuid.UUID
	copy(u[:], sum[:])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	var text [36]byte
	hex.Encode(text[0:8], u[0:4])
	text[8] = '-'
	hex.Encode(text[9:13], u[4:6])
	text[13] = '-'
	hex.Encode(text[14:18], u[6:8])
	text[18] = '-'
	hex.Encode(text[19:23], u[8:10])
	text[23] = '-'
	hex.Encode(text[24:], u[10:])
	return string(text[:])
}

func clean(s string) string {
	s = strings.TrimSpace(s)
	// Invalid UTF-8 would come out of a JSON envelope changed, and no
	// longer match the Correlation-Id header.
	if s == "" || len(s) > MaxLen || !utf8.ValidString(s) {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] == 0x7f {
			return ""
		}
	}
	return s
}
