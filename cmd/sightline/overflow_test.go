package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
)

// TestRawOverflowIsCounted floods a real `sightline run`, whose raw stream
// holds only 2 MiB, with core publishes (as `nats pub` sends them) faster
// than its processor conforms them. The raw stream drops its oldest
// messages, some never processed: they are gone, but every one of them is
// counted. When the flood is drained, every published message is an event,
// a dead letter, or in sightline_consumer_lost_total, and the error line
// names the lost sequences.
func TestRawOverflowIsCounted(t *testing.T) {
	p, bin, natsAddr, base := embeddedProc(t, "--set", "streams.raw.max_bytes=2097152", "--set", "nats.sync=2m",
		"--set", "index.enabled=false", "--set", "archive.enabled=false", "--set", "hosts.enabled=false",
		"--log-level", "info")

	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const n = 60000
	body := `{"pad":"` + strings.Repeat("x", 400) + `","i":%d}`
	for i := range n {
		if err := nc.Publish("sightline.raw.metric.flood", fmt.Appendf(nil, body, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	state := func(stream string) jetstream.StreamState {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		si, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return si.State
	}
	count := func(stream string) uint64 { return state(stream).Msgs }
	lostRe := regexp.MustCompile(`(?m)^sightline_consumer_lost_total\{consumer="processor",stream="SIGHTLINE_RAW"\} (\d+)$`)
	lost := func() uint64 {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := lostRe.FindSubmatch(b)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseUint(string(m[1]), 10, 64)
		return v
	}
	var events, dead, gone uint64
	deadline := time.Now().Add(2 * time.Minute)
	for {
		events, dead, gone = count(bus.StreamEvents), count(bus.StreamDLQ), lost()
		if events+dead+gone == n {
			break
		}
		if time.Now().After(deadline) {
			var loss []string // the error lines name the sequences reported lost
			for _, l := range strings.Split(p.stderr.String(), "\n") {
				if strings.Contains(l, "removed from the stream before") {
					loss = append(loss, l)
				}
			}
			t.Fatalf("after the flood: %d events + %d dead letters + %d reported lost != %d published (raw last sequence %d)\n%s",
				events, dead, gone, n, state(bus.StreamRaw).LastSeq, strings.Join(loss, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // nothing counted twice
	if e, d, g := count(bus.StreamEvents), count(bus.StreamDLQ), lost(); e+d+g != n {
		t.Errorf("later: %d events + %d dead letters + %d lost != %d", e, d, g, n)
	}
	if gone == 0 {
		t.Fatalf("nothing overflowed (%d events): the flood did not outrun the processor", events)
	}
	t.Logf("%d published: %d events, %d dead letters, %d removed by the raw stream's 2 MiB limit before processing", n, events, dead, gone)

	// `sightline status` shows it on the processor's consumer.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "status", "--set", "nats.urls=nats://"+natsAddr).CombinedOutput()
	line := ""
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "consumer processor") {
			line = l
		}
	}
	t.Log(line)
	if err != nil || !strings.Contains(line, fmt.Sprintf("%d messages removed by the stream's limits before it received them (lost)", gone)) {
		t.Errorf("status: %v\n%s", err, out)
	}
	if !strings.Contains(p.stderr.String(), `"msg":"messages removed from the stream before this consumer received them: they are lost","stream":"SIGHTLINE_RAW","consumer":"processor"`) {
		t.Errorf("no error line for the loss:\n%s", p.stderr)
	}
}
