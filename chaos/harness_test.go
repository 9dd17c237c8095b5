package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/sightline/sightline/internal/testutil"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// bin is the sightline binary built once for the package (TestMain), or
// the one CHAOS_BIN names.
var bin string

func TestMain(m *testing.M) {
	// The scenarios mostly wait (paced ingests, freezes, ack waits): run
	// up to 4 at once, not GOMAXPROCS (2 here), unless -parallel is given.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "4")
	}
	if bin = os.Getenv("CHAOS_BIN"); bin != "" {
		// A prebuilt binary (e.g. an older release, to show a bug).
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "sightline-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "sightline")
	build := exec.Command("go", "build", "-o", bin, "../cmd/sightline")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sightline:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Pipeline is one `sightline run` process the test starts, kills with
// SIGKILL, freezes with SIGSTOP and restarts, always with the same
// configuration and data directory.
type Pipeline struct {
	t        testing.TB
	Name     string
	NATSPort int
	HTTPPort int
	Sets     []string // --set key=value
	Args     []string // more arguments of `sightline run` (--stages ...)
	Env      []string // extra environment (secrets), added to a SIGHTLINE_-free environment

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	watch   map[string]chan struct{} // log message → signalled on each line with it
	log     *os.File
	Starts  int
	logSeen atomic.Int64
	cpu     time.Duration // user + system CPU of its processes that exited
}

// CPU is the user and system CPU time its processes used, counted when
// each exits (after Stop or Kill9).
func (p *Pipeline) CPU() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cpu
}

// NewPipeline prepares a pipeline with an embedded NATS server on a free
// port and its data under a fresh directory.
func NewPipeline(t testing.TB, name string, sets ...string) *Pipeline {
	dir := t.TempDir()
	p := &Pipeline{t: t, Name: name, NATSPort: testutil.FreePort(t), HTTPPort: testutil.FreePort(t), watch: map[string]chan struct{}{}}
	p.Sets = append([]string{
		fmt.Sprintf("nats.listen=127.0.0.1:%d", p.NATSPort),
		"nats.store_dir=" + filepath.Join(dir, "jetstream"),
		fmt.Sprintf("http.listen=127.0.0.1:%d", p.HTTPPort),
		"log.level=debug",
	}, sets...)
	f, err := os.Create(filepath.Join(dir, "sightline.log"))
	if err != nil {
		t.Fatal(err)
	}
	p.log = f
	t.Cleanup(func() {
		p.Stop()
		_ = f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(f.Name())
			lines := strings.Split(string(b), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("last log lines of %s:\n%s", name, strings.Join(lines, "\n"))
		}
	})
	return p
}

// URL is the NATS URL of the pipeline's embedded server.
func (p *Pipeline) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", p.NATSPort) }

// Watch returns a channel that receives (without blocking the reader) each
// time a log line with message msg is written.
func (p *Pipeline) Watch(msg string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, ok := p.watch[msg]
	if !ok {
		ch = make(chan struct{}, 1)
		p.watch[msg] = ch
	}
	return ch
}

// Start starts the process (it must not be running).
func (p *Pipeline) Start() {
	p.t.Helper()
	args := append([]string{"run"}, p.Args...)
	for _, s := range p.Sets {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(bin, args...)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SIGHTLINE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, p.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	cmd.Stdout = p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.Starts++
	p.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = p.log.Write(append(line, '\n'))
			p.logSeen.Add(1)
			var l struct {
				Msg string `json:"msg"`
			}
			if json.Unmarshal(line, &l) != nil {
				continue
			}
			p.mu.Lock()
			ch := p.watch[l.Msg]
			p.mu.Unlock()
			if ch != nil {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
		_ = cmd.Wait()
		if ps := cmd.ProcessState; ps != nil {
			p.mu.Lock()
			p.cpu += ps.UserTime() + ps.SystemTime()
			p.mu.Unlock()
		}
		close(done)
	}()
}

// signal sends sig to the running process.
func (p *Pipeline) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// detach forgets the running process and returns it and its exit
// channel (nil when none runs).
func (p *Pipeline) detach() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	return cmd, done
}

// Kill9 kills the process with SIGKILL and waits for it to be gone.
func (p *Pipeline) Kill9() {
	cmd, done := p.detach()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Freeze stops the process with SIGSTOP for d, then continues it.
func (p *Pipeline) Freeze(d time.Duration) {
	p.signal(syscall.SIGSTOP)
	time.Sleep(d)
	p.signal(syscall.SIGCONT)
}

// Stop ends the process with SIGTERM (SIGKILL after 30s).
func (p *Pipeline) Stop() {
	cmd, done := p.detach()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// WaitReady waits until /readyz answers 200.
func (p *Pipeline) WaitReady(timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.HTTPPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s not ready after %s", p.Name, timeout)
}

// Publisher publishes n raw events the way a careful producer does: each
// with its own Nats-Msg-Id, retried until JetStream acknowledges it, across
// server restarts.
type Publisher struct {
	Acked atomic.Int64
	done  chan struct{}
	err   error
}

// Publish starts publishing n events to url in the background, at most
// rate per second (0: as fast as acknowledged); subject(i) names the
// subject of event i.
func Publish(ctx context.Context, url string, n, rate int, subject func(i int) string, body func(i int) []byte) *Publisher {
	pub := &Publisher{done: make(chan struct{})}
	run := fmt.Sprintf("%x", time.Now().UnixNano()) // ids unique to this call, stable across its retries
	go func() {
		defer close(pub.done)
		nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
			nats.RetryOnFailedConnect(true), nats.Timeout(time.Second))
		if err != nil {
			pub.err = err
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			pub.err = err
			return
		}
		const window = 256 // publishes in flight
		type inflight struct {
			i int
			f jetstream.PubAckFuture
		}
		var pending []inflight
		send := func(i int) inflight {
			for {
				msg := &nats.Msg{Subject: subject(i), Data: body(i), Header: nats.Header{}}
				msg.Header.Set(nats.MsgIdHdr, fmt.Sprintf("chaos-%s-%d", run, i))
				f, err := js.PublishMsgAsync(msg)
				if err == nil {
					return inflight{i, f}
				}
				if ctx.Err() != nil {
					return inflight{i: -1}
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		settle := func(p inflight) {
			for p.i >= 0 {
				select {
				case <-p.f.Ok():
					pub.Acked.Add(1)
					return
				case <-p.f.Err():
				case <-time.After(5 * time.Second):
				case <-ctx.Done():
					return
				}
				// Not acknowledged (server gone, timeout): publish again with
				// the same id; the stream drops it if it did arrive.
				p = send(p.i)
			}
		}
		start := time.Now()
		for i := 0; i < n && ctx.Err() == nil; i++ {
			if rate > 0 {
				if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
					time.Sleep(d)
				}
			}
			pending = append(pending, send(i))
			if len(pending) >= window || rate > 0 && len(pending) >= rate/10+1 {
				for _, p := range pending {
					settle(p)
				}
				pending = pending[:0]
			}
		}
		for _, p := range pending {
			settle(p)
		}
	}()
	return pub
}

// Wait waits for every event to be acknowledged.
func (p *Publisher) Wait(t testing.TB) {
	t.Helper()
	<-p.done
	if p.err != nil {
		t.Fatal(p.err)
	}
}

// logLine is one JSON log line of a pipeline process.
type logLine struct {
	Msg   string `json:"msg"`
	Level string `json:"level"`
}

// logLines reads the JSON log lines p has written so far.
func logLines(t testing.TB, p *Pipeline) []logLine {
	t.Helper()
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		t.Fatal(err)
	}
	var out []logLine
	for _, line := range strings.Split(string(b), "\n") {
		var l logLine
		if json.Unmarshal([]byte(line), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}
