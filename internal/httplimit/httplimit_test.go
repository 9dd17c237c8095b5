package httplimit_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/httplimit"
)

// serve runs an HTTP server with the package's limits on a loopback port.
func serve(t *testing.T, maxConns int, bodyWait time.Duration) (*httplimit.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := httplimit.NewListener(ln, maxConns)
	h := httplimit.BodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	}), bodyWait)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l, ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func answer(t *testing.T, c net.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	r.Body.Close()
	return r.StatusCode
}

// A connection over the limit is answered 503 at once; one freed makes
// room again.
func TestListenerRefusesOverLimit(t *testing.T) {
	l, addr := serve(t, 2, time.Second)
	held := []net.Conn{dial(t, addr), dial(t, addr)}
	for deadline := time.Now().Add(5 * time.Second); l.Open() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("open %d", l.Open())
		}
	}
	over := dial(t, addr)
	fmt.Fprint(over, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if code := answer(t, over); code != http.StatusServiceUnavailable || l.Rejected() != 1 {
		t.Fatalf("over the limit: %d, rejected %d", code, l.Rejected())
	}
	held[0].Close()
	for deadline := time.Now().Add(5 * time.Second); l.Open() > 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection still counted: open %d", l.Open())
		}
	}
	c := dial(t, addr)
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if code := answer(t, c); code != http.StatusOK {
		t.Fatalf("after one closed: %d", code)
	}
}

// A body announced and never sent: answered within the body deadline.
func TestBodyDeadlineAnswersStalledBody(t *testing.T) {
	_, addr := serve(t, 10, 500*time.Millisecond)
	c := dial(t, addr)
	start := time.Now()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
	if code := answer(t, c); code != http.StatusOK {
		t.Fatalf("%d", code)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("answered after %s", took)
	}
}
