package processors_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
)

// fuzzHeaders encodes headers as "Key: value" lines, the form the fuzzer
// mutates.
func fuzzHeaders(h map[string]string) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + ": " + h[k] + "\n")
	}
	return b.String()
}

// parseFuzzHeaders decodes fuzzHeaders. NATS header lines cannot hold CR
// or LF, so splitting on them loses nothing a real message could carry.
func parseFuzzHeaders(s string) stage.Header {
	h := stage.Header{}
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) == "" {
			continue
		}
		k = strings.TrimSpace(k)
		h[k] = append(h[k], strings.TrimSpace(v))
	}
	return h
}

// FuzzProcess feeds arbitrary subjects, headers and bodies to the standard
// pipeline: it never panics, and either emits exactly one event that
// validates against the envelope and its payload schema, or rejects the
// input with a permanent error. Input alone never causes a transient error
// (that would redeliver it forever).
func FuzzProcess(f *testing.F) {
	for _, c := range loadRaw(f) {
		var seq uint64
		if c.Meta != nil {
			seq = c.Meta.Sequence
		}
		f.Add(strings.TrimPrefix(c.Subject, processors.RawPrefix), fuzzHeaders(c.Headers), c.body(f), seq)
	}
	// A subject longer than the envelope's source allows.
	f.Add("metric.a."+strings.Repeat("b", 1100), "", []byte(`{}`), uint64(0))
	v := newValidator(f)
	p, _ := processors.Standard(processors.Config{MaxBodyBytes: 4096, Attributes: map[string]string{"site": "lab1", "env": "test"}}, v,
		processors.WithClock(func() time.Time { return fixedNow }))
	f.Fuzz(func(t *testing.T, suffix, headers string, body []byte, seq uint64) {
		in := &stage.Message{Subject: processors.RawPrefix + suffix, Header: parseFuzzHeaders(headers), Data: body}
		if seq > 0 {
			in.Meta = stage.Meta{Stream: "SIGHTLINE_RAW", Sequence: seq, Delivered: 1, Timestamp: fixedNow.Add(-time.Second)}
		}
		out, err := p.Process(context.Background(), in)
		if err != nil {
			if !stage.IsPermanent(err) {
				t.Fatalf("transient error on input alone: %v", err)
			}
			if stage.PermanentClass(err) == "" {
				t.Fatalf("permanent error without a class: %v", err)
			}
			return
		}
		if len(out) != 1 {
			t.Fatalf("%d outputs, want 1", len(out))
		}
		m := out[0]
		doc, err := schemas.Decode(m.Data)
		if err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, m.Data)
		}
		if err := v.ValidateEvent(doc); err != nil {
			t.Fatalf("output does not validate: %v\n%s", err, m.Data)
		}
		var ev schemas.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("output does not decode into schemas.Event: %v\n%s", err, m.Data)
		}
		if m.ID == "" || m.ID != ev.ID {
			t.Fatalf("output Nats-Msg-Id %q, event id %q", m.ID, ev.ID)
		}
		if h := m.Header.Get(stage.HeaderCorrelationID); h != ev.CorrelationID {
			t.Fatalf("Correlation-Id header %q, envelope %q", h, ev.CorrelationID)
		}
		if !strings.HasPrefix(m.Subject, processors.EventsPrefix+ev.Type) {
			t.Fatalf("subject %q for type %q", m.Subject, ev.Type)
		}
	})
}
