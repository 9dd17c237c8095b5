package stage_test

import (
	"encoding/json"
	"testing"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// The message of a conformed event: its subject, its header (one value
// each, Nats-Msg-Id the event id) and the envelope as its body.
func TestEventMessage(t *testing.T) {
	ev := &schemas.Event{ID: "i", Type: "snapshot.g", CorrelationID: "c", SyncScope: "lab", SyncTag: "4",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Data: json.RawMessage(`{}`)}
	m := stage.EventMessage(ev, "snapshot", "g", ".x")
	want := map[string]string{
		"Correlation-Id": "c", "Sightline-Type": "snapshot.g", "Content-Type": "application/cloudevents+json",
		"traceparent": ev.TraceParent, "Sightline-Sync-Scope": "lab", "Sightline-Sync-Tag": "4",
		"Nats-Msg-Id": "i",
	}
	if m.Subject != "sightline.events.snapshot.g.x" || m.ID != "i" || len(m.Header) != len(want) {
		t.Fatalf("subject %q id %q headers %v", m.Subject, m.ID, m.Header)
	}
	for k, v := range want {
		if m.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, m.Header.Get(k), v)
		}
	}
	var back schemas.Event
	if err := json.Unmarshal(m.Data, &back); err != nil || back.ID != "i" || back.SyncTag != "4" {
		t.Fatalf("data %s: %v", m.Data, err)
	}
}
