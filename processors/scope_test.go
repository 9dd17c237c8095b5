package processors_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
)

// A sync's scope must match the subject it arrived on (the subject is what
// NATS permissions give each host's collector).
func TestSnapshotScopeMustMatchSubject(t *testing.T) {
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := processors.Standard(processors.Config{}, v)
	cases := []struct {
		subject, scope string
		refused        bool
	}{
		{"sightline.raw.snapshot.host.web-01", "host:web-01", false},
		{"sightline.raw.snapshot.host.web-01.lva1", "host:web-01.lva1", false},
		{"sightline.raw.snapshot.host.web-01", "host:web-02", true},          // another host's scope
		{"sightline.raw.snapshot.host.web-01", "host:web-01.lva1", true},     // a longer name
		{"sightline.raw.snapshot.host.web-01.lva1", "host:web-01", true},     // a shorter name
		{"sightline.raw.snapshot.host.web-01", "file:inventory", true},       // not a host scope at all
		{"sightline.raw.snapshot.inventory", "host:web-01", true},            // a host scope elsewhere
		{"sightline.raw.snapshot.inventory.graph", "host:web-01", true},      // …with more tokens
		{"sightline.raw.snapshot.host", "host:web-01", false},                // the bare subject of older collectors
		{"sightline.raw.snapshot.inventory.graph", "file:inventory", false},  // other scopes are free
		{"sightline.raw.snapshot.hosts.web-1.example.com", "hosts-x", false}, // another source
	}
	for _, c := range cases {
		in := &stage.Message{Subject: c.subject, Data: []byte(`{"scope":"` + c.scope + `","tag":1,"final":true,"count":0}`)}
		_, err := p.Process(context.Background(), in)
		var pe *stage.PermanentError
		refused := errors.As(err, &pe) && pe.Class == "scope_mismatch"
		if refused != c.refused {
			t.Errorf("%s scope %s: err = %v, want refused=%v", c.subject, c.scope, err, c.refused)
		}
		if !c.refused && err != nil {
			t.Errorf("%s scope %s: %v", c.subject, c.scope, err)
		}
		if refused && !strings.Contains(pe.Error(), c.scope) {
			t.Errorf("reason %q does not name the scope", pe.Error())
		}
	}
	// The scope given in headers (nats pub -H) is checked too.
	in := &stage.Message{Subject: "sightline.raw.snapshot.host.web-01", Data: []byte(`{}`),
		Header: stage.Header{stage.HeaderSyncScope: {"host:web-02"}, stage.HeaderSyncTag: {"1"}}}
	if _, err := p.Process(context.Background(), in); err == nil || !strings.Contains(err.Error(), "scope_mismatch") && !strings.Contains(err.Error(), "may only carry") {
		t.Errorf("header scope: err = %v", err)
	}
}
