package index

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/jsonscan"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
)

func TestFromMessage(t *testing.T) {
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	d, err := FromMessage(event("c1", "log", "api", "checkout", at, "e1", 5))
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "e1" || d.Kind != "log" || d.Service != "checkout" || d.Level != "info" || d.Site != "par1" ||
		d.CorrelationID != "c1" || d.Sequence != 5 || !strings.HasPrefix(d.Message, "log line") {
		t.Fatalf("%+v", d)
	}
	if got := d.IndexName("sightline"); got != "sightline-log-2026.11.22" {
		t.Fatal(got)
	}
	dlm := testutil.DeadLetter("c1", "sightline.raw.metric.search_made", "body is not JSON", badBody, at, 9)
	dl, err := FromMessage(dlm)
	if err != nil {
		t.Fatal(err)
	}
	if dl.Kind != KindDLQ || dl.Type != "dlq.metric.search_made" || dl.ID != dlm.ID || !strings.HasPrefix(dl.ID, "dlq:process:") || dl.DLQ.Sequence != 9 ||
		dl.Raw == "" || !strings.Contains(dl.Message, "body is not JSON") {
		t.Fatalf("%+v", dl)
	}
	big := event("c1", "metric", "m", "s", at, "e2", 1)
	big.Data = []byte(strings.Replace(string(big.Data), `"query":"cats"`, `"query":"`+strings.Repeat("x", 100000)+`"`, 1))
	d, err = FromMessage(big)
	if err != nil || len(d.Data) > 10000 {
		t.Fatalf("long strings are shortened: %d %v", len(d.Data), err)
	}
	for _, bad := range []string{"", "nope", `{"id":"x"}`} {
		if _, err := FromMessage(&stage.Message{Subject: "sightline.events.log.a", Data: []byte(bad), Header: stage.Header{}}); !stage.IsPermanent(err) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.URLs = []string{"ftp://x"}
	c.Prefix = "Bad Prefix"
	c.MaxDocBytes = 1 << 30
	err := c.Validate()
	for _, key := range []string{"index.urls[0]", "index.prefix", "index.max_doc_bytes"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Fatalf("want %s in %v", key, err)
		}
	}
}

func TestAppendDocMatchesMarshal(t *testing.T) {
	at := time.Date(2026, 11, 22, 8, 0, 0, 123456789, time.UTC)
	msgs := []*stage.Message{
		event("c\"1<>&", "log", "api", "chéckout\u2028", at, "e1\n", 5),
		event("c", "snapshot", "s", "s", at, "e2", 0),
		testutil.DeadLetter("c", "sightline.raw.log.x", "bad \x01 input é", badBody, at, 3),
	}
	for _, m := range msgs {
		d, err := FromMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(d)
		got, err := appendDoc(nil, d)
		if err != nil || string(got) != string(want) {
			t.Fatalf("appendDoc:\n got %s\nwant %s (%v)", got, want, err)
		}
	}
}

func TestScanObject(t *testing.T) {
	in := `{ "a" : "x\"y" , "b":{"c":[1,"}",{"d":null}]},"e\u0041":-1.5e3,"f":true,"g":[] }`
	var s scanner
	if err := s.scanObject([]byte(in)); err != nil {
		t.Fatal(err)
	}
	want := []string{"a", `"x\"y"`, "b", `{"c":[1,"}",{"d":null}]}`, "eA", `-1.5e3`, "f", "true", "g", "[]"}
	if len(s.top)*2 != len(want) {
		t.Fatalf("%v", s.top)
	}
	for i, mb := range s.top {
		if k, v := jsonscan.Text(in, []byte(in), mb.K0, mb.K1), in[mb.V0:mb.V1]; k != want[2*i] || v != want[2*i+1] {
			t.Fatalf("member %d: got %s=%s want %s=%s", i, k, v, want[2*i], want[2*i+1])
		}
	}
	for _, bad := range []string{`[1]`, `{"a":}`, `{"a":1`, ``, `"s"`, `{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, "{\"a\":\"\x01\"}",
		`{"a":tru}`, `{"a":[1,]}`, `{"a":1,}`, `{"a":1} x`, `{"a" 1}`, `{a:1}`, `{"a":-}`, `{"a":1e}`, `{"a":"\u12g4"}`} {
		if err := s.scanObject([]byte(bad)); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	deep := strings.Repeat("[", maxNesting-1) + strings.Repeat("]", maxNesting-1)
	if err := s.scanObject([]byte(`{"a":` + deep + `}`)); err != nil {
		t.Fatalf("depth %d: %v", maxNesting, err)
	}
	if err := s.scanObject([]byte(`{"a":[` + deep + `]}`)); err == nil || json.Valid([]byte(`{"a":[`+deep+`]}`)) {
		t.Fatalf("depth %d accepted: %v", maxNesting+1, err)
	}
}
