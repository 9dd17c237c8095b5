package processors_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
)

var update = flag.Bool("update", false, "rewrite schemas/testdata/events and schemas/testdata/dlq from the pipeline's output")

// goldenDir is schemas/testdata, the one home of the golden events.
const goldenDir = "../schemas/testdata"

// fixedNow is the pipeline clock of every golden case.
var fixedNow = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// uuidPlaceholder in a golden stands for a value that is random on every run
// (a fresh id or a correlation id minted from it); it matches any UUID.
const uuidPlaceholder = "<uuid>"

// rawCase is one schemas/testdata/raw/<case>.json: an input message and the
// pipeline configuration it runs with.
type rawCase struct {
	Name        string            `json:"-"`
	Description string            `json:"description"`
	Subject     string            `json:"subject"`
	Headers     map[string]string `json:"headers,omitempty"`
	Body        *string           `json:"body,omitempty"`
	BodyJSON    json.RawMessage   `json:"body_json,omitempty"`
	BodyBase64  string            `json:"body_base64,omitempty"`
	Meta        *struct {
		Stream    string    `json:"stream"`
		Sequence  uint64    `json:"sequence"`
		Timestamp time.Time `json:"timestamp"`
	} `json:"meta,omitempty"`
	Config struct {
		Attributes   map[string]string `json:"attributes,omitempty"`
		MaxBodyBytes int               `json:"max_body_bytes,omitempty"`
	} `json:"config"`
}

func (c *rawCase) body(t testing.TB) []byte {
	t.Helper()
	switch {
	case c.Body != nil:
		return []byte(*c.Body)
	case c.BodyJSON != nil:
		var b bytes.Buffer
		if err := json.Compact(&b, c.BodyJSON); err != nil {
			t.Fatalf("%s: body_json: %v", c.Name, err)
		}
		return b.Bytes()
	case c.BodyBase64 != "":
		b, err := base64.StdEncoding.DecodeString(c.BodyBase64)
		if err != nil {
			t.Fatalf("%s: body_base64: %v", c.Name, err)
		}
		return b
	}
	t.Fatalf("%s: one of body, body_json, body_base64 is required", c.Name)
	return nil
}

func (c *rawCase) message(t testing.TB) *stage.Message {
	m := &stage.Message{Subject: c.Subject, Header: stage.Header{}, Data: c.body(t)}
	for k, v := range c.Headers {
		m.Header.Set(k, v)
	}
	if c.Meta != nil {
		m.Meta = stage.Meta{Stream: c.Meta.Stream, Sequence: c.Meta.Sequence, Delivered: 1, Timestamp: c.Meta.Timestamp}
	}
	return m
}

// eventGolden is schemas/testdata/events/<case>.json: the output message.
type eventGolden struct {
	Subject string            `json:"subject"`
	MsgID   string            `json:"msg_id"`
	Headers map[string]string `json:"headers"`
	Event   any               `json:"event"`
}

// dlqGolden is schemas/testdata/dlq/<case>.json: how the input is rejected.
// Class and Reason become the Sightline-Dlq-Class and Sightline-Dlq-Reason
// headers of the dead letter on DLQSubject.
type dlqGolden struct {
	DLQSubject string `json:"dlq_subject"`
	Class      string `json:"class"`
	Reason     string `json:"reason"`
	Error      string `json:"error"`
	// ReasonContains are hand-written fragments the reason must keep
	// whatever the wording; -update leaves them alone.
	ReasonContains []string `json:"reason_contains"`
}

func loadRaw(t testing.TB) []*rawCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(goldenDir, "raw", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs in %s/raw: %v", goldenDir, err)
	}
	var out []*rawCase
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := &rawCase{Name: strings.TrimSuffix(filepath.Base(f), ".json")}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, c)
	}
	return out
}

func newValidator(t testing.TB) *schemas.Validator {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func run(t testing.TB, v *schemas.Validator, c *rawCase) ([]*stage.Message, error) {
	t.Helper()
	p, _ := processors.Standard(processors.Config{Attributes: c.Config.Attributes, MaxBodyBytes: c.Config.MaxBodyBytes}, v,
		processors.WithClock(func() time.Time { return fixedNow }))
	return p.Process(context.Background(), c.message(t))
}

// outputGolden turns an output message into its golden form.
func outputGolden(t testing.TB, m *stage.Message) *eventGolden {
	t.Helper()
	ev, err := schemas.Decode(m.Data)
	if err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, m.Data)
	}
	g := &eventGolden{Subject: m.Subject, MsgID: m.ID, Headers: map[string]string{}, Event: ev}
	for k, v := range m.Header {
		if len(v) != 1 {
			t.Fatalf("header %s has %d values", k, len(v))
		}
		g.Headers[k] = v[0]
	}
	return g
}

func dlqFor(c *rawCase, err error) *dlqGolden {
	var pe *stage.PermanentError
	errors.As(err, &pe)
	return &dlqGolden{DLQSubject: stage.DLQSubject(c.Subject), Class: stage.PermanentClass(err), Reason: pe.Error(), Error: err.Error()}
}

// normalize replaces in want, with the placeholder, every leaf where the two
// runs a and b differ: those are random. It fails unless each is a UUID.
func normalize(t testing.TB, path string, a, b any) any {
	t.Helper()
	switch x := a.(type) {
	case map[string]any:
		y := b.(map[string]any)
		out := map[string]any{}
		for k := range x {
			out[k] = normalize(t, path+"/"+k, x[k], y[k])
		}
		return out
	case map[string]string:
		y := b.(map[string]string)
		out := map[string]string{}
		for k := range x {
			out[k] = normalize(t, path+"/"+k, x[k], y[k]).(string)
		}
		return out
	case []any:
		y := b.([]any)
		out := make([]any, len(x))
		for i := range x {
			out[i] = normalize(t, fmt.Sprintf("%s/%d", path, i), x[i], y[i])
		}
		return out
	}
	if reflect.DeepEqual(a, b) {
		return a
	}
	s1, _ := a.(string)
	s2, _ := b.(string)
	if uuid.Validate(s1) != nil || uuid.Validate(s2) != nil {
		t.Fatalf("%s differs between two runs and is not a UUID: %v / %v", path, a, b)
	}
	return uuidPlaceholder
}

// match compares got with want, where want may hold placeholders.
func match(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %v", path, got)}
		}
		var diffs []string
		for k := range w {
			if _, ok := g[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s/%s: missing", path, k))
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s/%s: unexpected %v", path, k, g[k]))
				continue
			}
			diffs = append(diffs, match(path+"/"+k, w[k], g[k])...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %v, got %v", path, want, got)}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, match(fmt.Sprintf("%s/%d", path, i), w[i], g[i])...)
		}
		return diffs
	case string:
		if w == uuidPlaceholder {
			if s, _ := got.(string); uuid.Validate(s) == nil {
				return nil
			}
		}
	}
	if !reflect.DeepEqual(want, got) {
		return []string{fmt.Sprintf("%s: want %v, got %v", path, want, got)}
	}
	return nil
}

// asTree decodes v's JSON encoding the way the goldens are read.
func asTree(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d, err := schemas.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readJSON(t testing.TB, path string, v any) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return true
}

// TestGolden runs every schemas/testdata/raw case through the standard
// pipeline with a fixed clock and compares the output with events/<case>.json
// or the rejection with dlq/<case>.json. Run with -update to rewrite them.
func TestGolden(t *testing.T) {
	v := newValidator(t)
	cases := loadRaw(t)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			evPath := filepath.Join(goldenDir, "events", c.Name+".json")
			dlqPath := filepath.Join(goldenDir, "dlq", c.Name+".json")
			out, err := run(t, v, c)
			if *update {
				updateGolden(t, v, c, out, err, evPath, dlqPath)
			}
			var wantEv eventGolden
			var wantDLQ dlqGolden
			hasEv, hasDLQ := readJSON(t, evPath, &wantEv), readJSON(t, dlqPath, &wantDLQ)
			if hasEv == hasDLQ {
				t.Fatalf("want exactly one of %s and %s (run with -update)", evPath, dlqPath)
			}
			if hasDLQ {
				if err == nil {
					t.Fatalf("accepted, want rejection %s: %s", wantDLQ.Class, out[0].Data)
				}
				if !stage.IsPermanent(err) {
					t.Fatalf("transient error on bad input: %v", err)
				}
				got := dlqFor(c, err)
				got.ReasonContains = wantDLQ.ReasonContains
				if !reflect.DeepEqual(got, &wantDLQ) {
					t.Errorf("rejection:\n got %+v\nwant %+v", got, &wantDLQ)
				}
				if len(wantDLQ.ReasonContains) == 0 {
					t.Errorf("%s: reason_contains is empty: name what the reason must say", dlqPath)
				}
				for _, frag := range wantDLQ.ReasonContains {
					if !strings.Contains(got.Reason, frag) {
						t.Errorf("reason %q does not contain %q", got.Reason, frag)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if len(out) != 1 {
				t.Fatalf("%d outputs, want 1", len(out))
			}
			m := out[0]
			if diffs := match("", asTree(t, wantEv), asTree(t, outputGolden(t, m))); len(diffs) > 0 {
				t.Errorf("output differs from %s:\n%s\ngot: %s", evPath, strings.Join(diffs, "\n"), m.Data)
			}
			checkInvariants(t, v, m)
		})
	}
}

// checkInvariants holds for every output whatever the golden says.
func checkInvariants(t *testing.T, v *schemas.Validator, m *stage.Message) {
	t.Helper()
	doc, err := schemas.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ValidateEvent(doc); err != nil {
		t.Errorf("output does not validate: %v", err)
	}
	var ev schemas.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if m.ID != ev.ID {
		t.Errorf("output Nats-Msg-Id %q != event id %q", m.ID, ev.ID)
	}
	if h := m.Header.Get(stage.HeaderCorrelationID); h == "" || h != ev.CorrelationID {
		t.Errorf("Correlation-Id header %q != envelope %q", h, ev.CorrelationID)
	}
	if m.Header.Get(stage.HeaderEventType) != ev.Type {
		t.Errorf("Sightline-Type header %q != type %q", m.Header.Get(stage.HeaderEventType), ev.Type)
	}
	if want := ev.IngestTime.Sub(ev.Time).Milliseconds(); ev.LagMs != want {
		t.Errorf("lagms %d, want ingesttime - time = %d", ev.LagMs, want)
	}
	if !strings.HasPrefix(m.Subject, processors.EventsPrefix+ev.Kind()+"."+ev.Name()) {
		t.Errorf("subject %s does not match type %s", m.Subject, ev.Type)
	}
}

func updateGolden(t *testing.T, v *schemas.Validator, c *rawCase, out []*stage.Message, err error, evPath, dlqPath string) {
	t.Helper()
	if err != nil {
		var old dlqGolden
		readJSON(t, dlqPath, &old)
		g := dlqFor(c, err)
		g.ReasonContains = old.ReasonContains
		if g.ReasonContains == nil {
			g.ReasonContains = []string{}
		}
		writeJSON(t, dlqPath, g)
		_ = os.Remove(evPath)
		return
	}
	// A second run tells the random values from the deterministic ones.
	out2, err2 := run(t, v, c)
	if err2 != nil || len(out) != 1 || len(out2) != 1 {
		t.Fatalf("second run: %v", err2)
	}
	a, b := asTree(t, outputGolden(t, out[0])), asTree(t, outputGolden(t, out2[0]))
	writeJSON(t, evPath, normalize(t, "", a, b))
	_ = os.Remove(dlqPath)
}

// TestGoldenFilesHaveInputs catches an events/ or dlq/ file left behind by
// a renamed or deleted raw case.
func TestGoldenFilesHaveInputs(t *testing.T) {
	raw := map[string]bool{}
	for _, c := range loadRaw(t) {
		raw[c.Name] = true
	}
	for _, dir := range []string{"events", "dlq"} {
		files, _ := filepath.Glob(filepath.Join(goldenDir, dir, "*.json"))
		var orphans []string
		for _, f := range files {
			if name := strings.TrimSuffix(filepath.Base(f), ".json"); !raw[name] {
				orphans = append(orphans, f)
			}
		}
		sort.Strings(orphans)
		if len(orphans) > 0 {
			t.Errorf("golden outputs without a raw input: %v", orphans)
		}
	}
}

// TestGoldenMintedCorrelation checks the rules behind the placeholders: a
// correlation id minted for an input without one is derived from the event
// id, so a redelivery gets the same one.
func TestGoldenMintedCorrelation(t *testing.T) {
	v := newValidator(t)
	n := 0
	for _, c := range loadRaw(t) {
		if len(c.Headers) > 0 || c.BodyJSON == nil || strings.Contains(string(c.BodyJSON), "correlation") {
			continue
		}
		n++
		out, err := run(t, v, c)
		if err != nil {
			continue
		}
		var ev schemas.Event
		if err := json.Unmarshal(out[0].Data, &ev); err != nil {
			t.Fatal(err)
		}
		if want := correlation.Derive("correlation", ev.ID); ev.CorrelationID != want {
			t.Errorf("%s: minted correlation id %q, want Derive(correlation, id) = %q", c.Name, ev.CorrelationID, want)
		}
		if uuid.Validate(ev.ID) != nil {
			t.Errorf("%s: assigned id %q is not a UUID", c.Name, ev.ID)
		}
	}
	if n < 3 {
		t.Fatalf("only %d golden cases without a correlation id", n)
	}
}
