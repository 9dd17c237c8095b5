package natsauth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
)

// The worker identity may create the streams but not change them. When
// the streams on the server differ from what the worker expects (an
// operator set the events stream's max age to a day), its start used to
// wait for an answer the server never sends (the update request is
// refused as a permissions violation), until the start timeout. It fails
// at once now, naming the stream and each difference.
func TestWorkerStartOnChangedStreamFailsAtOnce(t *testing.T) {
	n := startShippedNATS(t)
	op, err := bus.Connect(ctxFor(t), bus.Options{URLs: []string{n.url}, User: "operator", Password: "opw", TLS: trustCA(t, n.ca)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	changed := bus.DefaultStreams()
	changed.Events.MaxAge = 24 * time.Hour
	if err := op.EnsureStreams(ctxFor(t), changed); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = n.worker.EnsureStreams(ctxFor(t), bus.DefaultStreams())
	took := time.Since(start)
	t.Logf("after %s: %v", took.Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("the worker started on a stream configured differently, without a word")
	}
	for _, want := range []string{"SIGHTLINE_EVENTS", "max_age", "24h0m0s", "168h0m0s", "may not update"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if took > 3*time.Second {
		t.Errorf("the start failed after %s: want at once", took.Round(time.Millisecond))
	}
}
