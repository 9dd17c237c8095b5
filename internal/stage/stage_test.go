package stage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/sightline/sightline/internal/stage"
)

func TestHeaderGet(t *testing.T) {
	h := stage.Header{
		"Correlation-Id": {"exact"},
		"x-request-id":   {"lower"},
		"Empty":          {},
		"Multi":          {"first", "second"},
	}
	cases := []struct{ key, want string }{
		{"Correlation-Id", "exact"},
		{"CORRELATION-ID", "exact"},
		{"X-Request-Id", "lower"},
		{"Multi", "first"},
		{"Empty", ""},
		{"Missing", ""},
	}
	for _, c := range cases {
		if got := h.Get(c.key); got != c.want {
			t.Errorf("Get(%q) = %q, want %q", c.key, got, c.want)
		}
	}
	// The exact spelling wins over another case of the same name.
	h2 := stage.Header{"traceparent": {"exact"}, "Traceparent": {"other"}}
	for i := 0; i < 20; i++ { // map order is random: ask many times
		if got := h2.Get("traceparent"); got != "exact" {
			t.Fatalf("Get(traceparent) = %q, want the exact spelling's value", got)
		}
	}
}

func TestHeaderSetAndClone(t *testing.T) {
	h := stage.Header{"A": {"1", "2"}}
	h.Set("A", "3")
	if len(h["A"]) != 1 || h.Get("A") != "3" {
		t.Fatalf("Set did not replace: %v", h["A"])
	}
	c := h.Clone()
	c["A"][0] = "changed"
	c.Set("B", "new")
	if h.Get("A") != "3" || h.Get("B") != "" {
		t.Fatalf("Clone shares state with the original: %v", h)
	}
	if len(stage.Header(nil).Clone()) != 0 {
		t.Fatal("Clone of nil is not empty")
	}
}

func TestPermanentErrors(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	cases := []struct {
		name      string
		err       error
		permanent bool
		class     string
		text      string
	}{
		{"Permanent", stage.Permanent("body is not JSON", cause), true, "invalid", "body is not JSON: unexpected EOF"},
		{"Reject", stage.Reject("not_json", "metric body is not valid JSON", cause), true, "not_json", "metric body is not valid JSON: unexpected EOF"},
		{"Rejectf", stage.Rejectf("too_large", "body is %d bytes", 10), true, "too_large", "body is 10 bytes"},
		{"wrapped", fmt.Errorf("validate: %w", stage.Rejectf("schema", "bad")), true, "schema", "validate: bad"},
		{"empty class reads as invalid", &stage.PermanentError{Reason: "r"}, true, "invalid", "r"},
		{"transient", context.DeadlineExceeded, false, "", "context deadline exceeded"},
		{"nil", nil, false, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := stage.IsPermanent(c.err); got != c.permanent {
				t.Errorf("IsPermanent = %v", got)
			}
			if got := stage.PermanentClass(c.err); got != c.class {
				t.Errorf("PermanentClass = %q, want %q", got, c.class)
			}
			if c.err != nil && c.err.Error() != c.text {
				t.Errorf("Error() = %q, want %q", c.err.Error(), c.text)
			}
		})
	}
	if err := stage.Reject("not_json", "r", cause); !errors.Is(err, cause) {
		t.Error("a permanent error does not unwrap to its cause")
	}
}

func TestBatchError(t *testing.T) {
	e := &stage.BatchError{Failed: map[int]error{
		0: stage.Rejectf("schema", "bad"),
		3: context.DeadlineExceeded,
		4: fmt.Errorf("doc: %w", stage.Rejectf("schema", "bad")),
	}}
	if got, want := e.Error(), "3 of the batch failed (2 permanent)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	var be *stage.BatchError
	if !errors.As(fmt.Errorf("write: %w", e), &be) || len(be.Failed) != 3 {
		t.Fatal("BatchError is not found through wrapping")
	}
}

func TestDLQSubject(t *testing.T) {
	cases := []struct{ in, want string }{
		{"sightline.raw.metric.search_made", "sightline.dlq.metric.search_made"},
		{"sightline.raw.log.a.b.c", "sightline.dlq.log.a.b.c"},
		{"sightline.events.snapshot.graph", "sightline.dlq.snapshot.graph"},
		{"sightline.raw.", "sightline.dlq.other.sightline_raw_"},
		{"orders.created", "sightline.dlq.other.orders_created"},
		{"", "sightline.dlq.other."},
	}
	for _, c := range cases {
		if got := stage.DLQSubject(c.in); got != c.want {
			t.Errorf("DLQSubject(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestProcessorFunc(t *testing.T) {
	var p stage.Processor = stage.ProcessorFunc(func(_ context.Context, in *stage.Message) ([]*stage.Message, error) {
		return []*stage.Message{{Subject: in.Subject + ".out"}}, nil
	})
	out, err := p.Process(context.Background(), &stage.Message{Subject: "a"})
	if err != nil || len(out) != 1 || out[0].Subject != "a.out" {
		t.Fatalf("got %v %v", out, err)
	}
}

func TestDeadLetterSubjectAndKindOf(t *testing.T) {
	for _, c := range []struct{ stageName, subject, want, kind, sink string }{
		{"process", "sightline.raw.metric.search_made", "sightline.dlq.metric.search_made", "metric", ""},
		{"index", "sightline.events.log.api.x", "sightline.dlq.sink.index.log.api.x", "log", "index"},
		{"graph", "sightline.events.snapshot.inv", "sightline.dlq.sink.graph.snapshot.inv", "snapshot", "graph"},
		// A raw kind that would read as a sink's dead letter is kept whole under other.
		{"process", "sightline.raw.sink.index.metric.x", "sightline.dlq.other.sightline_raw_sink_index_metric_x", "other", ""},
		{"process", "sightline.raw.bogus.x", "sightline.dlq.bogus.x", "other", ""},
	} {
		got := stage.DeadLetterSubject(c.stageName, c.subject)
		if got != c.want {
			t.Errorf("DeadLetterSubject(%s, %s) = %s, want %s", c.stageName, c.subject, got, c.want)
		}
		if kind, sink := stage.KindOf(got); kind != c.kind || sink != c.sink {
			t.Errorf("KindOf(%s) = %s, %s; want %s, %s", got, kind, sink, c.kind, c.sink)
		}
	}
	for subject, kind := range map[string]string{"sightline.raw.metric.a": "metric", "sightline.raw.\x01evil.a": "other", "x": "other", "sightline.dlq.sink": "other"} {
		if got, _ := stage.KindOf(subject); got != kind {
			t.Errorf("KindOf(%q) = %s, want %s", subject, got, kind)
		}
	}
}

func TestOutcomes(t *testing.T) {
	if o := stage.Outcomes(nil, 3); o.Errs != nil || o.Whole() || o.Cause != nil {
		t.Fatalf("nil: %+v", o)
	}
	down := errors.New("down")
	o := stage.Outcomes(down, 2)
	if !o.Whole() || len(o.Errs) != 2 || o.Errs[0] != down || o.Errs[1] != down || o.Cause != down || o.Transient != 2 {
		t.Fatalf("plain error: %+v", o)
	}
	bad := stage.Rejectf("schema", "bad")
	o = stage.Outcomes(fmt.Errorf("wrapped: %w", &stage.BatchError{Failed: map[int]error{1: bad, 7: down, -1: down}}), 3)
	if o.Whole() || len(o.Errs) != 3 || o.Errs[0] != nil || o.Errs[1] != bad || o.Errs[2] != nil || o.Cause != nil || o.Permanent != 1 {
		t.Fatalf("batch error: %+v", o)
	}
	// Every message failed for the store's reason, named one by one: the
	// whole batch failed, the same as a plain error.
	o = stage.Outcomes(&stage.BatchError{Failed: map[int]error{0: down, 1: down}}, 2)
	if !o.Whole() || o.Cause != down {
		t.Fatalf("batch error naming every message: %+v", o)
	}
	// Some bad data among a failed store: not a whole failure (the bad
	// message still goes to the DLQ), but the store's cause is reported.
	o = stage.Outcomes(&stage.BatchError{Failed: map[int]error{0: bad, 1: down}}, 2)
	if o.Whole() || o.Cause != down || o.Rejected() {
		t.Fatalf("mixed: %+v", o)
	}
	if o = stage.Outcomes(bad, 2); !o.Rejected() || o.Cause != nil {
		t.Fatalf("permanent plain error: %+v", o)
	}
}
