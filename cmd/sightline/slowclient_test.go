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

// TestSlowAndGreedyHTTPClients runs `sightline run` and attacks its HTTP
// port the cheap ways: ingest requests that announce a large body and then
// stall (each would hold a goroutine and a growing buffer for ever), more of
// them at once than the ingest takes, and an oversized header block. The
// stalled requests are cut at http.ingest_read_timeout, requests beyond
// http.ingest_max_concurrent are answered 429 with Retry-After instead of
// queueing, the header block gets 431, and a plain request still goes
// through afterwards.
func TestSlowAndGreedyHTTPClients(t *testing.T) {
	p, _, _, base := embeddedProc(t, "--set", "http.ingest_max_concurrent=2", "--set", "http.ingest_read_timeout=3s")
	httpAddr := strings.TrimPrefix(base, "http://")

	// Two requests that announce 4 MB and send 10 bytes of it.
	stalled := make([]net.Conn, 2)
	for i := range stalled {
		c, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-ndjson\r\nContent-Length: 4000000\r\n\r\n{\"type\":\"")
		stalled[i] = c
	}
	start := time.Now()

	// A third request finds both slots taken: 429, not a queue. (Until
	// both stalled requests have reached the handler, it is served.)
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Post(base+"/v1/events", "application/json", strings.NewReader(`{"type":"metric.m","data":{"i":1}}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
			!strings.Contains(string(body), "ingest requests at once") {
			t.Errorf("third request while two stall: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		break
	}

	// The stalled requests are cut at the read timeout (3 s), answered 408.
	for i, c := range stalled {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("stalled request %d: no answer after %s: %v", i, time.Since(start).Round(time.Millisecond), err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "http.ingest_read_timeout") {
			t.Errorf("stalled request %d: %d %s", i, r.StatusCode, b)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("stalled request %d: connection still open after its answer", i)
		}
	}
	if d := time.Since(start); d < 2*time.Second || d > 15*time.Second {
		t.Errorf("stalled requests cut after %s, want about 3s", d)
	}

	// An oversized header block: 431 before any handler runs.
	req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 200<<10))
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Errorf("big header: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("big header: %d", resp.StatusCode)
		}
	}

	// The slots are free again.
	resp, err := http.Post(base+"/v1/events", "application/json", strings.NewReader(`{"type":"metric.m","data":{"i":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("plain request after the attack: %d %s\n%s", resp.StatusCode, body, p.stderr)
	}
}
