package searchcli

import (
	"bytes"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/termsafe/termsafetest"
	"github.com/sightline/sightline/sinks/index"
)

// Event data reaches `sightline trace` and `logs` as it was published;
// their text output escapes it.
func TestPrintersEscapeHostileData(t *testing.T) {
	h := termsafetest.Hostile
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	doc := index.Document{ID: "e1", Time: t0, Kind: "log", Type: "log." + h, Service: "svc" + h, Level: "err" + h,
		Message: "msg " + h, CorrelationID: "cid" + h}
	tl := &index.Timeline{CorrelationID: "cid" + h, Start: t0, DurationMs: 12, Services: []string{"svc" + h}, Kinds: []string{"log"},
		Events:       []index.Entry{{OffsetMs: 0, Document: doc}},
		Locations:    []index.Location{{Where: "stream", Ref: "SIGHTLINE_EVENTS:1" + h, Detail: "detail " + h}},
		LocateErrors: []string{"locator " + h}}
	var out bytes.Buffer
	if err := PrintTimeline(&out, tl); err != nil {
		t.Fatal(err)
	}
	out.WriteString("----\n")
	if err := PrintDocs(&out, []index.Document{doc}); err != nil {
		t.Fatal(err)
	}
	termsafetest.CheckSafe(t, out.Bytes())
	termsafetest.Golden(t, "hostile_print.golden", out.Bytes())
}
