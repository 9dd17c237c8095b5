package stage

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/identity"
)

func TestDeadLetter(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	in := &Message{Subject: RawPrefix + "log.api", Data: []byte("not json"),
		Header: Header{"Nats-Msg-Id": {"m1"}, "Status": {"503"}, "X-Correlation-Id": {"cid-1"}},
		Meta:   Meta{Stream: "SIGHTLINE_RAW", Sequence: 42, Timestamp: at.Add(-time.Second)}}
	wantID := identity.DeadLetterID("process", identity.Position{Stream: "SIGHTLINE_RAW", Sequence: 42, Time: at.Add(-time.Second)})
	dl := DeadLetter(in, "process", Reject("schema", "line one\r\nline two "+strings.Repeat("x", 3000), nil), at)
	h := dl.Header
	for k, want := range map[string]string{
		HeaderOriginalPrefix + "Nats-Msg-Id": "m1", HeaderOriginalPrefix + "Status": "503",
		HeaderDLQStage: "process", HeaderDLQSubject: in.Subject, HeaderDLQStream: "SIGHTLINE_RAW",
		HeaderDLQSequence: "42", HeaderDLQTime: "2026-12-01T10:00:00Z", HeaderDLQClass: "schema",
		HeaderCorrelationID: "cid-1", HeaderMsgID: wantID,
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
	if dl.Subject != DLQPrefix+"log.api" || dl.ID != wantID || string(dl.Data) != "not json" {
		t.Errorf("subject %q id %q data %q", dl.Subject, dl.ID, dl.Data)
	}
	if c := DeadLetter(in, "process", errors.New("io"), at).Header; len(c[HeaderDLQClass]) != 0 {
		t.Errorf("a transient error has class %q", c[HeaderDLQClass])
	}
}

// A dead letter's id cannot be known before its input is stored: the same
// stage, stream and sequence with another stored time (a re-created
// stream) give another id, and the id reveals neither.
func TestDeadLetterIDUnpredictable(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	mk := func(ts time.Time) string {
		in := &Message{Subject: RawPrefix + "log.api", Header: Header{}, Meta: Meta{Stream: "SIGHTLINE_RAW", Sequence: 4, Timestamp: ts}}
		return DeadLetter(in, "process", Reject("schema", "bad", nil), at).ID
	}
	a, b := mk(at), mk(at.Add(time.Nanosecond))
	if a == b || strings.Contains(a, "SIGHTLINE_RAW") || !strings.HasPrefix(a, "dlq:process:") {
		t.Errorf("ids %q and %q: want distinct, prefixed dlq:process:, without the stream position", a, b)
	}
	if mk(at) != a {
		t.Error("a redelivered input got another dead-letter id")
	}
}

func TestDuplicateLetter(t *testing.T) {
	in := &Message{Subject: RawPrefix + "metric.m", Header: Header{"Nats-Msg-Id": {"x"}}, Data: []byte("{}"),
		Meta: Meta{Stream: "SIGHTLINE_RAW", Sequence: 7, Timestamp: time.Unix(1, 0)}}
	dl := DeadLetter(in, "process", Duplicate("ev-1"), time.Unix(2, 0))
	dl.Subject = DuplicateSubject(in.Subject)
	if dl.Subject != "sightline.dlq.duplicate.metric.m" || dl.Header.Get(HeaderDLQClass) != ClassDuplicate ||
		!strings.Contains(dl.Header.Get(HeaderDLQReason), "ev-1") {
		t.Errorf("subject %q class %q reason %q", dl.Subject, dl.Header.Get(HeaderDLQClass), dl.Header.Get(HeaderDLQReason))
	}
	if k, sink := KindOf(dl.Subject); k != "metric" || sink != "" || !IsDuplicate(dl.Subject) {
		t.Errorf("KindOf(%q) = %q, %q", dl.Subject, k, sink)
	}
	if got := DLQSubject(RawPrefix + "duplicate.x"); got != "sightline.dlq.other.sightline_raw_duplicate_x" {
		t.Errorf("a raw kind named duplicate goes to %q", got)
	}
}
