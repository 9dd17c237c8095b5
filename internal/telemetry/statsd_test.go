package telemetry_test

import (
	"context"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/bus/loss"
	"github.com/sightline/sightline/internal/telemetry"
)

// plainLine is the plain statsd grammar (etsy statsd, Telegraf's statsd
// input without datadog_extensions): one name, one value, a type and an
// optional sample rate. No DogStatsD tags (|#...), no packed values
// (name:1:2:3|ms).
var plainLine = regexp.MustCompile(`^([A-Za-z0-9_.\-]+):(-?[0-9]+(?:\.[0-9]+)?)\|(c|g|ms)(?:\|@(0(?:\.[0-9]+)?|1(?:\.0+)?))?$`)

type statsdLine struct {
	name, typ string
	value     float64
	rate      float64
}

// listenStatsd reads datagrams on a loopback UDP port and parses every line
// with the plain grammar; a line that does not parse fails the test.
func listenStatsd(t *testing.T) (addr string, next func(wait time.Duration) []statsdLine) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	buf := make([]byte, 65536)
	return pc.LocalAddr().String(), func(wait time.Duration) []statsdLine {
		t.Helper()
		_ = pc.SetReadDeadline(time.Now().Add(wait))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return nil
		}
		var out []statsdLine
		for l := range strings.SplitSeq(strings.TrimSuffix(string(buf[:n]), "\n"), "\n") {
			m := plainLine.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("line %q is not plain statsd (name:value|type[|@rate])", l)
				continue
			}
			v, _ := strconv.ParseFloat(m[2], 64)
			r := 1.0
			if m[4] != "" {
				r, _ = strconv.ParseFloat(m[4], 64)
			}
			out = append(out, statsdLine{name: m[1], typ: m[3], value: v, rate: r})
		}
		return out
	}
}

// Every observation the bus and its consumers report arrives at a plain
// statsd server and parses: counters and gauges summed into one line per
// series and interval, timings in milliseconds one value per line.
func TestStatsdFeedIsPlainStatsd(t *testing.T) {
	addr, next := listenStatsd(t)
	s, err := telemetry.NewStatsd(addr, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// One call of every method of every observer interface the bus has.
	var (
		_ bus.Observer          = s
		_ consume.StallObserver = s
		_ loss.Observer         = s
	)
	calls := 0
	for _, it := range []reflect.Type{reflect.TypeFor[bus.Observer](), reflect.TypeFor[consume.StallObserver](), reflect.TypeFor[loss.Observer]()} {
		calls += it.NumMethod()
	}
	if calls != 10 {
		t.Fatalf("the observer interfaces have %d methods, this test calls 10: call the new ones below", calls)
	}
	for range 1000 {
		s.Received("process", "metric", false)
	}
	s.Received("process", "metric", true)
	s.Emitted("process", "metric", 3)
	s.Rejected("process", "metric", "schema")
	s.Duplicate("process", "metric")
	s.Retried("sink-index", "log")
	s.Observed("process", "metric", 1500*time.Microsecond)
	s.Pending("SIGHTLINE_RAW", "processor", 5)
	s.Stalled("SIGHTLINE_RAW", "processor", true)
	s.Lost("SIGHTLINE_EVENTS", "sink-graph", 7)
	s.AtRisk("SIGHTLINE_EVENTS", "sink-graph", true)
	s.Flush()

	want := map[string]statsdLine{
		"sightline.events_in.process.metric":                     {typ: "c", value: 1001},
		"sightline.redeliveries.process.metric":                  {typ: "c", value: 1},
		"sightline.events_out.process.metric":                    {typ: "c", value: 3},
		"sightline.events_rejected.process.metric.schema":        {typ: "c", value: 1},
		"sightline.events_duplicate.process.metric":              {typ: "c", value: 1},
		"sightline.events_retried.sink-index.log":                {typ: "c", value: 1},
		"sightline.processing.process.metric":                    {typ: "ms", value: 1.5},
		"sightline.consumer_pending.SIGHTLINE_RAW.processor":     {typ: "g", value: 5},
		"sightline.consumer_stalled.SIGHTLINE_RAW.processor":     {typ: "g", value: 1},
		"sightline.events_lost.SIGHTLINE_EVENTS.sink-graph":      {typ: "c", value: 7},
		"sightline.consumer_at_risk.SIGHTLINE_EVENTS.sink-graph": {typ: "g", value: 1},
	}
	got := map[string]statsdLine{}
	for len(got) < len(want) {
		lines := next(10 * time.Second)
		if lines == nil {
			break
		}
		for _, l := range lines {
			if _, dup := got[l.name]; dup && l.typ != "ms" {
				t.Errorf("a second %s line for %s in one interval", l.typ, l.name)
			}
			got[l.name] = l
		}
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s never arrived (got %v)", name, got)
			continue
		}
		if g.typ != w.typ || g.value != w.value || g.rate != 1 {
			t.Errorf("%s: got %+v, want %s %v at rate 1", name, g, w.typ, w.value)
		}
	}
	if _, err := telemetry.NewStatsd("nohostport", "", 0); err == nil {
		t.Fatal("bad address accepted")
	}
}

// Names and tag values from configuration or data cannot break the
// grammar: a ':', '|', '@', '#', '.' or a newline in a stage, stream or
// reason is replaced, so every line still parses and stays one line.
func TestStatsdNamesStayPlain(t *testing.T) {
	addr, next := listenStatsd(t)
	s, err := telemetry.NewStatsd(addr, "my app:", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Flush()
	s.Rejected("proc|ess", "met:ric", "bad\nclass@#1.5")
	s.Flush()
	lines := next(10 * time.Second)
	if len(lines) != 1 || lines[0].name != "my_app_.events_rejected.proc_ess.met_ric.bad_class__1_5" {
		t.Errorf("got %+v", lines)
	}
}

// Timings stay a bounded feed: a series observed a hundred thousand times
// in an interval sends a few hundred sampled values, each with the rate it
// was sampled at, so a server's count of them still estimates the events.
func TestStatsdTimingsAreSampled(t *testing.T) {
	addr, next := listenStatsd(t)
	s, err := telemetry.NewStatsd(addr, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100_000
	for range n {
		s.Observed("process", "metric", time.Millisecond)
	}
	s.Flush()
	sent, estimate := 0, 0.0
	for {
		lines := next(2 * time.Second)
		if lines == nil {
			break
		}
		for _, l := range lines {
			if l.name == "sightline.processing.process.metric" {
				sent++
				estimate += 1 / l.rate
			}
		}
	}
	if sent < 64 || sent > 2000 {
		t.Errorf("%d observations sent %d timing lines: want a bounded sample (64 to 2000)", n, sent)
	}
	if estimate < n/3 || estimate > n*3 {
		t.Errorf("the sample rates estimate %.0f observations, there were %d", estimate, n)
	}
	t.Logf("%d observations: %d timing lines, estimated count %.0f", n, sent, estimate)
}
