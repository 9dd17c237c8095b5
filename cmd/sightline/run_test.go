package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/testutil"
)

// embeddedSets moves `sightline run`'s embedded defaults to free ports and
// a temp dir.
func embeddedSets(dir, natsAddr, httpAddr string) []string {
	return []string{
		"--set", "nats.listen=" + natsAddr,
		"--set", "nats.store_dir=" + filepath.Join(dir, "js"),
		"--set", "http.listen=" + httpAddr,
		"--set", "index.embedded_path=" + filepath.Join(dir, "index"),
		"--set", "archive.url=" + filepath.Join(dir, "archive"),
		"--log-level", "warn",
	}
}

// embeddedProc builds the binary and starts `sightline run` on the
// embedded defaults (free ports, a temp dir) with extra arguments, as a
// real process, and waits until it is ready.
func embeddedProc(t *testing.T, extra ...string) (p *proc, bin, natsAddr, base string) {
	t.Helper()
	bin = buildSightline(t)
	natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	args := append(append([]string{"run"}, embeddedSets(t.TempDir(), natsAddr, httpAddr)...), extra...)
	p = startSightline(t, bin, nil, args...)
	base = "http://" + httpAddr
	waitHTTP(t, base+"/readyz", http.StatusOK, 2*time.Minute)
	return p, bin, natsAddr, base
}

// runInProcess runs `sightline run` with sets in this process until stop:
// stop cancels it, waits up to 60 s for it to drain (an error of the test
// when it does not) and returns what run returned.
func runInProcess(t *testing.T, sets []string) (ctx context.Context, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		root := newRootCmd()
		root.SetArgs(append([]string{"run"}, sets...))
		done <- root.ExecuteContext(ctx)
	}()
	var once sync.Once
	var runErr error
	return ctx, func() error { // a second call returns the first's answer
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(60 * time.Second):
				t.Error("run did not drain within 60s")
			}
		})
		return runErr
	}
}

// TestRunEndToEnd runs `sightline run` on the embedded defaults (moved to
// free ports and a temp dir) and does what the README's tour does.
func TestRunEndToEnd(t *testing.T) {
	dir := t.TempDir()
	natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	base := "http://" + httpAddr
	sets := append(embeddedSets(dir, natsAddr, httpAddr),
		"--set", "archive.batch_max_age=1s",
		"--set", "processor.attributes.site=lab1")
	ctx, stop := runInProcess(t, sets)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("run returned %v", err)
		}
	}()
	waitHTTP(t, base+"/readyz", 200, 60*time.Second)

	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	pub := func(subject, body string, hdr ...string) {
		m := nats.NewMsg(subject)
		m.Data = []byte(body)
		for i := 0; i+1 < len(hdr); i += 2 {
			m.Header.Set(hdr[i], hdr[i+1])
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	pub("sightline.raw.metric.search_made", `{"query":"cats","n_results":3,"user_id":"1234"}`)
	pub("sightline.raw.metric.search_made", `{"query":"dogs"}`, "Correlation-Id", "abc", "Nats-Msg-Id", "x")
	pub("sightline.raw.metric.search_made", `{"query":"dogs"}`, "Correlation-Id", "abc", "Nats-Msg-Id", "x")
	pub("sightline.raw.log.download-server", `[info] image 1d3x5 downloaded by userId 1234`, "Correlation-Id", "abc")
	pub("sightline.raw.metric.search_made", `{"query":`, "Correlation-Id", "abc")

	events := read(t, js, "SIGHTLINE_EVENTS", 3)
	var minted, kept, logEv map[string]any
	for _, e := range events {
		switch {
		case e["type"] == "log.download-server":
			logEv = e
		case e["correlationid"] == "abc":
			kept = e
		default:
			minted = e
		}
	}
	if minted == nil || minted["correlationid"] == "" || minted["site"] != "lab1" || minted["specversion"] != "1.0" {
		t.Fatalf("headerless metric: %v", minted)
	}
	if kept == nil || kept["id"] != identity.ID(identity.Source{Subject: "sightline.raw.metric.search_made"}, "x", identity.Position{}) {
		t.Fatalf("Correlation-Id and Nats-Msg-Id kept: %v", kept)
	}
	if logEv == nil || !strings.Contains(fmt.Sprint(logEv["data"]), "image 1d3x5") {
		t.Fatalf("plain log line: %v", logEv)
	}
	dlq := read(t, js, "SIGHTLINE_DLQ", 1)
	_ = dlq

	// Trace search over the embedded index, through the HTTP API.
	deadline := time.Now().Add(20 * time.Second)
	var tl struct {
		Events []map[string]any `json:"events"`
	}
	for {
		body := get(t, base+"/v1/trace/abc")
		_ = json.Unmarshal(body, &tl)
		if len(tl.Events) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(tl.Events) != 3 {
		t.Fatalf("trace abc: want 3 events (metric, log, dead letter), got %d", len(tl.Events))
	}

	// HTTP ingest for services that don't speak NATS.
	resp, err := http.Post(base+"/v1/events", "application/x-ndjson", strings.NewReader(
		`{"type":"metric.checkout","data":{"cart":3}}`+"\n"+`{"type":"log.api","data":{"message":"paid"}}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var ing struct {
		IDs           []string `json:"ids"`
		CorrelationID string   `json:"correlationid"`
		Accepted      int      `json:"accepted"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ing)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || ing.Accepted != 2 || len(ing.IDs) != 2 || ing.CorrelationID == "" {
		t.Fatalf("POST /v1/events: %d %+v", resp.StatusCode, ing)
	}
	for _, e := range read(t, js, "SIGHTLINE_EVENTS", 5)[3:] {
		if e["correlationid"] != ing.CorrelationID {
			t.Fatalf("ingested event %v lacks correlation id %s", e, ing.CorrelationID)
		}
	}

	// The processor counts its outputs once their commit round returned,
	// which can be after the events are readable from the stream: poll.
	wantMetrics := []string{
		`sightline_events_in_total{kind="metric",stage="process"} 4`,
		`sightline_events_out_total{kind="metric",stage="process"} 3`,
		`sightline_events_rejected_total{kind="metric",reason="not_json",stage="process"} 1`,
	}
	var missing []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		metrics := string(get(t, base+"/metrics"))
		missing = missing[:0]
		for _, want := range wantMetrics {
			if !strings.Contains(metrics, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range missing {
		t.Errorf("/metrics lacks %s", want)
	}

	// sightline status, as a second process would run it.
	var out bytes.Buffer
	st := newRootCmd()
	st.SetArgs(append([]string{"status"}, sets...))
	st.SetOut(&out)
	if err := st.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SIGHTLINE_RAW", "processor", "index-dlq", "metric  4 "} {
		if !strings.Contains(strings.Join(strings.Fields(out.String()), " ")+" ", strings.Join(strings.Fields(want), " ")) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}

	// Drain: the archive writes what it holds before run returns.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var objects int
	_ = filepath.Walk(filepath.Join(dir, "archive"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".ndjson.gz") {
			objects++
		}
		return nil
	})
	if objects == 0 {
		t.Fatal("nothing archived after the drain")
	}
}

func read(t *testing.T, js jetstream.JetStream, stream string, n int) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for len(out) < n {
		m, err := c.Next(jetstream.FetchMaxWait(15 * time.Second))
		if err != nil {
			t.Fatalf("%s: got %d of %d: %v", stream, len(out), n, err)
		}
		var v map[string]any
		_ = json.Unmarshal(m.Data(), &v)
		out = append(out, v)
	}
	info, _ := c.Info(ctx)
	if info != nil && info.NumPending > 0 {
		t.Fatalf("%s: %d more messages than the %d expected", stream, info.NumPending, n)
	}
	return out
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func waitHTTP(t *testing.T, url string, code int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == code {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within %s", url, code, within)
}
