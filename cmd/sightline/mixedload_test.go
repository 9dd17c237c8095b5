package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/bus/loss"
	"github.com/sightline/sightline/internal/bus/status"
)

// sumMetric adds up every series of a metric whose labels contain all of
// want, from a Prometheus text page.
func sumMetric(t *testing.T, base, name string, want ...string) uint64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, w := range want {
			if !strings.Contains(line, w) {
				continue lines
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		total += v
	}
	return uint64(total)
}

// mixedPoison is how many sorts of poison mixedMessage sends, and
// mixedDropped how many of them the server does not store.
const mixedPoison, mixedDropped = 16, 11

// mixedMessage is message i of the mixed load: 9 in 10 good metrics, 1 in
// 10 poison of several sorts: bodies the processor dead-letters, and core
// publishes the server does not store (every JetStream control header, a
// header block over 64 KiB).
func mixedMessage(i int) *nats.Msg {
	m := nats.NewMsg(fmt.Sprintf("sightline.raw.metric.load%d", i%7))
	m.Data = []byte(fmt.Sprintf(`{"i":%d,"v":%d.5}`, i, i%1000))
	if i%10 != 9 {
		return m
	}
	switch (i / 10) % mixedPoison {
	case 0:
		m.Data = []byte(`{"i":`) // not JSON → dead letter
	case 1:
		m.Data = []byte{0xff, 0xfe, '{', '}'} // invalid UTF-8 → dead letter
	case 2:
		m.Data = nil // empty → dead letter
	case 3:
		m.Header.Set("Nats-Expected-Last-Sequence", "1") // refused by the stream, unanswered
	case 4:
		m.Header.Set("Nats-TTL", "1s") // the stream does not allow per-message TTLs
	case 5:
		m.Header.Set("Nats-Rollup", "sub")
	case 6:
		m.Header.Set("X-Big", strings.Repeat("h", 66000)) // header block over 64 KiB
	case 7:
		m.Header.Set("Nats-Expected-Stream", "ANOTHER")
	case 8:
		m.Header.Set("Nats-Expected-Last-Msg-Id", "not-the-last")
	case 9:
		m.Header.Set("Nats-Expected-Last-Subject-Sequence", "99999999")
	case 10:
		m.Header.Set("Nats-Batch-Id", fmt.Sprint("b", i)) // an atomic batch: the stream allows none
		m.Header.Set("Nats-Batch-Sequence", "1")
		m.Header.Set("Nats-Batch-Commit", "1")
	case 11:
		m.Header.Set("Nats-Schedule", "@every 1s")
	case 12:
		m.Header.Set("Nats-Incr", "1")
	case 13:
		m.Data = []byte(`{"time":"9999-12-31T23:59:59Z"}`) // future_time → dead letter
	case 14:
		m.Data = []byte(`{"n":1` + strings.Repeat("0", 1000) + `}`) // number_too_long → dead letter
	case 15:
		m.Data = []byte(`{"s":"\ud800"}`) // a lone surrogate: an event
	}
	return m
}

// poisonEvents is how many of n mixed messages are poison that becomes an
// event, and poisonDropped how many the server drops.
func poisonCounts(n int) (events, dropped int) {
	for i := 9; i < n; i += 10 {
		switch (i / 10) % mixedPoison {
		case 15:
			events++
		case 3, 4, 5, 6, 7, 8, 9, 10, 11, 12:
			dropped++
		}
	}
	return events, dropped
}

// TestMixedLoadBalances publishes a burst of core messages, 10 % of them
// poison, as fast as one client can (like `nats pub --count`), to a real
// `sightline run`, and checks that every one is accounted for, exactly:
// published = events + dead letters + dropped (sightline_input_dropped_total),
// and /metrics and `sightline status --json` say the same.
// MIXED_LOAD_COUNT sets the count (default 20000; `task mixed-load`
// runs 300000).
func TestMixedLoadBalances(t *testing.T) {
	n := 20000
	if v := os.Getenv("MIXED_LOAD_COUNT"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	_, bin, natsAddr, base := embeddedProc(t)
	nc, err := nats.Connect("nats://"+natsAddr, nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	for i := range n {
		if err := nc.PublishMsg(mixedMessage(i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("published %d core messages in %s (%.0f msg/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())

	// Events and dead letters are counted in their streams (each stored
	// once, whatever was redelivered), what was dropped in /metrics.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	streamMsgs := func(name, filter string) uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
	}
	var out, rejected, dropped uint64
	deadline := time.Now().Add(time.Duration(n/100+120) * time.Second)
	for {
		out = streamMsgs(bus.StreamEvents, "sightline.events.metric.>")
		rejected = streamMsgs(bus.StreamDLQ, "sightline.dlq.metric.>")
		dropped = sumMetric(t, base, "sightline_input_dropped_total")
		if out+rejected+dropped == uint64(n) || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("events %d, dead letters %d, dropped %d (in %s)", out, rejected, dropped, time.Since(start).Round(time.Second))
	if out+rejected+dropped != uint64(n) {
		t.Fatalf("published %d ≠ events %d + dead letters %d + dropped %d", n, out, rejected, dropped)
	}
	poisonEvents, poisonDropped := poisonCounts(n)
	good := uint64(n - n/10 + poisonEvents)
	if out != good {
		t.Errorf("events %d, want %d", out, good)
	}
	if dropped != uint64(poisonDropped) {
		t.Errorf("dropped %d, want %d: every JetStream control header and the big header block, nothing else", dropped, poisonDropped)
	}
	// /metrics counts an input as out only when it became an event: the
	// processor's out and rejected are the streams' counts, exactly (no
	// restart here, so nothing is redelivered), and nothing is retried.
	// A batch's inputs are counted once it is acknowledged, after its
	// events are stored: the last batches are counted a moment after.
	var pin, pout, prej, pdup, pret uint64
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		pout = sumMetric(t, base, "sightline_events_out_total", `stage="process"`, `kind="metric"`)
		prej = sumMetric(t, base, "sightline_events_rejected_total", `stage="process"`, `kind="metric"`)
		pin = sumMetric(t, base, "sightline_events_in_total", `stage="process"`, `kind="metric"`)
		pdup = sumMetric(t, base, "sightline_events_duplicate_total", `stage="process"`)
		pret = sumMetric(t, base, "sightline_events_retried_total", `stage="process"`)
		if pout+prej >= out+rejected || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("/metrics process/metric: in %d, out %d, rejected %d, duplicate %d, retried %d", pin, pout, prej, pdup, pret)
	if pout != out || prej != rejected || pin != pout+prej+pdup+pret {
		t.Errorf("/metrics process/metric: in %d, out %d, rejected %d, duplicate %d, retried %d; streams: events %d, dead letters %d",
			pin, pout, prej, pdup, pret, out, rejected)
	}
	// `sightline status` shows the same: in = out + rejected + duplicates
	// per kind, and what the server dropped on its door line.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js2, err := exec.CommandContext(ctx, bin, "status", "--json", "--set", "nats.urls=nats://"+natsAddr).Output()
	if err != nil {
		t.Fatalf("status --json: %v", err)
	}
	var st status.Status
	if err := json.Unmarshal(js2, &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, js2)
	}
	for _, k := range st.Kinds {
		if k.Kind == "metric" && (k.In != out+rejected || k.Out != out || k.Rejected != rejected || k.Duplicates != 0) {
			t.Errorf("status, kind metric: in %d out %d rejected %d duplicates %d; want in %d = out %d + rejected %d", k.In, k.Out, k.Rejected, k.Duplicates, out+rejected, out, rejected)
		}
	}
	var door uint64
	for _, in := range st.Instances {
		for _, c := range in.Components {
			if c.Component == loss.DoorComponent {
				door += c.Lost
			}
		}
	}
	if door != dropped {
		t.Errorf("status: the door line counts %d not stored, /metrics %d", door, dropped)
	}
}

// TestBigHeadersAreDeadLettered: a raw message whose header block nearly
// fills JetStream's 64 KiB limit, with a body that is not JSON, used to be
// redelivered for ever (its dead letter, the same headers plus the reason,
// did not fit) and, a few thousand of them, to halt the processor. Its dead
// letter now leaves the big headers out and names them; a good message
// sent after it is an event.
func TestBigHeadersAreDeadLettered(t *testing.T) {
	_, _, natsAddr, _ := embeddedProc(t)
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m := nats.NewMsg("sightline.raw.metric.bighdr")
	m.Header.Set("X-Big", strings.Repeat("h", 65200-40))
	m.Data = []byte(`{"not json`)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	good := nats.NewMsg("sightline.raw.metric.bighdr")
	good.Data = []byte(`{"ok":1}`)
	if err := nc.PublishMsg(good); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	get := func(stream, subject string) *jetstream.RawStreamMsg {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if msg, err := s.GetLastMsgForSubject(ctx, subject); err == nil {
				return msg
			}
			select {
			case <-ctx.Done():
				t.Fatalf("nothing on %s", subject)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	dl := get(bus.StreamDLQ, "sightline.dlq.metric.bighdr")
	if cut := dl.Header.Get(consume.HeaderDLQHeadersCut); !strings.Contains(cut, "X-Big") || dl.Header.Get("X-Big") != "" {
		t.Errorf("dead letter: headers cut %q, X-Big kept %d bytes", cut, len(dl.Header.Get("X-Big")))
	}
	if dl.Header.Get("Sightline-Dlq-Class") == "" || string(dl.Data) != `{"not json` {
		t.Errorf("dead letter: class %q body %q", dl.Header.Get("Sightline-Dlq-Class"), dl.Data)
	}
	get(bus.StreamEvents, "sightline.events.metric.bighdr")
}
