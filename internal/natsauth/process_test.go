package natsauth_test

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/natsauth"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/producers/host"
)

// natsServerBin is a nats-server binary: $SIGHTLINE_NATS_SERVER_BIN, or the
// one `task services:up NATS=1` builds into .local.
func natsServerBin() string {
	if b := os.Getenv("SIGHTLINE_NATS_SERVER_BIN"); b != "" {
		return b
	}
	m, _ := filepath.Glob("../../.local/cache/gobin/nats-server@*/nats-server")
	if len(m) > 0 {
		return m[len(m)-1]
	}
	return ""
}

// shippedNATS is a nats-server process running the Compose server's own
// files (nats.conf, auth.conf, roles.conf) with a collector line for
// web-01.lva1 added, and the worker connected to it.
type shippedNATS struct {
	url, ca, collectorKey string
	collector             *natsauth.Identity
	out                   *testutil.SyncBuffer // the server's log
	worker                *bus.Bus
}

func startShippedNATS(t *testing.T) *shippedNATS {
	t.Helper()
	bin := natsServerBin()
	if bin == "" {
		t.Skip("no nats-server binary (task services:up NATS=1 builds one, or set SIGHTLINE_NATS_SERVER_BIN)")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf, err := os.ReadFile(filepath.Join(deployDir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// Only what a test cannot share with Compose: address, store, no
	// monitoring port, the certificate (secrets-init's folder in the container).
	ca := natsCert(t, dir)
	conf = regexp.MustCompile(`(?m)^listen: .*$`).ReplaceAll(conf, []byte("listen: 127.0.0.1:"+strconv.Itoa(port)))
	conf = regexp.MustCompile(`(?m)^https?: .*$`).ReplaceAll(conf, nil)
	conf = bytes.ReplaceAll(conf, []byte("/etc/nats-tls/"), []byte(dir+"/"))
	conf = bytes.Replace(conf, []byte("store_dir: /data/jetstream"), []byte("store_dir: "+strconv.Quote(filepath.Join(dir, "js"))), 1)
	if err := os.WriteFile(filepath.Join(dir, "nats.conf"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	roles, _ := os.ReadFile(filepath.Join(deployDir, "roles.conf"))
	auth, _ := os.ReadFile(filepath.Join(deployDir, "auth.conf"))
	id, err := natsauth.Mint(natsauth.Collector, "web-01.lva1")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "web-01.nk")
	if err := id.WriteKey(key); err != nil {
		t.Fatal(err)
	}
	const marker = "    # collectors (one line per host, from `sightline creds collector --host NAME`):\n"
	auth = bytes.Replace(auth, []byte(marker), []byte(marker+"    "+id.UserEntry()+"\n"), 1)
	for name, b := range map[string][]byte{"roles.conf": roles, "auth.conf": auth} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-c", filepath.Join(dir, "nats.conf"))
	cmd.Env = append(os.Environ(), "NATS_USER=sightline", "NATS_PASSWORD=wpw", "NATS_READER_USER=reader",
		"NATS_READER_PASSWORD=rpw", "NATS_OPERATOR_USER=operator", "NATS_OPERATOR_PASSWORD=opw")
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "tls://127.0.0.1:" + strconv.Itoa(port)
	var worker *bus.Bus
	for deadline := time.Now().Add(20 * time.Second); ; {
		worker, err = bus.Connect(ctxTimeout(t, 5*time.Second), bus.Options{URLs: []string{url}, User: "sightline", Password: "wpw", TLS: trustCA(t, ca)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker connect: %v; server output: %s", err, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Cleanup(worker.Close)
	return &shippedNATS{url: url, ca: ca, collectorKey: key, collector: id, out: out, worker: worker}
}

// The Compose server's own files run by a nats-server process: the worker
// sets up the streams, a collector publishes its own host and is refused
// another's, a reader cannot publish.
func TestShippedConfigOnANatsServerProcess(t *testing.T) {
	n := startShippedNATS(t)
	url, ca, key, id, out, worker := n.url, n.ca, n.collectorKey, n.collector, n.out, n.worker
	if err := worker.EnsureStreams(ctxFor(t), bus.DefaultStreams()); err != nil {
		t.Fatalf("worker creates the streams: %v", err)
	}

	var log testutil.SyncBuffer
	c, err := bus.Connect(ctxFor(t), bus.Options{URLs: []string{url}, TLS: trustCA(t, ca), NKeyFile: key, InboxPrefix: host.InboxPrefix("web-01.lva1"), Logger: slogTo(&log)})
	if err != nil {
		t.Fatalf("collector connect: %v", err)
	}
	t.Cleanup(c.Close)
	if err := collect(t, "web-01.lva1", publisher(c, 10*time.Second)); err != nil {
		t.Fatalf("collector publishes its own host: %v", err)
	}
	if err := collect(t, "web-02", publisher(c, 2*time.Second)); err == nil {
		t.Fatal("collector published another host")
	}
	wantViolation(t, &log, "sightline.raw.snapshot.host.web-02")

	var rlog testutil.SyncBuffer
	r, err := bus.Connect(ctxFor(t), bus.Options{URLs: []string{url}, TLS: trustCA(t, ca), User: "reader", Password: "rpw", Logger: slogTo(&rlog)})
	if err != nil {
		t.Fatalf("reader connect: %v", err)
	}
	t.Cleanup(r.Close)
	if _, err := r.Publish(ctxTimeout(t, time.Second), &stage.Message{Subject: "sightline.raw.metric.x", Data: []byte(`{}`)}); err == nil {
		t.Fatal("reader published")
	}
	wantViolation(t, &rlog, "sightline.raw.metric.x")
	if err := worker.JetStream().DeleteStream(ctxTimeout(t, 2*time.Second), bus.StreamRaw); err == nil {
		t.Fatal("worker deleted the raw stream")
	}
	if m := lastOn(t, worker, bus.StreamRaw, "sightline.raw.snapshot.host.web-01.lva1"); m == nil {
		t.Fatal("the collector's own snapshot is not in the raw stream")
	}
	// The server's own log is the audit trail of each refusal.
	for _, want := range []string{
		`"$G/nkey:` + id.PublicKey + `" - Publish Violation - Subject "sightline.raw.snapshot.host.web-02"`,
		`"$G/user:reader" - Publish Violation - Subject "sightline.raw.metric.x"`,
		`"$G/user:sightline" - Publish Violation - Subject "$JS.API.STREAM.DELETE.SIGHTLINE_RAW"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("server log lacks %s", want)
		}
	}
}
