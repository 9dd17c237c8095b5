package stage

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDeadLetter(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	in := &Message{Subject: RawPrefix + "log.api", Data: []byte("not json"),
		Header: Header{"Nats-Msg-Id": {"m1"}, "Status": {"503"}, "X-Correlation-Id": {"cid-1"}},
		Meta:   Meta{Stream: "SIGHTLINE_RAW", Sequence: 42}}
	dl := DeadLetter(in, "process", Reject("schema", "line one\r\nline two "+strings.Repeat("x", 3000), nil), at)
	h := dl.Header
	for k, want := range map[string]string{
		HeaderOriginalPrefix + "Nats-Msg-Id": "m1", HeaderOriginalPrefix + "Status": "503",
		HeaderDLQStage: "process", HeaderDLQSubject: in.Subject, HeaderDLQStream: "SIGHTLINE_RAW",
		HeaderDLQSequence: "42", HeaderDLQTime: "2026-12-01T10:00:00Z", HeaderDLQClass: "schema",
		HeaderCorrelationID: "cid-1", HeaderMsgID: "dlq:process:SIGHTLINE_RAW:42",
	} {
		if got := h[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := h["Status"]; ok {
		t.Error("Status kept: NATS clients would read the dead letter as a status message")
	}
	r := h.Get(HeaderDLQReason)
	if strings.ContainsAny(r, "\r\n") || !strings.HasPrefix(r, "line one  line two") || len(r) > 2000+len("…") {
		t.Errorf("reason %.60q… (%d bytes)", r, len(r))
	}
	if dl.Subject != DLQPrefix+"log.api" || dl.ID != "dlq:process:SIGHTLINE_RAW:42" || string(dl.Data) != "not json" {
		t.Errorf("subject %q id %q data %q", dl.Subject, dl.ID, dl.Data)
	}
	if c := DeadLetter(in, "process", errors.New("io"), at).Header; len(c[HeaderDLQClass]) != 0 {
		t.Errorf("a transient error has class %q", c[HeaderDLQClass])
	}
}
