package limits_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/schemas"
)

// TestRelations checks the promises the numbers must keep together.
func TestRelations(t *testing.T) {
	checks := []struct {
		what string
		ok   bool
	}{
		{"every message the server takes fits the raw stream (RawMaxMsgSize >= ServerMaxPayload)", limits.RawMaxMsgSize >= limits.ServerMaxPayload},
		{"the processor's body limit fits the raw stream", limits.MaxBodyBytes <= limits.RawMaxMsgSize},
		{"a dead letter's body and headers fit the DLQ stream", limits.DLQMaxBodyBytes+limits.DLQHeaderBudget <= limits.DLQMaxMsgSize},
		{"a dead letter fits the server's max payload", limits.DLQMaxMsgSize <= limits.ServerMaxPayload},
		{"a dead letter of a sink keeps the whole event", limits.DLQMaxBodyBytes >= limits.EventsMaxMsgSize},
		{"a body at the processor's limit can become an event", limits.MaxBodyBytes < limits.MaxEventBytes},
		{"the events stream fits the server", limits.EventsMaxMsgSize <= limits.ServerMaxPayload},
		{"the reason fits the DLQ header budget", limits.DLQReasonBytes < limits.DLQHeaderBudget/2},
		{"an accepted body stays readable by every sink decoder once wrapped",
			limits.MaxBodyDepth+limits.EnvelopeDepth+limits.SinkWrapDepth <= limits.DecoderMaxDepth},
		{"the subject fits the envelope's source", len("urn:sightline:subject:")+limits.SubjectBytes <= limits.SourceBytes},
		{"one HTTP item is not larger than the processor takes", limits.HTTPMaxItemBytes <= limits.MaxBodyBytes},
		{"one HTTP item fits a request", limits.HTTPMaxItemBytes <= limits.HTTPMaxBodyBytes},
		{"one HTTP client cannot take every ingest slot", limits.HTTPMaxIngestPerClient < limits.HTTPMaxConcurrentIngest},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("broken: %s", c.what)
		}
	}
}

// TestSchemasMatch keeps the JSON schemas (which cannot import Go) in step
// with the constants.
func TestSchemasMatch(t *testing.T) {
	src := func(name string) string {
		s, err := schemas.Source(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(s)
	}
	want := map[string][]string{
		"envelope": {
			fmt.Sprintf(`"id": {"type": "string", "minLength": 1, "maxLength": %d}`, limits.IDBytes),
			fmt.Sprintf(`"source": {"type": "string", "minLength": 1, "maxLength": %d}`, limits.SourceBytes),
			fmt.Sprintf(`"correlationid": {"type": "string", "minLength": 1, "maxLength": %d}`, limits.CorrelationIDBytes),
			fmt.Sprintf(`"syncscope": {"type": "string", "minLength": 1, "maxLength": %d}`, limits.ScopeBytes),
			fmt.Sprintf(`"producer": {"type": "string", "maxLength": %d}`, limits.ProducerBytes),
			fmt.Sprintf(`[A-Za-z0-9_-]{1,%d}$`, limits.NameBytes),
			fmt.Sprintf(`"propertyNames": {"pattern": "^[a-z0-9]{1,%d}$"}`, limits.AttributeNameBytes),
		},
		"metric": {
			fmt.Sprintf(`"maxProperties": %d`, limits.BodyProperties),
			fmt.Sprintf(`[A-Za-z0-9_.@$-]{0,%d}$`, limits.PropertyNameBytes-1),
		},
		"log": {
			fmt.Sprintf(`"maxProperties": %d`, limits.BodyProperties),
			fmt.Sprintf(`[A-Za-z0-9_.@$-]{0,%d}$`, limits.PropertyNameBytes-1),
		},
		"snapshot": {
			fmt.Sprintf(`"pattern": "^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,%d}$"`, limits.ScopeBytes-1),
			fmt.Sprintf(`"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,%d}$"`, limits.LabelBytes-1),
			fmt.Sprintf(`"maxItems": %d`, limits.NodeLabels),
			fmt.Sprintf(`"key": {"type": "string", "minLength": 1, "maxLength": %d}`, limits.KeyBytes),
		},
	}
	for name, frags := range want {
		s := src(name)
		for _, f := range frags {
			if !strings.Contains(s, f) {
				t.Errorf("%s.schema.json does not say %s", name, f)
			}
		}
	}
}

// limitsDoc is docs/limits.md.
func limitsDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "limits.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// documented checks that the doc names a limit and gives its value.
func documented(t *testing.T, doc, name, value string) {
	t.Helper()
	if !strings.Contains(doc, "`"+name+"`") {
		t.Errorf("docs/limits.md does not name %s", name)
	}
	if !strings.Contains(doc, value) {
		t.Errorf("docs/limits.md does not give %s = %s", name, value)
	}
}

// TestDocumentedDurations checks that docs/limits.md names every time
// limit with its value.
func TestDocumentedDurations(t *testing.T) {
	doc := limitsDoc(t)
	for name, d := range map[string]time.Duration{
		"HTTPIngestReadTimeout": limits.HTTPIngestReadTimeout, "HTTPIngestQueueWait": limits.HTTPIngestQueueWait,
		"HTTPReadHeaderTimeout": limits.HTTPReadHeaderTimeout, "HTTPIdleTimeout": limits.HTTPIdleTimeout,
		"HTTPBodyReadTimeout": limits.HTTPBodyReadTimeout,
		"GraphMaxTagSkew":     limits.GraphMaxTagSkew, "TimeSkew": limits.TimeSkew, "GraphSweepWindow": limits.GraphSweepWindow,
	} {
		v := d.String()
		if d%time.Hour == 0 {
			v = fmt.Sprintf("%dh", d/time.Hour) // 24h0m0s → 24h
		} else if d%time.Minute == 0 {
			v = fmt.Sprintf("%dm", d/time.Minute) // 2m0s → 2m
		}
		documented(t, doc, name, v)
	}
}

// TestDocumented checks that docs/limits.md names every limit with its
// value.
func TestDocumented(t *testing.T) {
	doc := limitsDoc(t)
	for name, v := range map[string]int{
		"ServerMaxPayload": limits.ServerMaxPayload, "RawMaxMsgSize": limits.RawMaxMsgSize,
		"EventsMaxMsgSize": limits.EventsMaxMsgSize, "DLQMaxMsgSize": limits.DLQMaxMsgSize,
		"DLQMaxBodyBytes": limits.DLQMaxBodyBytes, "MaxBodyBytes": limits.MaxBodyBytes,
		"MaxEventBytes": limits.MaxEventBytes, "MaxBodyDepth": limits.MaxBodyDepth,
		"DecoderMaxDepth": limits.DecoderMaxDepth, "IndexDataDepth": limits.IndexDataDepth,
		"SubjectBytes": limits.SubjectBytes, "NameBytes": limits.NameBytes, "IDBytes": limits.IDBytes,
		"CorrelationIDBytes": limits.CorrelationIDBytes, "ProducerBytes": limits.ProducerBytes,
		"ScopeBytes": limits.ScopeBytes, "LabelBytes": limits.LabelBytes, "KeyBytes": limits.KeyBytes, "ObjectNameBytes": limits.ObjectNameBytes, "NumberBytes": limits.NumberBytes,
		"IndexStringBytes": limits.IndexStringBytes, "HTTPMaxBodyBytes": limits.HTTPMaxBodyBytes,
		"HTTPMaxItems": limits.HTTPMaxItems, "HTTPMaxItemBytes": limits.HTTPMaxItemBytes,
		"DLQReasonBytes": limits.DLQReasonBytes, "HeaderBlockBytes": limits.HeaderBlockBytes,
		"BodyProperties": limits.BodyProperties, "PropertyNameBytes": limits.PropertyNameBytes,
		"AttributeNameBytes": limits.AttributeNameBytes, "SourceBytes": limits.SourceBytes, "NodeLabels": limits.NodeLabels,
		"IndexRawBytes": limits.IndexRawBytes, "HTTPMaxConcurrentIngest": limits.HTTPMaxConcurrentIngest,
		"HTTPMaxHeaderBytes": limits.HTTPMaxHeaderBytes, "CommandStderrBytes": limits.CommandStderrBytes,
		"HTTPMaxIngestPerClient": limits.HTTPMaxIngestPerClient, "StreamIngestQueueMsgs": limits.StreamIngestQueueMsgs, "HTTPMaxConnections": limits.HTTPMaxConnections,
		"MaxAttempts": limits.MaxAttempts,
	} {
		documented(t, doc, name, fmt.Sprint(v))
	}
}

// TestDocumentedSearchQuery checks that docs/limits.md names the limits of
// a search query with their values.
func TestDocumentedSearchQuery(t *testing.T) {
	doc := limitsDoc(t)
	for name, v := range map[string]int{
		"SearchQueryBytes": limits.SearchQueryBytes, "SearchQueryDepth": limits.SearchQueryDepth, "SearchQueryTerms": limits.SearchQueryTerms,
	} {
		documented(t, doc, name, fmt.Sprint(v))
	}
}
