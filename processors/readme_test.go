package processors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
)

// readmeExample is one `nats pub` of the README and the input it sends.
type readmeExample struct {
	title   string
	cmd     string
	subject string
	headers map[string]string
	body    string
}

var readmeStored = time.Date(2024, 5, 1, 11, 59, 59, 500_000_000, time.UTC)

func readmeExamples() []readmeExample {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	search := `{"query":"cats","n_results":3,"user_id":"1234"}`
	return []readmeExample{
		{"A metric with no headers", `nats pub sightline.raw.metric.search_made '` + search + `'`,
			"sightline.raw.metric.search_made", nil, search},
		{"The caller's correlation id is kept", `nats pub -H Correlation-Id:abc sightline.raw.metric.search_made '` + search + `'`,
			"sightline.raw.metric.search_made", map[string]string{"Correlation-Id": "abc"}, search},
		{"A W3C traceparent: its trace id is the correlation id", `nats pub -H traceparent:` + tp + ` sightline.raw.metric.search_made '` + search + `'`,
			"sightline.raw.metric.search_made", map[string]string{"traceparent": tp}, search},
		{"Nats-Msg-Id is the event id (sent twice, SIGHTLINE_RAW keeps one)", `nats pub -H Nats-Msg-Id:x sightline.raw.metric.search_made '` + search + `'`,
			"sightline.raw.metric.search_made", map[string]string{"Nats-Msg-Id": "x"}, search},
		{"A plain-text log line", `nats pub sightline.raw.log.download-server '[Wed Oct 11 14:32:12 2000] [info] [client 127.0.0.1] image 1d3x5 downloaded by userId 1234'`,
			"sightline.raw.log.download-server", nil, `[Wed Oct 11 14:32:12 2000] [info] [client 127.0.0.1] image 1d3x5 downloaded by userId 1234`},
		{"A structured log line", `nats pub sightline.raw.log.download-server '{"message":"Downloaded img","userId":"1234","imgId":"1d3x5","service":"download-server","time":"1509385330"}'`,
			"sightline.raw.log.download-server", nil, `{"message":"Downloaded img","userId":"1234","imgId":"1d3x5","service":"download-server","time":"1509385330"}`},
		{"A snapshot part named by headers", `nats pub -H Sightline-Sync-Scope:lab -H Sightline-Sync-Tag:42 -H Sightline-Sync-Final:true -H Sightline-Sync-Count:1 sightline.raw.snapshot.graph '{"nodes":[{"label":"Host","key":"web-1"}]}'`,
			"sightline.raw.snapshot.graph", map[string]string{"Sightline-Sync-Scope": "lab", "Sightline-Sync-Tag": "42", "Sightline-Sync-Final": "true", "Sightline-Sync-Count": "1"}, `{"nodes":[{"label":"Host","key":"web-1"}]}`},
		{"Not JSON", `nats pub sightline.raw.metric.search_made '{"query":'`, "sightline.raw.metric.search_made", nil, `{"query":`},
		{"Invalid UTF-8", `printf '{"q":"\xff"}' | nats pub --force-stdin sightline.raw.metric.search_made`, "sightline.raw.metric.search_made", nil, "{\"q\":\"\xff\"}"},
		{"Over the size limit (512 KiB by default)", `head -c 600000 /dev/zero | tr '\0' a | nats pub --force-stdin sightline.raw.log.big`, "sightline.raw.log.big", nil, strings.Repeat("a", 600000)},
		{"A schema violation", `nats pub sightline.raw.snapshot.inv '{"scope":"s","tag":1,"nodes":[{"label":"Bad Label} DETACH DELETE n //","key":"k"}]}'`,
			"sightline.raw.snapshot.inv", nil, `{"scope":"s","tag":1,"nodes":[{"label":"Bad Label} DETACH DELETE n //","key":"k"}]}`},
		{"An unknown kind", `nats pub sightline.raw.trace.thing '{}'`, "sightline.raw.trace.thing", nil, `{}`},
	}
}

// renderExamples runs each example through the standard pipeline, as read
// from SIGHTLINE_RAW at stream sequence i+1, and writes the markdown the
// README shows.
func renderExamples(t *testing.T) string {
	v := newValidator(t)
	p, _ := processors.Standard(processors.Config{Attributes: map[string]string{"site": "lab1", "env": "dev"}}, v,
		processors.WithClock(func() time.Time { return fixedNow }))
	var b strings.Builder
	for i, ex := range readmeExamples() {
		in := &stage.Message{Subject: ex.subject, Header: stage.Header{}, Data: []byte(ex.body),
			Meta: stage.Meta{Stream: "SIGHTLINE_RAW", Sequence: uint64(i + 1), Delivered: 1, Timestamp: readmeStored}}
		for k, val := range ex.headers {
			in.Header.Set(k, val)
		}
		fmt.Fprintf(&b, "#### %s\n\n```sh\n%s\n```\n\n", ex.title, ex.cmd)
		out, err := p.Process(context.Background(), in)
		if err != nil {
			var pe *stage.PermanentError
			if !errors.As(err, &pe) {
				t.Fatalf("%s: transient error %v", ex.title, err)
			}
			fmt.Fprintf(&b, "Rejected: a dead letter on `%s` with the original bytes and headers and\n\n```\nSightline-Dlq-Class: %s\nSightline-Dlq-Reason: %s\n```\n\n",
				stage.DLQSubject(ex.subject), stage.PermanentClass(err), pe.Error())
			continue
		}
		m := out[0]
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, m.Data, "", "  "); err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 0, len(m.Header))
		for k := range m.Header {
			if k != stage.HeaderMsgID { // printed first
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "On `%s`, Nats-Msg-Id `%s`, headers", m.Subject, m.ID)
		for _, k := range keys {
			fmt.Fprintf(&b, " `%s: %s`", k, m.Header.Get(k))
		}
		fmt.Fprintf(&b, ":\n\n```json\n%s\n```\n\n", pretty.String())
	}
	return b.String()
}

const (
	examplesBegin = "<!-- examples:begin (generated by TestREADMEExamples; go test ./processors -run TestREADMEExamples -update) -->\n"
	examplesEnd   = "<!-- examples:end -->"
)

// TestREADMEExamples keeps the examples in README.md equal to what the
// pipeline really produces.
func TestREADMEExamples(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, examplesBegin), strings.Index(s, examplesEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no examples markers %q ... %q", examplesBegin, examplesEnd)
	}
	got := renderExamples(t)
	if *update {
		s = s[:i+len(examplesBegin)] + "\n" + got + s[j:]
		if err := os.WriteFile("README.md", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if have := s[i+len(examplesBegin) : j]; have != "\n"+got {
		t.Fatalf("README.md examples are not what the pipeline produces: run with -update\n%s", got)
	}
}
