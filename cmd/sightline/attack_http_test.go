package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAttackBrowserCannotWriteOrRebind runs `sightline run` on its loopback
// defaults (no tokens) and sends what a hostile web page in the user's
// browser can make it send: a simple cross-origin POST (text/plain, an
// Origin of another site), and, after DNS rebinding, requests whose Host is
// the attacker's name. Both are refused; the CLI's and curl's requests
// (no Origin, JSON content type, a loopback Host) still work.
func TestAttackBrowserCannotWriteOrRebind(t *testing.T) {
	_, _, _, base := embeddedProc(t)
	do := func(method, path, host string, hdr map[string]string, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		c := &http.Client{Timeout: 30 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const hosts = `{"hostname":"victim","files":{"/etc/hosts":"6.6.6.6 bank.example"}}`
	// A form or fetch(..., {mode: "no-cors"}) from https://evil.example.
	for name, hdr := range map[string]map[string]string{
		"text/plain cross-origin":        {"Content-Type": "text/plain", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
		"form cross-origin":              {"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"},
		"text/plain from a sandbox":      {"Content-Type": "text/plain", "Origin": "null"},
		"text/plain without Origin":      {"Content-Type": "text/plain"},
		"json with a foreign Origin":     {"Content-Type": "application/json", "Origin": "http://evil.example:8080"},
		"same host, another port origin": {"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"},
	} {
		code, body := do("POST", "/v1/events?type=snapshot.host", "", hdr, hosts)
		if code != http.StatusForbidden {
			t.Errorf("%s: POST /v1/events answered %d, want 403: %s", name, code, body)
		}
	}
	// DNS rebinding: evil.example now resolves to 127.0.0.1; the page reads
	// the API at its own origin.
	for _, path := range []string{"/v1/search?q=*", "/metrics", "/healthz/components"} {
		if code, body := do("GET", path, "evil.example:"+portOf(base), nil, ""); code != http.StatusForbidden {
			t.Errorf("GET %s with Host evil.example answered %d, want 403: %.200s", path, code, body)
		}
	}
	// What users do keeps working.
	if code, body := do("POST", "/v1/events?type=log.app", "", map[string]string{"Content-Type": "application/x-ndjson"}, `{"msg":"hi"}`); code != http.StatusAccepted && code != http.StatusOK {
		t.Errorf("curl-like ingest answered %d: %s", code, body)
	}
	if code, body := do("POST", "/v1/events?type=log.app", "", map[string]string{"Content-Type": "text/plain", "X-Sightline-Client": "1"}, "plain line"); code != http.StatusAccepted && code != http.StatusOK {
		t.Errorf("text/plain ingest with the custom header answered %d: %s", code, body)
	}
	if code, body := do("POST", "/v1/events", "", map[string]string{"Content-Type": "application/json", "Origin": base}, `{"type":"log.app","data":{"msg":"x"}}`); code != http.StatusAccepted && code != http.StatusOK {
		t.Errorf("same-origin JSON ingest answered %d: %s", code, body)
	}
	for _, host := range []string{"localhost:" + portOf(base), "127.0.0.1:" + portOf(base), "[::1]:" + portOf(base)} {
		if code, _ := do("GET", "/healthz", host, nil, ""); code != http.StatusOK {
			t.Errorf("GET /healthz with Host %s answered %d", host, code)
		}
	}
}

func portOf(base string) string { return base[strings.LastIndex(base, ":")+1:] }
