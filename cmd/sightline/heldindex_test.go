package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// With `sightline run` holding the embedded index, `sightline trace` and
// `logs` on the same configuration, without --api, read through that
// process's API at http.listen instead of failing on the index's lock.
func TestTraceWithoutAPIWhileRunHoldsTheIndex(t *testing.T) {
	c, _ := startRun(t, buildSightline(t))
	base := c.sets[len(c.sets)-1]
	c.sets = c.sets[:len(c.sets)-2] // no --api
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/events", strings.NewReader(`{"type":"log.held","data":{"message":"held index line"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Correlation-Id", "held-index-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %s", resp.Status)
	}
	var r ran
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if r = c.run("trace", "held-index-1"); r.code == 0 && strings.Contains(r.stdout, "held index line") {
			break
		}
	}
	if r.code != 0 || !strings.Contains(r.stdout, "held index line") {
		t.Fatalf("trace without --api: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = c.run("logs", "--kind", "log"); r.code != 0 || !strings.Contains(r.stdout, "held index line") {
		t.Fatalf("logs without --api: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
