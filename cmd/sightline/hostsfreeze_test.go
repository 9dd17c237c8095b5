package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/schemas"
)

// natsOf is the nats.listen address of a cli's `sightline run`.
func natsOf(c cli) string {
	for _, s := range c.sets {
		if a, ok := strings.CutPrefix(s, "nats.listen="); ok {
			return a
		}
	}
	return ""
}

// forgedPart publishes, like `nats pub`, one host sync part of hostname at
// tag carrying file path with content, as any producer allowed on the
// host's subject could.
func forgedPart(t *testing.T, nc *nats.Conn, hostname string, tag int64, path, content string) {
	t.Helper()
	at := time.Now().UTC()
	o := host.Object{HostObject: schemas.HostObject{Host: hostname, Name: path, Type: host.TypeFile, Collected: at, Updated: &at}}
	o.SetContent([]byte(content), 0)
	parts, err := host.Split(host.Scope(hostname), tag, host.HostNode(hostname, nil, nil), []host.Object{o}, 0)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := host.Messages(host.SubjectFor(host.Subject, hostname), parts)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		nm := nats.NewMsg(m.Subject)
		nm.Data = m.Data
		for k, v := range m.Header {
			nm.Header[k] = v
		}
		if err := nc.PublishMsg(nm); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// dlqReasons returns the Sightline-Dlq-Reason of every dead letter so far.
func dlqReasons(t *testing.T, nc *nats.Conn) []string {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, bus.StreamDLQ, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		m, err := c.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return out
		}
		out = append(out, m.Headers().Get(stage.HeaderDLQReason))
	}
}

// TestHostStoreCannotBeFrozen: a host snapshot with tag 2^53-1 published
// on a host's subject must not make every later real sync of that host be
// skipped. It is dead-lettered with a reason naming the tag; the real
// collector's content is what search shows.
func TestHostStoreCannotBeFrozen(t *testing.T) {
	c, dir := startRun(t, buildSightline(t))
	nc, err := nats.Connect("nats://" + natsOf(c))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	file := filepath.Join(dir, "motd")
	must(t, os.WriteFile(file, []byte("real content\n"), 0o644))

	forgedPart(t, nc, "web-09", 1<<53-1, file, "attacker content\n")
	// The forged part is handled (stored or refused) before the real sync.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if r := c.run("search", "--search", file, "--contents"); r.code == 0 && r.stdout == "attacker content\n" {
			break
		}
		if rs := dlqReasons(t, nc); len(rs) > 0 {
			if !strings.Contains(rs[0], "ahead of the server's clock") || !strings.Contains(rs[0], fmt.Sprint(int64(1<<53-1))) {
				t.Errorf("dead letter reason %q does not say the tag is ahead of the clock", rs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the forged part was neither stored nor dead-lettered")
		}
		time.Sleep(300 * time.Millisecond)
	}

	cfg := filepath.Join(dir, "collector.yaml")
	must(t, os.WriteFile(cfg, fmt.Appendf(nil, "host: web-09\nfiles: [%q]\ncommands: []\nfacts: false\nstate_file: %q\n", file, filepath.Join(dir, "state.json")), 0o644))
	if r := c.run("collect", "host", "-f", cfg); r.code != 0 {
		t.Fatalf("collect host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitContent(t, c, file, "real content\n")

	// A host frozen before tags were judged (its record carries the tag;
	// the sink's skipping of such a host is tested in sinks/hosts):
	// `sightline hosts reset` releases it.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "sightline_hosts")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "h.web-09")
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	must(t, json.Unmarshal(e.Value(), &rec))
	rec["tag"], rec["complete_tag"] = int64(1<<53-1), int64(1<<53-1)
	b, _ := json.Marshal(rec)
	if _, err := kv.Put(ctx, "h.web-09", b); err != nil {
		t.Fatal(err)
	}
	r := c.run("hosts", "reset", "web-09", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "would reset (dry run) web-09: tag 9007199254740991 → ") {
		t.Fatalf("hosts reset --dry-run: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r = c.run("hosts", "reset", "web-09"); r.code != 0 || !strings.HasPrefix(r.stdout, "reset web-09: tag 9007199254740991 → ") {
		t.Fatalf("hosts reset: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r = c.run("hosts", "reset", "web-09"); r.code != 0 || !strings.Contains(r.stdout, "web-09 is not frozen") {
		t.Fatalf("hosts reset of a released host: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r = c.run("hosts", "reset", "nobody"); r.code != 1 || !strings.Contains(r.stderr, `no such host in the store: "nobody"`) {
		t.Fatalf("hosts reset of an unknown host: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	must(t, os.WriteFile(file, []byte("third real content\n"), 0o644))
	if r := c.run("collect", "host", "-f", cfg); r.code != 0 {
		t.Fatalf("collect host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitContent(t, c, file, "third real content\n")
}

// waitContent waits until search shows want as the content of file.
func waitContent(t *testing.T, c cli, file, want string) {
	t.Helper()
	var last ran
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if last = c.run("search", "--search", file, "--contents"); last.stdout == want {
			return
		}
	}
	t.Fatalf("after a real sync, search shows %q, want %q (exit %d, stderr %q): the host is frozen", last.stdout, want, last.code, last.stderr)
}
