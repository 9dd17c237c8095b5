package correlation_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/stage"
)

const validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestFromHeaders(t *testing.T) {
	cases := []struct {
		name string
		h    stage.Header
		want string
	}{
		{"none", stage.Header{}, ""},
		{"Correlation-Id", stage.Header{"Correlation-Id": {"abc"}}, "abc"},
		{"case-insensitive name", stage.Header{"correlation-id": {"abc"}}, "abc"},
		{"X-Correlation-Id", stage.Header{"X-Correlation-Id": {"xc"}}, "xc"},
		{"X-Request-Id", stage.Header{"X-Request-Id": {"rq"}}, "rq"},
		{"traceparent", stage.Header{"traceparent": {validTP}}, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"Correlation-Id beats the rest", stage.Header{"Correlation-Id": {"a"}, "X-Correlation-Id": {"b"}, "X-Request-Id": {"c"}, "traceparent": {validTP}}, "a"},
		{"X-Correlation-Id beats X-Request-Id", stage.Header{"X-Correlation-Id": {"b"}, "X-Request-Id": {"c"}}, "b"},
		{"X-Request-Id beats traceparent", stage.Header{"X-Request-Id": {"c"}, "traceparent": {validTP}}, "c"},
		{"blank falls through", stage.Header{"Correlation-Id": {"  "}, "X-Request-Id": {"c"}}, "c"},
		{"spaces trimmed", stage.Header{"Correlation-Id": {" abc "}}, "abc"},
		{"inner space is not an id", stage.Header{"Correlation-Id": {"a b"}, "X-Request-Id": {"c"}}, "c"},
		{"control byte is not an id", stage.Header{"Correlation-Id": {"a\x01"}}, ""},
		{"too long is ignored", stage.Header{"Correlation-Id": {strings.Repeat("x", correlation.MaxLen+1)}, "X-Request-Id": {"c"}}, "c"},
		{"max length kept", stage.Header{"Correlation-Id": {strings.Repeat("x", correlation.MaxLen)}}, strings.Repeat("x", correlation.MaxLen)},
		{"invalid UTF-8 is not an id", stage.Header{"Correlation-Id": {"ab\xff"}, "X-Request-Id": {"c"}}, "c"},
		{"invalid traceparent ignored", stage.Header{"traceparent": {"00-zz"}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := correlation.FromHeaders(c.h); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	// http.Header fits Getter too.
	hh := http.Header{}
	hh.Set("X-Request-Id", "from-http")
	if got := correlation.FromHeaders(hh); got != "from-http" {
		t.Fatalf("http.Header: got %q", got)
	}
}

func TestTraceParent(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"valid", validTP, validTP},
		{"surrounding space", "  " + validTP + "\t", validTP},
		{"unsampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
		{"future version with more fields", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"empty", "", ""},
		{"short", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", ""},
		{"version 00 with more fields", validTP + "-x", ""},
		{"future version glued", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", ""},
		{"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"upper-case trace id", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""},
		{"upper-case parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-00A0000000000000-01", ""},
		{"bad flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", ""},
		{"bad version", "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"wrong separators", "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := correlation.TraceParent(c.in); got != c.want {
				t.Fatalf("TraceParent = %q, want %q", got, c.want)
			}
			wantID := ""
			if c.want != "" {
				wantID = c.want[3:35]
			}
			if got := correlation.TraceID(c.in); got != wantID {
				t.Fatalf("TraceID = %q, want %q", got, wantID)
			}
		})
	}
}

func TestDerive(t *testing.T) {
	a := correlation.Derive("SIGHTLINE_RAW", "7", "1714564799500000000")
	if a != correlation.Derive("SIGHTLINE_RAW", "7", "1714564799500000000") {
		t.Fatal("Derive is not deterministic")
	}
	u, err := uuid.Parse(a)
	if err != nil || u.Version() != 5 {
		t.Fatalf("Derive = %q: want a version 5 UUID (%v)", a, err)
	}
	distinct := [][]string{
		{"SIGHTLINE_RAW", "7", "1"},
		{"SIGHTLINE_RAW", "8", "1"},
		{"SIGHTLINE_RAW", "71"},  // parts are separated:
		{"SIGHTLINE_RAW7", "1"},  // joining does not collide
		{"SIGHTLINE_RAW", "7 1"}, // with neighbours
		{},
	}
	seen := map[string][]string{}
	for _, p := range distinct {
		id := correlation.Derive(p...)
		if prev, ok := seen[id]; ok {
			t.Fatalf("Derive(%q) == Derive(%q)", p, prev)
		}
		seen[id] = p
	}
}

func TestMint(t *testing.T) {
	a, b := correlation.Mint(), correlation.Mint()
	if a == b {
		t.Fatal("Mint returned the same id twice")
	}
	if u, err := uuid.Parse(a); err != nil || u.Version() != 4 {
		t.Fatalf("Mint = %q: want a version 4 UUID", a)
	}
}

func TestFromFields(t *testing.T) {
	cases := []struct {
		name string
		m    map[string]any
		want string
	}{
		{"nil", nil, ""},
		{"correlationid", map[string]any{"correlationid": "a"}, "a"},
		{"correlation_id", map[string]any{"correlation_id": "b"}, "b"},
		{"correlationId", map[string]any{"correlationId": "c"}, "c"},
		{"precedence", map[string]any{"correlationId": "c", "correlation_id": "b", "correlationid": "a"}, "a"},
		{"not a string", map[string]any{"correlationid": 42, "correlation_id": "b"}, "b"},
		{"blank falls through", map[string]any{"correlationid": " ", "correlationId": "c"}, "c"},
		{"with spaces is not an id", map[string]any{"correlationid": "a b"}, ""},
		{"other fields ignored", map[string]any{"request_id": "r", "traceparent": validTP}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := correlation.FromFields(c.m); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if got := correlation.FromContext(ctx); got != "" {
		t.Fatalf("empty context carries %q", got)
	}
	if got := correlation.FromContext(correlation.NewContext(ctx, "abc")); got != "abc" {
		t.Fatalf("got %q, want abc", got)
	}
	//lint:ignore SA1012 FromContext documents that a nil context is allowed
	if got := correlation.FromContext(nil); got != "" { //nolint:staticcheck
		t.Fatalf("nil context carries %q", got)
	}
}

// Derive is uuid.NewSHA1 over the parts joined by NUL, written without its
// allocations: the IDs it mints must never change.
func TestDeriveIsUUIDv5OfJoinedParts(t *testing.T) {
	cases := [][]string{
		{"correlation", "abc"},
		{"SIGHTLINE_RAW", "42", "1700000000000000000"},
		{""},
		{"a", "", "b"},
		{strings.Repeat("x", 300), "y"}, // longer than the stack buffer
	}
	ns := uuid.MustParse("8f0c3f8e-6d1a-4c55-9a53-2f6f3b1c5e10")
	for _, parts := range cases {
		want := uuid.NewSHA1(ns, []byte(strings.Join(parts, "\x00"))).String()
		if got := correlation.Derive(parts...); got != want {
			t.Errorf("Derive(%q) = %s, want %s", parts, got, want)
		}
	}
}
