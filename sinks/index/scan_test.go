package index

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/stage"
)

// scanSeeds are JSON texts, valid and not, for the scanner's tests.
var scanSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"d\u00e9\n"}`, `{"a":-0.5E+10,"b":true,"c":false}`,
	`{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, "{\"a\":\"\x01\"}", `{"a":tru}`, `{"a":[1,]}`, `{"a":1,}`,
	`{"a":1} x`, `[1]`, `"s"`, `12`, ``, `{"a":"\ud800"}`, "{\"a\":\"\xff\xfe\"}", `{"a":{"b":{"c":[[[]]]}}}`,
	`{"data":{"message":"hi","level":"WARN"},"id":"x"}`, `{"a":1e5,"b":-0,"c":0.0e-0}`, `{"a" : "b" ,"c" :[ ] }`,
}

// eventSeeds are conformed events, odd ones included.
func eventSeeds() [][]byte {
	at := time.Date(2026, 11, 22, 8, 0, 0, 123456789, time.UTC)
	var out [][]byte
	for _, m := range []*stage.Message{
		event("c\"1<>&", "log", "api", "chéckout\u2028", at, "e1\n", 5),
		event("c", "snapshot", "s", "s", at, "e2", 0),
		event("c", "metric", "m", "s", at, "e3", 7),
	} {
		out = append(out, m.Data)
	}
	return append(out,
		[]byte(`{"id":"a","time":"2026-11-22T08:00:00+02:00","type":"log.x","data":{"msg":"m","level":"ERROR","host":7,"service":null},"zz":"1","aa":{"x":1},"site":"p","site":"q"}`),
		[]byte(`{"id":"a","id":5,"time":"2026-11-22T08:00:00Z","type":"weird","d\u0061ta":{"message":"esc key","mess\u0061ge":"second"}}`),
		[]byte(`{"id":"a","time":"2026-11-22T08:00:00Z","ingesttime":"bad","type":"metric.x","data":[1,2]}`),
		[]byte(`{"id":"a","time":"2026-11-22T08:00:00Z","type":"metric.x","data":"text","data":{"message":"last"}}`),
		[]byte("{\"id\":\"a\xff\",\"time\":\"2026-11-22T08:00:00Z\",\"type\":\"log.x\",\"data\":{\"message\":\"bad \xff utf8\"},\"env\":\"\xfe\"}"),
		[]byte("{\"id\":\"a\",\"time\":\"2026-11-22T08:00:00Z\",\"type\":\"log.x\",\"data\":{\n\"message\": \"multi\\nline\"\n}}"),
		[]byte(`{"id":"a","time":"2026-11-22T08:00:00Z","type":"log.x","data":{"message":"`+strings.Repeat("y", 9000)+`"}}`),
		[]byte(`{"id":"","time":"2026-11-22T08:00:00Z"}`),
		[]byte(`{"id":"a","time":"yesterday"}`),
		[]byte(`{"id":"a","time":"2026-11-22T08:00:00Z","data":null,"traceparent":"00-x","lagms":5,"k\u00e9":"<b>"}`),
	)
}

// checkSameAsOracle builds the document of data both ways (the sink's
// appendMessage, FromMessage + appendAction, and the code before the
// scanner) and fails when they differ.
func checkSameAsOracle(t *testing.T, data []byte) {
	t.Helper()
	h := stage.Header{}
	h.Set(stage.HeaderCorrelationID, "hdr-cid")
	m := &stage.Message{ID: "msg-id", Subject: "sightline.events.log.x", Header: h, Data: data,
		Meta: stage.Meta{Stream: "SIGHTLINE_EVENTS", Sequence: 3}}
	od, oerr := oldFromMessage(m)
	nd, nerr := FromMessage(m)
	var dec decoder
	got, aerr := dec.appendMessage([]byte("prev\n"), m, "pfx")
	if (oerr == nil) != (nerr == nil) || (nerr == nil) != (aerr == nil) {
		t.Fatalf("%q: old %v, FromMessage %v, appendMessage %v", data, oerr, nerr, aerr)
	}
	if nerr != nil {
		if !stage.IsPermanent(nerr) || !stage.IsPermanent(aerr) {
			t.Fatalf("%q: not permanent: %v / %v", data, nerr, aerr)
		}
		if string(got) != "prev\n" {
			t.Fatalf("%q: appended on error: %q", data, got)
		}
		return
	}
	want, err1 := oldAppendAction([]byte("prev\n"), od, "pfx")
	viaDoc, err2 := appendAction([]byte("prev\n"), nd, "pfx")
	if err1 != nil || err2 != nil {
		t.Fatalf("%q: %v %v", data, err1, err2)
	}
	if string(viaDoc) != string(got) {
		t.Fatalf("%q: FromMessage+appendAction\n %s\nappendMessage\n %s", data, viaDoc, got)
	}
	if string(want) != string(got) {
		// Allowed only for a payload with invalid UTF-8: the old path
		// copied it as is, the sink now replaces it. The rest is the same.
		if od.Data == nil || utf8.Valid(od.Data) || !utf8.Valid(nd.Data) || !json.Valid(nd.Data) {
			t.Fatalf("%q: before the scanner\n %s\nnow\n %s", data, want, got)
		}
		od.Data, nd.Data = nil, nil
		want, _ = oldAppendAction(nil, od, "pfx")
		viaDoc, _ = appendAction(nil, nd, "pfx")
		if string(want) != string(viaDoc) {
			t.Fatalf("%q: before the scanner\n %s\nnow\n %s", data, want, viaDoc)
		}
	}
	// The document line is valid JSON and decodes to the Document.
	line := got[5+bytes.IndexByte(got[5:], '\n')+1 : len(got)-1]
	var back Document
	if err := json.Unmarshal(line, &back); err != nil || back.ID != nd.ID {
		t.Fatalf("%q: document line %s: %v", data, line, err)
	}
}

func TestAppendMessageSameAsBefore(t *testing.T) {
	for i, data := range eventSeeds() {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkSameAsOracle(t, data) })
	}
	for _, s := range scanSeeds {
		checkSameAsOracle(t, []byte(s))
	}
	// A reused decoder: documents of the whole benchmark batch.
	msgs := benchBatch(1, 300, time.Now().UTC())
	var dec decoder
	var got, want []byte
	for _, m := range msgs {
		var err error
		if got, err = dec.appendMessage(got, m, "p"); err != nil {
			t.Fatal(err)
		}
		d, err := oldFromMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		want, _ = oldAppendAction(want, d, "p")
	}
	if !bytes.Equal(got, want) {
		t.Fatal("batch bodies differ")
	}
}

// FuzzAppendMessage checks the sink's document building against the code
// before the one-pass scanner: same accepted events, same bytes.
//
//	go test -run '^$' -fuzz FuzzAppendMessage -fuzztime 60s ./sinks/index/
func FuzzAppendMessage(f *testing.F) {
	for _, s := range eventSeeds() {
		f.Add(s)
	}
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkSameAsOracle(t, b) })
}
