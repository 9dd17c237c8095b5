package identity

import (
	"strings"
	"testing"
	"time"
)

func TestIDIsScopedBySource(t *testing.T) {
	a := Source{Subject: "sightline.raw.snapshot.host.a"}
	b := Source{Subject: "sightline.raw.snapshot.host.b"}
	h := Source{Subject: "sightline.raw.snapshot.host.a", Principal: HTTP("team-a")}
	if ID(a, "x", Position{}) == ID(b, "x", Position{}) || ID(a, "x", Position{}) == ID(h, "x", Position{}) {
		t.Fatal("two sources share an id")
	}
	if ID(a, "x", Position{}) != ID(a, "x", Position{Stream: "S", Sequence: 9}) {
		t.Fatal("the same source and id: another id")
	}
	pos := Position{Stream: "SIGHTLINE_RAW", Sequence: 9, Time: time.Unix(1, 5)}
	if ID(a, "", pos) != ID(b, "", pos) || ID(a, "", pos) == "" || ID(a, "", Position{}) != "" {
		t.Fatal("position ids")
	}
	// A producer id cannot reach another source's ids through the separator.
	if ID(Source{Subject: "s"}, "x\x00y", Position{}) == ID(Source{Subject: "s\x00x"}, "y", Position{}) {
		t.Fatal("separator confusion")
	}
}

func TestHTTPPrincipalCannotReadAsAnother(t *testing.T) {
	if HTTP("a:subject:x") != "http:a%3Asubject%3Ax" || HTTP("") != "http" {
		t.Fatal(HTTP("a:subject:x"))
	}
}

func TestSeal(t *testing.T) {
	k := Key("SIGHTLINE_RAW", time.Unix(100, 7))
	src := Source{Subject: "sightline.raw.metric.m", Principal: HTTP("a")}
	s := Seal(k, src, "id-1")
	if !Verify(k, src, "id-1", s) || Verify(k, src, "id-2", s) || Verify(nil, src, "id-1", s) ||
		Verify(Key("SIGHTLINE_RAW", time.Unix(100, 8)), src, "id-1", s) ||
		Verify(k, Source{Subject: src.Subject, Principal: HTTP("b")}, "id-1", s) {
		t.Fatal("seal verifies what it should not, or not what it should")
	}
	if Key("SIGHTLINE_RAW", time.Time{}) != nil {
		t.Fatal("a key from no creation time")
	}
}

func TestReserved(t *testing.T) {
	for typ, want := range map[string]bool{
		"log.graph_sweep": true, "log.GRAPH_SWEEP": true, "metric.sightline_x": true, "log.sightline": true,
		"log.graph": false, "log.graph_sweeper": false, "metric.search_made": false, "snapshot.host.sightline": false,
	} {
		if Reserved(typ) != want {
			t.Errorf("Reserved(%q) = %v", typ, !want)
		}
	}
	if !strings.HasPrefix(DeadLetterID("process", Position{Stream: "S", Sequence: 1, Time: time.Unix(0, 1)}), "dlq:process:") {
		t.Fatal("dead-letter id prefix")
	}
}
