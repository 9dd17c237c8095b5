package processors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
)

func process(t *testing.T, subject string, body []byte) ([]*stage.Message, error) {
	t.Helper()
	p, _ := processors.Standard(processors.Config{}, newValidator(t))
	return p.Process(context.Background(), &stage.Message{Subject: subject, Header: stage.Header{}, Data: body,
		Meta: stage.Meta{Stream: "SIGHTLINE_RAW", Sequence: 1, Timestamp: fixedNow}})
}

// TestConformDoesNotEscapeHTML: a 350 KB log line of '<' used to become a
// 2.1 MB event (each '<' written as \u003c), refused by the events stream.
func TestConformDoesNotEscapeHTML(t *testing.T) {
	for _, c := range []struct{ subject, body string }{
		{"sightline.raw.log.web", strings.Repeat("<", 350_000)},
		{"sightline.raw.log.web", `{"message":"` + strings.Repeat("<&>", 100_000) + `"}`},
		{"sightline.raw.snapshot.inv", `{"scope":"s","tag":1,"source":"<a&b>","nodes":[{"label":"Host","key":"` + strings.Repeat("<", 1000) + `"}]}`},
		{"sightline.raw.metric.m", `{"q":"` + strings.Repeat("<", 350_000) + `"}`},
	} {
		out, err := process(t, c.subject, []byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.subject, err)
		}
		if bytes.Contains(out[0].Data, []byte(`\u003c`)) || bytes.Contains(out[0].Data, []byte(`\u0026`)) {
			t.Errorf("%s: HTML escapes in the event", c.subject)
		}
		if n := len(out[0].Data); n > len(c.body)+2048 {
			t.Errorf("%s: a %d-byte body became a %d-byte event", c.subject, len(c.body), n)
		}
	}
}

// TestEventOverTheStreamLimitIsRejected: an event the events stream would
// refuse is a dead letter with a true reason before anything is published.
func TestEventOverTheStreamLimitIsRejected(t *testing.T) {
	// 400 KB of control characters: a valid body under MaxBodyBytes that
	// JSON writes as \u0001 (6 bytes each), 2.4 MB.
	body := bytes.Repeat([]byte{1}, 400_000)
	out, err := process(t, "sightline.raw.log.web", body)
	if err == nil {
		t.Fatalf("accepted a %d-byte event", len(out[0].Data))
	}
	if c := stage.PermanentClass(err); c != "event_too_large" {
		t.Fatalf("class %q (%v), want event_too_large", c, err)
	}
	for _, frag := range []string{"conformed event is", "400000 bytes", "events stream"} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("reason %q does not say %q", err, frag)
		}
	}
	// The limit holds with the headers: an event just under it passes.
	p, _ := processors.Standard(processors.Config{MaxEventBytes: 4096}, newValidator(t))
	in := func(n int) *stage.Message {
		return &stage.Message{Subject: "sightline.raw.log.web", Header: stage.Header{}, Data: bytes.Repeat([]byte("x"), n),
			Meta: stage.Meta{Stream: "SIGHTLINE_RAW", Sequence: 1, Timestamp: fixedNow}}
	}
	small, err := p.Process(context.Background(), in(100))
	if err != nil {
		t.Fatal(err)
	}
	overhead := len(small[0].Data) + processors.HeaderBytes(small[0].Header) - 100
	if _, err := p.Process(context.Background(), in(4096-overhead)); err != nil {
		t.Errorf("event of exactly 4096 bytes: %v", err)
	}
	if _, err := p.Process(context.Background(), in(4096-overhead+1)); stage.PermanentClass(err) != "event_too_large" {
		t.Errorf("event of 4097 bytes: %v", err)
	}
}

// TestBodyDepth: the processor accepts a body nested MaxBodyDepth deep and
// rejects one level more with class too_deep (it used to accept 10000, and
// the envelope's extra level made the stored event unreadable by the sinks).
func TestBodyDepth(t *testing.T) {
	nest := func(n int) []byte {
		return []byte(`{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`)
	}
	for _, subject := range []string{"sightline.raw.metric.m", "sightline.raw.log.web"} {
		if _, err := process(t, subject, nest(limits.MaxBodyDepth)); err != nil {
			t.Errorf("%s: depth %d: %v", subject, limits.MaxBodyDepth, err)
		}
		_, err := process(t, subject, nest(limits.MaxBodyDepth+1))
		if stage.PermanentClass(err) != "too_deep" || !strings.Contains(err.Error(), "nested deeper than the limit of 512 levels (at byte offset") {
			t.Errorf("%s: depth %d: %v, want too_deep", subject, limits.MaxBodyDepth+1, err)
		}
	}
}

// TestLoneSurrogatesAreReplacedInEveryKind: a lone surrogate escape
// (\ud800) became U+FFFD in logs and snapshots (decoded and written
// again) but stayed as sent in metrics (kept compact), so readers of one
// kind saw what readers of another did not. Every kind now carries U+FFFD;
// a valid pair stays the character it writes.
func TestLoneSurrogatesAreReplacedInEveryKind(t *testing.T) {
	for _, c := range []struct{ subject, body, field string }{
		{"sightline.raw.metric.m", `{"s":"a\ud800b","t":"\uDC00","pair":"\ud83d\ude00","esc":"\\ud800"}`, "s"},
		{"sightline.raw.log.web", `{"message":"m","s":"a\ud800b","t":"\uDC00","pair":"\ud83d\ude00","esc":"\\ud800"}`, "s"},
		{"sightline.raw.snapshot.inv", `{"scope":"s","tag":1,"nodes":[{"label":"A","key":"a\ud800b"}]}`, ""},
	} {
		out, err := process(t, c.subject, []byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.subject, err)
		}
		data := out[0].Data
		if bytes.Contains(bytes.ToLower(data), []byte(`"a\ud800b"`)) || bytes.Contains(bytes.ToLower(data), []byte(`"\udc00"`)) {
			t.Errorf("%s: a lone surrogate escape left in the event: %s", c.subject, data)
		}
		var ev struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Fatal(err)
		}
		if c.field == "" {
			if k := ev.Data["nodes"].([]any)[0].(map[string]any)["key"]; k != "a\uFFFDb" {
				t.Errorf("%s: key %q", c.subject, k)
			}
			continue
		}
		if ev.Data["s"] != "a\uFFFDb" || ev.Data["t"] != "\uFFFD" || ev.Data["pair"] != "😀" || ev.Data["esc"] != `\ud800` {
			t.Errorf("%s: data %q", c.subject, ev.Data)
		}
		if !bytes.Contains(data, []byte("a\uFFFDb")) {
			t.Errorf("%s: U+FFFD not written as the character itself: %s", c.subject, data)
		}
	}
}

// TestFutureBodyTimeIsRejected: a body time further ahead of the time the
// raw stream stored the input than limits.TimeSkew is a dead letter
// (future_time), as a sync tag is; within it, the time is taken.
func TestFutureBodyTimeIsRejected(t *testing.T) {
	at := func(d time.Duration) string { return fixedNow.Add(d).UTC().Format(time.RFC3339Nano) }
	for _, c := range []struct {
		subject, body, class string
	}{
		{"sightline.raw.metric.m", `{"time":"9999-12-31T23:59:59Z"}`, "future_time"},
		{"sightline.raw.log.web", `{"message":"m","ts":99999999999}`, "future_time"},
		{"sightline.raw.log.web", `{"message":"m","@timestamp":"` + at(limits.TimeSkew+time.Second) + `"}`, "future_time"},
		{"sightline.raw.metric.m", `{"timestamp":"` + at(limits.TimeSkew-time.Second) + `"}`, ""},
		{"sightline.raw.metric.m", `{"time":"` + at(-400*24*time.Hour) + `"}`, ""},
		{"sightline.raw.snapshot.inv", `{"scope":"s","tag":1,"time":"9999-12-31T23:59:59Z"}`, "schema"}, // no time field in a snapshot
	} {
		out, err := process(t, c.subject, []byte(c.body))
		if got := stage.PermanentClass(err); got != c.class {
			t.Errorf("%s %s: class %q (%v), want %q", c.subject, c.body, got, err, c.class)
			continue
		}
		if c.class == "future_time" {
			for _, frag := range []string{"ahead of", "TimeSkew", "5m0s"} {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("reason %q does not say %q", err, frag)
				}
			}
		}
		if c.class == "" && len(out) != 1 {
			t.Errorf("%s: %d events", c.body, len(out))
		}
	}
}

// TestNumbersOverTheLimitAreRejected: a number literal longer than
// limits.NumberBytes is a dead letter (number_too_long) in every kind:
// the archive would otherwise keep what common JSON readers refuse
// (Python's json reads no integer over 4300 digits).
func TestNumbersOverTheLimitAreRejected(t *testing.T) {
	num := func(n int) string { return "-1" + strings.Repeat("0", n-2) }
	for _, c := range []struct {
		subject, body, class string
	}{
		{"sightline.raw.metric.m", `{"n":` + num(limits.NumberBytes) + `}`, ""},
		{"sightline.raw.metric.m", `{"n":` + num(limits.NumberBytes+1) + `}`, "number_too_long"},
		{"sightline.raw.metric.m", `{"n":[1,{"x":1e` + strings.Repeat("1", limits.NumberBytes) + `}]}`, "number_too_long"},
		{"sightline.raw.log.web", `{"message":"m","n":` + strings.Repeat("9", 500_000) + `}`, "number_too_long"},
		{"sightline.raw.snapshot.inv", `{"scope":"s","tag":1,"nodes":[{"label":"A","key":"k","properties":{"p":0.` + strings.Repeat("1", 2000) + `}}]}`, "number_too_long"},
		{"sightline.raw.log.web", `{"message":"` + strings.Repeat("9", 5000) + `"}`, ""}, // digits in a string
	} {
		_, err := process(t, c.subject, []byte(c.body))
		if got := stage.PermanentClass(err); got != c.class {
			t.Errorf("%s %.60s: class %q (%.200v), want %q", c.subject, c.body, got, err, c.class)
		}
		if c.class != "" && !strings.Contains(err.Error(), fmt.Sprint(limits.NumberBytes)) {
			t.Errorf("reason %.200q does not name the limit", err)
		}
	}
}
