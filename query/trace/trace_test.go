package trace_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/termsafe/termsafetest"
	"github.com/sightline/sightline/query/trace"
	"github.com/sightline/sightline/sinks/index"
)

// fixed answers every search with its documents.
type fixed []index.Document

func (f fixed) Search(context.Context, index.Query) (index.Result, error) {
	return index.Result{Docs: f, Total: len(f)}, nil
}

// The README's walkthrough: a metric (no service: its name is what it
// measures), a log line at info and the metric's dead letter at error.
func walkthrough() fixed {
	t0 := time.Date(2026, 12, 1, 21, 37, 7, 981325943, time.UTC)
	return fixed{
		{ID: "m1", Time: t0, Kind: "metric", Type: "metric.search_made", Name: "search_made", Message: "search_made", CorrelationID: "abc", Stream: "SIGHTLINE_EVENTS", Sequence: 2},
		{ID: "l1", Time: t0.Add(7400 * time.Microsecond), Kind: "log", Type: "log.download-server", Service: "download-server", Level: "info",
			Message: "image 1d3x5 downloaded by userId 1234", CorrelationID: "abc", Stream: "SIGHTLINE_EVENTS", Sequence: 3},
		{ID: "d1", Time: t0.Add(37400 * time.Microsecond), Kind: "dlq", Type: "dlq.metric.search_made", Level: "error",
			Message: "rejected by process: metric body is not valid JSON", CorrelationID: "abc", Stream: "SIGHTLINE_DLQ", Sequence: 1},
	}
}

func TestShowGolden(t *testing.T) {
	var out bytes.Buffer
	if err := trace.Show(context.Background(), walkthrough(), "abc", false, &out); err != nil {
		t.Fatal(err)
	}
	termsafetest.Golden(t, "trace.golden", out.Bytes())
}

func TestShowOneService(t *testing.T) {
	var out bytes.Buffer
	if err := trace.Show(context.Background(), walkthrough()[1:2], "abc", false, &out); err != nil {
		t.Fatal(err)
	}
	termsafetest.Golden(t, "trace_one.golden", out.Bytes())
}

func TestLogsSaysWhenNothingMatched(t *testing.T) {
	var out, errw bytes.Buffer
	err := trace.Logs(context.Background(), fixed{}, trace.LogsRequest{Query: index.Query{Kinds: []string{"log"}, Limit: 100}, Since: "15m"}, &out, &errw)
	if !errors.Is(err, trace.ErrNothingMatched) || out.Len() != 0 {
		t.Fatalf("err %v, stdout %q", err, out.String())
	}
	termsafetest.Golden(t, "logs_nothing.golden", errw.Bytes())
}
