package natsauth_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/bus/health"
	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/internal/bus/status"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/httpauth/authtest"
	"github.com/sightline/sightline/internal/natsauth"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/sinks/hosts"
)

var update = flag.Bool("update", false, "rewrite deploy/nats/roles.conf from the role model")

const deployDir = "../../deploy/nats"

// deploy/nats/roles.conf is the role model of this package, rendered.
func TestRolesConfIsGenerated(t *testing.T) {
	path := filepath.Join(deployDir, "roles.conf")
	want := natsauth.RolesConf()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is not the rendered role model: run go test ./internal/natsauth -update", path)
	}
}

// env is `sightline run` on its embedded server configured with the
// shipped deploy/nats/auth.conf (nats.server_config), two collectors added
// the way the docs say: the line `sightline creds collector` prints, below
// the marker.
type env struct {
	t        *testing.T
	dir      string
	worker   *bus.Bus
	keys     map[string]string // collector host → key file
	password map[string]string // role → password
}

var collectorHosts = []string{"web-01.lva1", "web-02"}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvConf(t, "")
}

// newEnvConf is newEnv with more lines for the server's configuration.
func newEnvConf(t *testing.T, extra string) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), keys: map[string]string{}, password: map[string]string{}}
	roles, err := os.ReadFile(filepath.Join(deployDir, "roles.conf"))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := os.ReadFile(filepath.Join(deployDir, "auth.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, h := range collectorHosts {
		id, err := natsauth.Mint(natsauth.Collector, h)
		if err != nil {
			t.Fatal(err)
		}
		e.keys[h] = filepath.Join(e.dir, h+".nk")
		if err := id.WriteKey(e.keys[h]); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, "    "+id.UserEntry())
	}
	const marker = "    # collectors (one line per host, from `sightline creds collector --host NAME`):\n"
	if !bytes.Contains(auth, []byte(marker)) {
		t.Fatalf("auth.conf lacks the collectors marker %q", marker)
	}
	auth = bytes.Replace(auth, []byte(marker), []byte(marker+strings.Join(lines, "\n")+"\n"), 1)
	auth = append(auth, extra...)
	if err := os.WriteFile(filepath.Join(e.dir, "roles.conf"), roles, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "auth.conf"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
	for role, user := range map[string]string{"": "sightline", "READER_": "reader", "OPERATOR_": "operator"} {
		t.Setenv("NATS_"+role+"USER", user)
		e.password[user] = "pw-" + user + "-" + t.Name()
		t.Setenv("NATS_"+role+"PASSWORD", e.password[user])
	}
	ctx := ctxFor(t)
	e.worker, err = bus.Connect(ctx, bus.Options{
		ServerConfig: filepath.Join(e.dir, "auth.conf"), Port: -1, StoreDir: filepath.Join(e.dir, "js"),
		User: "sightline", Password: e.password["sightline"],
	})
	if err != nil {
		t.Fatalf("sightline run (worker) on the embedded server with auth.conf: %v", err)
	}
	t.Cleanup(e.worker.Close)
	if err := e.worker.EnsureStreams(ctx, bus.DefaultStreams()); err != nil {
		t.Fatalf("worker creates the streams: %v", err)
	}
	bustest.RunProcessor(t, e.worker, nil)
	return e
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// client connects as a role, like the CLI does (collectors with their host's
// inbox prefix); log receives its async errors.
func (e *env) client(role natsauth.Role, hostname string, log *testutil.SyncBuffer) (*bus.Bus, error) {
	o := bus.Options{URLs: []string{e.worker.ClientURL()}, Name: string(role)}
	switch role {
	case natsauth.Collector:
		o.NKeyFile, o.InboxPrefix = e.keys[hostname], host.InboxPrefix(hostname)
	default:
		o.User = string(role)
		o.Password = e.password[string(role)]
	}
	if log != nil {
		o.Logger = slogTo(log)
	}
	b, err := bus.Connect(ctxFor(e.t), o)
	if err == nil {
		e.t.Cleanup(b.Close)
	}
	return b, err
}

func slogTo(w *testutil.SyncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func (e *env) mustClient(role natsauth.Role, hostname string, log *testutil.SyncBuffer) *bus.Bus {
	e.t.Helper()
	b, err := e.client(role, hostname, log)
	if err != nil {
		e.t.Fatalf("connect as %s %s: %v", role, hostname, err)
	}
	return b
}

// collect runs a real host collection of hostname and publishes it with pub.
func collect(t *testing.T, hostname string, pub stage.Publisher) error {
	t.Helper()
	f := filepath.Join(t.TempDir(), "motd")
	if err := os.WriteFile(f, []byte("hello from "+hostname+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := host.DefaultConfig()
	cfg.Host, cfg.Files, cfg.Facts, cfg.StateFile = hostname, []string{f}, false, filepath.Join(t.TempDir(), "state.json")
	c, err := host.NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = host.Run(ctxFor(t), c, pub, host.RunOptions{})
	return err
}

func publisher(b *bus.Bus, timeout time.Duration) stage.PublisherFunc {
	return func(ctx context.Context, msgs ...*stage.Message) ([]stage.PublishResult, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return b.Publish(ctx, msgs...)
	}
}

// lastOn is the last message stored on subject in stream (nil: none).
func lastOn(t *testing.T, b *bus.Bus, stream, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := b.JetStream().Stream(ctxFor(t), stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctxFor(t), subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func wantViolation(t *testing.T, log *testutil.SyncBuffer, subject string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	text := func() string { return strings.ReplaceAll(log.String(), `\"`, `"`) }
	for !strings.Contains(text(), "Permissions Violation") || !strings.Contains(text(), subject) {
		if time.Now().After(deadline) {
			t.Fatalf("no permissions violation for %s reported to the client; its log: %s", subject, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCollectorPublishesOnlyItsOwnHost(t *testing.T) {
	e := newEnv(t)
	op := e.mustClient(natsauth.Operator, "", nil)

	// Its own host: published, processed into an event by the worker.
	var log testutil.SyncBuffer
	c := e.mustClient(natsauth.Collector, "web-01.lva1", &log)
	if err := collect(t, "web-01.lva1", publisher(c, 10*time.Second)); err != nil {
		t.Fatalf("collector publishes its own host: %v; log: %s", err, log.String())
	}
	evs := bustest.Events(t, op, "sightline.events.snapshot.host.web-01.lva1", 1)
	if evs[0].SyncScope != "host:web-01.lva1" {
		t.Fatalf("event scope %q", evs[0].SyncScope)
	}

	// Another host's subject: refused by the server, stored nowhere.
	err := collect(t, "web-02", publisher(c, 2*time.Second))
	if err == nil {
		t.Fatal("collector of web-01.lva1 published web-02's snapshot")
	}
	wantViolation(t, &log, "sightline.raw.snapshot.host.web-02")
	if m := lastOn(t, op, bus.StreamRaw, "sightline.raw.snapshot.host.web-02"); m != nil {
		t.Fatalf("RAW holds web-02's snapshot from web-01.lva1's collector")
	}
	// The bare subject of older collectors is not granted either.
	if _, err := c.Publish(ctxTimeout(t, time.Second), &stage.Message{Subject: host.Subject, Data: []byte(`{"scope":"host:web-02","tag":1}`)}); err == nil {
		t.Fatal("collector published on the bare host subject")
	}
	wantViolation(t, &log, `"`+host.Subject+`"`)

	// Its own subject with another host's scope: the server lets it through
	// (it is its subject), the processor dead-letters it.
	bad := &stage.Message{Subject: host.SubjectFor(host.Subject, "web-01.lva1"), ID: "forged-1",
		Data: []byte(`{"scope":"host:web-02","tag":9,"final":true,"count":0}`)}
	if _, err := c.Publish(ctxFor(t), bad); err != nil {
		t.Fatal(err)
	}
	dl := bustest.Messages(t, op, bus.StreamDLQ, "sightline.dlq.>", 1)[0]
	if r := dl.Headers().Get(stage.HeaderDLQReason); !strings.Contains(r, "scope_mismatch") && !strings.Contains(r, "may only carry scope") {
		t.Fatalf("dead letter reason %q, want scope_mismatch", r)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestCollectorCannotReadOrDestroy(t *testing.T) {
	e := newEnv(t)
	var log testutil.SyncBuffer
	c := e.mustClient(natsauth.Collector, "web-02", &log)
	js := c.JetStream()

	if _, err := js.CreateConsumer(ctxTimeout(t, 2*time.Second), bus.StreamEvents, jetstream.ConsumerConfig{}); err == nil {
		t.Fatal("collector created a consumer on the events stream")
	}
	if _, err := js.OrderedConsumer(ctxTimeout(t, 2*time.Second), bus.StreamEvents, jetstream.OrderedConsumerConfig{}); err == nil {
		t.Fatal("collector read the events stream")
	}
	sub, err := c.Conn().SubscribeSync("sightline.events.>")
	if err == nil {
		defer sub.Unsubscribe()
	}
	wantViolation(t, &log, `Subscription to "sightline.events.>"`)
	if err := js.DeleteStream(ctxTimeout(t, 2*time.Second), bus.StreamEvents); err == nil {
		t.Fatal("collector deleted the events stream")
	}
	wantViolation(t, &log, "$JS.API.STREAM.DELETE."+bus.StreamEvents)
	// Another collector's replies are not readable either.
	if _, err := c.Conn().SubscribeSync(host.InboxPrefix("web-01.lva1") + ".>"); err == nil {
		wantViolation(t, &log, host.InboxPrefix("web-01.lva1"))
	}
	op := e.mustClient(natsauth.Operator, "", nil)
	if _, err := op.JetStream().Stream(ctxFor(t), bus.StreamEvents); err != nil {
		t.Fatalf("events stream after the attempts: %v", err)
	}
}

func TestReaderReadsButCannotWrite(t *testing.T) {
	e := newEnv(t)
	var log testutil.SyncBuffer
	r := e.mustClient(natsauth.Reader, "", &log)
	if _, err := status.Read(ctxFor(t), r); err != nil {
		t.Fatalf("reader: sightline status: %v; log: %s", err, log.String())
	}
	// sightline search opens and scans the hosts store (which sightline run
	// created).
	if _, err := hosts.Open(ctxFor(t), e.worker, hosts.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	store, err := hosts.Open(ctxFor(t), r, hosts.DefaultConfig())
	if err != nil {
		t.Fatalf("reader: open the hosts store: %v; log: %s", err, log.String())
	}
	if err := store.Scan(ctxFor(t), nil, func(kv.StateEntry) error { return nil }); err != nil {
		t.Fatalf("reader: scan the hosts store: %v; log: %s", err, log.String())
	}

	// A core publish (what `nats pub` does) is refused and stored nowhere.
	if err := r.Conn().Publish("sightline.raw.metric.reader", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, &log, "sightline.raw.metric.reader")
	if _, err := r.Publish(ctxTimeout(t, time.Second), &stage.Message{Subject: "sightline.raw.metric.reader", Data: []byte(`{"v":2}`)}); err == nil {
		t.Fatal("reader published to JetStream")
	}
	op := e.mustClient(natsauth.Operator, "", nil)
	if m := lastOn(t, op, bus.StreamRaw, "sightline.raw.metric.reader"); m != nil {
		t.Fatalf("RAW holds the reader's message %s", m.Data)
	}
	if err := r.JetStream().DeleteStream(ctxTimeout(t, 2*time.Second), bus.StreamRaw); err == nil {
		t.Fatal("reader deleted the raw stream")
	}
	if _, err := r.JetStream().UpdateStream(ctxTimeout(t, 2*time.Second), jetstream.StreamConfig{Name: "KV_" + natsauth.HostsBucket, Subjects: []string{"$KV.sightline_hosts.>"}, MaxMsgs: 1}); err == nil {
		t.Fatal("reader changed the hosts bucket")
	}
}

func TestWorkerCannotDeleteStreamsOperatorCan(t *testing.T) {
	e := newEnv(t)
	if err := e.worker.JetStream().DeleteStream(ctxTimeout(t, 2*time.Second), bus.StreamRaw); err == nil {
		t.Fatal("worker deleted the raw stream")
	}
	if s, err := e.worker.JetStream().Stream(ctxFor(t), bus.StreamRaw); err != nil {
		t.Fatal(err)
	} else if err := s.Purge(ctxTimeout(t, 2*time.Second)); err == nil {
		t.Fatal("worker purged the raw stream")
	}
	op := e.mustClient(natsauth.Operator, "", nil)
	if _, err := op.JetStream().CreateStream(ctxFor(t), jetstream.StreamConfig{Name: "SCRATCH", Subjects: []string{"scratch.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := op.JetStream().DeleteStream(ctxFor(t), "SCRATCH"); err != nil {
		t.Fatalf("operator deletes a stream: %v", err)
	}
}

func TestWrongCredentialsAreRefused(t *testing.T) {
	e := newEnv(t)
	if _, err := e.client(natsauth.Reader, "", nil); err != nil {
		t.Fatal(err)
	}
	e.password["reader"] = "wrong"
	if _, err := e.client(natsauth.Reader, "", nil); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("wrong password: %v", err)
	}
	// No credentials at all.
	if nc, err := nats.Connect(e.worker.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("anonymous client connected")
	}
}

// A collector key used for another host (its inbox is not that host's) is
// refused at connect, with the server's reason rather than a timeout.
func TestCollectorKeyOfAnotherHostIsRefusedAtConnect(t *testing.T) {
	e := newEnv(t)
	_, err := bus.Connect(ctxTimeout(t, 10*time.Second), bus.Options{
		URLs: []string{e.worker.ClientURL()}, NKeyFile: e.keys["web-01.lva1"], InboxPrefix: host.InboxPrefix("web-02"),
	})
	if err == nil || !strings.Contains(err.Error(), "refused this identity") || !strings.Contains(err.Error(), "Permissions Violation") {
		t.Fatalf("err = %v, want the permissions violation", err)
	}
}

// The Compose server's configuration (nats.conf including auth.conf and
// roles.conf) parses, with a user per shared role and their permissions.
func TestComposeNATSConfigParses(t *testing.T) {
	for _, v := range []string{"NATS_USER", "NATS_PASSWORD", "NATS_READER_USER", "NATS_READER_PASSWORD", "NATS_OPERATOR_USER", "NATS_OPERATOR_PASSWORD"} {
		t.Setenv(v, strings.ToLower(v))
	}
	o, err := server.ProcessConfigFile(composeConfCopy(t))
	if err != nil {
		t.Fatal(err)
	}
	if o.TLSConfig == nil {
		t.Error("nats.conf has no tls block: clients would talk plain text")
	}
	perms := map[string]*server.Permissions{}
	for _, u := range o.Users {
		perms[u.Username] = u.Permissions
	}
	if len(o.Users) != 3 || perms["nats_user"] == nil || perms["nats_reader_user"] == nil || perms["nats_operator_user"] == nil {
		t.Fatalf("users: %d %v", len(o.Users), perms)
	}
	w := perms["nats_user"]
	if w.Publish == nil || !slices.Contains(w.Publish.Deny, "$JS.API.STREAM.DELETE.>") {
		t.Fatalf("worker permissions: %+v", w.Publish)
	}
	if r := perms["nats_reader_user"]; r.Publish == nil || slices.Contains(r.Publish.Allow, "sightline.>") {
		t.Fatalf("reader permissions: %+v", r.Publish)
	}
}

// composeConfCopy copies deploy/nats/*.conf to a temporary folder with the
// certificate paths of the container (/etc/nats-tls/, filled by secrets-init)
// pointing at a throwaway self-signed certificate, and returns nats.conf's path.
func composeConfCopy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	natsCert(t, dir)
	for _, f := range []string{"nats.conf", "auth.conf", "roles.conf"} {
		b, err := os.ReadFile(filepath.Join(deployDir, f))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/etc/nats-tls/"), []byte(dir+"/"))
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "nats.conf")
}

// natsCert writes dir/nats.pem and dir/nats.key (the names nats.conf uses), a
// throw-away server certificate for 127.0.0.1, and returns its CA's path
// (what clients trust: nats.ca_file).
func natsCert(t *testing.T, dir string) string {
	t.Helper()
	ca, cert, key := authtest.WritePKI(t, dir, "nats")
	for from, to := range map[string]string{cert: "nats.pem", key: "nats.key"} {
		if err := os.Rename(from, filepath.Join(dir, to)); err != nil {
			t.Fatal(err)
		}
	}
	return ca
}

type nopSink struct{}

func (nopSink) Write(context.Context, []*stage.Message) error { return nil }
func (nopSink) Close(context.Context) error                   { return nil }

// TestReaderSeesTheWorkersHealth: `sightline status` as a reader asks every
// running process for its health (sightline.health) and the worker answers
// on the reader's inbox (allow_responses), so the status shows its parts.
func TestReaderSeesTheWorkersHealth(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consume.RunSink(ctx, e.worker, consume.Config{Stage: "healthcheck", Stream: bus.StreamEvents, Durable: "natsauth-health"}, nopSink{})
	}()
	t.Cleanup(func() { cancel(); <-done })
	var log testutil.SyncBuffer
	r := e.mustClient(natsauth.Reader, "", &log)
	deadline := time.Now().Add(20 * time.Second)
	for {
		insts, err := health.Instances(ctxFor(t), r.Conn(), time.Second)
		if err != nil {
			t.Fatalf("reader: health request: %v; log: %s", err, log.String())
		}
		if len(insts) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reader got no health answer from the worker; reader log: %s", log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestWorkerCreatesStreamsOnASmallDisk: the worker identity may create the
// streams but not change them; on a server with less storage than the
// default sizes ask for, it must create them at sizes that fit from the
// start, not create the first at full size and then fail to shrink it.
func TestWorkerCreatesStreamsOnASmallDisk(t *testing.T) {
	e := newEnvConf(t, "\njetstream { max_file_store: 8GB }\n")
	ctx := ctxFor(t)
	nc, err := nats.Connect(e.worker.ClientURL(), nats.UserInfo("operator", e.password["operator"]))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, name := range []string{bus.StreamRaw, bus.StreamEvents, bus.StreamDLQ} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		total += s.CachedInfo().Config.MaxBytes
	}
	if total <= 0 || total > 8_000_000_000 {
		t.Fatalf("streams reserve %d bytes, want at most the server's 8GB", total)
	}
}

// trustCA is the TLS of a connection that trusts the CA file ca alone,
// loaded the way the configuration loads nats.ca_file.
func trustCA(t testing.TB, ca string) *tls.Config {
	t.Helper()
	tc, err := config.TLS{CAFile: ca}.ClientConfig("nats")
	if err != nil {
		t.Fatal(err)
	}
	return tc
}
