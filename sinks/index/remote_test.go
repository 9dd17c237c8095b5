package index

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/sinks"
)

func TestOpenSearchContract(t *testing.T) { contract(t, openSearch(t)) }

func TestElasticsearchContract(t *testing.T) { contract(t, elasticsearch(t)) }

// contract: idempotent rewrite, partial failure with a mapping conflict
// landing as a permanent item error with the index's reason, garbage
// rejected, close drains and Write after Close fails, trace complete.
func contract(t *testing.T, base string) {
	ctx := context.Background()
	t.Run("idempotent rewrite", func(t *testing.T) {
		r, _ := remoteFor(t, base, nil)
		batch := events("idem-"+randHex(4), 300, time.Now().UTC().Add(-time.Minute))
		for range 2 {
			if err := r.Write(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(t, r); n != 300 {
			t.Fatalf("after writing 300 events twice: %d documents, want 300", n)
		}
	})
	t.Run("partial failure: mapping conflict and garbage", func(t *testing.T) {
		r, prefix := remoteFor(t, base, nil)
		if err := r.EnsureTemplate(ctx); err != nil {
			t.Fatal(err)
		}
		// An old daily index whose mapping conflicts with the template:
		// service is a number there.
		body := `{"mappings":{"properties":{"service":{"type":"long"}}}}`
		code, resp, _, err := r.client.Do(ctx, http.MethodPut, "/"+prefix+"-metric-2020.01.01", "application/json", []byte(body))
		if err != nil || code != 200 {
			t.Fatalf("create conflicting index: %d %s %v", code, resp, err)
		}
		cid := "part-" + randHex(4)
		batch := events(cid, 10, time.Now().UTC().Add(-time.Minute))
		batch[4] = event(cid, "metric", "search_made", "checkout", time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC), cid+"-old", 99)
		batch[7] = &stage.Message{Subject: "sightline.events.metric.x", Data: []byte("not json"), Header: stage.Header{}}
		err = r.Write(ctx, batch)
		var be *stage.BatchError
		if !errors.As(err, &be) {
			t.Fatalf("want *stage.BatchError, got %v", err)
		}
		if len(be.Failed) != 2 || be.Failed[4] == nil || be.Failed[7] == nil {
			t.Fatalf("want exactly indexes 4 and 7 failed, got %v", be.Failed)
		}
		for _, i := range []int{4, 7} {
			if !stage.IsPermanent(be.Failed[i]) {
				t.Fatalf("index %d: want permanent, got %v", i, be.Failed[i])
			}
		}
		if c := stage.PermanentClass(be.Failed[4]); c != "index_rejected" {
			t.Fatalf("class %q", c)
		}
		if reason := be.Failed[4].Error(); !strings.Contains(reason, "failed to parse field [service]") {
			t.Fatalf("reason does not carry the index's explanation: %q", reason)
		}
		t.Logf("rejection reason: %s", be.Failed[4])
		if n := count(t, r); n != 8 {
			t.Fatalf("%d documents stored, want the 8 good ones", n)
		}
	})
	t.Run("close drains", func(t *testing.T) {
		r, _ := remoteFor(t, base, nil)
		s := sinks.Drain(r)
		batch := events("close-"+randHex(4), 50, time.Now().UTC())
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := s.Write(ctx, batch); err != nil {
				t.Error(err)
			}
		})
		time.Sleep(time.Millisecond)
		wg.Wait()
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, batch); !errors.Is(err, sinks.ErrClosed) {
			t.Fatalf("Write after Close: %v", err)
		}
		if n := count(t, r); n != 50 {
			t.Fatalf("%d documents, want 50", n)
		}
	})
	t.Run("trace across 5 services and 3 kinds", func(t *testing.T) {
		r, _ := remoteFor(t, base, nil)
		cid, want := traceFixture(t, r)
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		checkTrace(t, r, cid, want)
	})
}

// traceFixture writes one request's events over 5 services and 3 kinds
// plus a dead letter, shuffled and mixed with noise, and returns the
// expected ids in time order.
func traceFixture(t testing.TB, s stage.Sink) (string, []string) {
	t.Helper()
	cid := "trace-" + randHex(6)
	t0 := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Millisecond)
	services := []string{"gateway", "search", "ranker", "billing", "inventory"}
	kinds := []string{"metric", "log", "snapshot"}
	var msgs []*stage.Message
	var want []string
	step := 0
	for i, svc := range services {
		for j, k := range kinds {
			if (i+j)%2 == 1 && k == "snapshot" {
				continue
			}
			id := fmt.Sprintf("%s-%02d", cid, step)
			msgs = append(msgs, event(cid, k, "step", svc, t0.Add(time.Duration(step)*37*time.Millisecond), id, uint64(100+step)))
			want = append(want, id)
			step++
		}
	}
	dl := testutil.DeadLetter(cid, "sightline.raw.log.billing", "schema: at /level: value must be one of ...", badBody, t0.Add(time.Duration(step)*37*time.Millisecond), 77)
	msgs = append(msgs, dl)
	want = append(want, dl.ID)
	for i := range 40 { // noise
		msgs = append(msgs, event("noise-"+randHex(3), "log", "step", "gateway", t0.Add(time.Duration(i)*time.Millisecond), "noise-"+randHex(8), 1))
	}
	rand.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	if err := s.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	return cid, want
}

func checkTrace(t *testing.T, s Searcher, cid string, want []string) {
	t.Helper()
	tl, err := Trace(context.Background(), s, cid, StreamLocator)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range tl.Events {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("trace order:\n got %v\nwant %v", got, want)
	}
	if len(tl.Services) != 5 {
		t.Fatalf("services %v, want 5", tl.Services)
	}
	for _, k := range []string{"metric", "log", "snapshot", "dlq"} {
		if !slices.Contains(tl.Kinds, k) {
			t.Fatalf("kind %s missing from %v", k, tl.Kinds)
		}
	}
	if tl.Events[0].OffsetMs != 0 || tl.Events[1].OffsetMs != 37 {
		t.Fatalf("offsets %v %v", tl.Events[0].OffsetMs, tl.Events[1].OffsetMs)
	}
	last := tl.Events[len(tl.Events)-1]
	if last.Kind != KindDLQ || last.DLQ == nil || !strings.Contains(last.DLQ.Reason, "schema") || last.Service != "billing" {
		t.Fatalf("dead letter entry: %+v", last)
	}
	if len(tl.Locations) < len(want) {
		t.Fatalf("locations: %v", tl.Locations)
	}
	if _, err := Trace(context.Background(), s, "no-such-"+randHex(4)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
}

// TestOpenSearchDownMidStream cuts a TCP proxy between the sink and the
// server while batches flow, restores it, and checks nothing is lost: the
// test plays the router, retrying a failed batch with backoff.
func TestOpenSearchDownMidStream(t *testing.T) {
	base := openSearch(t)
	u, _ := url.Parse(base)
	px := newProxy(t, u.Host)
	r, _ := remoteFor(t, proxyURL(px), func(c *Config) { c.Timeout = 2 * time.Second })
	r.cfg.URLs = []string{proxyURL(px)}
	direct := mustRemote(t, Config{URLs: []string{base}, Prefix: r.cfg.Prefix})
	t.Cleanup(func() { deletePrefix(base, r.cfg.Prefix) })
	ctx := context.Background()
	const batches, size = 20, 100
	var failures atomic.Int64
	for b := range batches {
		batch := events(fmt.Sprintf("down%02d-%s", b, randHex(2)), size, time.Now().UTC())
		if b == 5 {
			px.Cut()
			time.AfterFunc(1500*time.Millisecond, px.Restore)
		}
		for attempt := 0; ; attempt++ {
			err := r.Write(ctx, batch)
			if err == nil {
				break
			}
			if o := stage.Outcomes(err, len(batch)); !o.Whole() || !errors.Is(o.Cause, ErrUnavailable) {
				t.Fatalf("server down must fail the whole batch transiently, got %T %v", err, err)
			}
			failures.Add(1)
			if attempt > 100 {
				t.Fatal("never recovered")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if failures.Load() == 0 {
		t.Fatal("the cut was not noticed")
	}
	if n := count(t, direct); n != batches*size {
		t.Fatalf("%d documents after the outage, want %d", n, batches*size)
	}
	t.Logf("%d failed attempts during the outage, nothing lost", failures.Load())
}

// TestOpenSearchTLSBasicAuthAndSplit puts a TLS server requiring basic
// auth in front of OpenSearch: the custom CA and credentials must be used,
// and a big batch must be split into _bulk requests under max_bulk_bytes.
func TestOpenSearchTLSBasicAuthAndSplit(t *testing.T) {
	base := openSearch(t)
	target, _ := url.Parse(base)
	rp := httputil.NewSingleHostReverseProxy(target)
	var bulks, maxBody atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pass, ok := req.BasicAuth()
		if !ok || user != "sightline" || pass != "s3cret" {
			w.Header().Set("WWW-Authenticate", "Basic")
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		if strings.HasPrefix(req.URL.Path, "/_bulk") {
			bulks.Add(1)
			for {
				m := maxBody.Load()
				if req.ContentLength <= m || maxBody.CompareAndSwap(m, req.ContentLength) {
					break
				}
			}
		}
		rp.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	batch := events("tls-"+randHex(4), 1000, time.Now().UTC())

	r, prefix := remoteFor(t, base, func(c *Config) {
		c.URLs = []string{srv.URL}
		c.CAFile = ca
		c.Username, c.Password = "sightline", "s3cret"
		c.MaxBulkBytes = 64 << 10
		c.MaxDocBytes = 16 << 10
	})
	if err := r.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if bulks.Load() < 8 || maxBody.Load() > 64<<10 {
		t.Fatalf("%d _bulk requests, largest %d bytes: want several, each <= 64 KiB", bulks.Load(), maxBody.Load())
	}
	direct := mustRemote(t, Config{URLs: []string{base}, Prefix: prefix})
	if n := count(t, direct); n != 1000 {
		t.Fatalf("%d documents, want 1000", n)
	}
	t.Logf("1000 events in %d _bulk requests, largest %d bytes", bulks.Load(), maxBody.Load())

	wrong := mustRemote(t, Config{URLs: []string{srv.URL}, Prefix: prefix, TLS: config.TLS{CAFile: ca}, Credentials: config.Credentials{Username: "sightline", Password: "nope"}})
	if err := wrong.Write(ctx, batch[:1]); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong password: %v", err)
	}
	noCA := mustRemote(t, Config{URLs: []string{srv.URL}, Prefix: prefix, Credentials: config.Credentials{Username: "sightline", Password: "s3cret"}})
	if err := noCA.Write(ctx, batch[:1]); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v", err)
	}
	key := mustRemote(t, Config{URLs: []string{srv.URL}, Prefix: prefix, TLS: config.TLS{CAFile: ca}, Credentials: config.Credentials{Token: "abc"}})
	if err := key.Write(ctx, batch[:1]); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("api key where basic auth is required: %v", err)
	}
}

// TestOpenSearchRetention deletes daily indices past the retention, keeping
// the recent ones.
func TestOpenSearchRetention(t *testing.T) {
	base := openSearch(t)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.URLs = []string{base}
	cfg.Prefix = testPrefix(t, base)
	cfg.Retention = 30 * 24 * time.Hour
	r, err := NewRemote(cfg, WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	batch := []*stage.Message{
		event("ret", "metric", "m", "a", now.Add(-40*24*time.Hour), "old-1", 1),
		event("ret", "log", "m", "a", now.Add(-32*24*time.Hour), "old-2", 2),
		event("ret", "metric", "m", "a", now.Add(-29*24*time.Hour), "keep-1", 3),
		event("ret", "metric", "m", "a", now, "keep-2", 4),
	}
	if err := r.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	deleted, err := r.DeleteExpired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	want := []string{cfg.Prefix + "-log-2026.10.21", cfg.Prefix + "-metric-2026.10.13"}
	if !slices.Equal(deleted, want) {
		t.Fatalf("deleted %v, want %v", deleted, want)
	}
	left, _ := r.Indices(ctx)
	if len(left) != 2 {
		t.Fatalf("left %v", left)
	}
	if n := count(t, r); n != 2 {
		t.Fatalf("%d documents left, want 2", n)
	}
}

func mustRemote(t testing.TB, cfg Config) *Remote {
	t.Helper()
	r, err := NewRemote(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
