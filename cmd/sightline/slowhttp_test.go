package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// dialFrom opens a TCP connection to addr from a given loopback address
// (127.0.0.2 is a second client on the same machine).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAnswer reads one HTTP answer from c within d.
func readAnswer(t *testing.T, c net.Conn, d time.Duration) (int, string, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	return r.StatusCode, string(b), nil
}

// TestHostileHTTPConnections holds a real `sightline run`'s HTTP port the
// cheap ways: a GET announcing a body it never sends (it used to be never
// answered and to hold its file descriptor for ever), more connections
// than http.max_connections, and one client taking every ingest slot. Each
// is answered or cut, and the pipeline's own work goes on.
func TestHostileHTTPConnections(t *testing.T) {
	p, _, _, base := embeddedProc(t, "--set", "http.max_connections=40",
		"--set", "http.ingest_max_concurrent=4", "--set", "http.ingest_max_per_client=2", "--set", "http.ingest_read_timeout=30s")
	addr := strings.TrimPrefix(base, "http://")

	// A body announced and never sent, on an endpoint that reads none:
	// answered, and the connection closed, within HTTPBodyReadTimeout.
	c := dialFrom(t, "", addr)
	start := time.Now()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n")
	code, _, err := readAnswer(t, c, 40*time.Second)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /healthz with a body never sent: %d %v after %s", code, err, time.Since(start))
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("connection still open after the body deadline")
	}

	// One client (127.0.0.1) stalls two ingest requests: its third gets
	// 429 at once, another client (127.0.0.2) is still served.
	var stalled []net.Conn
	for range 2 {
		s := dialFrom(t, "127.0.0.1", addr)
		fmt.Fprintf(s, "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-ndjson\r\nContent-Length: 4000000\r\n\r\n{\"type\":\"")
		stalled = append(stalled, s)
	}
	post := func(from string) (int, string) {
		c := dialFrom(t, from, addr)
		body := `{"type":"metric.m","data":{"i":1}}`
		fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
		code, b, err := readAnswer(t, c, 20*time.Second)
		if err != nil {
			t.Fatalf("ingest from %s: %v", from, err)
		}
		return code, b
	}
	// Both stalled requests reach the handler (and hold their slots)
	// well within 2 s; neither is answered.
	time.Sleep(2 * time.Second)
	for i, s := range stalled {
		if code, b, err := readAnswer(t, s, 200*time.Millisecond); err == nil {
			t.Fatalf("stalled request %d answered: %d %s", i, code, b)
		}
	}
	if code, b := post("127.0.0.1"); code != http.StatusTooManyRequests || !strings.Contains(b, "http.ingest_max_per_client") {
		t.Errorf("a client's third request while two stall: %d %s", code, b)
	}
	if code, b := post("127.0.0.2"); code != http.StatusAccepted {
		t.Errorf("another client while the first stalls two requests: %d %s", code, b)
	}

	// More connections than http.max_connections: the ones over the limit
	// are answered 503 and closed, not left hanging; once the crowd goes,
	// everything is served again.
	var crowd []net.Conn
	for range 45 {
		crowd = append(crowd, dialFrom(t, "127.0.0.3", addr))
	}
	over := dialFrom(t, "127.0.0.3", addr)
	fmt.Fprintf(over, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	if code, b, err := readAnswer(t, over, 10*time.Second); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("a connection over the limit: %d %s %v", code, b, err)
	}
	for _, c := range crowd {
		c.Close()
	}
	waitHTTP(t, base+"/healthz", http.StatusOK, 30*time.Second)
	if code, b := post("127.0.0.2"); code != http.StatusAccepted {
		t.Errorf("after the crowd: %d %s\n%s", code, b, p.stderr)
	}
}
