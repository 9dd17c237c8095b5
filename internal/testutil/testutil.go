// Package testutil holds the small helpers several packages' tests share.
// Only tests import it.
package testutil

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
)

// SyncBuffer is a bytes.Buffer safe for concurrent use: a logger or a
// process writes to it while the test reads what was written so far.
// The zero value is ready.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Count is the number of times substr occurs in what was written so far.
func (s *SyncBuffer) Count(substr string) int {
	return strings.Count(s.String(), substr)
}

// DeadLetter is the dead letter the processor's consumer publishes (with
// stage.DeadLetter, as internal/bus does) for the raw message of subject
// and body carrying correlation ID cid, rejected at time at with reason
// (class "schema"), read back from SIGHTLINE_DLQ at sequence seq: what
// the index and the page see.
func DeadLetter(cid, subject, reason string, body []byte, at time.Time, seq uint64) *stage.Message {
	in := &stage.Message{Subject: subject, Header: stage.Header{stage.HeaderCorrelationID: {cid}}, Data: body,
		Meta: stage.Meta{Stream: "SIGHTLINE_RAW", Sequence: seq}}
	m := stage.DeadLetter(in, "process", stage.Reject("schema", reason, nil), at)
	m.Meta = stage.Meta{Stream: "SIGHTLINE_DLQ", Sequence: seq, Timestamp: at}
	return m
}

// FreePort returns a loopback TCP port nobody listens on now, and never the
// same port twice in one test binary: the kernel may hand a port just
// released to the next bind(0), so two calls in a row (a pipeline's NATS
// and HTTP ports) could get the same one and collide when both listen.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !portsGiven[port] {
			portsGiven[port] = true
			return port
		}
	}
	t.Fatal("no free loopback port not handed out before")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// FreeAddr is FreePort as an address: 127.0.0.1:<port>.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}
