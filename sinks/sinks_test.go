package sinks_test

import (
	"testing"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/sinks"
)

// A sink fed by the events stream names its stage; the durable is the
// stage's name unless the section names one.
func TestOnEventsConsumer(t *testing.T) {
	o := sinks.OnEvents(nil, consume.Config{Stage: "jsondir", Filters: []string{"sightline.events.>"}, Batch: 10})
	if len(o.Consumers) != 1 {
		t.Fatalf("consumers %+v", o.Consumers)
	}
	c := o.Consumers[0]
	if c.Stream != bus.StreamEvents || c.Durable != "jsondir" || c.Batch != 10 || c.Filters[0] != "sightline.events.>" {
		t.Errorf("consumer %+v", c)
	}
	if c := sinks.OnEvents(nil, consume.Config{Stage: "hosts", Durable: "hosts-2"}).Consumers[0]; c.Durable != "hosts-2" {
		t.Errorf("durable %q, want the section's", c.Durable)
	}
}
