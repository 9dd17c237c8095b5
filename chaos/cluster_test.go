package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/internal/testutil"
)

// natsServer finds the nats-server binary of the version go.mod embeds:
// CHAOS_NATS_SERVER, or the one `task services:up NATS=1` builds under
// .local/cache. Without it the test is skipped (it fails with CI=true).
func natsServer(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHAOS_NATS_SERVER"); p != "" {
		return p
	}
	matches, _ := filepath.Glob("../.local/cache/gobin/nats-server@*/nats-server")
	if len(matches) > 0 {
		return matches[len(matches)-1]
	}
	msg := "nats-server binary not found: run `task services:up NATS=1` or set CHAOS_NATS_SERVER"
	if testsvc.CI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Cluster is a 3-node NATS cluster of nats-server processes the test owns:
// its own free ports and data directories, so killing a node touches no
// one else's streams.
type Cluster struct {
	t      testing.TB
	bin    string
	dir    string
	opts   ClusterOptions
	Client []int // client ports
	routes []int
	procs  []*exec.Cmd
}

// clusterSync is the chaos cluster's JetStream sync_interval: the policy
// deploy/nats/nats.conf and the local cluster of deploy/local ship, so a
// run against this cluster proves what production promises.
const clusterSync = "always"

// ClusterOptions change how NewClusterWith starts the nodes.
type ClusterOptions struct {
	// Sync is the nodes' sync_interval ("always", "2m", ...); empty is
	// clusterSync.
	Sync string
	// Stores are the nodes' store directories (a lazyfs mount each for
	// the power-cut test); nil puts them under the cluster's directory.
	Stores []string
}

// NewCluster starts a 3-node JetStream cluster and waits until it answers.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	return NewClusterWith(t, ClusterOptions{})
}

// NewClusterWith is NewCluster with options.
func NewClusterWith(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.Sync == "" {
		o.Sync = clusterSync
	}
	c := &Cluster{t: t, bin: natsServer(t), dir: t.TempDir(), opts: o, procs: make([]*exec.Cmd, 3)}
	for range 3 {
		c.Client = append(c.Client, testutil.FreePort(t))
		c.routes = append(c.routes, testutil.FreePort(t))
	}
	for i := range 3 {
		c.writeConf(i)
		c.Start(i)
	}
	t.Cleanup(func() {
		for i := range c.procs {
			c.Kill(i)
		}
		if t.Failed() {
			for i := range c.procs {
				b, _ := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("n%d.log", i)))
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 15 {
					lines = lines[len(lines)-15:]
				}
				t.Logf("nats node %d log:\n%s", i, strings.Join(lines, "\n"))
			}
		}
	})
	c.waitUp(30 * time.Second)
	return c
}

// URLs is the comma-separated client URL list of the cluster.
func (c *Cluster) URLs() string {
	var urls []string
	for _, p := range c.Client {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return strings.Join(urls, ",")
}

func (c *Cluster) writeConf(i int) {
	var routes []string
	for _, r := range c.routes {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", r))
	}
	store := filepath.Join(c.dir, fmt.Sprintf("n%d", i))
	if c.opts.Stores != nil {
		store = c.opts.Stores[i]
	}
	conf := fmt.Sprintf(`server_name: chaos-n%d
listen: 127.0.0.1:%d
jetstream { store_dir: %q, max_memory_store: 256MB, max_file_store: 64GB, sync_interval: %q }
cluster {
  name: chaos
  listen: 127.0.0.1:%d
  routes: [ %s ]
}
`, i, c.Client[i], store, c.opts.Sync, c.routes[i], strings.Join(routes, ", "))
	if err := os.WriteFile(filepath.Join(c.dir, fmt.Sprintf("n%d.conf", i)), []byte(conf), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// Start starts node i (it must not be running).
func (c *Cluster) Start(i int) {
	log, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("n%d.log", i)), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "-c", filepath.Join(c.dir, fmt.Sprintf("n%d.conf", i)))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.procs[i] = cmd
}

// CPU is the user and system CPU time the running nodes used so far.
func (c *Cluster) CPU() time.Duration {
	var d time.Duration
	for _, cmd := range c.procs {
		if cmd != nil && cmd.Process != nil {
			d += procCPU(cmd.Process.Pid)
		}
	}
	return d
}

// Signal sends sig to node i if it runs.
func (c *Cluster) Signal(i int, sig syscall.Signal) {
	if cmd := c.procs[i]; cmd != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// Kill kills node i with SIGKILL.
func (c *Cluster) Kill(i int) {
	if cmd := c.procs[i]; cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		c.procs[i] = nil
	}
}

func (c *Cluster) waitUp(timeout time.Duration) {
	c.t.Helper()
	if err := c.up(timeout); err != nil {
		c.t.Fatal(err)
	}
}

// upWithin reports whether every node answers, JetStream included,
// within timeout (plus up to 2 minutes for the meta leader).
func (c *Cluster) upWithin(timeout time.Duration) bool {
	if err := c.up(timeout); err != nil {
		c.t.Log(err)
		return false
	}
	return true
}

func (c *Cluster) up(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, p := range c.Client {
		for {
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("nats node on %d not up after %s", p, timeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// JetStream needs its meta leader before streams can be created (long
	// on a loaded machine): wait until every node answers for it.
	for _, p := range c.Client {
		nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", p))
		if err != nil {
			return err
		}
		js, _ := jetstream.New(nc)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := js.AccountInfo(ctx)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline.Add(2 * time.Minute)) {
				nc.Close()
				return fmt.Errorf("nats node on %d: JetStream not ready: %v", p, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		nc.Close()
	}
	return nil
}

// NewWorker prepares a `sightline run` worker against the cluster (no
// embedded server), running the given stages.
func NewWorker(t testing.TB, name string, c *Cluster, stages string, sets ...string) *Pipeline {
	p := NewPipeline(t, name, append([]string{"nats.urls=" + c.URLs(), "streams.replicas=3"}, sets...)...)
	p.NATSPort = c.Client[0]
	p.Args = []string{"--stages", stages}
	return p
}
