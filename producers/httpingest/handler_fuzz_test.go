package httpingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/httpauth"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/httpingest"
)

// recorder is a Publisher that keeps what it was given (the fuzz target
// runs without JetStream).
type recorder struct {
	mu   sync.Mutex
	msgs []*stage.Message
}

func (r *recorder) Publish(_ context.Context, msgs ...*stage.Message) ([]bus.PublishResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, msgs...)
	out := make([]bus.PublishResult, len(msgs))
	for i := range out {
		out[i] = bus.PublishResult{Stream: bus.StreamRaw, Sequence: uint64(len(r.msgs) - len(msgs) + i + 1)}
	}
	return out, nil
}

const (
	fuzzIngest = "fuzz-ingest-token-0123456789"
	fuzzRead   = "fuzz-read-token-0123456789ab"
)

// FuzzPostEvents drives POST /v1/events as `sightline run` serves it:
// behind the authentication middleware, with any body, content type,
// query, token and correlation header. Nothing panics; every answer is a
// known status with a JSON body that never holds the token; only the
// ingest (or admin) token publishes, and only to sightline.raw.*; an
// accepted request published exactly what it reports.
func FuzzPostEvents(f *testing.F) {
	dir := f.TempDir()
	tf := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tf, []byte("ingest producer "+fuzzIngest+"\nread dash "+fuzzRead+"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	auth, err := httpauth.Load(httpauth.Config{TokensFile: tf})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct {
		body, ctype, query, token, cid string
	}{
		{`{"type":"metric.search_made","data":{"query":"cats"}}`, "application/json", "", "ingest", "req-1"},
		{`[{"type":"log.api","data":"x"},{"type":"metric.a","id":"i","correlationid":"c"}]`, "application/json", "", "ingest", ""},
		{"{\"type\":\"log.x\",\"data\":\"a\"}\n{\"type\":\"metric.y\"}\n", "application/x-ndjson", "", "ingest", ""},
		{"GET / 200\nPOST /x 500\n", "text/plain", "type=log.nginx", "ingest", ""},
		{`{"type":"snapshot.x","data":{"scope":"x","tag":5000,"final":true,"count":0,"force":true}}`, "application/json", "", "read", ""},
		{`{"type":"metric.a"}`, "application/json", "", "", ""},
		{`{"type":"metric.a"}`, "application/json", "", "garbage", "\x1b[31m"},
		{"{\"type\":\"metric.\xff\"}", "application/json; charset=utf-8", "", "ingest", ""},
	} {
		f.Add([]byte(seed.body), seed.ctype, seed.query, seed.token, seed.cid)
	}
	f.Fuzz(func(t *testing.T, body []byte, ctype, query, token, cid string) {
		pub := &recorder{}
		h := auth.Middleware(httpingest.New(pub, httpingest.WithMaxItems(50), httpingest.WithMaxItemBytes(4<<10), httpingest.WithMaxBodyBytes(64<<10)))
		target := "/v1/events"
		if q := strings.Map(func(r rune) rune {
			if r <= ' ' || r == '#' || r == 0x7f {
				return -1
			}
			return r
		}, query); q != "" {
			target += "?" + q
		}
		req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", ctype)
		authorized := false
		switch token {
		case "ingest":
			req.Header.Set("Authorization", "Bearer "+fuzzIngest)
			authorized = true
		case "read":
			req.Header.Set("Authorization", "Bearer "+fuzzRead)
		case "":
		default:
			req.Header.Set("Authorization", "Bearer "+token)
			authorized = token == fuzzIngest
		}
		req.Header.Set("Correlation-Id", cid)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		switch rec.Code {
		case http.StatusAccepted, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden,
			http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var resp httpingest.Response
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("status %d with a body that is not JSON: %q", rec.Code, rec.Body)
		}
		for _, secret := range []string{fuzzIngest, fuzzRead} {
			if strings.Contains(rec.Body.String(), secret) || strings.Contains(strings.Join(rec.Header().Values("WWW-Authenticate"), " "), secret) {
				t.Fatalf("the answer holds a token: %s", rec.Body)
			}
		}
		if !authorized {
			if rec.Code != http.StatusUnauthorized && rec.Code != http.StatusForbidden {
				t.Fatalf("unauthorized request answered %d", rec.Code)
			}
			if len(pub.msgs) != 0 {
				t.Fatalf("unauthorized request published %d messages", len(pub.msgs))
			}
			return
		}
		if rec.Code != http.StatusAccepted {
			if len(pub.msgs) != 0 {
				t.Fatalf("status %d but %d messages published", rec.Code, len(pub.msgs))
			}
			return
		}
		if resp.Accepted != len(pub.msgs) || len(resp.IDs) != len(pub.msgs) || len(pub.msgs) == 0 || len(pub.msgs) > 50 {
			t.Fatalf("accepted %d, ids %d, published %d", resp.Accepted, len(resp.IDs), len(pub.msgs))
		}
		for _, m := range pub.msgs {
			if !strings.HasPrefix(m.Subject, stage.RawPrefix) || strings.ContainsAny(m.Subject, " *>\t\r\n") {
				t.Fatalf("published to %q", m.Subject)
			}
			if len(m.Data) == 0 || len(m.Data) > 4<<10 {
				t.Fatalf("published %d bytes", len(m.Data))
			}
		}
	})
}
