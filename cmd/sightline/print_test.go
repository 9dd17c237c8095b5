package main

import (
	"bytes"
	"testing"

	"github.com/sightline/sightline/internal/bus/status"
	"github.com/sightline/sightline/internal/termsafe/termsafetest"
)

// Kinds are the subjects publishers choose; `sightline status` escapes them.
func TestStatusEscapesHostileNames(t *testing.T) {
	h := termsafetest.Hostile
	var out bytes.Buffer
	err := printStatus(&out, &status.Status{
		Streams: []status.StreamStatus{{Name: "S" + h, Messages: 1, Consumers: []status.ConsumerStatus{{Name: "c" + h, Filters: []string{"f" + h}}}}},
		Kinds:   []status.KindCounts{{Kind: "metric" + h, In: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	termsafetest.CheckSafe(t, out.Bytes())
	termsafetest.Golden(t, "hostile_status.golden", out.Bytes())
}
