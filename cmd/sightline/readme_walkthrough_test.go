package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the walkthrough's output blocks in README.md from this run")

// readmePath is the README whose walkthrough TestReadmeWalkthrough runs.
const readmePath = "../../README.md"

// TestReadmeWalkthrough runs the README's "Five minutes with it" on a real
// `sightline run`: it publishes the README's own `nats pub` lines with a
// NATS client, watches `sightline.events.>` and `sightline.dlq.>` as
// `nats sub` would, runs `sightline trace abc` and `sightline status`, and
// compares what comes out with the README's blocks, ids, times, sizes and
// durations aside. So the README shows what the binary prints. Run with
// -update-readme to rewrite the blocks from a fresh run.
func TestReadmeWalkthrough(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(readme)
	pubs := readmePubs(t, doc)
	if len(pubs) != 4 {
		t.Fatalf("README walkthrough: %d `nats pub` lines, want 4", len(pubs))
	}
	// The README's run (site=lab1); the archive's batch held for an hour
	// instead of 2 minutes, so its ACK PENDING in `status` is the README's
	// on a slow machine too.
	c, _ := startRun(t, buildSightline(t), "--set", "processor.attributes.site=lab1", "--set", "archive.batch_max_age=1h")
	nc, err := nats.Connect("nats://" + setOf(c, "nats.listen"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	got := make(chan *nats.Msg, 1024) // room for redeliveries: a full channel drops messages (a slow consumer)
	for _, subj := range []string{"sightline.events.>", "sightline.dlq.>"} {
		if _, err := nc.ChanSubscribe(subj, got); err != nil {
			t.Fatal(err)
		}
	}
	must(t, nc.Flush())
	for _, p := range pubs {
		m := nats.NewMsg(p.subject)
		m.Data = []byte(p.body)
		for k, v := range p.headers {
			m.Header.Set(k, v)
		}
		must(t, nc.PublishMsg(m))
		must(t, nc.Flush())
	}

	// What `nats sub` shows: the abc metric event and the dead letter.
	var event, dead *nats.Msg
	timeout := time.After(120 * time.Second)
	for event == nil || dead == nil {
		select {
		case m := <-got:
			switch {
			case strings.HasPrefix(m.Subject, "sightline.events.metric.") && m.Header.Get("Correlation-Id") == "abc":
				event = m
			case strings.HasPrefix(m.Subject, "sightline.dlq."):
				dead = m
			}
		case <-timeout:
			t.Fatalf("nats sub saw event %v, dead letter %v within 120s", event != nil, dead != nil)
		}
	}
	doc = checkBlock(t, doc, "Nats-Msg-Id:", natsSub(event, blockOf(doc, "Nats-Msg-Id:")), 0, nil)
	doc = checkBlock(t, doc, "Sightline-Dlq-Reason:", natsSub(dead, blockOf(doc, "Sightline-Dlq-Reason:")), 0, nil)

	// `sightline trace abc` once the index has all three events, and
	// `sightline status` once every consumer but the archive's batch has
	// caught up.
	doc = checkBlock(t, doc, "$ sightline trace abc", "", 120*time.Second, func() string {
		r := c.run("trace", "abc")
		return "$ sightline trace abc\n" + r.stdout + r.stderr
	})
	doc = checkBlock(t, doc, "$ sightline status", "", 120*time.Second, func() string {
		r := c.run("status")
		return "$ sightline status\n" + r.stdout + r.stderr
	})

	// A message published without the raw. prefix is on no stream: nothing
	// stores it ("Things a first hour runs into").
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if name, err := js.StreamNameBySubject(ctx, "sightline.metric.x"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("sightline.metric.x is stored by stream %q (%v); the README says no stream stores it", name, err)
	}

	if *updateReadme {
		must(t, os.WriteFile(readmePath, []byte(doc), 0o644))
	}
}

type pub struct {
	subject, body string
	headers       map[string]string
}

// readmePubs reads the `nats pub [-H K:V] SUBJECT 'BODY'` lines of the
// README's first sh block.
func readmePubs(t *testing.T, doc string) []pub {
	t.Helper()
	re := regexp.MustCompile(`(?m)^nats pub ((?:-H \S+ )*)(\S+) '([^']*)'$`)
	var out []pub
	for _, m := range re.FindAllStringSubmatch(doc, -1) {
		p := pub{subject: m[2], body: m[3], headers: map[string]string{}}
		for _, h := range strings.Fields(strings.ReplaceAll(m[1], "-H ", "")) {
			k, v, ok := strings.Cut(h, ":")
			if !ok {
				t.Fatalf("README: header %q", h)
			}
			p.headers[k] = v
		}
		out = append(out, p)
	}
	return out
}

// setOf returns the value of a --set key=value among the cli's arguments.
func setOf(c cli, key string) string {
	for _, s := range c.sets {
		if v, ok := strings.CutPrefix(s, key+"="); ok {
			return v
		}
	}
	return ""
}

// natsSub renders a message as the README shows `nats sub` output: its
// headers, one per line in the order the README block already has them
// (others after, sorted), then the body.
func natsSub(m *nats.Msg, readmeBlock string) string {
	var names []string
	for k := range m.Header {
		names = append(names, k)
	}
	pos := func(k string) int {
		if i := strings.Index(readmeBlock, "\n"+k+":"); i >= 0 || strings.HasPrefix(readmeBlock, k+":") {
			return i
		}
		return len(readmeBlock)
	}
	sort.Slice(names, func(i, j int) bool {
		if pi, pj := pos(names[i]), pos(names[j]); pi != pj {
			return pi < pj
		}
		return names[i] < names[j]
	})
	var b strings.Builder
	for _, k := range names {
		for _, v := range m.Header.Values(k) {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.Write(m.Data)
	b.WriteByte('\n')
	return b.String()
}

// blockOf returns the fenced block of doc whose first line starts with
// first ("" when there is none).
func blockOf(doc, first string) string {
	i := strings.Index(doc, "```\n"+first)
	if i < 0 {
		return ""
	}
	body := doc[i+4:]
	return body[:strings.Index(body, "```\n")]
}

// checkBlock compares the README block starting with first with got
// (normalized), or, when poll is set, with what poll returns until it
// matches or wait passes. It returns doc with the block replaced by the
// output seen last.
func checkBlock(t *testing.T, doc, first, got string, wait time.Duration, poll func() string) string {
	t.Helper()
	want := blockOf(doc, first)
	if want == "" {
		t.Errorf("README has no block starting with %q", first)
		return doc
	}
	deadline := time.Now().Add(wait)
	for {
		if poll != nil {
			got = poll()
		}
		if normalize(got) == normalize(want) {
			break
		}
		if poll == nil || time.Now().After(deadline) {
			if !*updateReadme {
				t.Errorf("README block %q differs from what the binary printed (ids, times, sizes and durations aside; -update-readme rewrites it)\n--- binary\n%s--- README\n%s--- binary, normalized\n%s--- README, normalized\n%s",
					first, got, want, normalize(got), normalize(want))
			}
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Written without the padding a table leaves at the end of its lines.
	got = regexp.MustCompile(`(?m)[ \t]+$`).ReplaceAllString(got, "")
	return strings.Replace(doc, "```\n"+want+"```\n", "```\n"+got+"```\n", 1)
}

var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<id>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?`), "<time>"},
	// Go durations as a loaded machine can stretch them ("1m2.5s"), and an
	// age a clock step made negative.
	{regexp.MustCompile(`\((-?\d+(\.\d+)?[hms])+ ago\)|\(just now\)`), "(<ago>)"},
	{regexp.MustCompile(`[+-]?(\d+h)?(\d+m)?\d+(\.\d+)?(ns|µs|ms|s)\b`), "<duration>"},
	{regexp.MustCompile(`\b\d+(\.\d+)? (B|KiB|MiB)\b`), "<size>"},
	{regexp.MustCompile(`"lagms":\d+`), `"lagms":<n>`},
	{regexp.MustCompile(`sightline@\S+ pid \d+`), "<instance>"},
	// A redelivery on a loaded machine moves sequences and counts (the
	// output's shape and names are what the README must keep).
	{regexp.MustCompile(`(SIGHTLINE_[A-Z]+):\d+`), "$1:<seq>"},
	{regexp.MustCompile(`[ \t]+`), " "},
	{regexp.MustCompile(`(?m) $`), ""},
}

// countRows are the rows of `status` tables whose counts a redelivery on
// a loaded machine can change.
var countRows, number = regexp.MustCompile(`(?m)^(SIGHTLINE_[A-Z]+ |processor |archive |hosts |index |index-dlq |log |metric ).*$`), regexp.MustCompile(`\b\d+\b`)

// normalize removes what differs between two runs: ids, times, durations,
// sizes, the instance name, and the column padding they change.
func normalize(s string) string {
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	s = countRows.ReplaceAllStringFunc(s, func(row string) string { return number.ReplaceAllString(row, "<n>") })
	return strings.TrimSpace(s)
}

// TestReadmeNormalize: what a loaded machine changes in the walkthrough's
// outputs (a span over a minute, an age after a clock step) normalizes
// like the README's figures.
func TestReadmeNormalize(t *testing.T) {
	for _, c := range [][2]string{
		{"correlation id abc: 3 events, span 61.4ms, from x", "correlation id abc: 3 events, span 1m2.5s, from x"},
		{"+0.5ms   download-server", "+1m0.25s   download-server"},
		{"SIGHTLINE_RAW     4         534 B    1      4     2026-12-07 19:25:56 (1s ago)", "SIGHTLINE_RAW     5         1.2 KiB    1      5     2026-12-07 19:27:01 (1m5s ago)"},
		{"consumer index ok 2026-12-07 19:25:56 (1s ago)", "consumer index ok 2026-12-07 19:25:56 (-1s ago)"},
	} {
		if a, b := normalize(c[0]), normalize(c[1]); a != b {
			t.Errorf("normalize:\n%q -> %q\n%q -> %q", c[0], a, c[1], b)
		}
	}
}
