package processors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
)

func TestParseSubject(t *testing.T) {
	cases := []struct {
		prefix, subject, kind, name, rest string
		ok                                bool
	}{
		{processors.RawPrefix, "sightline.raw.metric.search_made", "metric", "search_made", "", true},
		{processors.RawPrefix, "sightline.raw.log.download-server.eu.web", "log", "download-server", ".eu.web", true},
		{processors.RawPrefix, "sightline.raw.trace.x", "trace", "x", "", true}, // kinds are checked by Validate
		{processors.EventsPrefix, "sightline.events.snapshot.graph", "snapshot", "graph", "", true},
		{processors.RawPrefix, "sightline.events.metric.a", "", "", "", false},
		{processors.RawPrefix, "sightline.raw.metric", "", "", "", false},
		{processors.RawPrefix, "sightline.raw.metric.", "", "", "", false},
		{processors.RawPrefix, "sightline.raw..a", "", "", "", false},
		{processors.RawPrefix, "sightline.raw.", "", "", "", false},
		{processors.RawPrefix, "", "", "", "", false},
	}
	for _, c := range cases {
		kind, name, rest, ok := processors.ParseSubject(c.prefix, c.subject)
		if kind != c.kind || name != c.name || rest != c.rest || ok != c.ok {
			t.Errorf("ParseSubject(%q, %q) = %q %q %q %v, want %q %q %q %v",
				c.prefix, c.subject, kind, name, rest, ok, c.kind, c.name, c.rest, c.ok)
		}
	}
}

func work(subject, body string, h stage.Header) *processors.Work {
	if h == nil {
		h = stage.Header{}
	}
	return &processors.Work{In: &stage.Message{Subject: subject, Header: h, Data: []byte(body)}, Now: fixedNow}
}

func TestValidateStage(t *testing.T) {
	v := newValidator(t)
	cases := []struct {
		name, subject, body string
		h                   stage.Header
		max                 int
		class               string // "" when accepted
		body2               any    // the decoded body when accepted (nil for plain text)
	}{
		{"metric object", "sightline.raw.metric.m", `{"a":1}`, nil, 0, "", map[string]any{"a": json.Number("1")}},
		{"plain log is not decoded", "sightline.raw.log.s", `hello`, nil, 0, "", nil},
		{"empty log is a plain line", "sightline.raw.log.s", ``, nil, 0, "", nil},
		{"log JSON is decoded", "sightline.raw.log.s", ` {"message":"m"}`, nil, 0, "", map[string]any{"message": "m"}},
		{"snapshot sync from headers", "sightline.raw.snapshot.g", `{}`, stage.Header{"Sightline-Sync-Scope": {"lab"}, "Sightline-Sync-Tag": {" 007 "}, "Sightline-Sync-Final": {"1"}, "Sightline-Sync-Count": {"0"}}, 0, "",
			map[string]any{"scope": "lab", "tag": json.Number("7"), "final": true, "count": json.Number("0")}},
		{"body beats sync headers", "sightline.raw.snapshot.g", `{"scope":"a","tag":2}`, stage.Header{"Sightline-Sync-Scope": {"b"}, "Sightline-Sync-Tag": {"3"}}, 0, "",
			map[string]any{"scope": "a", "tag": json.Number("2")}},
		{"at the limit", "sightline.raw.metric.m", `{"a":1}`, nil, 7, "", map[string]any{"a": json.Number("1")}},
		{"over the limit", "sightline.raw.metric.m", `{"a":12}`, nil, 7, "too_large", nil},
		{"limit applies to logs", "sightline.raw.log.s", `12345678`, nil, 7, "too_large", nil},
		{"invalid UTF-8 log", "sightline.raw.log.s", "ab\xc3", nil, 0, "invalid_utf8", nil},
		{"unknown kind", "sightline.raw.event.m", `{}`, nil, 0, "unknown_kind", nil},
		{"not raw", "sightline.events.metric.m", `{}`, nil, 0, "bad_subject", nil},
		{"name too long", "sightline.raw.metric." + strings.Repeat("n", 129), `{}`, nil, 0, "bad_subject", nil},
		{"name with wildcard", "sightline.raw.metric.*", `{}`, nil, 0, "bad_subject", nil},
		{"empty token after the name", "sightline.raw.metric.m..x", `{}`, nil, 0, "bad_subject", nil},
		{"wildcard after the name", "sightline.raw.metric.m.>", `{}`, nil, 0, "bad_subject", nil},
		{"space after the name", "sightline.raw.metric.m.a b", `{}`, nil, 0, "bad_subject", nil},
		{"subject too long", "sightline.raw.metric.m." + strings.Repeat("x", processors.MaxSubjectBytes), `{}`, nil, 0, "bad_subject", nil},
		{"more tokens are fine", "sightline.raw.snapshot.hosts.web-1.example.com", `{"scope":"h","tag":1}`, nil, 0, "", map[string]any{"scope": "h", "tag": json.Number("1")}},
		{"metric string", "sightline.raw.metric.m", `"x"`, nil, 0, "not_json", nil},
		{"snapshot null", "sightline.raw.snapshot.g", `null`, nil, 0, "not_json", nil},
		{"sync final header not a bool", "sightline.raw.snapshot.g", `{"scope":"a","tag":1}`, stage.Header{"Sightline-Sync-Final": {"yes"}}, 0, "", map[string]any{"scope": "a", "tag": json.Number("1")}},
		{"sync count header not an int", "sightline.raw.snapshot.g", `{"scope":"a","tag":1}`, stage.Header{"Sightline-Sync-Count": {"many"}}, 0, "schema", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := work(c.subject, c.body, c.h)
			err := (&processors.Validate{MaxBodyBytes: c.max, Schemas: v}).Apply(context.Background(), w)
			if c.class != "" {
				if got := stage.PermanentClass(err); got != c.class {
					t.Fatalf("class %q (%v), want %q", got, err, c.class)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if fmt.Sprint(w.Body) != fmt.Sprint(c.body2) {
				t.Fatalf("body %#v, want %#v", w.Body, c.body2)
			}
		})
	}
}

func TestValidateDefaultLimit(t *testing.T) {
	v := newValidator(t)
	body := `{"q":"` + strings.Repeat("a", processors.DefaultMaxBodyBytes-8) + `"}`
	for _, extra := range []int{0, 1} {
		w := work("sightline.raw.metric.m", body+strings.Repeat(" ", extra), nil)
		err := (&processors.Validate{Schemas: v}).Apply(context.Background(), w)
		if over := len(w.In.Data) > processors.DefaultMaxBodyBytes; over != (stage.PermanentClass(err) == "too_large") {
			t.Fatalf("%d bytes: err %v", len(w.In.Data), err)
		}
	}
}

// conformed runs validate then conform alone on one input.
func conformed(t *testing.T, v *schemas.Validator, in *stage.Message) (*schemas.Event, error) {
	t.Helper()
	w := &processors.Work{In: in, Now: fixedNow}
	if err := (&processors.Validate{Schemas: v}).Apply(context.Background(), w); err != nil {
		return nil, err
	}
	if err := (&processors.Conform{Schemas: v}).Apply(context.Background(), w); err != nil {
		return nil, err
	}
	return &w.Event, nil
}

func TestConformStage(t *testing.T) {
	v := newValidator(t)
	stored := time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC)
	meta := stage.Meta{Stream: "SIGHTLINE_RAW", Sequence: 9, Timestamp: stored}
	cases := []struct {
		name, subject, body string
		h                   stage.Header
		meta                stage.Meta
		check               func(t *testing.T, ev *schemas.Event)
	}{
		{"id from stream position is stable", "sightline.raw.metric.m", `{}`, nil, meta, func(t *testing.T, ev *schemas.Event) {
			if want := correlation.Derive("SIGHTLINE_RAW", "9", fmt.Sprint(stored.UnixNano())); ev.ID != want {
				t.Errorf("id %q, want %q", ev.ID, want)
			}
			if ev.CorrelationID != correlation.Derive("correlation", ev.ID) {
				t.Errorf("minted correlation id %q is not derived from the id", ev.CorrelationID)
			}
			if !ev.Time.Equal(stored) {
				t.Errorf("time %v, want the stream timestamp", ev.Time)
			}
		}},
		{"Nats-Msg-Id wins over stream position, within the subject's source", "sightline.raw.metric.m", `{}`, stage.Header{"Nats-Msg-Id": {" x "}}, meta, func(t *testing.T, ev *schemas.Event) {
			if want := identity.ID(identity.Source{Subject: "sightline.raw.metric.m"}, "x", identity.Position{}); ev.ID != want {
				t.Errorf("id %q, want %q (derived from the subject and x)", ev.ID, want)
			}
		}},
		{"Nats-Msg-Id too long is not used", "sightline.raw.metric.m", `{}`, stage.Header{"Nats-Msg-Id": {strings.Repeat("x", 257)}}, meta, func(t *testing.T, ev *schemas.Event) {
			if len(ev.ID) != 36 {
				t.Errorf("id %q, want a derived UUID", ev.ID)
			}
		}},
		{"Nats-Msg-Id with invalid UTF-8 is not used", "sightline.raw.metric.m", `{}`, stage.Header{"Nats-Msg-Id": {"x\xff"}}, meta, func(t *testing.T, ev *schemas.Event) {
			if ev.ID != correlation.Derive("SIGHTLINE_RAW", "9", fmt.Sprint(stored.UnixNano())) {
				t.Errorf("id %q, want the derived one", ev.ID)
			}
		}},
		{"no stream position: clock time", "sightline.raw.metric.m", `{}`, nil, stage.Meta{}, func(t *testing.T, ev *schemas.Event) {
			if !ev.Time.Equal(fixedNow) {
				t.Errorf("time %v, want the clock", ev.Time)
			}
		}},
		{"RFC 3339 body time in UTC", "sightline.raw.metric.m", `{"timestamp":"2024-05-01T13:00:00+02:00"}`, nil, meta, func(t *testing.T, ev *schemas.Event) {
			if want := time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC); ev.Time != want {
				t.Errorf("time %v, want %v", ev.Time, want)
			}
		}},
		{"@timestamp epoch microseconds", "sightline.raw.metric.m", `{"@timestamp":1714560000000001}`, nil, meta, func(t *testing.T, ev *schemas.Event) {
			if want := time.UnixMicro(1714560000000001).UTC(); !ev.Time.Equal(want) {
				t.Errorf("time %v, want %v", ev.Time, want)
			}
		}},
		{"epoch seconds with fraction", "sightline.raw.metric.m", `{"ts":1714560000.5}`, nil, meta, func(t *testing.T, ev *schemas.Event) {
			if want := time.UnixMilli(1714560000500).UTC(); !ev.Time.Equal(want) {
				t.Errorf("time %v, want %v", ev.Time, want)
			}
		}},
		{"unusable body times fall back", "sightline.raw.metric.m", `{"time":"0000-01-01T00:00:00+01:00","timestamp":-5,"ts":"soon"}`, nil, meta, func(t *testing.T, ev *schemas.Event) {
			if !ev.Time.Equal(stored) {
				t.Errorf("time %v, want the stream timestamp", ev.Time)
			}
		}},
		{"source from the subject, never from the producer", "sightline.raw.metric.m", `{}`, stage.Header{"Sightline-Producer": {"svc@h"}}, meta, func(t *testing.T, ev *schemas.Event) {
			if ev.Source != "urn:sightline:subject:sightline.raw.metric.m" {
				t.Errorf("source %q", ev.Source)
			}
		}},
		{"metric data is the compacted body", "sightline.raw.metric.m", "{ \"b\" : 1,\n \"a\": [1, 2] }", nil, meta, func(t *testing.T, ev *schemas.Event) {
			if string(ev.Data) != `{"b":1,"a":[1,2]}` {
				t.Errorf("data %s", ev.Data)
			}
		}},
		{"log level words", "sightline.raw.log.s", `{"message":"m","lvl":"Warning","log.level":"ignored"}`, nil, meta, func(t *testing.T, ev *schemas.Event) {
			if string(ev.Data) != `{"level":"warn","log.level":"ignored","message":"m","service":"s"}` {
				t.Errorf("data %s", ev.Data)
			}
		}},
		{"log keeps its own service", "sightline.raw.log.s", `{"text":"m","service":"other"}`, nil, meta, func(t *testing.T, ev *schemas.Event) {
			if string(ev.Data) != `{"message":"m","service":"other"}` {
				t.Errorf("data %s", ev.Data)
			}
		}},
		{"log without message gets an empty one", "sightline.raw.log.s", `{"event":"x"}`, nil, meta, func(t *testing.T, ev *schemas.Event) {
			if string(ev.Data) != `{"event":"x","message":"","service":"s"}` {
				t.Errorf("data %s", ev.Data)
			}
		}},
		{"plain log levels", "sightline.raw.log.s", "level=debug msg=hi", nil, meta, func(t *testing.T, ev *schemas.Event) {
			if string(ev.Data) != `{"level":"debug","message":"level=debug msg=hi","service":"s"}` {
				t.Errorf("data %s", ev.Data)
			}
		}},
		{"plain log with a level word far in", "sightline.raw.log.s", strings.Repeat("x", 130) + " error", nil, meta, func(t *testing.T, ev *schemas.Event) {
			if strings.Contains(string(ev.Data), `"level"`) {
				t.Errorf("level read past the head of the line: %s", ev.Data)
			}
		}},
		{"snapshot scope is the subject", "sightline.raw.snapshot.g", `{"scope":"lab","tag":3.0}`, nil, meta, func(t *testing.T, ev *schemas.Event) {
			if ev.Subject != "lab" || ev.SyncScope != "lab" || ev.SyncTag != "3" || string(ev.Data) != `{"scope":"lab","tag":3}` {
				t.Errorf("subject %q scope %q tag %q data %s", ev.Subject, ev.SyncScope, ev.SyncTag, ev.Data)
			}
		}},
		{"valid traceparent is carried", "sightline.raw.metric.m", `{}`, stage.Header{"traceparent": {" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 "}}, meta, func(t *testing.T, ev *schemas.Event) {
			if ev.TraceParent != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || ev.CorrelationID != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Errorf("traceparent %q correlation %q", ev.TraceParent, ev.CorrelationID)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := conformed(t, v, &stage.Message{Subject: c.subject, Header: c.h, Data: []byte(c.body), Meta: c.meta})
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, ev)
		})
	}
}

func TestEnricherStage(t *testing.T) {
	stored := time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		attrs     map[string]string
		h         stage.Header
		meta      stage.Meta
		eventTime time.Time
		ingest    time.Time
		lag       int64
		producer  string
	}{
		{"stream timestamp is the ingest time", map[string]string{"site": "lab1"}, nil, stage.Meta{Timestamp: stored}, stored.Add(-1500 * time.Millisecond), stored, 1500, ""},
		{"clock when not stored", nil, nil, stage.Meta{}, fixedNow, fixedNow, 0, ""},
		{"future event time gives negative lag", nil, nil, stage.Meta{Timestamp: stored}, stored.Add(time.Second), stored, -1000, ""},
		{"Sightline-Producer", nil, stage.Header{"Sightline-Producer": {" svc "}, "User-Agent": {"ua"}}, stage.Meta{}, fixedNow, fixedNow, 0, "svc"},
		{"User-Agent", nil, stage.Header{"user-agent": {"curl/8"}}, stage.Meta{}, fixedNow, fixedNow, 0, "curl/8"},
		{"long producer cut", nil, stage.Header{"Sightline-Producer": {strings.Repeat("p", 300)}}, stage.Meta{}, fixedNow, fixedNow, 0, strings.Repeat("p", 256)},
		{"long producer cut on a character boundary", nil, stage.Header{"Sightline-Producer": {"p" + strings.Repeat("é", 200)}}, stage.Meta{}, fixedNow, fixedNow, 0, "p" + strings.Repeat("é", 127)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &processors.Work{In: &stage.Message{Header: c.h, Meta: c.meta}, Now: fixedNow}
			w.Event.Time = c.eventTime
			en := processors.NewEnricher(c.attrs)
			if err := en.Apply(context.Background(), w); err != nil {
				t.Fatal(err)
			}
			if !w.Event.IngestTime.Equal(c.ingest) || w.Event.IngestTime.Location() != time.UTC {
				t.Errorf("ingest %v, want %v UTC", w.Event.IngestTime, c.ingest)
			}
			if w.Event.LagMs != c.lag {
				t.Errorf("lag %d, want %d", w.Event.LagMs, c.lag)
			}
			if w.Event.Producer != c.producer {
				t.Errorf("producer %q, want %q", w.Event.Producer, c.producer)
			}
			if fmt.Sprint(w.Event.Attributes) != fmt.Sprint(map[string]string(nil)) && len(c.attrs) == 0 {
				t.Errorf("attributes %v, want none", w.Event.Attributes)
			}
			for k, v := range c.attrs {
				if w.Event.Attributes[k] != v {
					t.Errorf("attribute %s = %q, want %q", k, w.Event.Attributes[k], v)
				}
			}
		})
	}
}

// TestEnricherSetAttributesWhileProcessing swaps attributes (SIGHUP) while
// workers process: run with -race. Every event carries one whole set, never
// a mix, and the caller's map is copied.
func TestEnricherSetAttributesWhileProcessing(t *testing.T) {
	v := newValidator(t)
	first := map[string]string{"site": "a", "env": "a"}
	p, en := processors.Standard(processors.Config{Attributes: first}, v, processors.WithClock(func() time.Time { return fixedNow }))
	first["site"] = "mutated by the caller"
	if got := en.Attributes()["site"]; got != "a" {
		t.Fatalf("the enricher shares the caller's map: site=%q", got)
	}
	const workers, perWorker = 4, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < perWorker; j++ {
				out, err := p.Process(context.Background(), &stage.Message{Subject: "sightline.raw.metric.m", Data: []byte(`{"n":1}`)})
				if err != nil {
					errs <- err
					return
				}
				var ev schemas.Event
				if err := json.Unmarshal(out[0].Data, &ev); err != nil {
					errs <- err
					return
				}
				if ev.Attributes["site"] != ev.Attributes["env"] {
					errs <- fmt.Errorf("mixed attribute sets: %v", ev.Attributes)
					return
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		s := fmt.Sprint(i)
		en.SetAttributes(map[string]string{"site": s, "env": s})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := en.Attributes(); got["site"] != "199" {
		t.Fatalf("attributes after the last swap: %v", got)
	}
}

type failStage struct{ err error }

func (f failStage) Name() string                                  { return "fail" }
func (f failStage) Apply(context.Context, *processors.Work) error { return f.err }

type recordStage struct{ seen *[]string }

func (r recordStage) Name() string { return "record" }
func (r recordStage) Apply(_ context.Context, w *processors.Work) error {
	*r.seen = append(*r.seen, w.In.Subject)
	w.Kind, w.Name, w.Event.ID, w.Event.CorrelationID, w.Event.Type = "metric", "m", "id1", "c1", "metric.m"
	return nil
}

func TestPipelineComposition(t *testing.T) {
	var seen []string
	transient := errors.New("disk full")
	cases := []struct {
		name      string
		stages    []processors.Stage
		permanent bool
		err       string
		ran       int
	}{
		{"stages run in order and emit one message", []processors.Stage{recordStage{&seen}}, false, "", 1},
		{"a failing stage stops the pipeline, named", []processors.Stage{failStage{stage.Rejectf("x", "bad")}, recordStage{&seen}}, true, "fail: bad", 0},
		{"transient errors stay transient", []processors.Stage{recordStage{&seen}, failStage{transient}}, false, "fail: disk full", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen = nil
			out, err := processors.NewPipeline(c.stages).Process(context.Background(), &stage.Message{Subject: "s"})
			if len(seen) != c.ran {
				t.Errorf("%d stages recorded, want %d", len(seen), c.ran)
			}
			if c.err == "" {
				if err != nil || len(out) != 1 || out[0].ID != "id1" || out[0].Subject != "sightline.events.metric.m" {
					t.Fatalf("out %v err %v", out, err)
				}
				return
			}
			if err == nil || err.Error() != c.err || stage.IsPermanent(err) != c.permanent {
				t.Fatalf("err %v, want %q permanent=%v", err, c.err, c.permanent)
			}
			if c.err == "fail: disk full" && !errors.Is(err, transient) {
				t.Fatal("cause lost")
			}
		})
	}
}

// A span per stage when tracing is on and the message is sampled; none when
// its parent span is not recording, so unsampled messages pay nothing.
func TestStageSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	p, _ := processors.Standard(processors.Config{}, newValidator(t), processors.WithTracer(tp.Tracer("test")))
	in := func() *stage.Message {
		return &stage.Message{Subject: "sightline.raw.metric.m", Header: stage.Header{}, Data: []byte(`{"a":1}`)}
	}

	ctx, parent := tp.Tracer("test").Start(context.Background(), "process")
	if _, err := p.Process(ctx, in()); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var names []string
	for _, s := range rec.Ended() {
		if s.Parent().SpanID() == parent.SpanContext().SpanID() {
			names = append(names, s.Name())
		}
	}
	if strings.Join(names, ",") != "validate,conform,enrich" {
		t.Fatalf("stage spans under a sampled parent: %v, want validate,conform,enrich", names)
	}

	before := len(rec.Ended())
	unsampled := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, // not sampled
	}))
	if _, err := p.Process(unsampled, in()); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()) - before; n != 0 {
		t.Fatalf("%d stage spans under an unsampled parent, want none", n)
	}
}
